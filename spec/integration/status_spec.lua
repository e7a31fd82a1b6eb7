-- What runs: the start-up/reload line (generation, scripts digest, plugins),
-- GET /api/v1/admin/status for global admins, and `taskapi status`, which
-- prints it. A server of the spec's own, so that a refused reload shows up
-- as the last reload error with its file and line.
local h = require "spec.integration.helper"
local server = require "spec.integration.support.server"
local E = require "spec.integration.support.plugin_env"
local R = require "spec.integration.support.rel_server"
local read, wait_for = function(path) return E.read_file(path) or "" end, E.wait_for
local sh_quote = R.quote

-- out, exit code of a shell command (stdout and stderr)
local function run(cmd)
  local ok, code, out = R.sh("(" .. cmd .. ")")
  return out, ok and 0 or code
end
local cjson = require "cjson"

describe("taskapi status", function()
  local srv, admin, plain

  local function user(base)
    local email, pw = h.unique_email("status"), h.unique_password()
    assert.are.equal(201, (h.request("POST", base .. "/api/v1/auth/register",
      { body = { email = email, password = pw, name = "Status" } })))
    return email, pw
  end

  local function login(base, email, pw)
    local status, body = h.request("POST", base .. "/api/v1/auth/login",
      { body = { email = email, password = pw } })
    assert.are.equal(200, status)
    return body.data.accessToken
  end

  local function status_of(token)
    return h.request("GET", srv.url .. "/api/v1/admin/status", { token = token })
  end

  setup(function()
    srv = server.start({ PLUGINS = "webhooks,activity",
      PLUGINS_CONFIG = "spec/integration/plugins.json" })
    local email, pw = user(srv.url)
    plain = login(srv.url, email, pw)
    local out, code = run(("env DATABASE_URL=%s %s users grant-admin %s"):format(
      sh_quote(os.getenv("DATABASE_URL")), sh_quote(os.getenv("TASKAPI_BIN")), sh_quote(email)))
    assert(code == 0, out)
    admin = login(srv.url, email, pw)
    local p, q = user(srv.url)
    plain = login(srv.url, p, q)
  end)

  teardown(function()
    if srv then
      srv.stop()
    end
  end)

  it("logs one line per generation: number, scripts digest, files, routes, plugins", function()
    local line = read(srv.log):match("loaded: generation 1, [^\n]+")
    assert.is_string(line, read(srv.log))
    assert.matches("scripts %x%x%x%x%x%x%x%x%x%x%x%x, %d+ files, %d+ routes; plugins: ", line)
    assert.matches("webhooks %d+%.%d+%.%d+", line)
    assert.matches("activity %d+%.%d+%.%d+", line)
  end)

  it("GET /api/v1/admin/status: 401 without a token, 403 for a non-admin", function()
    local status, body = h.request("GET", srv.url .. "/api/v1/admin/status")
    assert.are.equal(401, status)
    assert.are.equal("unauthorized", body.error.code)
    status, body = status_of(plain)
    assert.are.equal(403, status)
    assert.are.equal("forbidden", body.error.code)
  end)

  it("shows the generation, plugins, limits, sockets and jobs; a refused reload with its file:line", function()
    local status, body = status_of(admin)
    assert.are.equal(200, status)
    local d = body.data
    assert.are.equal(1, d.scripts.generation)
    assert.matches("^%x+$", d.scripts.digest)
    assert.are.equal(64, #d.scripts.digest)
    assert.matches(h.TIMESTAMP, d.scripts.loadedAt)
    assert.is_true(d.scripts.routes > 10)
    assert.are.equal(h.null, d.scripts.lastReloadError)
    local names = {}
    for _, p in ipairs(d.plugins) do
      names[#names + 1] = p.name .. " " .. p.version
    end
    assert.matches("webhooks %d", table.concat(names, ","))
    assert.is_number(d.hookFailures.total)
    assert.are.equal(60, d.rateLimits.windowSeconds)
    assert.is_number(d.realtime.connections)
    assert.is_number(d.jobs.pending)
    assert.is_number(d.jobs.failedLastDay)
    assert.is_false(d.shuttingDown)

    -- a broken route file: the reload is refused, its place named
    local file = srv.dir .. "/scripts/routes/zz_broken.lua"
    local f = assert(io.open(file, "w"))
    f:write("local x = \nreturn nil +\n")
    f:close()
    assert(os.execute("kill -HUP " .. srv.pid))
    local err = wait_for(20, function()
      local _, b = status_of(admin)
      return b.data.scripts.lastReloadError ~= h.null and b.data.scripts.lastReloadError or nil
    end)
    assert.is_table(err, "no reload error reported")
    assert.matches("zz_broken%.lua:%d", err.message)
    assert.matches(h.TIMESTAMP, err.at)
    os.remove(file)
    assert(os.execute("kill -HUP " .. srv.pid))
    local gen = wait_for(20, function()
      local _, b = status_of(admin)
      return b.data.scripts.generation == 2 and b.data.scripts or nil
    end)
    assert.is_table(gen, "the fixed scripts did not load")
    assert.are.equal(d.scripts.digest, gen.digest) -- the same files as generation 1
    assert.are.equal(1, gen.reloadFailures)
  end)

  it("taskapi status prints it; without TASKAPI_TOKEN it says what it needs", function()
    local bin = os.getenv("TASKAPI_BIN")
    local out, code = run(("env TASKAPI_TOKEN=%s PORT=%d %s status"):format(sh_quote(admin), srv.port,
      sh_quote(bin)))
    assert(code == 0, out)
    local d = cjson.decode(out).data
    assert.is_number(d.scripts.generation)
    out, code = run(("env -u TASKAPI_TOKEN PORT=%d %s status"):format(srv.port, sh_quote(bin)))
    assert.are_not.equal(0, code)
    assert.matches("TASKAPI_TOKEN", out, 1, true)
    out, code = run(("env TASKAPI_TOKEN=%s PORT=%d %s status"):format(sh_quote(plain), srv.port,
      sh_quote(bin)))
    assert.are_not.equal(0, code)
    assert.matches("HTTP 403", out, 1, true)
  end)
end)
