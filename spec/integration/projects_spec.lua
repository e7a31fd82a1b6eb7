-- Integration specs for the project routes of API.md §3 against a live
-- server: create, list (filters, keyset pagination), read, update (archive
-- and reactivate), delete (with everything under it) and ownership transfer,
-- with exact shapes, every status and error code, and hostile input that
-- must be stored verbatim or rejected, never a 500. Event delivery is not
-- asserted here (the realtime transport is not built yet).
local h = require "spec.integration.helper"
local P = require "spec.integration.support.proj"

local null = h.null
local call = P.call

local function get_project(token, id)
  return call("GET", "/projects/" .. id, token)
end

local function ids_of(items)
  local out = {}
  for i, it in ipairs(items) do
    out[i] = it.id
  end
  return out
end

local function names_of(items)
  local out = {}
  for i, it in ipairs(items) do
    out[i] = it.name
  end
  table.sort(out)
  return out
end

local INJECTIONS = {
  "'; DROP TABLE users; --",
  "%' OR '1'='1",
  "Robert'); DROP TABLE projects;--",
  "1; SELECT pg_sleep(10)",
  "$1 $2 \\' \\\\ \" ` ${x} {{x}} <script>alert(1)</script>",
  "name' UNION SELECT password_hash FROM users --",
}

