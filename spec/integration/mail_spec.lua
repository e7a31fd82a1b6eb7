-- Mail end to end, against a real SMTP server: Debian's aiosmtpd, started
-- here (spec/integration/support/smtp_sink.py writes each accepted message,
-- parsed by Python's email package, as JSON). The taskapi servers are the
-- spec's own, one at a time, on a database of their own (so the shared
-- server's job runner never takes their mails): STARTTLS with AUTH from
-- SMTP_URL, the SMTP server down and back (the job retried with backoff),
-- smtps://, production without SMTP_URL refused, MAIL_DISABLED. The shared
-- server (no SMTP_URL) writes .eml files into its MAIL_DIR and logs no link.
-- Every link is followed: verification and password reset complete.
local h = require "spec.integration.helper"
local server = require "spec.integration.support.server"
local cjson = require "cjson"
local socket = require "socket"

local SINK = "spec/integration/support/smtp_sink.py"
local PYTHON = "/usr/bin/python3" -- Debian's, where python3-aiosmtpd is

local function sh(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function run(cmd)
  local ok = os.execute(cmd)
  return ok == true
end

local function free_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then
    return nil
  end
  local text = f:read("a")
  f:close()
  return text
end

local function read_json(path)
  local text = read_file(path)
  if text == nil then
    error("cannot read " .. path, 2)
  end
  return (cjson.decode(text))
end

local function list_dir(dir)
  local p = assert(io.popen("ls -1 " .. sh(dir) .. " 2>/dev/null"))
  local names = {}
  for line in p:lines() do
    names[#names + 1] = line
  end
  p:close()
  return names
end

-- Polls `probe` until it returns a value (or raises after `seconds`).
local function eventually(seconds, what, probe)
  local deadline = h.now() + seconds
  while true do
    local v = probe()
    if v then
      return v
    end
    if h.now() > deadline then
      error("timed out waiting for " .. what, 2)
    end
    h.sleep(0.1)
  end
end

-- ---- the spec's own database, directory and certificate ----------------------------

local WORK = (os.getenv("TASKAPI_TEST_DIR") or os.tmpname() .. ".d") .. "/mail-spec"
local DB_NAME = "taskapi_mail_" .. h.random_word(8)
local DB_URL

local function make_database()
  h.psql("CREATE DATABASE " .. DB_NAME)
  DB_URL = assert(os.getenv("DATABASE_URL")):gsub("/[^/?]*(%??[^/]*)$", "/" .. DB_NAME .. "%1", 1)
  assert(run(("env DATABASE_URL=%s ASAN_OPTIONS=detect_leaks=0 %s migrate > %s 2>&1"):format(sh(DB_URL),
    sh(os.getenv("TASKAPI_BIN")), sh(WORK .. "/migrate.out"))), "migrating the mail spec's database failed; see "
    .. WORK .. "/migrate.out")
end

-- A self-signed certificate for 127.0.0.1, which taskapi trusts through SMTP_CA_FILE.
local function make_certificate()
  local cert, key = WORK .. "/cert.pem", WORK .. "/key.pem"
  assert(run(("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 "
    .. "-subj /CN=127.0.0.1 -addext 'subjectAltName=IP:127.0.0.1,DNS:localhost' -keyout %s -out %s "
    .. ">/dev/null 2>&1"):format(sh(key), sh(cert))), "openssl could not make a certificate")
  return cert, key
end

-- ---- the SMTP server ---------------------------------------------------------------

--- Starts smtp_sink.py on `port`; args: extra options. Returns {dir, stop}.
local function start_sink(port, args)
  local dir = ("%s/sink-%d-%s"):format(WORK, port, h.random_word(6))
  assert(run("mkdir -p " .. sh(dir)))
  local p = assert(io.popen(("%s %s --port %d --dir %s %s > %s 2>&1 & echo $!"):format(PYTHON, SINK, port,
    sh(dir), args or "", sh(dir .. ".out"))))
  local pid = tonumber(p:read("l"))
  p:close()
  local sink = { dir = dir, port = port, pid = pid }
  function sink.stop()
    run("kill -TERM " .. pid .. " 2>/dev/null")
    for _ = 1, 100 do
      if not run("kill -0 " .. pid .. " 2>/dev/null") then
        return
      end
      h.sleep(0.05)
    end
    run("kill -KILL " .. pid .. " 2>/dev/null")
  end
  eventually(60, "the SMTP server to listen (see " .. dir .. ".out)", function()
    if not run("kill -0 " .. pid .. " 2>/dev/null") then
      error("the SMTP server exited: " .. tostring(read_file(dir .. ".out")))
    end
    return read_file(dir .. "/ready")
  end)
  return sink
end

--- The message `sink` received for `rcpt` (decoded JSON), waiting for it.
local function received(sink, rcpt)
  return eventually(60, "a mail to " .. rcpt .. " at the SMTP server", function()
    for _, name in ipairs(list_dir(sink.dir)) do
      if name:match("^%d+%.json$") then
        local m = read_json(sink.dir .. "/" .. name)
        for _, r in ipairs(m.rcpt_tos) do
          if r == rcpt then
            return m
          end
        end
      end
    end
  end)
end

local function part(m, ctype)
  for _, p in ipairs(m.parts) do
    if p.type == ctype then
      return p
    end
  end
end

--- The link of `path_prefix` in `text`; its token is remembered as a secret.
local function link_in(text, path_prefix)
  local link = text:match("(https?://[^%s\"<]-" .. path_prefix:gsub("%p", "%%%0") .. "[%w_%-]+)")
  assert(link, "no " .. path_prefix .. " link in:\n" .. text)
  h.remember_secret(link:match("token=([%w_%-]+)"), "one-time token (from a mail)")
  return link
end

--- Follows a verification link of the spec's server as the web client's
--- landing page does (the token rides in the URL fragment, which a browser
--- never sends): POST /auth/verify-email with it.
local function follow(srv, link)
  assert.is_truthy(link:find("^https?://[^/]+/app/#/verify%-email%?token="), link)
  return h.call("POST", srv.url .. "/api/v1/auth/verify-email",
    { body = { token = link:match("token=([%w_%-]+)") } })
end

local function metric(srv, name)
  local res = h.call("GET", srv.url .. "/metrics")
  h.expect_status(res, 200)
  local v = res.raw:match("\n" .. name:gsub("%p", "%%%0") .. " (%d+)")
  return tonumber(v)
end

-- psql on the spec's own database.
local function psql(sql)
  local f = assert(io.popen(("psql -X -q -v ON_ERROR_STOP=1 %s -Atc %s 2>&1"):format(sh(DB_URL), sh(sql))))
  local out = f:read("a")
  assert(f:close(), "psql failed: " .. out)
  return (out:gsub("%s+$", ""))
end

local function job_of(rcpt)
  local row = psql( ("SELECT status || '|' || attempts || '|' || coalesce(last_error, '') FROM jobs "
    .. "WHERE kind = 'email' AND payload->>'to' = %s ORDER BY id DESC LIMIT 1"):format(h.sql_literal(rcpt)))
  local status, attempts, err = row:match("^([^|]*)|([^|]*)|(.*)$")
  return { status = status, attempts = tonumber(attempts), last_error = err }
end

local function register(srv, name)
  local email = h.unique_email("mail")
  local password = h.unique_password()
  h.expect_status(h.call("POST", srv.url .. "/api/v1/auth/register",
    { body = { email = email, password = password, name = name or "Mail Spec" } }), 201)
  return { email = email, password = password }
end

local SMTP_USER, SMTP_PASSWORD = "mailer", "smtp-Pw-" .. h.random_word(12)
h.remember_secret(SMTP_PASSWORD, "SMTP password")

local function spec_server(env)
  -- Backoff from 200 ms: ten attempts span ~100 s, time enough for the SMTP
  -- server to come up on a loaded machine before the job fails for good.
  local vars = { DATABASE_URL = DB_URL, JOB_POLL_MS = 50, JOB_BACKOFF_BASE_MS = 200,
    MAIL_FROM = "Task API <no-reply@taskapi.test>" }
  for k, v in pairs(env) do
    vars[k] = v
  end
  return server.start(vars)
end

describe("mail", function()
  lazy_setup(function()
    assert(run("mkdir -p " .. sh(WORK)))
    make_database()
  end)

  lazy_teardown(function()
    if DB_URL then
      pcall(h.psql, "DROP DATABASE IF EXISTS " .. DB_NAME .. " WITH (FORCE)")
    end
  end)

  describe("over SMTP with STARTTLS and AUTH from SMTP_URL", function()
    local srv, sink, port, cert, key, user

    lazy_setup(function()
      cert, key = make_certificate()
      port = free_port()
      srv = spec_server({
        SMTP_URL = ("smtp://%s:%s@127.0.0.1:%d"):format(SMTP_USER, SMTP_PASSWORD, port),
        SMTP_STARTTLS = "require", SMTP_CA_FILE = cert,
      })
    end)

    lazy_teardown(function()
      if srv then
        srv.stop()
      end
      if sink then
        sink.stop()
      end
    end)

    it("retries while the SMTP server is down, counts the failures, delivers when it is back", function()
      user = register(srv, "Zoë Ünicode & Co")
      -- nothing listens on the port yet: the attempt fails and the job waits for its retry
      local job = eventually(30, "a failed attempt", function()
        local j = job_of(user.email)
        return j.attempts and j.attempts >= 1 and j
      end)
      assert.are.equal("pending", job.status)
      assert.is_truthy(job.last_error:find("^SMTP: "), job.last_error)
      assert.is_true(metric(srv, "taskapi_mail_failures_total") >= 1)

      sink = start_sink(port, ("--starttls %s %s --auth %s:%s"):format(sh(cert), sh(key), SMTP_USER,
        SMTP_PASSWORD))
      local m = received(sink, user.email)
      -- the sink requires STARTTLS and AUTH before MAIL: the mail came encrypted and logged in
      assert.is_true(m.tls)
      assert.is_true(m.authenticated)
      assert.are.equal("no-reply@taskapi.test", m.mail_from)
      assert.are.equal("Task API <no-reply@taskapi.test>", m.from)
      assert.are.equal("Zoë Ünicode & Co <" .. user.email .. ">", m.to)
      assert.are.equal("Verify your email address", m.subject)
      assert.is_truthy(m.message_id:match("^<%x+@taskapi%.test>$"), m.message_id)
      assert.are.same({}, m.defects)
      assert.are.equal("multipart/alternative", m.content_type)
      local text, html = part(m, "text/plain"), part(m, "text/html")
      assert.is_table(text)
      assert.is_table(html)
      assert.are.equal("quoted-printable", text.encoding) -- the name is not ASCII
      assert.is_truthy(text.body:find("Welcome to taskapi, Zoë Ünicode & Co.", 1, true))
      assert.is_truthy(html.body:find("Zoë Ünicode &amp; Co", 1, true))
      local link = link_in(text.body, "/app/#/verify-email?token=")
      assert.is_truthy(html.body:find('href="' .. link .. '"', 1, true), "the HTML part links elsewhere")

      eventually(30, "the job marked done", function()
        return job_of(user.email).status == "done"
      end)
      assert.is_true(metric(srv, 'taskapi_mail_sent_total{transport="smtp"}') >= 1)

      local res = follow(srv, link)
      assert.is_true(h.expect_status(res, 200).data.emailVerified)
      -- one-time: the same link again is refused
      h.expect_validation(follow(srv, link), { "token" })
    end)

    it("sends a reset mail whose link resets the password", function()
      assert.is_table(user, "the previous test did not register a user")
      h.expect_status(h.call("POST", srv.url .. "/api/v1/auth/forgot-password", { body = { email = user.email } }),
        202)
      local m = eventually(60, "the reset mail", function()
        for _, name in ipairs(list_dir(sink.dir)) do
          if name:match("^%d+%.json$") then
            local msg = read_json(sink.dir .. "/" .. name)
            if msg.subject == "Reset your password" and msg.rcpt_tos[1] == user.email then
              return msg
            end
          end
        end
      end)
      local link = link_in(part(m, "text/plain").body, "/reset-password?token=")
      local token = link:match("token=([%w_%-]+)")
      local new_password = h.unique_password()
      h.expect_status(h.call("POST", srv.url .. "/api/v1/auth/reset-password",
        { body = { token = token, password = new_password } }), 204)
      h.expect_error(h.call("POST", srv.url .. "/api/v1/auth/login",
        { body = { email = user.email, password = user.password } }), 401, "invalid_credentials")
      local res = h.call("POST", srv.url .. "/api/v1/auth/login",
        { body = { email = user.email, password = new_password } })
      assert.is_string(h.expect_status(res, 200).data.accessToken)
    end)

    it("logs recipient and subject, never a link, token or the SMTP password", function()
      local log = assert(read_file(srv.log))
      assert.is_truthy(log:find("mail: verify_email to " .. user.email .. ' "Verify your email address" accepted',
        1, true), log)
      assert.is_truthy(log:find("mail: SMTP via smtp://127.0.0.1:" .. port .. " (STARTTLS required)", 1, true))
      assert.is_falsy(log:find("token=", 1, true))
      assert.is_falsy(log:find(SMTP_PASSWORD, 1, true))
    end)
  end)

  describe("over smtps://", function()
    local srv, sink

    lazy_setup(function()
      local cert, key = make_certificate()
      local port = free_port()
      sink = start_sink(port, ("--smtps %s %s --auth %s:%s"):format(sh(cert), sh(key), SMTP_USER, SMTP_PASSWORD))
      srv = spec_server({
        SMTP_URL_FILE = (function()
          local path = WORK .. "/smtp-url"
          local f = assert(io.open(path, "w"))
          f:write(("smtps://%s:%s@127.0.0.1:%d\n"):format(SMTP_USER, SMTP_PASSWORD, port))
          f:close()
          return path
        end)(),
        SMTP_CA_FILE = cert,
      })
    end)

    lazy_teardown(function()
      if srv then
        srv.stop()
      end
      if sink then
        sink.stop()
      end
    end)

    it("delivers over TLS from the first byte, the URL read from SMTP_URL_FILE", function()
      local user = register(srv)
      local m = received(sink, user.email)
      assert.is_true(m.authenticated)
      assert.are.same({}, m.defects)
      local link = link_in(part(m, "text/plain").body, "/app/#/verify-email?token=")
      assert.is_true(h.expect_status(follow(srv, link), 200).data.emailVerified)
    end)
  end)

  describe("without SMTP_URL (the shared test server)", function()
    it("writes one .eml file into MAIL_DIR and logs no link", function()
      local dir = assert(os.getenv("TASKAPI_MAIL_DIR"), "TASKAPI_MAIL_DIR is not set (run through bin/test)")
      local u = h.register_user({ name = "Eml Reader" })
      local eml = eventually(30, "an .eml file for " .. u.email, function()
        for _, name in ipairs(list_dir(dir)) do
          if name:match("%.eml$") then
            local text = read_file(dir .. "/" .. name)
            if text and text:find("\r\nTo: \"Eml Reader\" <" .. u.email .. ">\r\n", 1, true) then
              return text
            end
          end
        end
      end)
      assert.is_truthy(eml:find("Content-Type: multipart/alternative", 1, true))
      local link = link_in(eml, "/app/#/verify-email?token=")
      local token = link:match("token=([%w_%-]+)")
      assert.are.equal(h.mail_token(u.email, "verify_email"), token)
      local log = eventually(10, "the mail's log line", function()
        local text = h.server_log()
        return text:find("mail: verify_email to " .. u.email .. ' "Verify your email address" written to '
          .. dir, 1, true) and text
      end)
      assert.is_falsy(log:find(token, 1, true))
      assert.is_falsy(log:find("token=", 1, true))
      -- what the web client's landing page does with the link's token
      local res = h.call("POST", "/api/v1/auth/verify-email", { body = { token = token } })
      assert.is_true(h.expect_status(res, 200).data.emailVerified)
    end)
  end)

  describe("in production", function()
    it("refuses to start without SMTP_URL, naming it", function()
      local out = WORK .. "/production.out"
      local ok = run(("timeout 60 env -u SMTP_URL -u SMTP_URL_FILE -u MAIL_DISABLED TASKAPI_ENV=production "
        .. "JWT_SECRET=production-secret-0123456789 DATABASE_URL=%s PORT=%d WS_PORT=%d PID_FILE=%s "
        .. "ASAN_OPTIONS=detect_leaks=1 %s serve > %s 2>&1"):format(sh(DB_URL), free_port(), free_port(),
        sh(WORK .. "/production.pid"), sh(os.getenv("TASKAPI_BIN")), sh(out)))
      assert.is_false(ok)
      local text = read_file(out)
      assert.is_truthy(text:find("SMTP_URL is required when TASKAPI_ENV=production", 1, true), text)
      assert.is_truthy(text:find("MAIL_DISABLED", 1, true), text)
    end)

    it("starts with MAIL_DISABLED=on and sends nothing, saying so", function()
      local srv = spec_server({ TASKAPI_ENV = "production", MAIL_DISABLED = "on" })
      local ok, err = pcall(function()
        local user = register(srv)
        local job = eventually(30, "the mail job settled", function()
          local j = job_of(user.email)
          return j.status == "failed" and j
        end)
        assert.are.equal("not sent: MAIL_DISABLED is on", job.last_error)
        assert.are.equal(1, metric(srv, "taskapi_mail_dropped_total"))
        assert.are.same({}, list_dir(srv.dir .. "/mail"))
        local log = assert(read_file(srv.log))
        assert.is_truthy(log:find("mail: MAIL_DISABLED is on", 1, true))
        assert.is_truthy(log:find("mail: verify_email to " .. user.email .. ' "Verify your email address" not sent',
          1, true))
      end)
      srv.stop()
      assert(ok, err)
    end)
  end)
end)
