-- Search (API.md §7): shape, ranking, websearch syntax, stemming, type and
-- project filters, snippets (hits in <mark>, everything else escaped),
-- visibility, pagination, and hostile query strings. Each run uses words of
-- its own, so data from earlier runs (or other specs) never matches.
local h = require "spec.integration.helper"
local cns = require "spec.integration.support.cns"
local cjson = require "cjson"

local RESULT_KEYS = "id,projectId,rank,snippet,title,type"

local function word()
  local out = { "q" }
  for i = 2, 9 do
    local k = math.random(26)
    out[i] = ("abcdefghijklmnopqrstuvwxyz"):sub(k, k)
  end
  return table.concat(out)
end

local function urlencode(s)
  return (s:gsub("[^%w%-_.~]", function(c)
    return ("%%%02X"):format(c:byte())
  end))
end

local function search(who, params)
  local parts = {}
  for _, kv in ipairs(params) do
    parts[#parts + 1] = kv[1] .. "=" .. urlencode(kv[2])
  end
  return h.call("GET", "/api/v1/search?" .. table.concat(parts, "&"), { token = who and who.access })
end

local function expect_results(res)
  local body = h.expect_status(res, 200)
  assert.are.equal("data,meta", h.keys(body))
  assert.are.equal("limit,nextCursor", h.keys(body.meta))
  local last
  for _, r in ipairs(body.data) do
    assert.are.equal(RESULT_KEYS, h.keys(r))
    assert.is_truthy(r.type == "task" or r.type == "comment" or r.type == "project", r.type)
    assert.is_truthy(r.id:match(h.UUID))
    assert.is_truthy(r.projectId:match(h.UUID))
    assert.is_string(r.title)
    assert.is_string(r.snippet)
    assert.is_number(r.rank)
    if last then
      assert.is_true(r.rank <= last, "not ordered by rank")
    end
    last = r.rank
  end
  return body
end

local function ids(body)
  local out = {}
  for i, r in ipairs(body.data) do
    out[i] = r.id
  end
  return out
end

local function sorted(list)
  local out = { table.unpack(list) }
  table.sort(out)
  return out
end

describe("search", function()
  local owner, mem, outsider, gadmin
  local P, XP, XPUB
  local w = {}
  local t = {}
  local comment

  setup(function()
    for _, k in ipairs({ "rank", "all", "a", "b", "x", "y", "esc", "vis", "stem", "page" }) do
      w[k] = word()
    end
    owner = h.session({ name = "Owner" })
    mem = h.session({ name = "Member" })
    outsider = h.session({ name = "Outsider" })
    gadmin = cns.admin_session()
    P = cns.project(owner, { name = "Search " .. w.all, description = "about " .. w.page })
    cns.member(owner, P, mem, "member")
    t.title_hit = cns.task(owner, P, { title = w.rank .. " rocket" })
    t.desc_hit = cns.task(owner, P, { title = "Boring chore", description = "remember the " .. w.rank .. " later" })
    t.all = cns.task(owner, P, { title = "Everything " .. w.all, description = w.page })
    t.phrase = cns.task(owner, P, { title = w.a .. " " .. w.b .. " together" })
    t.apart = cns.task(owner, P, { title = w.b .. " then " .. w.a .. " apart" })
    t.x = cns.task(owner, P, { title = "only " .. w.x })
    t.y = cns.task(owner, P, { title = "only " .. w.y })
    t.script = cns.task(owner, P, { title = "<script>alert(1)</script> deploy" })
    t.amp = cns.task(owner, P, { title = "Tom & \"Jerry's\" " .. w.esc .. " <b>" })
    t.stem = cns.task(owner, P, { title = "We are deploying " .. w.stem })
    local res = h.call("POST", "/api/v1/tasks/" .. t.all.id .. "/comments", { token = mem.access,
      body = { content = "a comment about " .. w.all .. " and " .. w.page } })
    comment = h.expect_status(res, 201).data
    XP = cns.project(outsider, { name = "Secret place" })
    t.secret = cns.task(outsider, XP, { title = "secret " .. w.vis })
    XPUB = cns.project(outsider, { name = "Open place", visibility = "public" })
    t.open = cns.task(outsider, XPUB, { title = "open " .. w.vis })
  end)

  it("answers {data: [{type, id, projectId, title, snippet, rank}], meta: {limit, nextCursor}}", function()
    local body = expect_results(search(mem, { { "q", w.all } }))
    assert.are.equal(20, body.meta.limit)
    assert.are.equal(h.null, body.meta.nextCursor)
    assert.are.equal(3, #body.data)
    local by_type = {}
    for _, r in ipairs(body.data) do
      by_type[r.type] = r
    end
    assert.are.equal(t.all.id, by_type.task.id)
    assert.are.equal(P.id, by_type.task.projectId)
    assert.are.equal("Everything " .. w.all, by_type.task.title)
    assert.are.equal(comment.id, by_type.comment.id)
    assert.are.equal(P.id, by_type.comment.projectId)
    assert.are.equal("Everything " .. w.all, by_type.comment.title) -- a comment's title is its task's
    assert.are.equal(P.id, by_type.project.id)
    assert.are.equal(P.id, by_type.project.projectId)
    assert.are.equal("Search " .. w.all, by_type.project.title)
    for _, r in ipairs(body.data) do
      assert.is_truthy(r.snippet:find("<mark>" .. w.all .. "</mark>", 1, true), r.snippet)
    end
  end)

  it("ranks a title hit above a description hit", function()
    local body = expect_results(search(mem, { { "q", w.rank } }))
    assert.are.same({ t.title_hit.id, t.desc_hit.id }, ids(body))
    assert.is_true(body.data[1].rank > body.data[2].rank)
  end)

  it("filters by type (comma list; default all three)", function()
    local function types(qs)
      local out = {}
      for _, r in ipairs(expect_results(search(mem, { { "q", w.all }, { "type", qs } })).data) do
        out[#out + 1] = r.type
      end
      table.sort(out)
      return table.concat(out, ",")
    end
    assert.are.equal("task", types("tasks"))
    assert.are.equal("comment", types("comments"))
    assert.are.equal("project", types("projects"))
    assert.are.equal("comment,task", types("tasks,comments"))
    assert.are.equal("comment,project,task", types("projects,comments,tasks"))
  end)

  it("filters by projectId", function()
    local body = expect_results(search(outsider, { { "q", w.vis }, { "projectId", XPUB.id } }))
    assert.are.same({ t.open.id }, ids(body))
    body = expect_results(search(mem, { { "q", w.vis }, { "projectId", P.id } }))
    assert.are.equal(0, #body.data)
  end)

  it("understands websearch syntax: \"quoted phrases\", -word, or", function()
    assert.are.same({ t.phrase.id }, ids(expect_results(search(mem, { { "q", '"' .. w.a .. " " .. w.b .. '"' } }))))
    assert.are.same(sorted({ t.phrase.id, t.apart.id }),
      sorted(ids(expect_results(search(mem, { { "q", w.a .. " " .. w.b } })))))
    assert.are.same({ t.phrase.id }, ids(expect_results(search(mem, { { "q", w.a .. " -apart" } }))))
    assert.are.same(sorted({ t.x.id, t.y.id }),
      sorted(ids(expect_results(search(mem, { { "q", w.x .. " or " .. w.y } })))))
    assert.are.same({}, ids(expect_results(search(mem, { { "q", w.x .. " " .. w.y } }))))
  end)

  it("stems words (english): deploy finds deploying", function()
    local body = expect_results(search(mem, { { "q", "deploy " .. w.stem } }))
    assert.are.same({ t.stem.id }, ids(body))
    assert.is_truthy(body.data[1].snippet:find("<mark>deploying</mark>", 1, true), body.data[1].snippet)
  end)

  it("marks hits with <mark> and HTML-escapes everything else in the snippet", function()
    local body = expect_results(search(mem, { { "q", "deploy" }, { "projectId", P.id }, { "type", "tasks" } }))
    local found
    for _, r in ipairs(body.data) do
      if r.id == t.script.id then
        found = r
      end
    end
    assert.is_table(found, "the <script> task was not found")
    assert.are.equal("<script>alert(1)</script> deploy", found.title)
    assert.is_truthy(found.snippet:find("&lt;script&gt;", 1, true), found.snippet)
    assert.is_truthy(found.snippet:find("&lt;/script&gt;", 1, true), found.snippet)
    assert.is_truthy(found.snippet:find("<mark>deploy</mark>", 1, true), found.snippet)
    assert.is_falsy(found.snippet:find("<script", 1, true), found.snippet)
    body = expect_results(search(mem, { { "q", w.esc } }))
    assert.are.equal(1, #body.data)
    local s = body.data[1].snippet
    assert.is_truthy(s:find("Tom &amp; &quot;Jerry&#39;s&quot; <mark>" .. w.esc .. "</mark> &lt;b&gt;", 1, true), s)
    -- nothing but <mark> and </mark> is a tag
    assert.are.equal("", (s:gsub("</?mark>", ""):gsub("[^<>]", "")))
  end)

  it("shows only what the caller may read: never someone else's private project", function()
    assert.are.same({ t.open.id }, ids(expect_results(search(mem, { { "q", w.vis } }))))
    local both = sorted({ t.open.id, t.secret.id })
    assert.are.same(both, sorted(ids(expect_results(search(outsider, { { "q", w.vis } })))))
    assert.are.same(both, sorted(ids(expect_results(search(gadmin, { { "q", w.vis } })))))
    assert.are.same({}, ids(expect_results(search(outsider, { { "q", w.rank } }))))
    expect_results(search(gadmin, { { "q", w.all }, { "projectId", P.id } }))
  end)

  it("finds comments by their task's project, which the database keeps (migration 0009)", function()
    local function comment_project(id)
      return h.psql("SELECT project_id FROM comments WHERE id = " .. h.sql_literal(id))
    end
    local word_c = word()
    local task = cns.task(owner, P, { title = "Movable chore" })
    local c = h.expect_status(h.call("POST", "/api/v1/tasks/" .. task.id .. "/comments",
      { token = owner.access, body = { content = "moving " .. word_c } }), 201).data
    assert.are.equal(P.id, comment_project(c.id))
    -- a comment in someone else's private project stays theirs
    local secret = h.expect_status(h.call("POST", "/api/v1/tasks/" .. t.secret.id .. "/comments",
      { token = outsider.access, body = { content = "hidden " .. word_c } }), 201).data
    assert.are.equal(XP.id, comment_project(secret.id))
    assert.are.same({ c.id }, ids(expect_results(search(mem, { { "q", word_c } }))))
    assert.are.same({ secret.id }, ids(expect_results(search(outsider, { { "q", word_c } }))))
    assert.are.same(sorted({ c.id, secret.id }), sorted(ids(expect_results(search(gadmin, { { "q", word_c } })))))
    -- a project_id written by hand is the task's again
    h.psql(("UPDATE comments SET project_id = %s WHERE id = %s"):format(h.sql_literal(XP.id), h.sql_literal(c.id)))
    assert.are.equal(P.id, comment_project(c.id))
    -- the API does not move tasks; SQL that does takes the comments along
    local Q = cns.project(owner, { name = "Elsewhere" })
    h.psql(("UPDATE tasks SET project_id = %s WHERE id = %s"):format(h.sql_literal(Q.id), h.sql_literal(task.id)))
    assert.are.equal(Q.id, comment_project(c.id))
    assert.are.same({ c.id }, ids(expect_results(search(owner, { { "q", word_c }, { "projectId", Q.id } }))))
    assert.are.same({}, ids(expect_results(search(owner, { { "q", word_c }, { "projectId", P.id } }))))
    assert.are.same({}, ids(expect_results(search(mem, { { "q", word_c } }))))
  end)

  it("answers 404 for a projectId the caller may not read, or that does not exist", function()
    h.expect_error(search(mem, { { "q", w.vis }, { "projectId", XP.id } }), 404, "not_found")
    h.expect_error(search(mem, { { "q", w.vis }, { "projectId", "00000000-0000-4000-8000-000000000000" } }),
      404, "not_found")
  end)

  it("pages by rank with limit and cursor: every hit exactly once", function()
    local seen, cursor, pages, last = {}, nil, 0, math.huge
    repeat
      local params = { { "q", w.page }, { "limit", "1" } }
      if cursor then
        params[#params + 1] = { "cursor", cursor }
      end
      local body = expect_results(search(mem, params))
      assert.are.equal(1, body.meta.limit)
      for _, r in ipairs(body.data) do
        assert.is_true(r.rank <= last)
        last = r.rank
        seen[#seen + 1] = r.id
      end
      pages = pages + 1
      cursor = body.meta.nextCursor ~= h.null and body.meta.nextCursor or nil
    until cursor == nil or pages > 10
    assert.are.same(sorted({ P.id, t.all.id, comment.id }), sorted(seen))
  end)

  it("answers 400 invalid_parameter for a missing or empty q, a bad type, projectId, limit or cursor", function()
    local bad = {
      {}, { { "q", "" } }, { { "q", "   " } },
      { { "q", "x" }, { "type", "users" } }, { { "q", "x" }, { "type", "" } },
      { { "q", "x" }, { "type", "tasks,bogus" } },
      { { "q", "x" }, { "projectId", "not-a-uuid" } }, { { "q", "x" }, { "projectId", "' OR 1=1 --" } },
      { { "q", "x" }, { "limit", "0" } }, { { "q", "x" }, { "limit", "101" } },
      { { "q", "x" }, { "cursor", "nope" } },
      { { "q", "x" }, { "cursor", h.b64url_encode(cjson.encode({ "NaN", "task", P.id })) } },
      { { "q", "x" }, { "cursor", h.b64url_encode(cjson.encode({ 0.5, "user", P.id })) } },
      { { "q", "x" }, { "cursor", h.b64url_encode(cjson.encode({ 0.5, "task", "1 OR 1=1" })) } },
      { { "q", "x" }, { "cursor", h.b64url_encode(cjson.encode({ -1, "task", P.id })) } },
      { { "q", "x" }, { "sort", "rank" } },
    }
    for _, params in ipairs(bad) do
      h.expect_error(search(mem, params), 400, "invalid_parameter")
    end
  end)

  it("handles hostile and odd query strings without a 500", function()
    for _, q in ipairs({ "'; DROP TABLE tasks; --", "\" OR 1=1 --", '"unbalanced', "-", "or", "-" .. w.rank,
        "!!&&||:*()", w.rank .. ":*", "\\", "%", "<mark>", "$1", "the", "a & b | !c <-> d",
        string.rep("long ", 150) }) do
      expect_results(search(mem, { { "q", q } }))
    end
    local body = expect_results(search(mem, { { "q", "the and of" } }))
    assert.are.equal(0, #body.data)
  end)

  it("answers 401 without a token", function()
    h.expect_error(search(nil, { { "q", "x" } }), 401, "unauthorized")
  end)
end)
