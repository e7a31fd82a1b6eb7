-- Stable JSON (issue #9): every object of the contract is written in its
-- field order (API.md; id first), the same GET twice answers the same bytes,
-- a task written by C from the database row (lists, GET /tasks/:id) is byte
-- for byte the task the Lua shape writes (POST, PATCH), and '/' is never
-- escaped. Key order is read from the raw text by a small ordered reader
-- below (decoded tables have none).
local h = require "spec.integration.helper"
local cns = require "spec.integration.support.cns"

-- ---- an ordered reader ------------------------------------------------------

-- Reads the JSON value at s[i] (after white space). Returns a node and the
-- position after it: objects are {keys = {...}, values = {k = node}}, arrays
-- {items = {...}}, scalars {text = "..."}; every node has first/last, its
-- raw text's span in s.
local function read(s, i)
  i = s:find("%S", i)
  local c = s:sub(i, i)
  if c == "{" then
    local node = { keys = {}, values = {}, first = i }
    i = s:find("%S", i + 1)
    if s:sub(i, i) == "}" then
      node.last = i
      return node, i + 1
    end
    while true do
      local k
      k, i = read(s, i)
      local key = k.text
      i = s:find("%S", i)
      assert(s:sub(i, i) == ":", "expected : at " .. i)
      local v
      v, i = read(s, i + 1)
      node.keys[#node.keys + 1] = key:sub(2, -2)
      node.values[key:sub(2, -2)] = v
      i = s:find("%S", i)
      local d = s:sub(i, i)
      if d == "}" then
        node.last = i
        return node, i + 1
      end
      assert(d == ",", "expected , or } at " .. i)
      i = i + 1
    end
  elseif c == "[" then
    local node = { items = {}, first = i }
    i = s:find("%S", i + 1)
    if s:sub(i, i) == "]" then
      node.last = i
      return node, i + 1
    end
    while true do
      local v
      v, i = read(s, i)
      node.items[#node.items + 1] = v
      i = s:find("%S", i)
      local d = s:sub(i, i)
      if d == "]" then
        node.last = i
        return node, i + 1
      end
      assert(d == ",", "expected , or ] at " .. i)
      i = i + 1
    end
  elseif c == '"' then
    local j = i + 1
    while true do
      local q = s:find('["\\]', j)
      if s:sub(q, q) == "\\" then
        j = q + 2
      else
        return { text = s:sub(i, q), first = i, last = q }, q + 1
      end
    end
  else
    local j = s:find("[,%]}%s]", i) or #s + 1
    return { text = s:sub(i, j - 1), first = i, last = j - 1 }, j
  end
end

local function parse(raw)
  assert.is_string(raw)
  local node = read(raw, 1)
  return node
end

local function raw_of(raw, node)
  return raw:sub(node.first, node.last)
end

local function order(node)
  return table.concat(node.keys, ",")
end

-- ---- the contract's orders ----------------------------------------------------

local TASK = "id,projectId,title,description,status,priority,assigneeId,createdBy,dueDate,"
  .. "completedAt,tags,version,createdAt,updatedAt"
local PROJECT = "id,name,description,visibility,status,ownerId,role,memberCount,createdAt,updatedAt"
local USER = "id,email,name,role,avatarUrl,emailVerified,createdAt,updatedAt"
local MEMBER = "userId,name,email,role,joinedAt"
local COMMENT = "id,taskId,userId,author,content,mentions,createdAt,updatedAt"
local AUTHOR = "id,name,avatarUrl"
local NOTIFICATION = "id,type,data,readAt,createdAt"
local SEARCH_RESULT = "type,id,projectId,title,snippet,rank"
local LIST = "data,meta"
local META = "limit,nextCursor"
local ERROR = "code,message"
local ERROR_DETAILS = "code,message,details"

-- GETs path twice as `who`; asserts 200 and identical bytes; returns the
-- raw text and its ordered tree.
local function get_twice(who, path)
  local a = h.call("GET", path, { token = who.access })
  local b = h.call("GET", path, { token = who.access })
  h.expect_status(a, 200)
  h.expect_status(b, 200)
  assert.are.equal(a.raw, b.raw, "two GETs of " .. path .. " differ")
  return a.raw, parse(a.raw)
end

local function expect_list(node, item_order, min)
  assert.are.equal(LIST, order(node))
  assert.are.equal(META, order(node.values.meta))
  local items = node.values.data.items
  assert.is_true(#items >= (min or 1), "too few items")
  for _, it in ipairs(items) do
    assert.are.equal(item_order, order(it))
  end
  return items
end

describe("JSON key order and stable bytes", function()
  local owner, member, project, task, word

  setup(function()
    owner = h.session({ name = "Order Owner" })
    member = h.session({ name = "Order Member" })
    word = "jsonorder" .. h.random_word(12):gsub("%d", "")
    project = cns.project(owner, { description = "a/b </mark> \"quoted\"" })
    cns.member(owner, project, member, "member")
    local res = h.call("POST", "/api/v1/projects/" .. project.id .. "/tasks", { token = owner.access,
      body = { title = word .. " a/b <tag>", description = "x/y\n\t\"z\" é", assigneeId = member.user.id,
        dueDate = "2026-03-04", tags = { "t/1", "t2" } } })
    task = h.expect_status(res, 201).data
    cns.task(owner, project, { title = "plain " .. h.random_word(5) }) -- a second task: nulls, no tags
  end)

  describe("tasks", function()
    it("GET /tasks/:id: the contract's order, the same bytes twice, '/' not escaped", function()
      local raw, node = get_twice(owner, "/api/v1/tasks/" .. task.id)
      assert.are.equal("data", order(node))
      assert.are.equal(TASK, order(node.values.data))
      assert.is_nil(raw:find("\\/", 1, true), raw)
      assert.truthy(raw:find(" a/b <tag>", 1, true), raw)
      assert.truthy(raw:find('"tags":["t/1","t2"]', 1, true), raw)
    end)

    it("lists: every task in the contract's order, the same bytes twice", function()
      for _, path in ipairs({ "/api/v1/tasks?projectId=" .. project.id,
        "/api/v1/projects/" .. project.id .. "/tasks", "/api/v1/tasks?limit=1&projectId=" .. project.id,
        "/api/v1/tasks" }) do
        local _, node = get_twice(owner, path)
        expect_list(node, TASK)
      end
    end)

    it("a task written from the row (GET, list) is byte for byte the one the Lua shape writes (PATCH)",
      function()
        local res = h.call("PATCH", "/api/v1/tasks/" .. task.id, { token = owner.access,
          body = { priority = "high" } })
        h.expect_status(res, 200)
        local patched = raw_of(res.raw, parse(res.raw).values.data)
        local got = h.call("GET", "/api/v1/tasks/" .. task.id, { token = owner.access })
        assert.are.equal(patched, raw_of(got.raw, parse(got.raw).values.data))
        local list = h.call("GET", "/api/v1/projects/" .. project.id .. "/tasks?sort=-updatedAt&limit=1",
          { token = owner.access })
        local first = parse(list.raw).values.data.items[1]
        assert.are.equal(patched, raw_of(list.raw, first))
        -- and a task with nulls and no tags (written by C only) decodes to the same shape
        local all = h.call("GET", "/api/v1/projects/" .. project.id .. "/tasks", { token = owner.access })
        for _, t in ipairs(all.body.data) do
          assert.is_table(t.tags)
        end
        assert.truthy(all.raw:find('"assigneeId":null', 1, true), all.raw)
        assert.truthy(all.raw:find('"tags":[]', 1, true), all.raw)
      end)
  end)

  describe("projects, members, users", function()
    it("GET /projects/:id and GET /projects", function()
      local raw, node = get_twice(owner, "/api/v1/projects/" .. project.id)
      assert.are.equal(PROJECT, order(node.values.data))
      assert.truthy(raw:find("a/b </mark>", 1, true), raw)
      local _, list = get_twice(owner, "/api/v1/projects")
      expect_list(list, PROJECT)
    end)

    it("GET /projects/:id/members", function()
      local _, node = get_twice(owner, "/api/v1/projects/" .. project.id .. "/members")
      for _, m in ipairs(node.values.data.items) do
        assert.are.equal(MEMBER, order(m))
      end
    end)

    it("GET /auth/me and the login answer", function()
      local _, node = get_twice(owner, "/api/v1/auth/me")
      assert.are.equal(USER, order(node.values.data))
      local res = h.call("POST", "/api/v1/auth/login",
        { body = { email = owner.email, password = owner.password } })
      h.expect_status(res, 200)
      local data = parse(res.raw).values.data
      assert.are.equal("accessToken,refreshToken,tokenType,expiresIn,user", order(data))
      assert.are.equal(USER, order(data.values.user))
    end)
  end)

  describe("comments, notifications, search", function()
    it("GET /tasks/:id/comments", function()
      local res = h.call("POST", "/api/v1/tasks/" .. task.id .. "/comments", { token = owner.access,
        body = { content = "see http://example.com/a/b " .. word } })
      h.expect_status(res, 201)
      assert.are.equal(COMMENT, order(parse(res.raw).values.data))
      local raw, node = get_twice(owner, "/api/v1/tasks/" .. task.id .. "/comments")
      for _, c in ipairs(expect_list(node, COMMENT)) do
        assert.are.equal(AUTHOR, order(c.values.author))
      end
      assert.truthy(raw:find("http://example.com/a/b", 1, true), raw)
    end)

    it("GET /notifications", function()
      -- the member was assigned the task: a task_assigned notification
      local _, node = get_twice(member, "/api/v1/notifications")
      expect_list(node, NOTIFICATION)
    end)

    it("GET /search: the contract's order, <mark> tags unescaped", function()
      local raw, node = get_twice(owner, "/api/v1/search?q=" .. word)
      expect_list(node, SEARCH_RESULT)
      assert.truthy(raw:find("</mark>", 1, true), raw)
      assert.is_nil(raw:find("<\\/mark>", 1, true), raw)
    end)
  end)

  describe("errors", function()
    it("an error object is code, message[, details]", function()
      local res = h.call("GET", "/api/v1/tasks/00000000-0000-4000-8000-000000000000",
        { token = owner.access })
      h.expect_status(res, 404)
      assert.are.equal(ERROR, order(parse(res.raw).values.error))
      res = h.call("POST", "/api/v1/projects/" .. project.id .. "/tasks", { token = owner.access,
        body = { title = "" } })
      h.expect_status(res, 422)
      local e = parse(res.raw).values.error
      assert.are.equal(ERROR_DETAILS, order(e))
      assert.are.equal("field,message", order(e.values.details.items[1]))
    end)
  end)
end)
