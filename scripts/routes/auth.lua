-- /api/v1/auth (API.md §2): registration, login, refresh-token rotation with
-- reuse detection, logout, the caller's profile, passwords and email
-- verification. Passwords are bcrypt-hashed in C; refresh and one-time
-- tokens are random 256-bit strings stored only as SHA-256 hashes.
local route = require "lib.route"
local db = require "lib.db"
local errors = require "lib.errors"
local json = require "lib.json"
local users = require "lib.users"
local mail = require "lib.mail"
local auth = require "tk.auth"
local ratelimit = require "tk.ratelimit"
local ratelimits = require "policies.ratelimits"
local runtime = require "tk.runtime"
local realtime = require "tk.realtime"

local config = runtime.config()
local r = route.group("/api/v1/auth")

local VERIFY_TTL = 48 * 3600
local RESET_TTL = 3600

-- ---- schemas ---------------------------------------------------------------

local email = { type = "string", format = "email", maxLength = 254, trim = true, lower = true }
local email_loose = { type = "string", minLength = 1, maxLength = 254, trim = true, lower = true }
local password = { type = "string", minBytes = 8, maxBytes = 72 }
local password_any = { type = "string", minLength = 1, maxBytes = 1024 }
local token = { type = "string", minLength = 1, maxLength = 512 }
local name = { type = "string", minLength = 1, maxLength = 100, trim = true }

local S = {
  register = { type = "object", required = { "email", "password", "name" },
    properties = { email = email, password = password, name = name } },
  login = { type = "object", required = { "email", "password" },
    properties = { email = email_loose, password = password_any } },
  refresh = { type = "object", required = { "refreshToken" },
    properties = { refreshToken = token } },
  logout = { type = "object", properties = { refreshToken = token } },
  patch_me = { type = "object", properties = {
    name = name,
    avatarUrl = { type = "string", format = "url", maxLength = 2048, trim = true, nullable = true },
  } },
  change_password = { type = "object", required = { "currentPassword", "newPassword" },
    properties = { currentPassword = password_any, newPassword = password } },
  token = { type = "object", required = { "token" }, properties = { token = token } },
  token_query = { type = "object", required = { "token" }, additionalProperties = true,
    properties = { token = token } },
  forgot = { type = "object", required = { "email" }, properties = { email = email_loose } },
  reset = { type = "object", required = { "token", "password" },
    properties = { token = token, password = password } },
}

-- ---- helpers ---------------------------------------------------------------

local function invalid_credentials()
  errors.raise(401, "invalid_credentials", "wrong email or password")
end

local function hash_password(pw)
  local h, err = auth.hash_password(pw, config.bcrypt_cost)
  if not h then
    errors.field("password", err)
  end
  return h
end

-- Stores a new refresh token (in `family`, or a new family) and returns it.
local function issue_refresh(user_id, family)
  local t = auth.random_token()
  db.query([[
    INSERT INTO refresh_tokens (user_id, family_id, token_hash, expires_at)
    VALUES ($1, coalesce($2::uuid, gen_random_uuid()), $3, now() + make_interval(secs => $4))]],
    user_id, family, auth.sha256(t), config.refresh_token_ttl)
  return t
end

local TOKEN_PAIR = json.shape({ "accessToken", "refreshToken", "tokenType", "expiresIn", "user" })

local function token_pair(user, refresh)
  local access = auth.sign_access(user.id, user.role, config.access_token_ttl, user.token_version)
  return setmetatable({
    accessToken = access,
    refreshToken = refresh,
    tokenType = "Bearer",
    expiresIn = config.access_token_ttl,
    user = users.public(user),
  }, TOKEN_PAIR)
end

local function create_one_time(user_id, purpose, ttl)
  local t = auth.random_token()
  db.query([[
    INSERT INTO one_time_tokens (user_id, purpose, token_hash, expires_at)
    VALUES ($1, $2, $3, now() + make_interval(secs => $4))]],
    user_id, purpose, auth.sha256(t), ttl)
  return t
end

