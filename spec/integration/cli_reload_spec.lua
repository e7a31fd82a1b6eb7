-- `taskapi reload` from outside the checkout: PID_FILE defaults to an
-- absolute, per-port path ($XDG_RUNTIME_DIR or /tmp), so the CLI finds the
-- server from any directory; a pid file that is a symlink is refused.
local server = require "spec.integration.support.server"

local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1; echo \"exit=$?\""))
  local out = p:read("a")
  p:close()
  return out
end

local function quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

describe("taskapi reload", function()
  local srv, pid_file, env

  setup(function()
    srv = server.start({ PID_FILE = "" }) -- empty: the default
    local run_dir = os.getenv("XDG_RUNTIME_DIR")
    if not (run_dir and run_dir:sub(1, 1) == "/") then
      run_dir = "/tmp"
    end
    pid_file = ("%s/taskapi-%d.pid"):format(run_dir, srv.port)
    env = ("env -u PID_FILE PORT=%d DATABASE_URL=%s"):format(srv.port, quote(os.getenv("DATABASE_URL")))
  end)

  teardown(function()
    if srv then
      srv.stop()
    end
  end)

  it("finds the server through the default PID_FILE from another directory", function()
    local f
    for _ = 1, 200 do -- written once the server is up, a moment after its port opens
      f = io.open(pid_file)
      if f then
        break
      end
      os.execute("sleep 0.05")
    end
    assert(f, "the server wrote no " .. pid_file)
    assert.are.equal(srv.pid, tonumber(f:read("l")))
    f:close()
    local out = sh(("cd / && %s %s reload"):format(env, quote(os.getenv("TASKAPI_BIN"))))
    assert.truthy(out:find("asked server " .. srv.pid .. " to reload", 1, true), out)
    assert.truthy(out:find("exit=0", 1, true), out)
    local log
    for _ = 1, 100 do
      local lf = io.open(srv.log)
      log = lf:read("a")
      lf:close()
      if log:find("SIGHUP: reloading scripts", 1, true) then
        break
      end
      os.execute("sleep 0.05")
    end
    assert.truthy(log:find("SIGHUP: reloading scripts", 1, true), log)
  end)

  it("refuses a pid file that is a symlink", function()
    local link = srv.dir .. "/link.pid"
    assert(os.execute(("ln -s %s %s"):format(quote(pid_file), quote(link))))
    local out = sh(("cd / && %s PID_FILE=%s %s reload"):format(env, quote(link),
      quote(os.getenv("TASKAPI_BIN"))))
    assert.truthy(out:find("no running server found in PID_FILE", 1, true), out)
    assert.falsy(out:find("exit=0", 1, true), out)
  end)
end)
