-- Helpers of the plugin specs (plugins, webhooks, activity): a real HTTP
-- receiver for webhook deliveries (node, support/webhook_receiver.js), a
-- taskapi server of the spec's own (TASKAPI_BIN on a free port, same
-- database, its own copy of the scripts and its own PLUGINS_DIR) that a spec
-- may SIGKILL and restart, and small waiting and signing helpers.
local h = require "spec.integration.helper"
local socket = require "socket"
local cjson = require "cjson"

local M = {}

local function sh_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
M.quote = sh_quote

--- Runs a shell command; returns ok, output (stdout and stderr).
function M.run(cmd)
  local f = assert(io.popen(cmd .. " 2>&1", "r"))
  local out = f:read("a")
  local ok = f:close()
  return ok == true, out
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then
    return nil
  end
  local s = f:read("a")
  f:close()
  return s
end
M.read_file = read_file

function M.write_file(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

--- Calls fn() every 50 ms until it returns a truthy value or `seconds`
--- pass; returns that value (or nil).
function M.wait_for(seconds, fn)
  local deadline = h.now() + seconds
  repeat
    local v = fn()
    if v then
      return v
    end
    h.sleep(0.05)
  until h.now() > deadline
  return fn()
end

--- A free TCP port on 127.0.0.1 (bound then released).
function M.free_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

local made = {} -- temp dirs to remove in M.cleanup()

function M.tmpdir(tag)
  local ok, out = M.run("mktemp -d /tmp/taskapi-" .. tag .. "-XXXXXX")
  assert(ok, out)
  local dir = out:gsub("%s+$", "")
  made[#made + 1] = dir
  return dir
end

--- Removes the temp dirs made so far (call from teardown, after stopping
--- servers and receivers). A dir passed to M.keep stays, for a post-mortem.
function M.cleanup()
  for _, dir in ipairs(made) do
    os.execute("rm -rf " .. sh_quote(dir))
  end
  made = {}
end

function M.keep(dir)
  for i, d in ipairs(made) do
    if d == dir then
      table.remove(made, i)
      return
    end
  end
end

local function repo_root()
  return os.getenv("TASKAPI_ROOT") or "."
end

--- The lowercase hex HMAC-SHA256 of msg under key.
function M.hmac_hex(key, msg)
  return (h.hmac_sha256(key, msg):gsub(".", function(c)
    return ("%02x"):format(c:byte())
  end))
end

-- ---- API calls against any server -------------------------------------------------

--- api(base) -> a client of the server at base ("http://127.0.0.1:PORT";
--- nil: TASKAPI_URL). client.call(method, path, token, body) -> {status,
--- body, headers, raw}, path relative to /api/v1.
function M.api(base)
  base = (base or h.base):gsub("/+$", "")
  local c = {}

  function c.call(method, path, token, body, headers)
    return h.call(method, base .. "/api/v1" .. path, { token = token, body = body, headers = headers })
  end

  --- A new registered, logged-in user: {id, email, access, name}.
  function c.user(name)
    local email = h.unique_email("plug")
    local pw = h.unique_password()
    h.expect_status(c.call("POST", "/auth/register", nil,
      { email = email, password = pw, name = name or "Plugin Spec" }), 201)
    local d = h.expect_status(c.call("POST", "/auth/login", nil, { email = email, password = pw }),
      200).data
    return { id = d.user.id, email = email, access = d.accessToken, name = d.user.name }
  end

  --- A project owned by `owner` with `members` ({{user, role}, ...}); returns its id.
  function c.project(owner, members, body)
    local p = h.expect_status(c.call("POST", "/projects", owner.access,
      body or { name = "plugins spec" }), 201).data
    for _, m in ipairs(members or {}) do
      h.expect_status(c.call("POST", "/projects/" .. p.id .. "/members", owner.access,
        { userId = m[1].id, role = m[2] }), 201)
    end
    return p.id
  end

  function c.task(user, project_id, body)
    return h.expect_status(c.call("POST", "/projects/" .. project_id .. "/tasks", user.access,
      body or { title = "a task" }), 201).data
  end

  return c
end

-- ---- the receiver --------------------------------------------------------------

local Receiver = {}
Receiver.__index = Receiver

--- Starts a receiver; returns it with .base ("http://127.0.0.1:PORT").
function M.receiver()
  local dir = M.tmpdir("receiver")
  local self = setmetatable({ dir = dir, log = dir .. "/requests.jsonl" }, Receiver)
  local script = repo_root() .. "/spec/integration/support/webhook_receiver.js"
  local cmd = ("node %s %s %s > %s 2>&1 & echo $!"):format(sh_quote(script),
    sh_quote(dir .. "/port"), sh_quote(self.log), sh_quote(dir .. "/out"))
  local ok, out = M.run(cmd)
  assert(ok, out)
  self.pid = tonumber(out:match("%d+"))
  local port = M.wait_for(10, function()
    return read_file(dir .. "/port")
  end)
  assert(port, "the webhook receiver did not start: " .. tostring(read_file(dir .. "/out")))
  self.base = "http://127.0.0.1:" .. port
  return self
end

--- A fresh URL on this receiver; opts.codes / opts.delays script its
--- answers (see webhook_receiver.js).
function Receiver:url(opts)
  opts = opts or {}
  local path = "/hook/" .. h.unique_email("r"):match("^[^@]+")
  local q = {}
  if opts.codes then
    q[#q + 1] = "codes=" .. opts.codes
  end
  if opts.delays then
    q[#q + 1] = "delays=" .. opts.delays
  end
  return self.base .. path .. (#q > 0 and "?" .. table.concat(q, "&") or ""), path
end

local function entries(self, path, phase)
  local out = {}
  for line in (read_file(self.log) or ""):gmatch("[^\n]+") do
    local e = cjson.decode(line)
    if e.path == path and e.phase == phase then
      out[#out + 1] = e
    end
  end
  return out
end

--- Every request answered (or dropped) for `path`, in the order of their
--- answers: {headers, body, status, n, aborted, ...}.
function Receiver:requests(path)
  return entries(self, path, "answered")
end

--- Every request that arrived for `path` (logged before it is answered).
function Receiver:arrivals(path)
  return entries(self, path, "received")
end

--- Waits until `n` requests to `path` were answered; returns them all.
function Receiver:wait(path, n, seconds)
  return M.wait_for(seconds or 15, function()
    local list = self:requests(path)
    return #list >= n and list or nil
  end) or self:requests(path)
end

function Receiver:stop()
  if self.pid then
    os.execute("kill " .. self.pid .. " 2>/dev/null")
    self.pid = nil
  end
end

local function bin()
  local b = os.getenv("TASKAPI_BIN")
  if b and b ~= "" then
    return b
  end
  for _, c in ipairs({ "build-asan/taskapi", "build/taskapi" }) do
    if io.open(c, "rb") then
      return c
    end
  end
  error("TASKAPI_BIN is not set and no build/taskapi exists", 2)
end
M.bin = bin

-- ---- a database of the spec's own ----------------------------------------------------

local function psql_on(url, sql)
  local ok, out = M.run(("psql -X -q -v ON_ERROR_STOP=1 %s -Atc %s"):format(sh_quote(url),
    sh_quote(sql)))
  assert(ok, out)
  return out
end

--- Creates and migrates a new database on the suite's PostgreSQL (for a
--- job runner no other server shares). Returns its URL and a drop function.
function M.own_database()
  local url = assert(os.getenv("DATABASE_URL"), "DATABASE_URL is not set")
  local prefix, rest = url:match("^(postgres[%w]*://[^/]*/)([^?]*)")
  assert(prefix, "cannot parse DATABASE_URL")
  local query = url:sub(#prefix + #rest + 1)
  local name = ("plugins_spec_%d_%d"):format(os.time(), math.random(1, 1e6))
  psql_on(url, "CREATE DATABASE " .. name)
  local own = prefix .. name .. query
  local ok, out = M.run(("env DATABASE_URL=%s MIGRATIONS_DIR=%s %s migrate"):format(sh_quote(own),
    sh_quote(repo_root() .. "/migrations"), sh_quote(bin())))
  assert(ok, out)
  return own, function()
    psql_on(url, "DROP DATABASE IF EXISTS " .. name .. " WITH (FORCE)")
  end
end

--- Runs SQL on the database at `url` (psql -At); returns the output, trimmed.
function M.psql_at(url, sql)
  return (psql_on(url, sql):gsub("%s+$", ""))
end

-- ---- a server of the spec's own ------------------------------------------------------

local Server = {}
Server.__index = Server


--- A scripts directory like bin/test's (scripts/ + the fixture routes) and a
--- plugins directory (plugins/ + spec/fixtures/plugins/) in a new temp dir.
--- Returns dir, scripts_dir, plugins_dir.
function M.trees()
  local dir = M.tmpdir("plugins")
  local root = repo_root()
  local cmd = ("cp -r %s/scripts %s/scripts && cp -r %s/spec/fixtures/scripts/. %s/scripts/ && "
    .. "mkdir -p %s/plugins && cp -r %s/plugins/. %s/plugins/ && "
    .. "cp -r %s/spec/fixtures/plugins/. %s/plugins/"):format(root, dir, root, dir, dir, root, dir,
    root, dir)
  local ok, out = M.run(cmd)
  assert(ok, out)
  return dir, dir .. "/scripts", dir .. "/plugins"
end

--- Environment of a spec-owned server: the database and JWT secret of the
--- suite, fast jobs, no file watching, one worker unless env says otherwise.
local function server_env(dir, port, env)
  local e = {
    DATABASE_URL = os.getenv("DATABASE_URL"),
    JWT_SECRET = os.getenv("JWT_SECRET") or "spec-secret-0123456789",
    PORT = tostring(port),
    WS_PORT = tostring(M.free_port()),
    WORKERS = "1",
    DB_POOL_SIZE = "4",
    PID_FILE = dir .. "/taskapi.pid",
    WATCH_SCRIPTS = "off",
    LOG_LEVEL = "info",
    JOB_POLL_MS = "50",
    JOB_BACKOFF_BASE_MS = "100",
    RATE_LIMIT_PER_MIN = "1000000",
    AUTH_RATE_LIMIT_PER_MIN = "1000000",
    APP_BASE_URL = "http://127.0.0.1:" .. port,
    ASAN_OPTIONS = "detect_leaks=1:log_path=" .. dir .. "/asan",
    UBSAN_OPTIONS = "print_stacktrace=1:halt_on_error=1:log_path=" .. dir .. "/asan",
  }
  for k, v in pairs(env or {}) do
    e[k] = v
  end
  return e
end

local function env_prefix(e)
  local parts = { "env", "-u", "REDIS_URL", "-u", "PLUGINS", "-u", "PLUGINS_CONFIG" }
  for k, v in pairs(e) do
    if v ~= false then
      parts[#parts + 1] = sh_quote(k .. "=" .. v)
    end
  end
  return table.concat(parts, " ")
end

--- Runs `taskapi <args>` (check, routes) with the given environment
--- overrides on top of the suite's; returns ok, output.
function M.taskapi(args, env)
  local dir = M.tmpdir("cmd")
  return M.run(env_prefix(server_env(dir, M.free_port(), env)) .. " " .. sh_quote(bin()) .. " "
    .. args)
end

--- Starts a server with env overrides (SCRIPTS_DIR, PLUGINS_DIR, PLUGINS,
--- PLUGINS_CONFIG, ...) and waits for /health/live. Returns it with .url.
function M.server(env)
  local port = M.free_port()
  local dir = M.tmpdir("server")
  local self = setmetatable({ dir = dir, port = port, log = dir .. "/server.log",
    url = "http://127.0.0.1:" .. port, env = env }, Server)
  self.full_env = server_env(dir, port, env)
  self:start()
  return self
end

function Server:start()
  local cmd = ("%s %s serve >> %s 2>&1 & echo $!"):format(env_prefix(self.full_env),
    sh_quote(bin()), sh_quote(self.log))
  local ok, out = M.run(cmd)
  assert(ok, out)
  self.pid = tonumber(out:match("%d+"))
  local up = M.wait_for(30, function()
    local ok2 = M.run(("curl -sf -o /dev/null --max-time 2 %s/health/live"):format(self.url))
    if ok2 then
      return true
    end
    if not M.run("kill -0 " .. self.pid) then
      return "dead"
    end
  end)
  if up ~= true then
    error(("own taskapi did not start (%s):\n%s"):format(tostring(up),
      (read_file(self.log) or ""):sub(-3000)), 2)
  end
end

--- SIGKILL: no shutdown at all, an open transaction dies with the process.
function Server:kill()
  os.execute("kill -KILL " .. self.pid .. " 2>/dev/null")
  M.wait_for(10, function()
    return not M.run("kill -0 " .. self.pid)
  end)
end

function Server:signal(name)
  os.execute(("kill -%s %d"):format(name, self.pid))
end

--- SIGTERM and wait; returns the sanitizer reports found (a string, "" if none).
function Server:stop()
  if not self.pid then
    return ""
  end
  os.execute("kill -TERM " .. self.pid .. " 2>/dev/null")
  M.wait_for(30, function()
    return not M.run("kill -0 " .. self.pid)
  end)
  self.pid = nil
  local _, reports = M.run(("cat %s/asan.* 2>/dev/null | grep -E -A30 "
    .. "'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' || true"):format(sh_quote(self.dir)))
  if reports ~= "" then
    M.keep(self.dir)
  end
  return reports
end

function Server:log_text()
  return read_file(self.log) or ""
end

--- Waits until the server's log matches `pattern` (a Lua pattern).
function Server:wait_log(pattern, seconds)
  return M.wait_for(seconds or 10, function()
    return self:log_text():match(pattern)
  end)
end

return M