-- Marks a one-time token used; returns its user id or nil. Call inside a tx.
local function consume_one_time(t, purpose)
  local row = db.one([[
    UPDATE one_time_tokens SET used_at = now()
     WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > now()
    RETURNING user_id]], auth.sha256(t), purpose)
  return row and row.user_id
end

local function revoke_all_refresh(user_id)
  db.query("UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL",
    user_id)
end

-- A new password bumps the token version: access tokens signed before it
-- carry an older "ver" and are refused (runtime/auth/users.c).
local function set_password(user_id, hash)
  db.query([[
    UPDATE users SET password_hash = $2, token_version = token_version + 1, updated_at = now()
     WHERE id = $1]], user_id, hash)
end

local function bad_token()
  errors.field("token", "is invalid or expired")
end

-- ---- routes ----------------------------------------------------------------

r:post("/register", { auth = "none", body = S.register, status = 201,
  summary = "Create an account; a verification email is queued" }, function(req)
  local b = req.body
  local hash = hash_password(b.password)
  local user = db.tx(function()
    local rows, msg, state = db.try(
      "INSERT INTO users (email, password_hash, name) VALUES ($1, $2, $3) RETURNING " .. users.COLUMNS,
      b.email, hash, b.name)
    if not rows then
      if state == db.UNIQUE_VIOLATION then
        errors.conflict("email is already registered", "email_taken")
      end
      error("register: insert failed: " .. tostring(msg), 0)
    end
    local u = rows[1]
    mail.send("verify_email", u, create_one_time(u.id, "verify_email", VERIFY_TTL))
    return u
  end)
  return 201, { data = { user = users.public(user) } }
end)

r:post("/login", { auth = "none", body = S.login,
  summary = "Exchange email and password for an access and a refresh token" }, function(req)
  local b = req.body
  -- Failed logins are limited per email (API.md §10), whoever sends them.
  -- Every attempt is counted before bcrypt runs (one atomic increment, in
  -- Redis when configured), so concurrent attempts cannot overshoot the
  -- limit; a successful login gives its count back.
  local key, limit = "login-email:" .. b.email, ratelimits.login_failures_per_email
  local allowed, state = ratelimit.hit(key, limit, ratelimits.WINDOW)
  if not allowed then
    return 429, errors.body(errors.new(429, "rate_limited", "too many failed logins for this email; retry later")),
      { ["Retry-After"] = tostring(state.reset) }
  end
  local user = db.one("SELECT " .. users.COLUMNS .. ", password_hash FROM users WHERE email = $1",
    b.email)
  -- Always spend one bcrypt check, so a missing user takes as long as a bad password.
  local ok = auth.verify_password(b.password, user and user.password_hash)
  if not user or not ok or user.disabled_at then
    invalid_credentials()
  end
  ratelimit.undo(key, ratelimits.WINDOW, state.start)
  if config.require_verified_email and not user.email_verified then
    errors.raise(403, "email_not_verified", "verify your email address first")
  end
  return 200, { data = token_pair(user, issue_refresh(user.id, nil)) }
end)

r:post("/refresh", { auth = "none", body = S.refresh,
  summary = "Rotate a refresh token; reuse of a retired one revokes its family" }, function(req)
  local h = auth.sha256(req.body.refreshToken)
  local result = db.tx(function()
    local rt = db.one([[
      SELECT id, user_id, family_id, used_at, revoked_at, expires_at < now() AS expired
        FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE]], h)
    if not rt then
      return nil
    end
    if rt.used_at or rt.revoked_at then
      -- A retired token presented again: assume theft, end the whole family.
      db.query("UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL",
        rt.family_id)
      return "reused"
    end
    if rt.expired then
      return nil
    end
    db.query("UPDATE refresh_tokens SET used_at = now() WHERE id = $1", rt.id)
    local user = users.by_id(rt.user_id)
    if not user or user.disabled_at then
      return nil
    end
    return { user = user, refresh = issue_refresh(user.id, rt.family_id) }
  end)
  if type(result) ~= "table" then
    errors.unauthorized("invalid refresh token")
  end
  return 200, { data = token_pair(result.user, result.refresh) }
end)

