-- A private taskapi for specs that must own their server (reload, signals,
-- shutdown): its own copy of the scripts in a temp dir, free ports, its own
-- PID_FILE and log, the shared DATABASE_URL. The binary is TASKAPI_BIN
-- (bin/test: the ASan build), else build-asan/taskapi, else build/taskapi.
--
--   local server = require "spec.integration.support.rel_server"
--   local s = server.start({ env = { RELOAD_DEBOUNCE_MS = "200" } })
--   local status, body = s:get("/health/live")
--   local code = s:stop()          -- SIGTERM, waits, returns the exit status
--   s:cleanup()
--
-- Must be used from the repository root (bin/test and busted run there).
local socket = require "socket"
local http = require "socket.http"
local ltn12 = require "ltn12"
local cjson = require "cjson"
local config_env = require "spec.integration.support.config_env"

local M = {}

--- Single-quotes s for /bin/sh.
function M.quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
local quote = M.quote

--- Runs a shell command; returns ok, exit code, output (stdout + stderr).
function M.sh(cmd)
  local f = assert(io.popen(cmd .. " 2>&1", "r"))
  local out = f:read("a")
  local ok, _, code = f:close()
  return ok == true, code, out
end
local sh = M.sh

local function must(cmd)
  local ok, code, out = sh(cmd)
  if not ok then
    error(("command failed (%s): %s\n%s"):format(tostring(code), cmd, out), 2)
  end
  return out
end

function M.read(path)
  local f = io.open(path, "rb")
  if not f then
    return nil
  end
  local s = f:read("a")
  f:close()
  return s
end

function M.write(path, text)
  local f = assert(io.open(path, "wb"))
  assert(f:write(text))
  assert(f:close())
end

--- Writes path atomically: a hidden temp file next to it, then rename. The
--- runtime's snapshot skips dot files, so a reload never sees half a file.
function M.replace(path, text)
  local dir, name = path:match("^(.*)/([^/]+)$")
  local tmp = dir .. "/." .. name .. ".tmp"
  M.write(tmp, text)
  assert(os.rename(tmp, path))
end

