-- Starts a taskapi server of the spec's own (TASKAPI_BIN) on a free port,
-- on the suite's database, with extra environment, and stops it. For specs
-- that need settings the shared test server does not have. Its files (log,
-- scripts, mailbox) go under TASKAPI_TEST_DIR/spec-servers/ when bin/test
-- set it, so that the run's final log check sees its log too.
local socket = require "socket"
local config_env = require "spec.integration.support.config_env"

local M = {}

local function free_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

local function sh_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

--- Starts a server; env is a table of extra variables. Returns
--- {url=, port=, pid=, log=, dir=, stop=function() -> exit status}.
function M.start(env)
  local bin = assert(os.getenv("TASKAPI_BIN"), "TASKAPI_BIN is not set")
  local db = assert(os.getenv("DATABASE_URL"), "DATABASE_URL is not set")
  local dir = os.tmpname()
  os.remove(dir)
  local test_dir = os.getenv("TASKAPI_TEST_DIR")
  if test_dir and test_dir ~= "" then
    dir = test_dir .. "/spec-servers/" .. dir:match("[^/]+$")
  end
  assert(os.execute("mkdir -p " .. sh_quote(dir)))
  local scripts = os.getenv("TASKAPI_SCRIPTS_DIR") or "scripts"
  assert(os.execute(("cp -r %s %s/scripts"):format(sh_quote(scripts), sh_quote(dir))))
  local port = free_port()
  local vars = {
    PORT = port, WS_PORT = free_port(), DATABASE_URL = db, SCRIPTS_DIR = dir .. "/scripts",
    PID_FILE = dir .. "/taskapi.pid", JWT_SECRET = os.getenv("JWT_SECRET") or "spec-secret-0123456789",
    WORKERS = 2, LOG_LEVEL = "info", WATCH_SCRIPTS = "off", MAIL_DIR = dir .. "/mail",
    ASAN_OPTIONS = "detect_leaks=1:log_path=" .. dir .. "/asan",
  }
  for k, v in pairs(env or {}) do
    vars[k] = v
  end
  local parts = {}
  for k, v in pairs(vars) do
    parts[#parts + 1] = k .. "=" .. sh_quote(v)
  end
  local log = dir .. "/server.log"
  -- Settings of the developer's shell that the caller did not ask for: dropped.
  local unset = config_env.unset_flags(bin, vars)
  local cmd = ("env %s %s %s serve > %s 2>&1 & echo $!"):format(unset, table.concat(parts, " "),
    sh_quote(bin), sh_quote(log))
  local p = assert(io.popen(cmd))
  local pid = tonumber(p:read("l"))
  p:close()
  local url = "http://127.0.0.1:" .. port
  local up = false
  -- A deadline, not a count of tries: a refused connect returns at once, and
  -- a sanitizer build on a loaded machine can take many seconds to listen.
  local deadline = socket.gettime() + 60
  while socket.gettime() < deadline do
    if not os.execute("kill -0 " .. pid .. " 2>/dev/null") then
      break -- it exited (a bad setting): the log says why
    end
    local c = socket.tcp()
    c:settimeout(0.2)
    if c:connect("127.0.0.1", port) then
      c:close()
      up = true
      break
    end
    c:close()
    socket.sleep(0.05)
  end
  assert(up, "the spec's server did not start; see " .. log)
  local srv = { url = url, port = port, pid = pid, log = log, dir = dir }
  function srv.stop()
    os.execute("kill -TERM " .. pid)
    for _ = 1, 600 do
      if not os.execute("kill -0 " .. pid .. " 2>/dev/null") then
        break
      end
      socket.sleep(0.05)
    end
    local f = io.open(log)
    local text = f and f:read("a") or ""
    if f then
      f:close()
    end
    return text
  end
  return srv
end

return M
