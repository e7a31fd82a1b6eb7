-- LOG_FILE: records go to a file instead of stderr, and SIGUSR1 reopens it
-- after logrotate (or an operator) moved it away, losing no record.
local h = require "spec.integration.helper"
local server = require "spec.integration.support.server"
local E = require "spec.integration.support.plugin_env"
local R = require "spec.integration.support.rel_server"
local read, wait_for = function(path) return E.read_file(path) or "" end, E.wait_for
local sh_quote = R.quote

describe("LOG_FILE", function()
  local srv, dir, path

  setup(function()
    dir = (os.getenv("TASKAPI_TEST_DIR") or "/tmp") .. "/log-file-" .. h.random_word(8)
    assert(os.execute("mkdir -p " .. sh_quote(dir)))
    path = dir .. "/taskapi.log"
    srv = server.start({ LOG_FILE = path })
  end)

  teardown(function()
    if srv then
      srv.stop()
    end
  end)

  it("takes the records; SIGUSR1 reopens the path after the file was moved", function()
    local first, second = "/no/such/before-" .. h.random_word(10), "/no/such/after-" .. h.random_word(10)
    assert.are.equal(404, (h.request("GET", srv.url .. first)))
    assert.truthy(wait_for(10, function()
      return (read(path) or ""):find(first, 1, true)
    end), "the access log line did not reach LOG_FILE")
    assert.falsy((read(srv.log) or ""):find(first, 1, true), "the record went to stderr too")

    assert(os.rename(path, path .. ".1"))
    assert(os.execute("kill -USR1 " .. srv.pid))
    assert.truthy(wait_for(10, function()
      return (read(path) or ""):find("SIGUSR1: log file reopened", 1, true)
    end), "no new LOG_FILE after SIGUSR1")
    assert.are.equal(404, (h.request("GET", srv.url .. second)))
    assert.truthy(wait_for(10, function()
      return (read(path) or ""):find(second, 1, true)
    end))
    local old = read(path .. ".1")
    assert.truthy(old:find(first, 1, true))
    assert.falsy(old:find(second, 1, true), "a record went to the moved file")
    assert.falsy(read(path):find(first, 1, true))
  end)

  it("refuses to start when the file cannot be opened", function()
    local cmd = ("env LOG_FILE=%s DATABASE_URL=%s PORT=1 WS_PORT=2 JWT_SECRET=x0123456789abcdef "
      .. "%s serve 2>&1; echo \"exit=$?\""):format(sh_quote(dir .. "/no/such/dir/x.log"),
      sh_quote(os.getenv("DATABASE_URL")), sh_quote(os.getenv("TASKAPI_BIN")))
    local p = assert(io.popen(cmd))
    local out = p:read("a")
    p:close()
    assert.matches("cannot open LOG_FILE", out, 1, true)
    assert.matches("exit=1", out, 1, true)
  end)
end)