--- A TCP port nobody listens on right now (the kernel picks it).
function M.free_port()
  local s = assert(socket.bind("*", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

local function binary()
  local bin = os.getenv("TASKAPI_BIN")
  if bin and bin ~= "" then
    return bin
  end
  for _, p in ipairs({ "build-asan/taskapi", "build/taskapi" }) do
    if sh("test -x " .. quote(p)) then
      return p
    end
  end
  error("TASKAPI_BIN is not set and no build/taskapi exists", 3)
end
M.binary = binary

--- POST of a JSON body to server s (anything with .url) with an optional
--- bearer token; returns the status and the decoded body (nil if not JSON).
function M.post(s, path, body, token)
  local payload = cjson.encode(body)
  local chunks = {}
  local headers = { ["content-type"] = "application/json", ["content-length"] = tostring(#payload) }
  if token then
    headers.authorization = "Bearer " .. token
  end
  local _, status = http.request({
    url = s.url .. path, method = "POST", headers = headers,
    source = ltn12.source.string(payload), sink = ltn12.sink.table(chunks),
  })
  local ok, decoded = pcall(cjson.decode, table.concat(chunks))
  return status, ok and decoded or nil
end

local Server = {}
Server.__index = Server

--- GET (or opts.method) on the server; returns status, decoded body, raw.
function Server:request(method, path, body)
  local chunks = {}
  local payload = body and cjson.encode(body) or nil
  local ok, status = http.request({
    url = self.url .. path,
    method = method,
    headers = payload and { ["content-type"] = "application/json",
      ["content-length"] = tostring(#payload) } or nil,
    source = payload and ltn12.source.string(payload) or nil,
    sink = ltn12.sink.table(chunks),
  })
  if not ok then
    return nil, nil, status
  end
  local raw = table.concat(chunks)
  local okd, decoded = pcall(cjson.decode, raw)
  return status, okd and decoded or nil, raw
end

function Server:get(path)
  return self:request("GET", path)
end

--- The server's log so far.
function Server:log()
  return M.read(self.log_file) or ""
end

--- The pid the server wrote to its PID_FILE.
function Server:pid()
  local s = M.read(self.pid_file)
  return s and tonumber(s:match("%d+"))
end

function Server:alive()
  local pid = self:pid()
  return pid ~= nil and (sh("kill -0 " .. pid)) and M.read(self.status_file) == nil
end

--- Runs `taskapi ARGS` with the server's environment (e.g. "reload").
function Server:cli(args)
  return sh(self.env_prefix .. " " .. quote(self.bin) .. " " .. args)
end

--- SIGTERM, then waits up to `timeout` seconds; returns the exit status (nil
--- if it did not exit in time, in which case it is killed).
function Server:stop(timeout)
  local pid = self:pid()
  if pid == nil then
    return nil
  end
  sh("kill -TERM " .. pid)
  local deadline = socket.gettime() + (timeout or 30)
  while socket.gettime() < deadline do
    local st = M.read(self.status_file)
    if st and st:match("%d+") then
      self.stopped = true
      return tonumber(st:match("%d+"))
    end
    socket.sleep(0.05)
  end
  sh("kill -KILL " .. pid)
  self.stopped = true
  return nil
end

--- Sanitizer reports the server wrote (a list of file texts).
function Server:sanitizer_reports()
  local out = {}
  local _, _, list = sh("ls " .. quote(self.dir) .. "/asan.* 2>/dev/null")
  for path in list:gmatch("[^\n]+") do
    local text = M.read(path)
    if text and text ~= "" then
      out[#out + 1] = path .. ":\n" .. text
    end
  end
  return out
end

function Server:cleanup()
  if not self.stopped then
    self:stop(10)
  end
  if os.getenv("REL_KEEP_TMP") then
    return
  end
  sh("rm -rf " .. quote(self.dir))
end

--- Starts a server. opts.env: extra/overriding environment (strings);
--- opts.before(scripts_dir): called after the scripts are copied, before the
--- server starts. Raises if it does not answer /health/live within 30 s.
function M.start(opts)
  opts = opts or {}
  local db = os.getenv("DATABASE_URL")
  if db == nil or db == "" then
    error("DATABASE_URL is not set", 2)
  end
  local self = setmetatable({}, Server)
  self.bin = binary()
  self.dir = must("mktemp -d /tmp/taskapi-rel.XXXXXX"):gsub("%s+$", "")
  self.scripts = self.dir .. "/scripts"
  self.plugins = self.dir .. "/plugins"
  must(("cp -r scripts %s"):format(quote(self.scripts)))
  if sh("test -d spec/fixtures/scripts") then
    must(("cp -r spec/fixtures/scripts/. %s/"):format(quote(self.scripts)))
  end
  if sh("test -d plugins") then
    must(("cp -r plugins %s"):format(quote(self.plugins)))
  else
    must("mkdir " .. quote(self.plugins))
  end
  if opts.before then
    opts.before(self.scripts)
  end
  self.port = M.free_port()
  repeat
    self.ws_port = M.free_port()
  until self.ws_port ~= self.port
  self.url = "http://127.0.0.1:" .. self.port
  self.log_file = self.dir .. "/server.log"
  self.pid_file = self.dir .. "/taskapi.pid"
  self.status_file = self.dir .. "/exit-status"
  local env = {
    PORT = tostring(self.port), WS_PORT = tostring(self.ws_port), WORKERS = "4",
    DATABASE_URL = db, SCRIPTS_DIR = self.scripts, PLUGINS_DIR = self.plugins,
    PID_FILE = self.pid_file, JWT_SECRET = os.getenv("JWT_SECRET") or "rel-secret-0123456789abcdef",
    LOG_LEVEL = "info", LOG_FORMAT = "text", WATCH_SCRIPTS = "on", RELOAD_DEBOUNCE_MS = "200",
    RATE_LIMIT_PER_MIN = "2000000000", AUTH_RATE_LIMIT_PER_MIN = "2000000000",
    APP_BASE_URL = self.url,
    ASAN_OPTIONS = "detect_leaks=1:log_path=" .. self.dir .. "/asan",
    UBSAN_OPTIONS = "print_stacktrace=1:halt_on_error=1:log_path=" .. self.dir .. "/asan",
  }
  for k, v in pairs(opts.env or {}) do
    env[k] = v
  end
  local parts = { "env" }
  parts[#parts + 1] = config_env.unset_flags(self.bin, env)
  local keys = {}
  for k in pairs(env) do
    keys[#keys + 1] = k
  end
  table.sort(keys)
  for _, k in ipairs(keys) do
    parts[#parts + 1] = quote(k .. "=" .. env[k])
  end
  self.env_prefix = table.concat(parts, " ")
  -- The subshell records the exit status; the server itself writes PID_FILE.
  local launch = ("(%s %s serve >%s 2>&1; echo $? >%s) </dev/null >/dev/null 2>&1 &"):format(
    self.env_prefix, quote(self.bin), quote(self.log_file), quote(self.status_file))
  must(launch)
  local deadline = socket.gettime() + 30
  while socket.gettime() < deadline do
    if M.read(self.status_file) then
      local log = self:log()
      self.stopped = true
      self:cleanup()
      error("the server exited during start-up:\n" .. log, 2)
    end
    if self:pid() then
      local status = self:get("/health/live")
      if status == 200 then
        return self
      end
    end
    socket.sleep(0.05)
  end
  local log = self:log()
  self:cleanup()
  error("the server did not answer /health/live within 30 s:\n" .. log, 2)
end

return M
