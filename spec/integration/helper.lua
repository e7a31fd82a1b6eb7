-- Shared client for the HTTP integration specs: talks to a live taskapi
-- (TASKAPI_URL) with luasocket, reads PostgreSQL (DATABASE_URL) through psql,
-- and keeps track of every password sent and token received, so a spec can
-- prove that none of them ever shows up in a later response or in the server
-- log (TASKAPI_LOG).
--
--   local h = require "spec.integration.helper"
--   local status, body, headers, raw = h.request("POST", "/api/v1/auth/login",
--     { body = { email = e, password = p }, token = access, headers = {...} })
--
-- Paths starting with "/" are taken as is (so "/health" and "/api/v1/..." both
-- work). Response header names are lower-cased. body is the decoded JSON
-- (cjson.null for JSON null) or nil for an empty/non-JSON body.
local http = require "socket.http"
local ltn12 = require "ltn12"
local socket = require "socket"
local cjson = require "cjson"

local M = {}

M.null = cjson.null

local BASE = os.getenv("TASKAPI_URL")
if BASE == nil or BASE == "" then
  error("TASKAPI_URL is not set: the integration specs need a live taskapi "
    .. "(run them through bin/test, or export TASKAPI_URL=http://127.0.0.1:PORT)", 0)
end
BASE = BASE:gsub("/+$", "")
M.base = BASE
M.host, M.port = BASE:match("^https?://([^/:]+):?(%d*)")
M.port = tonumber(M.port) or 80

http.TIMEOUT = 15

-- ---- secrets bookkeeping ----------------------------------------------------

local secrets = {}   -- value -> kind ("password", "access token", "refresh token")
local leaks = {}     -- "kind leaked in METHOD PATH" lines

local SECRET_FIELDS = { password = true, newPassword = true, currentPassword = true }

-- bin/test's last step greps every server log of the run for each line of
-- this file (TASKAPI_SECRETS_FILE): the specs' servers keep running after a
-- spec ends, so only a check after they stopped sees everything they wrote.
local SECRETS_FILE = os.getenv("TASKAPI_SECRETS_FILE")

--- Remembers a value that must never appear in a later response body or in
--- the server log.
function M.remember_secret(value, kind)
  if type(value) == "string" and #value >= 6 then
    if secrets[value] == nil and SECRETS_FILE and SECRETS_FILE ~= "" and not value:find("[\r\n]") then
      local f = io.open(SECRETS_FILE, "a")
      if f then
        f:write(value, "\n")
        f:close()
      end
    end
    secrets[value] = secrets[value] or kind or "secret"
  end
end

function M.secrets()
  return secrets
end

--- Leaks seen so far in response bodies (a list of strings; empty is good).
function M.leaks()
  return leaks
end