describe("projects API (API.md §3)", function()
  local owner, other, admin

  setup(function()
    owner = P.user("Owner One")
    other = P.user("Other Person")
    admin = P.global_admin()
  end)

  describe("POST /projects", function()
    it("answers 201 with the exact Project, the caller as owner, defaults filled in", function()
      local res = call("POST", "/projects", owner.access, { name = "  Apollo \t\n" })
      local b = h.expect_status(res, 201)
      assert.are.equal("data", h.keys(b))
      local p = P.expect_project(b.data)
      assert.are.equal("Apollo", p.name)
      assert.are.equal("", p.description)
      assert.are.equal("private", p.visibility)
      assert.are.equal("active", p.status)
      assert.are.equal(owner.id, p.ownerId)
      assert.are.equal("owner", p.role)
      assert.are.equal(1, p.memberCount)
      assert.are.equal(p.createdAt, p.updatedAt)
      assert.are.equal("/api/v1/projects/" .. p.id, res.headers["location"])
      assert.are.equal("owner", P.db_role(p.id, owner.id))
      assert.are.equal("1", h.psql(("SELECT count(*) FROM project_members WHERE project_id = %s")
        :format(h.sql_literal(p.id))))
    end)

    it("keeps description and visibility as given (description is not trimmed)", function()
      local p = P.create(owner, { name = "Public one", description = "  spaced  ", visibility = "public" })
      assert.are.equal("  spaced  ", p.description)
      assert.are.equal("public", p.visibility)
    end)

    it("counts lengths in Unicode characters: 200 two-byte characters are fine, 201 are not", function()
      local p = P.create(owner, { name = string.rep("é", 200), description = string.rep("ü", 10000) })
      assert.are.equal(string.rep("é", 200), p.name)
      h.expect_validation(call("POST", "/projects", owner.access, { name = string.rep("é", 201) }), { "name" })
      h.expect_validation(call("POST", "/projects", owner.access,
        { name = "x", description = string.rep("a", 10001) }), { "description" })
    end)

    it("rejects a missing, empty or blank name, a bad visibility and unknown fields with 422", function()
      h.expect_validation(call("POST", "/projects", owner.access, {}), { "name" })
      h.expect_validation(call("POST", "/projects", owner.access, { name = "" }), { "name" })
      h.expect_validation(call("POST", "/projects", owner.access, { name = " \t " }), { "name" })
      h.expect_validation(call("POST", "/projects", owner.access, { name = 5 }), { "name" })
      h.expect_validation(call("POST", "/projects", owner.access, { name = "x", visibility = "secret" }),
        { "visibility" })
      h.expect_validation(call("POST", "/projects", owner.access, { name = "x", status = "active" }),
        { "status" })
      h.expect_validation(call("POST", "/projects", owner.access, { name = "x", ownerId = other.id }),
        { "ownerId" })
      h.expect_validation(call("POST", "/projects", owner.access, { name = "x", description = null }),
        { "description" })
      h.expect_validation(call("POST", "/projects", owner.access, { name = "a\0b" }), { "name" })
    end)

    it("answers 400 invalid_json to a body that is not a JSON object, 401 without a token", function()
      h.expect_error(h.call("POST", "/api/v1/projects", { token = owner.access, body = "{name" }),
        400, "invalid_json")
      h.expect_error(h.call("POST", "/api/v1/projects", { token = owner.access, body = "[1]" }),
        400, "invalid_json")
      h.expect_error(call("POST", "/projects", nil, { name = "x" }), 401, "unauthorized")
    end)

    it("stores SQL-injection-shaped names and descriptions verbatim", function()
      for _, s in ipairs(INJECTIONS) do
        local p = P.create(owner, { name = s, description = s })
        assert.are.equal(s, p.name)
        assert.are.equal(s, p.description)
        local got = h.expect_status(get_project(owner.access, p.id), 200).data
        assert.are.equal(s, got.name)
        assert.are.equal(s, got.description)
      end
      assert.are.equal("t", h.psql("SELECT to_regclass('public.users') IS NOT NULL"))
      assert.are.equal("t", h.psql("SELECT to_regclass('public.projects') IS NOT NULL"))
    end)
  end)

  describe("GET /projects", function()
    local u, t0

    -- A fresh user with a known set of projects, created at known times.
    before_each(function()
      u = P.user("Lister")
      t0 = os.time() - 3600
    end)

    local function at(sec)
      return os.date("!%Y-%m-%dT%H:%M:%S", t0 + sec) .. ".000Z"
    end

    it("lists only the caller's projects, newest first, with the caller's role", function()
      local own = P.make(u.id, {}, { name = "mine", created_at = at(1) })
      local as_viewer = P.make(other.id, { [u.id] = "viewer" }, { name = "theirs", created_at = at(2) })
      P.make(other.id, {}, { name = "not mine", visibility = "public", created_at = at(3) })
      P.make(other.id, {}, { name = "not mine either", created_at = at(4) })
      local b = P.expect_list(call("GET", "/projects", u.access), 20)
      assert.are.same({ as_viewer, own }, ids_of(b.data))
      assert.are.equal(null, b.meta.nextCursor)
      for _, p in ipairs(b.data) do
        P.expect_project(p)
      end
      assert.are.equal("viewer", b.data[1].role)
      assert.are.equal(2, b.data[1].memberCount)
      assert.are.equal("owner", b.data[2].role)
    end)

    it("answers an empty list as [] with nextCursor null", function()
      local res = call("GET", "/projects", u.access)
      local b = P.expect_list(res, 20)
      assert.are.equal(0, #b.data)
      assert.are.equal(null, b.meta.nextCursor)
    end)

    it("walks every page with the cursor, each project exactly once, ties broken by id", function()
      local specs = {}
      for i = 1, 7 do
        -- pairs of projects share a created_at: the id decides their order
        specs[i] = { key = "p" .. i, name = "p" .. i, created_at = at(i // 2) }
      end
      P.make_many(u.id, {}, specs)
      local items, pages = P.walk("/projects", u.access, 3)
      assert.are.equal(3, pages)
      assert.are.equal(7, #items)
      local seen = {}
      for _, p in ipairs(items) do
        assert.is_nil(seen[p.id], "seen twice: " .. p.id)
        seen[p.id] = true
      end
      -- the same order as one big page, and that order is (createdAt, id) descending
      local all = P.expect_list(call("GET", "/projects?limit=100", u.access), 100).data
      assert.are.same(ids_of(all), ids_of(items))
      for i = 2, #all do
        local a, b = all[i - 1], all[i]
        assert.is_true(a.createdAt > b.createdAt or (a.createdAt == b.createdAt and a.id > b.id),
          "out of order at " .. i)
      end
    end)

    it("is stable under concurrent inserts: a project created mid-walk does not disturb it", function()
      local specs = {}
      for i = 1, 5 do
        specs[i] = { key = "s" .. i, created_at = at(i) }
      end
      P.make_many(u.id, {}, specs)
      local first = P.expect_list(call("GET", "/projects?limit=2", u.access), 2)
      local newer = P.create(u, { name = "created during the walk" })
      local seen = ids_of(first.data)
      local cursor = first.meta.nextCursor
      while cursor ~= null do
        local b = P.expect_list(call("GET", "/projects?limit=2&cursor=" .. cursor, u.access), 2)
        for _, p in ipairs(b.data) do
          seen[#seen + 1] = p.id
        end
        cursor = b.meta.nextCursor
      end
      assert.are.equal(5, #seen)
      for _, id in ipairs(seen) do
        assert.are_not.equal(newer.id, id)
      end
    end)

    it("filters by status and visibility, also across pages", function()
      local specs = {}
      for i = 1, 3 do
        specs[#specs + 1] = { key = "a" .. i, name = "arch" .. i, status = "archived", created_at = at(i) }
        specs[#specs + 1] = { key = "b" .. i, name = "pub" .. i, visibility = "public", created_at = at(10 + i) }
        specs[#specs + 1] = { key = "c" .. i, name = "plain" .. i, created_at = at(20 + i) }
      end
      P.make_many(u.id, {}, specs)
      local archived = P.walk("/projects", u.access, 2, "status=archived")
      assert.are.same({ "arch1", "arch2", "arch3" }, names_of(archived))
      local public = P.walk("/projects", u.access, 2, "visibility=public")
      assert.are.same({ "pub1", "pub2", "pub3" }, names_of(public))
      local active_private = P.walk("/projects", u.access, 2, "status=active&visibility=private")
      assert.are.same({ "plain1", "plain2", "plain3" }, names_of(active_private))
    end)

    it("q matches names containing it, case-insensitively, with %, _ and \\ taken literally", function()
      local names = { "Launch 100% Done", "Launch 100 percent", "a_b", "axb", "back\\slash", "backslash",
        "%' OR '1'='1", "plain" }
      local specs = {}
      for i, n in ipairs(names) do
        specs[i] = { key = "q" .. i, name = n, created_at = at(i) }
      end
      P.make_many(u.id, {}, specs)
      local function search(q)
        return names_of(P.expect_list(call("GET", "/projects?q=" .. P.qs(q), u.access), 20).data)
      end
      assert.are.same({ "Launch 100 percent", "Launch 100% Done" }, search("LAUNCH"))
      assert.are.same({ "Launch 100% Done" }, search("100% d"))
      assert.are.same({ "%' OR '1'='1", "Launch 100% Done" }, search("%"))
      assert.are.same({ "a_b" }, search("_"))
      assert.are.same({ "back\\slash" }, search("\\"))
      assert.are.same({ "%' OR '1'='1" }, search("%' OR '1'='1"))
      assert.are.same({}, search("'; DROP TABLE users; --"))
      assert.are.same({}, search("nothing like this"))
      -- an empty q is no filter
      assert.are.equal(#names, #P.expect_list(call("GET", "/projects?q=&limit=100", u.access), 100).data)
    end)

    it("answers 400 invalid_parameter to bad limit, cursor, status, visibility and unknown parameters",
      function()
        P.make(u.id, {}, {})
        for _, qs in ipairs({ "limit=0", "limit=101", "limit=abc", "limit=1.5", "limit=-1",
          "cursor=abc", "cursor=" .. h.b64url_encode('["x","y"]'),
          "cursor=" .. h.b64url_encode('["2026-02-30T00:00:00.000Z","' .. P.nil_uuid() .. '"]'),
          "cursor=" .. h.b64url_encode('["2026-01-01T00:00:00.000Z","not-a-uuid"]'),
          "cursor=" .. h.b64url_encode('["2026-01-01T00:00:00.000Z"]'),
          "cursor=" .. h.b64url_encode('{"a":1}'),
          "status=deleted", "visibility=secret", "bogus=1" }) do
          local res = call("GET", "/projects?" .. qs, u.access)
          h.expect_error(res, 400, "invalid_parameter")
        end
      end)

    it("accepts limit 1 and 100", function()
      P.make_many(u.id, {}, { { key = "one" }, { key = "two" } })
      local b = P.expect_list(call("GET", "/projects?limit=1", u.access), 1)
      assert.are.equal(1, #b.data)
      assert.is_string(b.meta.nextCursor)
      P.expect_list(call("GET", "/projects?limit=100", u.access), 100)
    end)

    it("needs a token", function()
      h.expect_error(call("GET", "/projects", nil), 401, "unauthorized")
    end)
  end)

  describe("GET /projects/:id", function()
    it("shows a member the project with its role and member count", function()
      local id = P.make(owner.id, { [other.id] = "member" }, { name = "readable" })
      local p = P.expect_project(h.expect_status(get_project(other.access, id), 200).data)
      assert.are.equal(id, p.id)
      assert.are.equal("member", p.role)
      assert.are.equal(2, p.memberCount)
      assert.are.equal(owner.id, p.ownerId)
    end)

    it("hides a private project from a non-member with 404, never 403", function()
      local id = P.make(owner.id, {}, {})
      h.expect_error(get_project(other.access, id), 404, "not_found")
    end)

    it("shows a public project to any authenticated user with role null", function()
      local id = P.make(owner.id, {}, { visibility = "public" })
      local p = P.expect_project(h.expect_status(get_project(other.access, id), 200).data)
      assert.are.equal(null, p.role)
    end)

    it("shows a private project to a global admin who is not a member, with role null", function()
      local id = P.make(owner.id, {}, {})
      local p = P.expect_project(h.expect_status(get_project(admin.access, id), 200).data)
      assert.are.equal(null, p.role)
    end)

    it("answers 404 to an unknown id and to a malformed one, 401 without a token", function()
      h.expect_error(get_project(owner.access, P.nil_uuid()), 404, "not_found")
      for _, bad in ipairs({ "not-a-uuid", "1", "00000000-0000-0000-0000-00000000000g",
        "%27%20OR%20%271%27%3D%271" }) do
        h.expect_error(get_project(owner.access, bad), 404, "not_found")
      end
      h.expect_error(get_project(nil, P.nil_uuid()), 401, "unauthorized")
    end)
  end)

  describe("PATCH /projects/:id", function()
    it("changes only the named fields and answers the updated Project", function()
      local p0 = P.create(owner, { name = "Before", description = "keep me" })
      h.sleep(0.01)
      local res = call("PATCH", "/projects/" .. p0.id, owner.access, { name = "  After  " })
      local p = P.expect_project(h.expect_status(res, 200).data)
      assert.are.equal("After", p.name)
      assert.are.equal("keep me", p.description)
      assert.are.equal("private", p.visibility)
      assert.are.equal("active", p.status)
      assert.are.equal(p0.createdAt, p.createdAt)
      assert.is_true(p.updatedAt > p0.updatedAt)
      assert.are.equal("owner", p.role)
      res = call("PATCH", "/projects/" .. p0.id, owner.access,
        { description = "", visibility = "public", status = "archived" })
      p = h.expect_status(res, 200).data
      assert.are.equal("After", p.name)
      assert.are.equal("", p.description)
      assert.are.equal("public", p.visibility)
      assert.are.equal("archived", p.status)
    end)

    it("with an empty body changes nothing", function()
      local p0 = P.create(owner, { name = "Same" })
      local p = h.expect_status(call("PATCH", "/projects/" .. p0.id, owner.access, {}), 200).data
      assert.are.same(p0, p)
    end)

    it("lets an admin update", function()
      local id = P.make(owner.id, { [other.id] = "admin" }, {})
      local p = h.expect_status(call("PATCH", "/projects/" .. id, other.access, { name = "By admin" }), 200).data
      assert.are.equal("By admin", p.name)
      assert.are.equal("admin", p.role)
    end)

    it("rejects bad values, null and unknown fields with 422", function()
      local p0 = P.create(owner, { name = "Valid" })
      local path = "/projects/" .. p0.id
      h.expect_validation(call("PATCH", path, owner.access, { name = "" }), { "name" })
      h.expect_validation(call("PATCH", path, owner.access, { name = null }), { "name" })
      h.expect_validation(call("PATCH", path, owner.access, { description = null }), { "description" })
      h.expect_validation(call("PATCH", path, owner.access, { status = "deleted" }), { "status" })
      h.expect_validation(call("PATCH", path, owner.access, { visibility = "hidden" }), { "visibility" })
      h.expect_validation(call("PATCH", path, owner.access, { ownerId = other.id }), { "ownerId" })
      h.expect_validation(call("PATCH", path, owner.access, { id = P.nil_uuid() }), { "id" })
      assert.are.equal("Valid", h.expect_status(get_project(owner.access, p0.id), 200).data.name)
    end)

    it("stores SQL-injection-shaped values verbatim", function()
      local p0 = P.create(owner, { name = "Valid" })
      for _, s in ipairs(INJECTIONS) do
        local p = h.expect_status(call("PATCH", "/projects/" .. p0.id, owner.access,
          { name = s, description = s }), 200).data
        assert.are.equal(s, p.name)
        assert.are.equal(s, p.description)
      end
    end)

    it("answers 404 for a malformed or unknown id and for a private project of others", function()
      h.expect_error(call("PATCH", "/projects/nope", owner.access, { name = "x" }), 404, "not_found")
      h.expect_error(call("PATCH", "/projects/" .. P.nil_uuid(), owner.access, { name = "x" }), 404, "not_found")
      local id = P.make(owner.id, {}, {})
      h.expect_error(call("PATCH", "/projects/" .. id, other.access, { name = "x" }), 404, "not_found")
    end)
  end)

  describe("an archived project", function()
    local member, outsider, id

    setup(function()
      member = P.user("Archived Member")
      outsider = P.user("Archived Outsider")
    end)

    before_each(function()
      id = P.create(owner, { name = "To archive" }).id
      h.expect_status(call("POST", "/projects/" .. id .. "/members", owner.access,
        { userId = member.id, role = "member" }), 201)
      local p = h.expect_status(call("PATCH", "/projects/" .. id, owner.access, { status = "archived" }), 200)
      assert.are.equal("archived", p.data.status)
    end)

    it("can still be read, listed, and its members listed", function()
      h.expect_status(get_project(member.access, id), 200)
      h.expect_status(call("GET", "/projects/" .. id .. "/members", member.access), 200)
      local list = P.expect_list(call("GET", "/projects?status=archived&limit=100", owner.access), 100)
      local found = false
      for _, p in ipairs(list.data) do
        found = found or p.id == id
      end
      assert.is_true(found)
    end)

    it("refuses every write under it with 409 conflict", function()
      local base = "/projects/" .. id
      h.expect_error(call("POST", base .. "/members", owner.access, { userId = outsider.id }), 409, "conflict")
      h.expect_error(call("PATCH", base .. "/members/" .. member.id, owner.access, { role = "viewer" }),
        409, "conflict")
      h.expect_error(call("DELETE", base .. "/members/" .. member.id, owner.access), 409, "conflict")
      h.expect_error(call("DELETE", base .. "/members/" .. member.id, member.access), 409, "conflict")
      h.expect_error(call("POST", base .. "/transfer", owner.access, { userId = member.id }), 409, "conflict")
      h.expect_error(call("POST", base .. "/transfer", admin.access, { userId = member.id }), 409, "conflict")
      assert.are.equal("member", P.db_role(id, member.id))
      assert.are.equal("", P.db_role(id, outsider.id))
    end)

    it("still answers 404 / 403 before 409 to those who may not write anyway", function()
      local base = "/projects/" .. id
      h.expect_error(call("POST", base .. "/members", outsider.access, { userId = outsider.id }), 404, "not_found")
      h.expect_error(call("POST", base .. "/members", member.access, { userId = outsider.id }), 403, "forbidden")
    end)

    it("may be renamed, reactivated (then writes work again) and deleted", function()
      local base = "/projects/" .. id
      local p = h.expect_status(call("PATCH", base, owner.access, { name = "Renamed while archived" }), 200).data
      assert.are.equal("archived", p.status)
      assert.are.equal("Renamed while archived", p.name)
      p = h.expect_status(call("PATCH", base, owner.access, { status = "active" }), 200).data
      assert.are.equal("active", p.status)
      h.expect_status(call("POST", base .. "/members", owner.access, { userId = outsider.id }), 201)
      h.expect_status(call("PATCH", base, owner.access, { status = "archived" }), 200)
      h.expect_status(call("DELETE", base, owner.access), 204)
      h.expect_error(get_project(owner.access, id), 404, "not_found")
    end)
  end)

  describe("DELETE /projects/:id", function()
    it("answers 204 with no body and takes tasks, comments and memberships with it", function()
      local id = P.make(owner.id, { [other.id] = "member" }, {})
      local task = P.task(id, other.id, other.id)
      h.psql(("INSERT INTO comments (task_id, user_id, content) VALUES (%s, %s, 'bye')"):format(
        h.sql_literal(task), h.sql_literal(other.id)))
      local res = call("DELETE", "/projects/" .. id, owner.access)
      h.expect_status(res, 204)
      assert.are.equal("", res.raw)
      h.expect_error(get_project(owner.access, id), 404, "not_found")
      local lit = h.sql_literal(id)
      assert.are.equal("0|0|0|0", h.psql(([[
        SELECT (SELECT count(*) FROM projects WHERE id = %s) || '|' ||
               (SELECT count(*) FROM project_members WHERE project_id = %s) || '|' ||
               (SELECT count(*) FROM tasks WHERE project_id = %s) || '|' ||
               (SELECT count(*) FROM comments WHERE task_id = %s)]]):format(lit, lit, lit,
        h.sql_literal(task))))
      -- the users are untouched
      assert.are.equal("2", h.psql(("SELECT count(*) FROM users WHERE id IN (%s, %s)"):format(
        h.sql_literal(owner.id), h.sql_literal(other.id))))
      h.expect_error(call("DELETE", "/projects/" .. id, owner.access), 404, "not_found")
    end)

    it("is for the owner (and a global admin) only", function()
      local id = P.make(owner.id, { [other.id] = "admin" }, {})
      h.expect_error(call("DELETE", "/projects/" .. id, other.access), 403, "forbidden")
      h.expect_status(call("DELETE", "/projects/" .. id, admin.access), 204)
      assert.are.equal("0", h.psql("SELECT count(*) FROM projects WHERE id = " .. h.sql_literal(id)))
    end)

    it("answers 404 to a malformed or unknown id", function()
      h.expect_error(call("DELETE", "/projects/x'--", owner.access), 404, "not_found")
      h.expect_error(call("DELETE", "/projects/" .. P.nil_uuid(), owner.access), 404, "not_found")
    end)
  end)

  describe("POST /projects/:id/transfer", function()
    local function transfer(token, id, body)
      return call("POST", "/projects/" .. id .. "/transfer", token, body)
    end

    it("makes a member the owner and the old owner an admin; answers 200 with the Project", function()
      local id = P.make(owner.id, { [other.id] = "viewer" }, {})
      local p = P.expect_project(h.expect_status(transfer(owner.access, id, { userId = other.id }), 200).data)
      assert.are.equal(other.id, p.ownerId)
      assert.are.equal("admin", p.role) -- the caller's role, after the transfer
      assert.are.equal(2, p.memberCount)
      assert.are.equal("admin", P.db_role(id, owner.id))
      assert.are.equal("owner", P.db_role(id, other.id))
      assert.are.equal(other.id, h.psql("SELECT owner_id FROM projects WHERE id = " .. h.sql_literal(id)))
      -- the new owner can now do owner things; the old one cannot
      h.expect_error(transfer(owner.access, id, { userId = owner.id }), 403, "forbidden")
      h.expect_error(call("DELETE", "/projects/" .. id, owner.access), 403, "forbidden")
      local back = h.expect_status(transfer(other.access, id, { userId = owner.id }), 200).data
      assert.are.equal(owner.id, back.ownerId)
      assert.are.equal("admin", P.db_role(id, other.id))
    end)

    it("to the current owner changes nothing", function()
      local id = P.make(owner.id, { [other.id] = "member" }, {})
      local p = h.expect_status(transfer(owner.access, id, { userId = owner.id }), 200).data
      assert.are.equal(owner.id, p.ownerId)
      assert.are.equal("owner", p.role)
      assert.are.equal("member", P.db_role(id, other.id))
    end)

    it("lets a global admin transfer a project it is not a member of", function()
      local id = P.make(owner.id, { [other.id] = "member" }, {})
      local p = h.expect_status(transfer(admin.access, id, { userId = other.id }), 200).data
      assert.are.equal(other.id, p.ownerId)
      assert.are.equal(null, p.role)
      assert.are.equal("admin", P.db_role(id, owner.id))
      assert.are.equal("owner", P.db_role(id, other.id))
    end)

    it("answers 422 for a non-member, an unknown user, a malformed or missing userId", function()
      local id = P.make(owner.id, {}, {})
      h.expect_validation(transfer(owner.access, id, { userId = other.id }), { "userId" })
      h.expect_validation(transfer(owner.access, id, { userId = P.nil_uuid() }), { "userId" })
      h.expect_validation(transfer(owner.access, id, { userId = "'; DROP TABLE users; --" }), { "userId" })
      h.expect_validation(transfer(owner.access, id, {}), { "userId" })
      h.expect_validation(transfer(owner.access, id, { userId = other.id, role = "owner" }), { "role" })
      assert.are.equal("owner", P.db_role(id, owner.id))
    end)

    it("is refused to admins (403) and hidden from outsiders of a private project (404)", function()
      local outsider = P.user("Transfer Outsider")
      local id = P.make(owner.id, { [other.id] = "admin" }, {})
      h.expect_error(transfer(other.access, id, { userId = other.id }), 403, "forbidden")
      h.expect_error(transfer(outsider.access, id, { userId = other.id }), 404, "not_found")
      h.expect_error(transfer(owner.access, "nope", { userId = other.id }), 404, "not_found")
      h.expect_error(transfer(owner.access, P.nil_uuid(), { userId = other.id }), 404, "not_found")
    end)

    it("leaves exactly one owner when the owner fires several transfers at once", function()
      local b = P.user("Concurrent B")
      local id = P.make(owner.id, { [b.id] = "member", [other.id] = "member" }, {})
      local results = h.parallel(6, "POST", "/api/v1/projects/" .. id .. "/transfer",
        { token = owner.access, body = { userId = b.id } })
      local counts = {}
      for _, r in ipairs(results) do
        counts[r.status] = (counts[r.status] or 0) + 1
      end
      -- the first one wins; the rest see that the caller is no longer the owner
      assert.are.equal(1, counts[200], h.keys(counts))
      assert.are.equal(5, counts[403], h.keys(counts))
      assert.are.equal("1", h.psql(("SELECT count(*) FROM project_members WHERE project_id = %s AND role = 'owner'")
        :format(h.sql_literal(id))))
      assert.are.equal("owner", P.db_role(id, b.id))
      assert.are.equal("admin", P.db_role(id, owner.id))
    end)
  end)
end)
