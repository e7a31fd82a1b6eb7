-- Integration specs for /api/v1/auth (API.md §2) against a live server:
-- every endpoint, and every error code of §1 the auth routes can produce,
-- with assertions on status, error code and body shape. Ends by proving that
-- no answer and no server log line carries a password sent or a token
-- received (the one-time mail tokens are exempt from the log check: the log
-- carries the mail link until SMTP lands, by decision).
local h = require "spec.integration.helper"

local AUTH = "/api/v1/auth"
local null = h.null

local function post(path, body, opts)
  opts = opts or {}
  opts.body = body
  return h.call("POST", AUTH .. path, opts)
end

local function me(token)
  return h.call("GET", AUTH .. "/me", { token = token })
end

local function refresh(token)
  return post("/refresh", { refreshToken = token })
end

local function expect_pair(res)
  local d = h.expect_status(res, 200).data
  assert.are.equal("data", h.keys(res.body))
  assert.are.equal("accessToken,expiresIn,refreshToken,tokenType,user", h.keys(d))
  assert.are.equal("Bearer", d.tokenType)
  assert.are.equal(900, d.expiresIn)
  assert.is_string(d.accessToken)
  assert.is_string(d.refreshToken)
  -- ≥ 256 bits of randomness: at least 43 base64url characters.
  assert.is_true(#d.refreshToken >= 43, "refresh token too short: " .. #d.refreshToken)
  assert.are_not.equal(d.accessToken, d.refreshToken)
  h.expect_user(d.user)
  h.expect_no_hash(res.raw)
  return d
end

local function uuid()
  local r = h.random_word(32):gsub("[^%x]", "a")
  return ("%s-%s-4%s-a%s-%s"):format(r:sub(1, 8), r:sub(9, 12), r:sub(14, 16), r:sub(18, 20),
    r:sub(21, 32))
end

describe("auth API (API.md §2)", function()
  describe("POST /auth/register", function()
    it("answers 201 {data:{user}} with a lower-cased email, a trimmed name, the exact User shape", function()
      local email = h.unique_email("Reg"):upper()
      local res = post("/register", { email = email, password = h.unique_password(), name = "  Ada Lovelace \t" })
      local body = h.expect_status(res, 201)
      assert.are.equal("data", h.keys(body))
      assert.are.equal("user", h.keys(body.data))
      local u = h.expect_user(body.data.user)
      assert.are.equal(email:lower(), u.email)
      assert.are.equal("Ada Lovelace", u.name)
      assert.are.equal("user", u.role)
      assert.are.equal(null, u.avatarUrl)
      assert.is_false(u.emailVerified)
      assert.are.equal(u.createdAt, u.updatedAt)
      h.expect_no_hash(res.raw)
      assert.truthy(res.headers["content-type"]:find("application/json", 1, true))
    end)

    it("queues exactly one verification email with a token link", function()
      local u = h.register_user()
      assert.are.equal(1, h.mail_count(u.email, "verify_email"))
      assert.are.equal(0, h.mail_count(u.email, "reset_password"))
      local payload = h.psql(([[SELECT payload->>'subject' || '|' || (payload->>'link' LIKE '%%/verify-email?token=%%')
        FROM jobs WHERE kind = 'email' AND payload->>'to' = %s]]):format(h.sql_literal(u.email)))
      local subject, has_link = payload:match("^(.*)|(%a+)$")
      assert.is_truthy(subject ~= nil and #subject > 0, payload)
      assert.are.equal("true", has_link)
      local token = h.mail_token(u.email, "verify_email")
      assert.is_string(token)
      assert.is_true(#token >= 43)
    end)

    it("answers 409 email_taken for a registered email, also in another case", function()
      local u = h.register_user()
      h.expect_error(post("/register", { email = u.email, password = h.unique_password(), name = "X" }),
        409, "email_taken")
      h.expect_error(post("/register", { email = u.email:upper(), password = h.unique_password(), name = "X" }),
        409, "email_taken")
      -- No second account, no second verification mail.
      assert.are.equal("1", h.psql("SELECT count(*) FROM users WHERE email = " .. h.sql_literal(u.email)))
      assert.are.equal(1, h.mail_count(u.email, "verify_email"))
    end)

    it("counts the password in bytes: 7 and 73 bytes are 422, 8 and 72 bytes are fine", function()
      local function try(pw)
        return post("/register", { email = h.unique_email(), password = pw, name = "P" })
      end
      h.expect_validation(try("Pw-" .. h.random_word(4)), { "password" })              -- 7 bytes
      h.expect_validation(try("Pw-" .. h.random_word(70)), { "password" })             -- 73 bytes
      h.expect_validation(try(string.rep("é", 3) .. "x"), { "password" })              -- 4 chars, 7 bytes
      h.expect_validation(try(string.rep("é", 36) .. "x"), { "password" })             -- 37 chars, 73 bytes
      h.expect_status(try(string.rep("é", 4)), 201)                                    -- 4 chars, 8 bytes
      h.expect_status(try("Pw-" .. h.random_word(69)), 201)                            -- 72 bytes
    end)

    it("answers 422 for a bad email", function()
      for _, bad in ipairs({ "not-an-email", "a@", "@b.com", "a b@c.com", "" }) do
        h.expect_validation(post("/register", { email = bad, password = h.unique_password(), name = "N" }),
          { "email" })
      end
    end)

    it("answers 422 for a name that is empty after trimming, or over 100 characters", function()
      local function try(name)
        return post("/register", { email = h.unique_email(), password = h.unique_password(), name = name })
      end
      h.expect_validation(try(""), { "name" })
      h.expect_validation(try("   \t\n "), { "name" })
      h.expect_validation(try(string.rep("a", 101)), { "name" })
      h.expect_validation(try(string.rep("日", 101)), { "name" })
    end)

    it("accepts 100 multi-byte characters as a name", function()
      local name = string.rep("日", 100)
      local res = post("/register", { email = h.unique_email(), password = h.unique_password(), name = name })
      local u = h.expect_user(h.expect_status(res, 201).data.user)
      assert.are.equal(name, u.name)
    end)

    it("answers 422 naming each missing, mistyped and unknown field", function()
      h.expect_validation(post("/register", {}), { "email", "password", "name" })
      h.expect_validation(post("/register", { email = 5, password = true, name = { "x" } }),
        { "email", "password", "name" })
      h.expect_validation(post("/register", { email = h.unique_email(), password = h.unique_password(),
        name = "N", role = "admin" }), { "role" })
      h.expect_validation(post("/register", { email = h.unique_email(), password = h.unique_password(),
        name = "N", emailVerified = true }), { "emailVerified" })
    end)
  end)

  describe("POST /auth/login", function()
    local u
    lazy_setup(function()
      u = h.register_user({ name = "Login User" })
    end)

    it("answers 200 with a token pair and the user", function()
      local d = expect_pair(post("/login", { email = u.email, password = u.password }))
      assert.are.same(u.user, d.user)
      local header, claims = h.jwt_parts(d.accessToken)
      assert.is_table(header, "access token is not a JWT")
      assert.are.equal("HS256", header.alg)
      assert.is_string(header.kid)
      assert.are.equal(u.user.id, claims.sub)
      assert.are.equal("user", claims.role)
      assert.is_string(claims.jti)
      assert.are.equal(900, claims.exp - claims.iat)
      assert.is_true(math.abs(claims.iat - os.time()) < 120)
    end)

    it("takes the email case-insensitively", function()
      expect_pair(post("/login", { email = u.email:upper(), password = u.password }))
    end)

    it("issues a new pair on every login", function()
      local a = expect_pair(post("/login", { email = u.email, password = u.password }))
      local b = expect_pair(post("/login", { email = u.email, password = u.password }))
      assert.are_not.equal(a.refreshToken, b.refreshToken)
      assert.are_not.equal(a.accessToken, b.accessToken)
    end)

    it("answers the same 401 invalid_credentials for a wrong password and an unknown email", function()
      local wrong = post("/login", { email = u.email, password = u.password .. "x" })
      local unknown = post("/login", { email = h.unique_email("nobody"), password = u.password })
      h.expect_error(wrong, 401, "invalid_credentials")
      h.expect_error(unknown, 401, "invalid_credentials")
      assert.are.same(wrong.body, unknown.body)
    end)

    it("answers 422 for missing fields", function()
      h.expect_validation(post("/login", {}), { "email", "password" })
      h.expect_validation(post("/login", { email = u.email }), { "password" })
    end)
  end)

  describe("GET /auth/me and access tokens", function()
    local s, kid
    lazy_setup(function()
      s = h.session({ name = "Me User" })
      kid = h.jwt_parts(s.access).kid
    end)

    local function claims(overrides)
      local now = os.time()
      local c = { sub = s.user.id, role = "user", iat = now - 60, exp = now + 600, jti = uuid() }
      for k, v in pairs(overrides or {}) do
        c[k] = v
      end
      return c
    end

    it("answers 200 {data: User} for the caller", function()
      local res = me(s.access)
      local body = h.expect_status(res, 200)
      assert.are.equal("data", h.keys(body))
      assert.are.same(s.user, h.expect_user(body.data))
      h.expect_no_hash(res.raw)
    end)

    it("answers 401 unauthorized without a token", function()
      local res = me(nil)
      h.expect_error(res, 401, "unauthorized")
    end)

    it("keeps the password only as a bcrypt hash", function()
      local hash = h.psql("SELECT password_hash FROM users WHERE id = " .. h.sql_literal(s.user.id))
      assert.is_truthy(hash:match("^%$2[aby]%$%d%d%$"), "not a bcrypt hash")
      assert.is_falsy(hash:find(s.password, 1, true))
    end)

    it("answers 401 unauthorized for malformed Authorization headers", function()
      for _, v in ipairs({ "Basic x", "Basic " .. s.access, "Bearer garbage", "Bearer", "Bearer ",
        "Token " .. s.access, s.access, "Bearer " .. s.access .. "x", "Bearer " .. s.access .. ".x" }) do
        local res = h.call("GET", AUTH .. "/me", { headers = { Authorization = v } })
        h.expect_error(res, 401, "unauthorized")
      end
    end)

    it("answers 401 for a token with a tampered signature or payload", function()
      local head, payload, sig = s.access:match("^([^.]+)%.([^.]+)%.([^.]+)$")
      local c = sig:sub(10, 10)
      local tampered = head .. "." .. payload .. "." .. sig:sub(1, 9) .. (c == "A" and "B" or "A") .. sig:sub(11)
      h.expect_error(me(tampered), 401, "unauthorized")
      -- Same signature over claims that say admin.
      local _, cl = h.jwt_parts(s.access)
      cl.role = "admin"
      local forged = head .. "." .. h.b64url_encode(require("cjson").encode(cl)) .. "." .. sig
      h.expect_error(me(forged), 401, "unauthorized")
    end)

    it("accepts a token this spec signs with the server's key (control for the forgeries below)", function()
      local t = h.jwt_sign({ alg = "HS256", typ = "JWT", kid = kid }, claims(), h.jwt_secret())
      local body = h.expect_status(me(t), 200)
      assert.are.equal(s.user.id, body.data.id)
    end)

    it("answers 401 for a token signed with another secret", function()
      local t = h.jwt_sign({ alg = "HS256", typ = "JWT", kid = kid }, claims(),
        "another-secret-" .. h.random_word(24))
      h.expect_error(me(t), 401, "unauthorized")
    end)

    it("answers 401 for an expired token", function()
      local now = os.time()
      local t = h.jwt_sign({ alg = "HS256", typ = "JWT", kid = kid },
        claims({ iat = now - 1000, exp = now - 5 }), h.jwt_secret())
      h.expect_error(me(t), 401, "unauthorized")
    end)

    it("answers 401 for alg none and for an unknown kid", function()
      local none = h.b64url_encode('{"alg":"none","kid":"' .. kid .. '"}') .. "." ..
        h.b64url_encode(require("cjson").encode(claims())) .. "."
      h.expect_error(me(none), 401, "unauthorized")
      local t = h.jwt_sign({ alg = "HS256", typ = "JWT", kid = kid .. "-unknown" }, claims(), h.jwt_secret())
      h.expect_error(me(t), 401, "unauthorized")
    end)
  end)

  describe("PATCH /auth/me", function()
    local s
    lazy_setup(function()
      s = h.session({ name = "Patch User" })
    end)

    local function patch(body, token)
      return h.call("PATCH", AUTH .. "/me", { body = body, token = token or s.access })
    end

    it("changes the name (trimmed) and leaves the rest alone", function()
      local res = patch({ name = "  New Name  " })
      local u = h.expect_user(h.expect_status(res, 200).data)
      assert.are.equal("New Name", u.name)
      assert.are.equal(s.user.email, u.email)
      assert.are.equal(s.user.id, u.id)
      assert.are.equal(s.user.createdAt, u.createdAt)
      assert.is_true(u.updatedAt >= s.user.updatedAt)
      assert.are.equal("New Name", h.expect_status(me(s.access), 200).data.name)
    end)

    it("sets avatarUrl to an http(s) URL, keeps it when omitted, clears it with null", function()
      local u = h.expect_status(patch({ avatarUrl = "https://cdn.example.com/a.png" }), 200).data
      assert.are.equal("https://cdn.example.com/a.png", u.avatarUrl)
      u = h.expect_status(patch({ avatarUrl = "http://example.com/b.jpg?x=1" }), 200).data
      assert.are.equal("http://example.com/b.jpg?x=1", u.avatarUrl)
      u = h.expect_status(patch({ name = "Still Avatar" }), 200).data
      assert.are.equal("http://example.com/b.jpg?x=1", u.avatarUrl)
      u = h.expect_status(patch({ avatarUrl = null }), 200).data
      assert.are.equal(null, u.avatarUrl)
      assert.are.equal("Still Avatar", u.name)
      assert.are.equal(null, h.expect_status(me(s.access), 200).data.avatarUrl)
    end)

    it("answers 200 with the unchanged user for an empty body", function()
      local before = h.expect_status(me(s.access), 200).data
      local u = h.expect_status(patch({}), 200).data
      assert.are.same(before, u)
    end)

    it("answers 422 for a non-http(s) URL, an unknown field, a bad name", function()
      h.expect_validation(patch({ avatarUrl = "ftp://example.com/a.png" }), { "avatarUrl" })
      h.expect_validation(patch({ avatarUrl = "javascript:alert(1)" }), { "avatarUrl" })
      h.expect_validation(patch({ avatarUrl = "not a url" }), { "avatarUrl" })
      h.expect_validation(patch({ email = "other@example.com" }), { "email" })
      h.expect_validation(patch({ role = "admin" }), { "role" })
      h.expect_validation(patch({ name = "   " }), { "name" })
      h.expect_validation(patch({ name = null }), { "name" })
      h.expect_validation(patch({ name = 42 }), { "name" })
      -- Nothing changed by the rejected requests.
      local u = h.expect_status(me(s.access), 200).data
      assert.are.equal(s.user.email, u.email)
      assert.are.equal("user", u.role)
    end)

    it("answers 401 without a token", function()
      h.expect_error(h.call("PATCH", AUTH .. "/me", { body = { name = "x" } }), 401, "unauthorized")
    end)
  end)

  describe("POST /auth/refresh", function()
    local u
    lazy_setup(function()
      u = h.register_user({ name = "Refresh User" })
    end)

    it("rotates: a new pair; the old token then 401; reusing it revokes the new one too", function()
      local first = h.login(u.email, u.password)
      local second = expect_pair(refresh(first.refreshToken))
      assert.are_not.equal(first.refreshToken, second.refreshToken)
      assert.are_not.equal(first.accessToken, second.accessToken)
      assert.are.same(u.user.id, second.user.id)
      h.expect_status(me(second.accessToken), 200)
      -- The retired token presented again: 401, and the family is revoked.
      h.expect_error(refresh(first.refreshToken), 401, "unauthorized")
      h.expect_error(refresh(second.refreshToken), 401, "unauthorized")
    end)

    it("revokes only the family of the reused token", function()
      local a = h.login(u.email, u.password)
      local b = h.login(u.email, u.password)
      local a2 = expect_pair(refresh(a.refreshToken))
      h.expect_error(refresh(a.refreshToken), 401, "unauthorized")
      h.expect_error(refresh(a2.refreshToken), 401, "unauthorized")
      expect_pair(refresh(b.refreshToken))
    end)

    it("answers 401 unauthorized for an unknown token, 422 for a missing one", function()
      h.expect_error(refresh("not-a-token-" .. h.random_word(40)), 401, "unauthorized")
      h.expect_validation(post("/refresh", {}), { "refreshToken" })
      h.expect_validation(post("/refresh", { refreshToken = 12 }), { "refreshToken" })
    end)

    it("stores refresh tokens only as hashes, valid 30 days", function()
      local d = h.login(u.email, u.password)
      local uid = h.sql_literal(u.user.id)
      assert.are.equal("0", h.psql(("SELECT count(*) FROM refresh_tokens WHERE token_hash = %s OR token_hash LIKE %s")
        :format(h.sql_literal(d.refreshToken), h.sql_literal("%" .. d.refreshToken:sub(1, 20) .. "%"))))
      local days = h.psql(("SELECT round(extract(epoch FROM expires_at - created_at) / 86400) FROM refresh_tokens"
        .. " WHERE user_id = %s ORDER BY created_at DESC LIMIT 1"):format(uid))
      assert.are.equal("30", days)
    end)

    it("answers 401 for an expired refresh token", function()
      local d = h.login(u.email, u.password)
      h.psql(("UPDATE refresh_tokens SET expires_at = now() - interval '1 second'"
        .. " WHERE user_id = %s AND used_at IS NULL AND revoked_at IS NULL"):format(h.sql_literal(u.user.id)))
      h.expect_error(refresh(d.refreshToken), 401, "unauthorized")
    end)

    it("does not take an access token as a refresh token", function()
      local d = h.login(u.email, u.password)
      h.expect_error(refresh(d.accessToken), 401, "unauthorized")
    end)
  end)

  describe("POST /auth/logout", function()
    local u
    lazy_setup(function()
      u = h.register_user({ name = "Logout User" })
    end)

    it("answers 204 and revokes the access token and the refresh token", function()
      local d = h.login(u.email, u.password)
      h.expect_status(me(d.accessToken), 200)
      local res = post("/logout", { refreshToken = d.refreshToken }, { token = d.accessToken })
      h.expect_status(res, 204)
      assert.are.equal("", res.raw)
      h.expect_error(me(d.accessToken), 401, "unauthorized")
      h.expect_error(refresh(d.refreshToken), 401, "unauthorized")
    end)

    it("leaves other sessions alone", function()
      local a = h.login(u.email, u.password)
      local b = h.login(u.email, u.password)
      h.expect_status(post("/logout", { refreshToken = a.refreshToken }, { token = a.accessToken }), 204)
      h.expect_status(me(b.accessToken), 200)
      expect_pair(refresh(b.refreshToken))
    end)

    it("with only an access token: 204, that token is then refused", function()
      local d = h.login(u.email, u.password)
      h.expect_status(post("/logout", nil, { token = d.accessToken }), 204)
      h.expect_error(me(d.accessToken), 401, "unauthorized")
    end)

    it("with only a refresh token: 204, that token is then refused", function()
      local d = h.login(u.email, u.password)
      h.expect_status(post("/logout", { refreshToken = d.refreshToken }), 204)
      h.expect_error(refresh(d.refreshToken), 401, "unauthorized")
    end)

    it("answers 401 unauthorized with neither token, and for a bad access token", function()
      h.expect_error(post("/logout", {}), 401, "unauthorized")
      h.expect_error(post("/logout", nil), 401, "unauthorized")
      h.expect_error(post("/logout", {}, { token = "garbage" }), 401, "unauthorized")
    end)
  end)

  describe("POST /auth/change-password", function()
    it("answers 422 with a detail on currentPassword when it is wrong, changes nothing", function()
      local s = h.session({ name = "Change Wrong" })
      local res = h.call("POST", AUTH .. "/change-password", { token = s.access,
        body = { currentPassword = s.password .. "-wrong", newPassword = h.unique_password() } })
      h.expect_validation(res, { "currentPassword" })
      h.login(s.email, s.password)
      expect_pair(refresh(s.refresh))
    end)

    it("answers 422 for a new password out of 8..72 bytes and for missing fields", function()
      local s = h.session({ name = "Change Short" })
      local function cp(body)
        return h.call("POST", AUTH .. "/change-password", { token = s.access, body = body })
      end
      h.expect_validation(cp({ currentPassword = s.password, newPassword = "Pw-" .. h.random_word(4) }),
        { "newPassword" })
      h.expect_validation(cp({ currentPassword = s.password, newPassword = "Pw-" .. h.random_word(70) }),
        { "newPassword" })
      h.expect_validation(cp({}), { "currentPassword", "newPassword" })
      h.login(s.email, s.password)
    end)

    it("answers 401 without a token", function()
      h.expect_error(post("/change-password", { currentPassword = "x", newPassword = h.unique_password() }),
        401, "unauthorized")
    end)

    it("answers 204, revokes every refresh token, and swaps the passwords", function()
      local s = h.session({ name = "Change Ok" })
      local other = h.login(s.email, s.password)
      local new = h.unique_password()
      local res = h.call("POST", AUTH .. "/change-password", { token = s.access,
        body = { currentPassword = s.password, newPassword = new } })
      h.expect_status(res, 204)
      assert.are.equal("", res.raw)
      h.expect_error(refresh(s.refresh), 401, "unauthorized")
      h.expect_error(refresh(other.refreshToken), 401, "unauthorized")
      h.login(s.email, new)
      h.expect_error(post("/login", { email = s.email, password = s.password }), 401, "invalid_credentials")
    end)
  end)

  describe("email verification", function()
    it("POST /auth/verify-email with the mailed token: 200 User with emailVerified true; single use", function()
      local u = h.register_user({ name = "Verify Post" })
      local token = assert(h.mail_token(u.email, "verify_email"), "no verification mail")
      local res = post("/verify-email", { token = token })
      local body = h.expect_status(res, 200)
      assert.are.equal("data", h.keys(body))
      local v = h.expect_user(body.data)
      assert.are.equal(u.user.id, v.id)
      assert.is_true(v.emailVerified)
      h.expect_no_hash(res.raw)
      assert.is_falsy(res.raw:find(token, 1, true), "the answer repeats the token")
      -- Seen by /auth/me and by login.
      local d = h.login(u.email, u.password)
      assert.is_true(d.user.emailVerified)
      assert.is_true(h.expect_status(me(d.accessToken), 200).data.emailVerified)
      -- Single use.
      h.expect_validation(post("/verify-email", { token = token }), { "token" })
    end)

    it("GET /auth/verify-email?token=… does the same (the mail's link)", function()
      local u = h.register_user({ name = "Verify Get" })
      local token = assert(h.mail_token(u.email, "verify_email"), "no verification mail")
      local res = h.call("GET", AUTH .. "/verify-email?token=" .. token)
      local v = h.expect_user(h.expect_status(res, 200).data)
      assert.are.equal(u.user.id, v.id)
      assert.is_true(v.emailVerified)
      h.expect_validation(h.call("GET", AUTH .. "/verify-email?token=" .. token), { "token" })
    end)

    it("answers 422 for an expired verification token", function()
      local u = h.register_user({ name = "Verify Expired" })
      local token = assert(h.mail_token(u.email, "verify_email"), "no verification mail")
      h.psql(("UPDATE one_time_tokens SET expires_at = now() - interval '1 second' WHERE user_id = %s")
        :format(h.sql_literal(u.user.id)))
      h.expect_validation(post("/verify-email", { token = token }), { "token" })
      assert.is_false(h.login(u.email, u.password).user.emailVerified)
    end)

    it("answers 422 for a bad token, 400 invalid_parameter for a GET without one", function()
      h.expect_validation(post("/verify-email", { token = "bad-" .. h.random_word(40) }), { "token" })
      h.expect_validation(post("/verify-email", {}), { "token" })
      h.expect_validation(post("/verify-email", { token = "" }), { "token" })
      h.expect_validation(h.call("GET", AUTH .. "/verify-email?token=bad" .. h.random_word(30)), { "token" })
      h.expect_error(h.call("GET", AUTH .. "/verify-email"), 400, "invalid_parameter")
      h.expect_error(h.call("GET", AUTH .. "/verify-email?token="), 400, "invalid_parameter")
    end)
  end)

  describe("password reset", function()
    it("POST /auth/forgot-password answers 202 alike for known and unknown emails; only a known one gets mail",
      function()
        local u = h.register_user({ name = "Forgot" })
        local nobody = h.unique_email("nobody")
        local known = post("/forgot-password", { email = u.email })
        local unknown = post("/forgot-password", { email = nobody })
        h.expect_status(known, 202)
        h.expect_status(unknown, 202)
        assert.are.equal(known.raw, unknown.raw) -- both empty (or identical)
        assert.are.equal(known.headers["content-type"], unknown.headers["content-type"])
        assert.are.equal(1, h.mail_count(u.email, "reset_password"))
        assert.are.equal(0, h.mail_count(nobody, "reset_password"))
        assert.are.equal(0, h.mail_count(nobody, "verify_email"))
        -- The address is matched case-insensitively.
        h.expect_status(post("/forgot-password", { email = u.email:upper() }), 202)
        assert.are.equal(2, h.mail_count(u.email, "reset_password"))
      end)

    it("POST /auth/forgot-password answers 422 without an email", function()
      h.expect_validation(post("/forgot-password", {}), { "email" })
    end)

    it("POST /auth/reset-password: 204, revokes refresh tokens, new password works; token single use", function()
      local s = h.session({ name = "Reset" })
      h.expect_status(post("/forgot-password", { email = s.email }), 202)
      local token = assert(h.mail_token(s.email, "reset_password"), "no reset mail")
      -- A reset token is not a verification token.
      h.expect_validation(post("/verify-email", { token = token }), { "token" })
      -- A too short password is refused and does not use the token up.
      h.expect_validation(post("/reset-password", { token = token, password = "Pw-" .. h.random_word(4) }),
        { "password" })
      local new = h.unique_password()
      local res = post("/reset-password", { token = token, password = new })
      h.expect_status(res, 204)
      assert.are.equal("", res.raw)
      h.expect_error(refresh(s.refresh), 401, "unauthorized")
      h.login(s.email, new)
      h.expect_error(post("/login", { email = s.email, password = s.password }), 401, "invalid_credentials")
      -- Single use.
      h.expect_validation(post("/reset-password", { token = token, password = h.unique_password() }),
        { "token" })
      h.login(s.email, new)
    end)

    it("a reset token is stored hashed, valid 1 h, and refused once expired", function()
      local u = h.register_user({ name = "Reset Expired" })
      h.expect_status(post("/forgot-password", { email = u.email }), 202)
      local token = assert(h.mail_token(u.email, "reset_password"), "no reset mail")
      local uid = h.sql_literal(u.user.id)
      assert.are.equal("0", h.psql(("SELECT count(*) FROM one_time_tokens WHERE token_hash = %s")
        :format(h.sql_literal(token))))
      assert.are.equal("3600", h.psql(("SELECT round(extract(epoch FROM expires_at - created_at))"
        .. " FROM one_time_tokens WHERE user_id = %s AND purpose = 'reset_password'"):format(uid)))
      h.psql(("UPDATE one_time_tokens SET expires_at = now() - interval '1 second'"
        .. " WHERE user_id = %s AND purpose = 'reset_password'"):format(uid))
      h.expect_validation(post("/reset-password", { token = token, password = h.unique_password() }), { "token" })
      h.login(u.email, u.password)
    end)

    it("POST /auth/reset-password answers 422 for a bad token, a verification token, missing fields", function()
      h.expect_validation(post("/reset-password", { token = "bad-" .. h.random_word(40),
        password = h.unique_password() }), { "token" })
      local u = h.register_user({ name = "Reset Wrong Kind" })
      local vtoken = assert(h.mail_token(u.email, "verify_email"))
      h.expect_validation(post("/reset-password", { token = vtoken, password = h.unique_password() }),
        { "token" })
      h.expect_validation(post("/reset-password", {}), { "token", "password" })
      h.login(u.email, u.password)
    end)
  end)

  -- Keep last: it checks everything the specs above sent and received.
  describe("secrets", function()
    it("no answer carried a password sent or a token received earlier", function()
      assert.are.same({}, h.leaks())
    end)

    it("no server log line contains a password, an access token or a refresh token", function()
      local n = 0
      for _ in pairs(h.secrets()) do
        n = n + 1
      end
      assert.is_true(n > 20, "too few secrets remembered to mean anything: " .. n)
      -- Make sure TASKAPI_LOG is this server's log: a request id we send shows up in it.
      local rid = "spec-logcheck-" .. h.random_word(12)
      h.call("GET", "/health/live", { headers = { ["X-Request-Id"] = rid } })
      local deadline = h.now() + 5
      while not h.server_log():find(rid, 1, true) and h.now() < deadline do
        h.sleep(0.1)
      end
      assert.is_truthy(h.server_log():find(rid, 1, true), "TASKAPI_LOG does not look like the server's log")
      assert.are.same({}, h.secrets_in_log())
    end)
  end)
end)