r:post("/logout", { auth = "optional", body = S.logout, status = 204,
  summary = "Revoke the refresh token and the presented access token" }, function(req)
  local user, rt = req.user, req.body.refreshToken
  if not user and not rt then
    errors.unauthorized("missing access token")
  end
  if rt then
    db.query([[
      UPDATE refresh_tokens SET revoked_at = now()
       WHERE token_hash = $1 AND revoked_at IS NULL AND ($2::uuid IS NULL OR user_id = $2)]],
      auth.sha256(rt), user and user.id)
  end
  if user then
    auth.deny(user.jti, user.exp)
    realtime.revoke(user.jti, user.exp) -- live WebSocket connections with this token end (4401)
  end
  return 204
end)

r:get("/me", { summary = "The caller's profile" }, function(req)
  local user = users.by_id(req.user.id)
  if not user then
    errors.unauthorized("user no longer exists")
  end
  return 200, { data = users.public(user) }
end)

r:patch("/me", { body = S.patch_me, summary = "Change the caller's name or avatar" }, function(req)
  local b = req.body
  local user = db.one([[
    UPDATE users SET
      name = CASE WHEN $2::boolean THEN $3 ELSE name END,
      avatar_url = CASE WHEN $4::boolean THEN $5 ELSE avatar_url END,
      updated_at = CASE WHEN $2::boolean OR $4::boolean THEN now() ELSE updated_at END
    WHERE id = $1 RETURNING ]] .. users.COLUMNS,
    req.user.id, b.name ~= nil, b.name, b.avatarUrl ~= nil, b.avatarUrl)
  if not user then
    errors.unauthorized("user no longer exists")
  end
  return 200, { data = users.public(user) }
end)

r:post("/change-password", { body = S.change_password, status = 204,
  summary = "Change the password; every refresh token and live socket of the user is revoked" }, function(req)
  local b = req.body
  local row = db.one("SELECT password_hash FROM users WHERE id = $1", req.user.id)
  if not row then
    errors.unauthorized("user no longer exists")
  end
  if not auth.verify_password(b.currentPassword, row.password_hash) then
    errors.field("currentPassword", "is incorrect")
  end
  local hash = hash_password(b.newPassword)
  db.tx(function()
    set_password(req.user.id, hash)
    revoke_all_refresh(req.user.id)
  end)
  auth.user_changed(req.user.id) -- older access tokens and live sockets end, on every instance
  return 204
end)

local function verify_email(t)
  local user = db.tx(function()
    local user_id = consume_one_time(t, "verify_email")
    if not user_id then
      return nil
    end
    return db.one("UPDATE users SET email_verified = true, updated_at = now() WHERE id = $1 RETURNING "
      .. users.COLUMNS, user_id)
  end)
  if not user then
    bad_token()
  end
  return 200, { data = users.public(user) }
end

r:post("/verify-email", { auth = "none", body = S.token,
  summary = "Confirm an email address with the token from the mail" }, function(req)
  return verify_email(req.body.token)
end)

r:get("/verify-email", { auth = "none", query = S.token_query,
  summary = "Confirm an email address from the mail's link" }, function(req)
  return verify_email(req.query.token)
end)

r:post("/forgot-password", { auth = "none", body = S.forgot, status = 202,
  summary = "Queue a password-reset mail (answers 202 whether or not the email exists)" }, function(req)
  local user = db.one("SELECT id, email, name FROM users WHERE email = $1", req.body.email)
  if user then
    db.tx(function()
      mail.send("reset_password", user, create_one_time(user.id, "reset_password", RESET_TTL))
    end)
  end
  return 202
end)

r:post("/reset-password", { auth = "none", body = S.reset, status = 204,
  summary = "Set a new password with a reset token; every refresh token and live socket is revoked" }, function(req)
  local b = req.body
  local hash = hash_password(b.password)
  local user_id = db.tx(function()
    local id = consume_one_time(b.token, "reset_password")
    if not id then
      return nil
    end
    set_password(id, hash)
    revoke_all_refresh(id)
    return id
  end)
  if not user_id then
    bad_token()
  end
  auth.user_changed(user_id)
  return 204
end)

return r
