-- Integration specs for the member routes of API.md §3 against a live
-- server: list (keyset pagination on joinedAt, userId), add by userId or
-- email, change role, remove and leave, with exact shapes and every status
-- and error code; the owner can be neither removed nor re-roled (409, whoever
-- asks); a removed member's tasks stay, unassigned. Event delivery is not
-- asserted here (the realtime transport is not built yet).
local h = require "spec.integration.helper"
local P = require "spec.integration.support.proj"

local null = h.null
local call = P.call
local lit = h.sql_literal

local function members_path(id)
  return "/projects/" .. id .. "/members"
end

local function add(token, id, body)
  return call("POST", members_path(id), token, body)
end

local function change(token, id, user_id, role)
  return call("PATCH", members_path(id) .. "/" .. user_id, token, { role = role })
end

local function remove(token, id, user_id)
  return call("DELETE", members_path(id) .. "/" .. user_id, token)
end

describe("members API (API.md §3)", function()
  local owner, alice, bob, carol, gadmin

  setup(function()
    owner = P.user("Owner Person")
    alice = P.user("Alice Example")
    bob = P.user("Bob Example")
    carol = P.user("Carol Example")
    gadmin = P.global_admin()
  end)

  describe("GET /projects/:id/members", function()
    it("lists members with the exact Member shape, in the order they joined", function()
      local p = P.create(owner, { name = "Team" })
      h.expect_status(add(owner.access, p.id, { userId = alice.id, role = "admin" }), 201)
      h.expect_status(add(owner.access, p.id, { userId = bob.id, role = "viewer" }), 201)
      local b = P.expect_list(call("GET", members_path(p.id), owner.access), 20)
      assert.are.equal(null, b.meta.nextCursor)
      assert.are.equal(3, #b.data)
      for _, m in ipairs(b.data) do
        P.expect_member(m)
      end
      assert.are.same({ owner.id, "owner", owner.name, owner.email },
        { b.data[1].userId, b.data[1].role, b.data[1].name, b.data[1].email })
      assert.are.same({ alice.id, "admin" }, { b.data[2].userId, b.data[2].role })
      assert.are.same({ bob.id, "viewer" }, { b.data[3].userId, b.data[3].role })
      assert.is_true(b.data[1].joinedAt <= b.data[2].joinedAt and b.data[2].joinedAt <= b.data[3].joinedAt)
    end)

    it("is readable by a viewer, by anyone on a public project, by a global admin; hidden (404) otherwise",
      function()
        local private = P.make(owner.id, { [alice.id] = "viewer" }, {})
        local public = P.make(owner.id, {}, { visibility = "public" })
        h.expect_status(call("GET", members_path(private), alice.access), 200)
        h.expect_status(call("GET", members_path(private), gadmin.access), 200)
        h.expect_status(call("GET", members_path(public), bob.access), 200)
        h.expect_error(call("GET", members_path(private), bob.access), 404, "not_found")
        h.expect_error(call("GET", members_path("not-a-uuid"), owner.access), 404, "not_found")
        h.expect_error(call("GET", members_path(P.nil_uuid()), owner.access), 404, "not_found")
        h.expect_error(call("GET", members_path(private), nil), 401, "unauthorized")
      end)

    it("walks every page with the cursor, each member exactly once, ties on joinedAt broken by userId",
      function()
        local extra = P.bare_users(6, "Paged")
        local roles = {}
        for i, u in ipairs(extra) do
          roles[u.id] = i % 2 == 0 and "member" or "viewer"
        end
        -- every membership of a fixture project has the same joined_at
        local id = P.make(owner.id, roles, {})
        local items, pages = P.walk(members_path(id), owner.access, 2)
        assert.are.equal(4, pages)
        assert.are.equal(7, #items)
        local seen, expected = {}, { owner.id }
        for _, u in ipairs(extra) do
          expected[#expected + 1] = u.id
        end
        table.sort(expected)
        for i, m in ipairs(items) do
          P.expect_member(m)
          assert.is_nil(seen[m.userId], "seen twice: " .. m.userId)
          seen[m.userId] = true
          assert.are.equal(expected[i], m.userId)
        end
      end)

    it("answers 400 invalid_parameter to a bad limit or cursor", function()
      local id = P.make(owner.id, {}, {})
      for _, qs in ipairs({ "limit=0", "limit=101", "limit=abc", "cursor=%%%", "cursor=e30",
        "cursor=" .. h.b64url_encode('["2026-13-01T00:00:00.000Z","' .. P.nil_uuid() .. '"]'),
        "cursor=" .. h.b64url_encode('["2026-01-01T00:00:00.000Z","1 OR 1=1"]'), "role=owner" }) do
        h.expect_error(call("GET", members_path(id) .. "?" .. qs, owner.access), 400, "invalid_parameter")
      end
    end)
  end)

  describe("POST /projects/:id/members", function()
    local id

    before_each(function()
      id = P.make(owner.id, { [alice.id] = "admin" }, {})
    end)

    it("adds a user by userId as a member by default: 201 {data: Member}", function()
      local res = add(owner.access, id, { userId = bob.id })
      local b = h.expect_status(res, 201)
      assert.are.equal("data", h.keys(b))
      local m = P.expect_member(b.data)
      assert.are.same({ bob.id, bob.name, bob.email, "member" }, { m.userId, m.name, m.email, m.role })
      assert.are.equal("member", P.db_role(id, bob.id))
      -- the new member now sees the project, in its list too, with the new count
      local p = h.expect_status(call("GET", "/projects/" .. id, bob.access), 200).data
      assert.are.equal("member", p.role)
      assert.are.equal(3, p.memberCount)
      local found
      for _, q in ipairs(P.expect_list(call("GET", "/projects?limit=100", bob.access), 100).data) do
        if q.id == id then
          found = q
        end
      end
      assert.are.equal("member", found and found.role)
    end)

    it("adds a user by email (trimmed, case-insensitive) with the role given", function()
      local res = add(owner.access, id, { email = "  " .. bob.email:upper() .. " ", role = "viewer" })
      local m = P.expect_member(h.expect_status(res, 201).data)
      assert.are.equal(bob.id, m.userId)
      assert.are.equal("viewer", m.role)
      m = P.expect_member(h.expect_status(add(owner.access, id, { email = carol.email, role = "admin" }), 201).data)
      assert.are.equal("admin", m.role)
    end)

    it("answers 409 already_member for a member, including the owner", function()
      h.expect_status(add(owner.access, id, { userId = bob.id }), 201)
      h.expect_error(add(owner.access, id, { userId = bob.id, role = "viewer" }), 409, "already_member")
      h.expect_error(add(owner.access, id, { email = bob.email }), 409, "already_member")
      h.expect_error(add(owner.access, id, { userId = owner.id }), 409, "already_member")
      assert.are.equal("member", P.db_role(id, bob.id))
      assert.are.equal("owner", P.db_role(id, owner.id))
    end)

    it("answers 404 for an unknown user, by id or by email", function()
      h.expect_error(add(owner.access, id, { userId = P.nil_uuid() }), 404, "not_found")
      h.expect_error(add(owner.access, id, { email = h.unique_email("nobody") }), 404, "not_found")
      h.expect_error(add(owner.access, id, { email = "o'brien@example.com" }), 404, "not_found")
    end)

    it("answers 422 unless exactly one of userId and email is given, and for bad values", function()
      h.expect_validation(add(owner.access, id, {}), { "userId", "email" })
      h.expect_validation(add(owner.access, id, { role = "member" }), { "userId", "email" })
      h.expect_validation(add(owner.access, id, { userId = bob.id, email = bob.email }), { "userId", "email" })
      h.expect_validation(add(owner.access, id, { userId = bob.id, role = "owner" }), { "role" })
      h.expect_validation(add(owner.access, id, { userId = bob.id, role = "boss" }), { "role" })
      h.expect_validation(add(owner.access, id, { userId = "not-a-uuid" }), { "userId" })
      h.expect_validation(add(owner.access, id, { userId = null }), { "userId" })
      h.expect_validation(add(owner.access, id, { email = "'; DROP TABLE users; --" }), { "email" })
      h.expect_validation(add(owner.access, id, { email = "%' OR '1'='1" }), { "email" })
      h.expect_validation(add(owner.access, id, { userId = bob.id, admin = true }), { "admin" })
      assert.are.equal("", P.db_role(id, bob.id))
      assert.are.equal("t", h.psql("SELECT to_regclass('public.users') IS NOT NULL"))
    end)

    it("lets an admin add members and viewers but not admins", function()
      h.expect_status(add(alice.access, id, { userId = bob.id, role = "viewer" }), 201)
      h.expect_error(add(alice.access, id, { userId = carol.id, role = "admin" }), 403, "forbidden")
      h.expect_status(add(alice.access, id, { userId = carol.id }), 201)
    end)

    it("answers 404 for a malformed, unknown or hidden project", function()
      h.expect_error(add(owner.access, "x", { userId = bob.id }), 404, "not_found")
      h.expect_error(add(owner.access, P.nil_uuid(), { userId = bob.id }), 404, "not_found")
      h.expect_error(add(bob.access, id, { userId = bob.id }), 404, "not_found")
    end)
  end)

  describe("PATCH /projects/:id/members/:userId", function()
    local id

    before_each(function()
      id = P.make(owner.id, { [alice.id] = "admin", [bob.id] = "member", [carol.id] = "viewer" }, {})
    end)

    it("changes a role: 200 {data: Member}", function()
      local res = change(owner.access, id, bob.id, "admin")
      local b = h.expect_status(res, 200)
      assert.are.equal("data", h.keys(b))
      local m = P.expect_member(b.data)
      assert.are.same({ bob.id, "admin", bob.email }, { m.userId, m.role, m.email })
      assert.are.equal("admin", P.db_role(id, bob.id))
      m = h.expect_status(change(alice.access, id, carol.id, "member"), 200).data
      assert.are.equal("member", m.role)
    end)

    it("to the same role answers 200 and changes nothing", function()
      local m = h.expect_status(change(owner.access, id, bob.id, "member"), 200).data
      assert.are.equal("member", m.role)
    end)

    it("answers 409 conflict to any change of the owner's role, whoever asks", function()
      h.expect_error(change(owner.access, id, owner.id, "admin"), 409, "conflict")
      h.expect_error(change(alice.access, id, owner.id, "viewer"), 409, "conflict")
      h.expect_error(change(gadmin.access, id, owner.id, "member"), 409, "conflict")
      assert.are.equal("owner", P.db_role(id, owner.id))
    end)

    it("answers 422 for a missing or bad role (owner is given by transfer only) and unknown fields", function()
      h.expect_validation(call("PATCH", members_path(id) .. "/" .. bob.id, owner.access, {}), { "role" })
      h.expect_validation(change(owner.access, id, bob.id, "owner"), { "role" })
      h.expect_validation(change(owner.access, id, bob.id, null), { "role" })
      h.expect_validation(call("PATCH", members_path(id) .. "/" .. bob.id, owner.access,
        { role = "viewer", userId = carol.id }), { "userId" })
      assert.are.equal("member", P.db_role(id, bob.id))
    end)

    it("answers 404 for a non-member, a malformed user id, a malformed or hidden project", function()
      local stranger = P.user("Stranger")
      h.expect_error(change(owner.access, id, stranger.id, "viewer"), 404, "not_found")
      h.expect_error(change(owner.access, id, P.nil_uuid(), "viewer"), 404, "not_found")
      h.expect_error(change(owner.access, id, "not-a-uuid", "viewer"), 404, "not_found")
      h.expect_error(change(owner.access, "nope", bob.id, "viewer"), 404, "not_found")
      h.expect_error(change(stranger.access, id, bob.id, "viewer"), 404, "not_found")
    end)

    it("refuses an admin to touch admins or make admins (403)", function()
      h.expect_error(change(alice.access, id, bob.id, "admin"), 403, "forbidden")
      local other_admin = P.user("Second Admin")
      h.expect_status(add(owner.access, id, { userId = other_admin.id, role = "admin" }), 201)
      h.expect_error(change(alice.access, id, other_admin.id, "member"), 403, "forbidden")
      h.expect_error(change(alice.access, id, alice.id, "member"), 403, "forbidden")
      assert.are.equal("admin", P.db_role(id, other_admin.id))
    end)
  end)

  describe("DELETE /projects/:id/members/:userId", function()
    local id

    before_each(function()
      id = P.make(owner.id, { [alice.id] = "admin", [bob.id] = "member", [carol.id] = "viewer" }, {})
    end)

    it("removes a member: 204, no body, and the project is hidden from them again", function()
      local res = remove(owner.access, id, bob.id)
      h.expect_status(res, 204)
      assert.are.equal("", res.raw)
      assert.are.equal("", P.db_role(id, bob.id))
      h.expect_error(call("GET", "/projects/" .. id, bob.access), 404, "not_found")
      assert.are.equal(3, h.expect_status(call("GET", "/projects/" .. id, owner.access), 200).data.memberCount)
      h.expect_error(remove(owner.access, id, bob.id), 404, "not_found")
    end)

    it("keeps the removed member's tasks in that project, unassigned, one version later", function()
      local mine = P.task(id, bob.id, bob.id, "bob's own")
      local given = P.task(id, owner.id, bob.id, "given to bob")
      local carols = P.task(id, bob.id, carol.id, "carol's")
      local elsewhere_project = P.make(owner.id, { [bob.id] = "member" }, {})
      local elsewhere = P.task(elsewhere_project, owner.id, bob.id, "elsewhere")
      h.expect_status(remove(alice.access, id, bob.id), 204)
      local function state(task)
        return h.psql(("SELECT coalesce(assignee_id::text, 'NULL') || '|' || version || '|' || created_by"
          .. " || '|' || (updated_at > created_at) FROM tasks WHERE id = %s"):format(lit(task)))
      end
      assert.are.equal("NULL|2|" .. bob.id .. "|true", state(mine))
      assert.are.equal("NULL|2|" .. owner.id .. "|true", state(given))
      assert.are.equal(carol.id .. "|1|" .. bob.id .. "|false", state(carols))
      assert.are.equal(bob.id .. "|1|" .. owner.id .. "|false", state(elsewhere))
    end)

    it("lets a member, a viewer and an admin leave (remove themselves)", function()
      h.expect_status(remove(bob.access, id, bob.id), 204)
      h.expect_status(remove(carol.access, id, carol.id), 204)
      h.expect_status(remove(alice.access, id, alice.id), 204)
      local b = P.expect_list(call("GET", members_path(id), owner.access), 20)
      assert.are.equal(1, #b.data)
      assert.are.equal(owner.id, b.data[1].userId)
    end)

    it("never removes the owner: 409 conflict, whoever asks, leaving included", function()
      h.expect_error(remove(owner.access, id, owner.id), 409, "conflict")
      h.expect_error(remove(alice.access, id, owner.id), 409, "conflict")
      h.expect_error(remove(bob.access, id, owner.id), 409, "conflict")
      h.expect_error(remove(gadmin.access, id, owner.id), 409, "conflict")
      assert.are.equal("owner", P.db_role(id, owner.id))
    end)

    it("refuses removals at or above the caller's role (403)", function()
      local second_admin = P.user("Admin Two")
      h.expect_status(add(owner.access, id, { userId = second_admin.id, role = "admin" }), 201)
      h.expect_error(remove(alice.access, id, second_admin.id), 403, "forbidden")
      h.expect_error(remove(bob.access, id, carol.id), 403, "forbidden")
      h.expect_error(remove(carol.access, id, bob.id), 403, "forbidden")
      h.expect_status(remove(alice.access, id, carol.id), 204)
      h.expect_status(remove(gadmin.access, id, second_admin.id), 204)
    end)

    it("answers 404 for a non-member, malformed ids and a hidden project", function()
      local stranger = P.user("Stranger Two")
      h.expect_error(remove(owner.access, id, stranger.id), 404, "not_found")
      h.expect_error(remove(stranger.access, id, stranger.id), 404, "not_found")
      h.expect_error(remove(owner.access, id, "42"), 404, "not_found")
      h.expect_error(remove(owner.access, "42", bob.id), 404, "not_found")
      h.expect_error(remove(stranger.access, id, bob.id), 404, "not_found")
      h.expect_error(remove(nil, id, bob.id), 401, "unauthorized")
    end)

    it("removes once when the same removal arrives several times at once", function()
      local results = h.parallel(5, "DELETE", "/api/v1" .. members_path(id) .. "/" .. bob.id,
        { token = owner.access })
      local counts = {}
      for _, r in ipairs(results) do
        counts[r.status] = (counts[r.status] or 0) + 1
      end
      assert.are.equal(1, counts[204], h.keys(counts))
      assert.are.equal(4, counts[404], h.keys(counts))
    end)
  end)
end)