local function scan_body(method, path, raw)
  if raw == nil or raw == "" then
    return
  end
  for value, kind in pairs(secrets) do
    if raw:find(value, 1, true) then
      leaks[#leaks + 1] = ("%s leaked in the answer to %s %s"):format(kind, method, path)
    end
  end
end

local function remember_request_secrets(body)
  if type(body) ~= "table" then
    return
  end
  for k in pairs(SECRET_FIELDS) do
    if type(body[k]) == "string" then
      M.remember_secret(body[k], "password")
    end
  end
end

local function remember_response_tokens(body)
  local d = type(body) == "table" and body.data
  if type(d) == "table" then
    M.remember_secret(d.accessToken, "access token")
    M.remember_secret(d.refreshToken, "refresh token")
  end
end

-- ---- HTTP --------------------------------------------------------------------

local function url_of(path)
  if path:match("^https?://") then
    return path
  end
  return BASE .. path
end

--- request(method, path [, opts]) -> status, decoded body, headers, raw body
--- opts.body: a table (JSON-encoded, Content-Type application/json unless
---   opts.headers says otherwise) or a string (sent as is, with Content-Type
---   application/json unless opts.headers has one; pass content_type = false
---   to send none).
--- opts.token: adds Authorization: Bearer <token>.
--- opts.headers: extra request headers.
function M.request(method, path, opts)
  opts = opts or {}
  local headers = {}
  for k, v in pairs(opts.headers or {}) do
    headers[k:lower()] = v
  end
  if opts.token then
    headers["authorization"] = "Bearer " .. opts.token
  end
  local payload
  if opts.body ~= nil then
    if type(opts.body) == "table" then
      remember_request_secrets(opts.body)
      payload = cjson.encode(opts.body)
    else
      payload = tostring(opts.body)
    end
    if headers["content-type"] == nil and opts.content_type ~= false then
      headers["content-type"] = "application/json"
    end
    headers["content-length"] = tostring(#payload)
  elseif method == "POST" or method == "PUT" or method == "PATCH" then
    headers["content-length"] = "0"
  end
  local chunks = {}
  local ok, status, resp_headers = http.request({
    url = url_of(path),
    method = method,
    headers = headers,
    source = payload and ltn12.source.string(payload) or nil,
    sink = ltn12.sink.table(chunks),
    redirect = false,
  })
  if not ok then
    error(("%s %s: no answer from %s: %s"):format(method, path, BASE, tostring(status)), 2)
  end
  local raw = table.concat(chunks)
  local lowered = {}
  for k, v in pairs(resp_headers or {}) do
    lowered[k:lower()] = v
  end
  local decoded
  if raw ~= "" then
    local okd, v = pcall(cjson.decode, raw)
    if okd then
      decoded = v
    end
  end
  scan_body(method, path, raw)
  remember_response_tokens(decoded)
  return status, decoded, lowered, raw
end

--- Sends n raw requests on n connections at once (all written before any
--- is read), so the server's workers get them concurrently. opts.body: a
--- table or string for all, or function(i) returning request i's body;
--- opts.token; opts.headers (extra request headers); opts.timeout (seconds each
--- connection may wait for its answer, default 30: CI machines are loaded).
--- Returns a list of {status=, body=(decoded or nil), raw=} in connection order.
function M.parallel(n, method, path, opts)
  opts = opts or {}
  local function build(i)
    local payload = opts.body
    if type(payload) == "function" then
      payload = payload(i)
    end
    if type(payload) == "table" then
      payload = cjson.encode(payload)
    end
    local lines = { ("%s %s HTTP/1.1"):format(method, path), "Host: " .. M.host .. ":" .. M.port,
      "Connection: close" }
    if payload then
      lines[#lines + 1] = "Content-Type: application/json"
      lines[#lines + 1] = "Content-Length: " .. #payload
    end
    if opts.token then
      lines[#lines + 1] = "Authorization: Bearer " .. opts.token
    end
    for k, v in pairs(opts.headers or {}) do
      lines[#lines + 1] = k .. ": " .. v
    end
    return table.concat(lines, "\r\n") .. "\r\n\r\n" .. (payload or "")
  end
  local conns = {}
  for i = 1, n do
    local c = assert(socket.tcp())
    c:settimeout(opts.timeout or 30)
    local ok, err = c:connect(M.host, M.port)
    if not ok then
      error("parallel: connect failed: " .. tostring(err), 2)
    end
    conns[i] = c
  end
  for i, c in ipairs(conns) do
    assert(c:send(build(i)))
  end
  local results = {}
  for i, c in ipairs(conns) do
    local data, err, partial = c:receive("*a")
    c:close()
    data = data or partial
    if not data or data == "" then
      error("parallel: no answer: " .. tostring(err), 2)
    end
    local status = tonumber(data:match("^HTTP/1%.%d (%d%d%d)"))
    local raw = data:match("\r\n\r\n(.*)$") or ""
    -- Connection: close answers are not chunked by libmicrohttpd, but be safe.
    if data:lower():find("\r\ntransfer%-encoding: chunked") then
      local out, pos = {}, 1
      while true do
        local size_hex, after = raw:match("^(%x+)[^\r\n]*\r\n()", pos)
        local size = size_hex and tonumber(size_hex, 16)
        if not size or size == 0 then
          break
        end
        out[#out + 1] = raw:sub(after, after + size - 1)
        pos = after + size + 2
      end
      raw = table.concat(out)
    end
    local okd, decoded = pcall(cjson.decode, raw)
    results[i] = { status = status, body = okd and decoded or nil, raw = raw }
  end
  return results
end

--- call(method, path [, opts]) -> {status=, body=, headers=, raw=}
function M.call(method, path, opts)
  local status, body, headers, raw = M.request(method, path, opts)
  return { status = status, body = body, headers = headers, raw = raw }
end

-- ---- PostgreSQL through psql ------------------------------------------------

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
M.shell_quote = shell_quote

--- A SQL string literal.
function M.sql_literal(s)
  return "'" .. tostring(s):gsub("'", "''") .. "'"
end

--- Runs one SQL statement with psql -At and returns its output (trimmed).
--- Raises if psql fails.
function M.psql(sql)
  local url = os.getenv("DATABASE_URL")
  if url == nil or url == "" then
    error("DATABASE_URL is not set: the integration specs read the database with psql", 2)
  end
  local cmd = ("psql -X -q -v ON_ERROR_STOP=1 %s -Atc %s 2>&1"):format(shell_quote(url),
    shell_quote(sql))
  local f = assert(io.popen(cmd, "r"))
  local out = f:read("a")
  local ok, _, code = f:close()
  if not ok then
    error(("psql failed (%s): %s\n%s"):format(tostring(code), sql, out), 2)
  end
  return (out:gsub("%s+$", ""))
end

--- The `token=` of the newest mail of `template` to `email` (nil if none).
function M.mail_token(email, template)
  local link = M.psql(([[
    SELECT payload->>'link' FROM jobs
     WHERE kind = 'email' AND payload->>'to' = %s AND payload->>'template' = %s
     ORDER BY id DESC LIMIT 1]]):format(M.sql_literal(email), M.sql_literal(template)))
  if link == "" then
    return nil
  end
  local token = link:match("[?&]token=([^&#]+)")
  M.remember_secret(token, "one-time token (" .. template .. ")")
  return token
end

--- How many mails of `template` went to `email`.
function M.mail_count(email, template)
  return tonumber(M.psql(([[
    SELECT count(*) FROM jobs
     WHERE kind = 'email' AND payload->>'to' = %s AND payload->>'template' = %s]]):format(
    M.sql_literal(email), M.sql_literal(template))))
end

-- ---- users -------------------------------------------------------------------

local counter = 0

local function random_word(n)
  local alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
  local out = {}
  for i = 1, n do
    local k = math.random(#alphabet)
    out[i] = alphabet:sub(k, k)
  end
  return table.concat(out)
end
M.random_word = random_word

--- A fresh, lower-case, alphanumeric email address.
function M.unique_email(prefix)
  counter = counter + 1
  return ("%s%d%d%s@example.com"):format(prefix or "spec", os.time(), counter, random_word(8))
end

--- A fresh password (distinctive enough to grep for in the server log).
function M.unique_password()
  return "Pw-" .. random_word(16)
end

--- Registers a user (asserting 201) and returns
--- {email=, password=, name=, user=User}.
function M.register_user(opts)
  opts = opts or {}
  local email = opts.email or M.unique_email()
  local password = opts.password or M.unique_password()
  local name = opts.name or "Spec User"
  local status, body, _, raw = M.request("POST", "/api/v1/auth/register",
    { body = { email = email, password = password, name = name } })
  if status ~= 201 or type(body) ~= "table" or type(body.data) ~= "table" then
    error(("register %s: expected 201, got %s: %s"):format(email, tostring(status), raw), 2)
  end
  return { email = email, password = password, name = name, user = body.data.user }
end

--- Logs in (asserting 200) and returns the data object
--- {accessToken, refreshToken, tokenType, expiresIn, user}.
function M.login(email, password)
  local status, body, _, raw = M.request("POST", "/api/v1/auth/login",
    { body = { email = email, password = password } })
  if status ~= 200 or type(body) ~= "table" or type(body.data) ~= "table" then
    error(("login %s: expected 200, got %s: %s"):format(email, tostring(status), raw), 2)
  end
  return body.data
end

--- register_user + login: {email, password, user, access, refresh}.
function M.session(opts)
  local u = M.register_user(opts)
  local d = M.login(u.email, u.password)
  u.access, u.refresh = d.accessToken, d.refreshToken
  return u
end

-- ---- shapes ------------------------------------------------------------------

M.TIMESTAMP = "^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$"
M.UUID = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"

--- The sorted keys of t, comma-joined (for exact-shape assertions).
function M.keys(t)
  local ks = {}
  for k in pairs(t) do
    ks[#ks + 1] = tostring(k)
  end
  table.sort(ks)
  return table.concat(ks, ",")
end

--- Fields named in an error's details, as a set.
function M.detail_fields(body)
  local set = {}
  local details = type(body) == "table" and type(body.error) == "table" and body.error.details
  if type(details) == "table" then
    for _, d in ipairs(details) do
      if type(d) == "table" and d.field ~= nil then
        set[d.field] = d.message or true
      end
    end
  end
  return set
end

-- ---- assertions ----------------------------------------------------------------

local luassert = require "luassert"

local function describe_res(res)
  return ("answer was %s %s"):format(tostring(res.status), tostring(res.raw))
end

--- Asserts status and, for JSON answers, returns the body.
function M.expect_status(res, status)
  luassert.are.equal(status, res.status, describe_res(res))
  return res.body
end

--- Asserts an error answer of the contract's shape:
--- {"error": {"code", "message"[, "details": [{"field", "message"}]]}}.
function M.expect_error(res, status, code)
  luassert.are.equal(status, res.status, describe_res(res))
  luassert.is_table(res.body, "error answer is not JSON: " .. describe_res(res))
  luassert.are.equal("error", M.keys(res.body), describe_res(res))
  local e = res.body.error
  luassert.is_table(e, describe_res(res))
  luassert.are.equal(code, e.code, describe_res(res))
  luassert.is_string(e.message, describe_res(res))
  luassert.is_true(#e.message > 0, describe_res(res))
  for k in pairs(e) do
    luassert.is_true(k == "code" or k == "message" or k == "details",
      "unexpected key error." .. tostring(k) .. ": " .. describe_res(res))
  end
  if e.details ~= nil then
    luassert.is_table(e.details, describe_res(res))
    for _, d in ipairs(e.details) do
      luassert.is_string(d.field, describe_res(res))
      luassert.is_string(d.message, describe_res(res))
    end
  end
  local ct = res.headers["content-type"] or ""
  luassert.is_truthy(ct:lower():find("application/json", 1, true), "content-type " .. ct)
  return e
end

--- 422 validation_failed with a detail on each of `fields` (a list).
function M.expect_validation(res, fields)
  local e = M.expect_error(res, 422, "validation_failed")
  local got = M.detail_fields(res.body)
  for _, f in ipairs(fields or {}) do
    luassert.is_truthy(got[f], ("no detail on field %q: %s"):format(f, describe_res(res)))
  end
  return e
end

M.USER_KEYS = "avatarUrl,createdAt,email,emailVerified,id,name,role,updatedAt"

--- Asserts the exact User shape of API.md §2.
function M.expect_user(u)
  luassert.is_table(u, "User is not an object")
  luassert.are.equal(M.USER_KEYS, M.keys(u))
  luassert.is_string(u.id)
  luassert.is_truthy(u.id:match(M.UUID), "id is not a UUID: " .. u.id)
  luassert.is_string(u.email)
  luassert.are.equal(u.email:lower(), u.email)
  luassert.is_string(u.name)
  luassert.is_truthy(u.role == "user" or u.role == "admin", "role " .. tostring(u.role))
  luassert.is_truthy(u.avatarUrl == M.null or type(u.avatarUrl) == "string",
    "avatarUrl " .. tostring(u.avatarUrl))
  luassert.is_boolean(u.emailVerified)
  luassert.is_string(u.createdAt)
  luassert.is_truthy(u.createdAt:match(M.TIMESTAMP), "createdAt " .. u.createdAt)
  luassert.is_string(u.updatedAt)
  luassert.is_truthy(u.updatedAt:match(M.TIMESTAMP), "updatedAt " .. u.updatedAt)
  return u
end

--- Asserts that no password hash (or the word "password") is in a raw body.
function M.expect_no_hash(raw)
  luassert.is_falsy(raw:find("%$2[aby]%$%d%d%$"), "bcrypt hash in answer: " .. raw)
  luassert.is_falsy(raw:lower():find("password", 1, true), "\"password\" in answer: " .. raw)
end

-- ---- the server log ------------------------------------------------------------

--- The server log's text (TASKAPI_LOG); raises if it is not set or readable.
function M.server_log()
  local path = os.getenv("TASKAPI_LOG")
  if path == nil or path == "" then
    error("TASKAPI_LOG is not set: it must name the server's log file", 2)
  end
  local f, err = io.open(path, "rb")
  if not f then
    error("cannot read TASKAPI_LOG: " .. tostring(err), 2)
  end
  local text = f:read("a")
  f:close()
  return text
end

--- Every remembered secret found in the server log, as "kind" strings.
function M.secrets_in_log()
  local text = M.server_log()
  local found = {}
  for value, kind in pairs(secrets) do
    if text:find(value, 1, true) then
      found[#found + 1] = kind .. " (" .. value:sub(1, 6) .. "...)"
    end
  end
  table.sort(found)
  return found
end

-- ---- JWT forging (HS256), for expired / foreign-key tokens ------------------------

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

function M.b64url_encode(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a << 16 | (b or 0) << 8 | (c or 0)
    local k = #out
    out[k + 1] = B64:sub((n >> 18 & 63) + 1, (n >> 18 & 63) + 1)
    out[k + 2] = B64:sub((n >> 12 & 63) + 1, (n >> 12 & 63) + 1)
    if b then
      out[k + 3] = B64:sub((n >> 6 & 63) + 1, (n >> 6 & 63) + 1)
    end
    if c then
      out[k + 4] = B64:sub((n & 63) + 1, (n & 63) + 1)
    end
  end
  return table.concat(out)
end

function M.b64url_decode(s)
  local out, acc, bits = {}, 0, 0
  for i = 1, #s do
    local v = B64:find(s:sub(i, i), 1, true)
    if not v then
      return nil
    end
    acc = (acc << 6 | (v - 1)) & 0xffffff
    bits = bits + 6
    if bits >= 8 then
      bits = bits - 8
      out[#out + 1] = string.char(acc >> bits & 0xff)
    end
  end
  return table.concat(out)
end

local K256 = {
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
}

local function rotr(x, n)
  return (x >> n | x << (32 - n)) & 0xffffffff
end

--- SHA-256 of a string, as 32 raw bytes.
function M.sha256(msg)
  local h = { 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
    0x5be0cd19 }
  local len = #msg
  msg = msg .. "\128" .. string.rep("\0", (55 - len) % 64) .. string.pack(">I8", len * 8)
  local w = {}
  for chunk = 1, #msg, 64 do
    for i = 0, 15 do
      w[i] = string.unpack(">I4", msg, chunk + i * 4)
    end
    for i = 16, 63 do
      local s0 = rotr(w[i - 15], 7) ~ rotr(w[i - 15], 18) ~ (w[i - 15] >> 3)
      local s1 = rotr(w[i - 2], 17) ~ rotr(w[i - 2], 19) ~ (w[i - 2] >> 10)
      w[i] = (w[i - 16] + s0 + w[i - 7] + s1) & 0xffffffff
    end
    local a, b, c, d, e, f, g, hh = table.unpack(h)
    for i = 0, 63 do
      local S1 = rotr(e, 6) ~ rotr(e, 11) ~ rotr(e, 25)
      local ch = (e & f) ~ (~e & g)
      local t1 = (hh + S1 + ch + K256[i + 1] + w[i]) & 0xffffffff
      local S0 = rotr(a, 2) ~ rotr(a, 13) ~ rotr(a, 22)
      local maj = (a & b) ~ (a & c) ~ (b & c)
      local t2 = (S0 + maj) & 0xffffffff
      hh, g, f, e, d, c, b, a = g, f, e, (d + t1) & 0xffffffff, c, b, a, (t1 + t2) & 0xffffffff
    end
    h[1], h[2], h[3], h[4] = (h[1] + a) & 0xffffffff, (h[2] + b) & 0xffffffff,
      (h[3] + c) & 0xffffffff, (h[4] + d) & 0xffffffff
    h[5], h[6], h[7], h[8] = (h[5] + e) & 0xffffffff, (h[6] + f) & 0xffffffff,
      (h[7] + g) & 0xffffffff, (h[8] + hh) & 0xffffffff
  end
  return string.pack(">I4I4I4I4I4I4I4I4", table.unpack(h))
end

function M.hmac_sha256(key, msg)
  if #key > 64 then
    key = M.sha256(key)
  end
  key = key .. string.rep("\0", 64 - #key)
  local ipad = key:gsub(".", function(c) return string.char(c:byte() ~ 0x36) end)
  local opad = key:gsub(".", function(c) return string.char(c:byte() ~ 0x5c) end)
  return M.sha256(opad .. M.sha256(ipad .. msg))
end

--- The decoded header and claims of a JWT (no verification).
function M.jwt_parts(token)
  local h, p = token:match("^([%w_-]+)%.([%w_-]+)%.[%w_-]*$")
  if not h then
    return nil
  end
  return cjson.decode(M.b64url_decode(h)), cjson.decode(M.b64url_decode(p))
end

--- An HS256 JWT over `header` and `claims` (tables), signed with `secret`.
function M.jwt_sign(header, claims, secret)
  local signing_input = M.b64url_encode(cjson.encode(header)) .. "." ..
    M.b64url_encode(cjson.encode(claims))
  return signing_input .. "." .. M.b64url_encode(M.hmac_sha256(secret, signing_input))
end

--- JWT_SECRET of the server under test (bin/test exports it); raises if unset.
function M.jwt_secret()
  local s = os.getenv("JWT_SECRET")
  if s == nil or s == "" then
    error("JWT_SECRET is not set: it must be the test server's JWT_SECRET (bin/test exports it)", 2)
  end
  return s
end

-- ---- misc ----------------------------------------------------------------------

function M.sleep(seconds)
  socket.sleep(seconds)
end

M.now = socket.gettime

return M
