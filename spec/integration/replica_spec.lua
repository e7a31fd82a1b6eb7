-- Read replicas (DATABASE_READ_URL) on a real streaming replica of the test
-- cluster (bin/test: pg_basebackup -R, TEST_DATABASE_READ_URL and
-- TASKAPI_PG_REPLICA_CTL). Servers of its own (support/rel_server.lua) with
-- TASKAPI_DEBUG_QUERIES, whose X-DB-Reads header says where a request's
-- reads went. Shows: reads served by the replica; a user's read right after
-- their own write sees it while the replica is held behind
-- (pg_wal_replay_pause), another user's read still on the replica; the lag
-- on /health and /metrics; reads on the primary while the replica lags more
-- than REPLICA_MAX_LAG_MS; the replica stopped under steady load: reads fall
-- back to the primary with no failed request, and return to the replica
-- once it is started again. No timing is asserted: every wait is a poll
-- with a generous deadline.
local socket = require "socket"
local h = require "spec.integration.helper"
local server = require "spec.integration.support.rel_server"

local READ_URL = os.getenv("TEST_DATABASE_READ_URL")
local REPLICA_CTL = os.getenv("TASKAPI_PG_REPLICA_CTL")
local DEADLINE = 60 -- seconds any one wait may take on a loaded machine

local function replica_sql(sql)
  local ok, code, out = server.sh(("psql -X -q -v ON_ERROR_STOP=1 %s -Atc %s"):format(server.quote(READ_URL),
    server.quote(sql)))
  assert(ok, ("psql on the replica failed (%s): %s\n%s"):format(tostring(code), sql, out))
  return (out:gsub("%s+$", ""))
end

local function wait_for(what, fn)
  local deadline = socket.gettime() + DEADLINE
  while true do
    local v = fn()
    if v then
      return v
    end
    assert(socket.gettime() < deadline, "gave up waiting for " .. what)
    socket.sleep(0.1)
  end
end

local function call(s, method, path, token, body)
  local status, b, headers, raw = h.request(method, s.url .. path, { token = token, body = body })
  local rep, prim = (headers["x-db-reads"] or ""):match("^replica=(%d+) primary=(%d+)$")
  return { status = status, body = b, raw = raw, replica = tonumber(rep), primary = tonumber(prim) }
end

local function health(s)
  local _, b = h.request("GET", s.url .. "/health")
  return b
end

local function metric(s, series)
  local _, _, _, raw = h.request("GET", s.url .. "/metrics")
  local v = raw:match("\n" .. series:gsub("[%[%]%(%)%.%-%+%*%?%^%$%%]", "%%%0") .. " ([%d%.e%-%+]+)\n")
  return tonumber(v)
end

local function start(env)
  env.DATABASE_READ_URL = READ_URL
  env.TASKAPI_DEBUG_QUERIES = "1"
  env.REPLICA_CHECK_MS = "100"
  env.REDIS_URL = os.getenv("TEST_REDIS_URL")
  return server.start({ env = env })
end

local function caught_up(s)
  return wait_for("the replica to be usable and caught up", function()
    local b = health(s)
    return b and b.checks.replica == "ok" and b.replicaLagSeconds == 0
  end)
end

describe("read replica (DATABASE_READ_URL)", function()
  if not READ_URL or READ_URL == "" or not REPLICA_CTL or REPLICA_CTL == "" then
    pending("no streaming replica (TEST_DATABASE_READ_URL, TASKAPI_PG_REPLICA_CTL; bin/test makes one)")
    return
  end

  local s, a, b
  setup(function()
    -- A large lag bound and read-your-writes window: this server's routing
    -- depends on who wrote, not on how fast the machine is.
    s = start({ REPLICA_MAX_LAG_MS = "600000", READ_YOUR_WRITES_MS = "600000" })
    a = h.session() -- through the shared test server: no write marked here
    b = h.session()
    caught_up(s)
  end)
  teardown(function()
    replica_sql("SELECT pg_wal_replay_resume()")
    if s then
      local code = s:stop(30)
      local reports = s:sanitizer_reports()
      s:cleanup()
      assert.are.equal(0, code)
      assert.are.same({}, reports)
    end
  end)

  it("serves a reader's reads from the replica and says so on /metrics", function()
    local before = metric(s, 'taskapi_db_reads_total{target="replica"}')
    local r = call(s, "GET", "/api/v1/projects", b.access)
    assert.are.equal(200, r.status, r.raw)
    assert.is_true(r.replica >= 1 and r.primary == 0, ("replica=%s primary=%s"):format(r.replica, r.primary))
    assert.is_true(metric(s, 'taskapi_db_reads_total{target="replica"}') >= before + r.replica)
    assert.are.equal(1, metric(s, "taskapi_db_replica_configured"))
    assert.are.equal(1, metric(s, "taskapi_db_replica_up"))
    local hb = health(s)
    assert.are.equal("ok", hb.checks.replica)
    assert.are.equal("ok", hb.checks.database)
  end)

  it("gives a writer their own write while the replica is behind; others still read the replica", function()
    replica_sql("SELECT pg_wal_replay_pause()")
    wait_for("replay to pause", function()
      return replica_sql("SELECT pg_get_wal_replay_pause_state()") == "paused"
    end)
    local created = call(s, "POST", "/api/v1/projects", a.access, { name = "replica-ryw" })
    assert.are.equal(201, created.status, created.raw)
    local id = created.body.data.id
    -- The replica has not got it ...
    assert.are.equal("0", replica_sql(("SELECT count(*) FROM projects WHERE id = '%s'"):format(id)))
    -- ... yet the writer reads it (from the primary) on the next request.
    local own = call(s, "GET", "/api/v1/projects/" .. id, a.access)
    assert.are.equal(200, own.status, own.raw)
    assert.are.equal(id, own.body.data.id)
    assert.is_true(own.primary >= 1 and own.replica == 0, ("replica=%s primary=%s"):format(own.replica, own.primary))
    -- Another user's read is still served by the (stale) replica.
    local other = call(s, "GET", "/api/v1/projects", b.access)
    assert.are.equal(200, other.status, other.raw)
    assert.is_true(other.replica >= 1 and other.primary == 0)
    -- The lag shows on /health and /metrics while replay is paused.
    wait_for("/health to show a lag", function()
      local hb = health(s)
      return type(hb.replicaLagSeconds) == "number" and hb.replicaLagSeconds > 0
    end)
    assert.is_true(metric(s, "taskapi_db_replica_lag_seconds") > 0)
    replica_sql("SELECT pg_wal_replay_resume()")
    caught_up(s)
    assert.are.equal("1", replica_sql(("SELECT count(*) FROM projects WHERE id = '%s'"):format(id)))
  end)

  it("reads from the primary while the replica lags more than REPLICA_MAX_LAG_MS", function()
    local s2 = start({ REPLICA_MAX_LAG_MS = "1" })
    local ok, err = pcall(function()
      caught_up(s2)
      replica_sql("SELECT pg_wal_replay_pause()")
      wait_for("replay to pause", function()
        return replica_sql("SELECT pg_get_wal_replay_pause_state()") == "paused"
      end)
      h.psql("SELECT txid_current()") -- a commit the replica does not replay
      wait_for("/health to say lagging", function()
        return health(s2).checks.replica == "lagging"
      end)
      local r = call(s2, "GET", "/api/v1/projects", b.access)
      assert.are.equal(200, r.status, r.raw)
      assert.is_true(r.primary >= 1 and r.replica == 0, ("replica=%s primary=%s"):format(r.replica, r.primary))
      replica_sql("SELECT pg_wal_replay_resume()")
      caught_up(s2)
      -- Back on the replica (polled: a write elsewhere on the shared cluster
      -- puts a replica 1 ms behind for a moment).
      wait_for("reads back on the replica", function()
        r = call(s2, "GET", "/api/v1/projects", b.access)
        assert.are.equal(200, r.status, r.raw)
        return r.replica >= 1 and r.primary == 0
      end)
    end)
    replica_sql("SELECT pg_wal_replay_resume()")
    local code = s2:stop(30)
    local reports = s2:sanitizer_reports()
    s2:cleanup()
    assert(ok, err)
    assert.are.equal(0, code)
    assert.are.same({}, reports)
  end)

  it("falls back to the primary when the replica stops under load (no failed request) and returns to it",
    function()
      local dir = s.dir
      local out_file, sum_file, stop_file = dir .. "/load.txt", dir .. "/load.json", dir .. "/load.stop"
      local cmd = "LOAD_TOKEN=%s node spec/integration/support/load.js %s %d %d %d %s %s >%s 2>%s/load.err &"
      local started, code, out = server.sh(cmd:format(server.quote(b.access),
          server.quote(s.url .. "/api/v1/projects"), 600000, 4, 40,
          server.quote(out_file), server.quote(stop_file), server.quote(sum_file), server.quote(dir)))
      assert(started, ("cannot start node (%s): %s"):format(tostring(code), out))
      local replica_down = false
      local ok, err = pcall(function()
        local r0 = metric(s, 'taskapi_db_reads_total{target="replica"}')
        wait_for("the load's reads on the replica", function()
          return metric(s, 'taskapi_db_reads_total{target="replica"}') >= r0 + 20
        end)
        local stopped, c1, o1 = server.sh(REPLICA_CTL .. " stop -m fast -w -t 60")
        assert(stopped, ("pg_ctl stop (%s): %s"):format(tostring(c1), o1))
        replica_down = true
        local p0 = metric(s, 'taskapi_db_reads_total{target="primary"}')
        wait_for("the load's reads on the primary", function()
          return metric(s, 'taskapi_db_reads_total{target="primary"}') >= p0 + 40
        end)
        assert.are.equal("unavailable", health(s).checks.replica)
        assert.are.equal(0, metric(s, "taskapi_db_replica_up"))
        local log = os.getenv("TASKAPI_PG_REPLICA_LOG")
        local up, c2, o2 = server.sh(REPLICA_CTL .. " start -w -t 60" .. (log and (" -l " .. server.quote(log)) or ""))
        assert(up, ("pg_ctl start (%s): %s"):format(tostring(c2), o2))
        replica_down = false
        caught_up(s)
        local r1 = metric(s, 'taskapi_db_reads_total{target="replica"}')
        wait_for("the load's reads back on the replica", function()
          return metric(s, 'taskapi_db_reads_total{target="replica"}') >= r1 + 20
        end)
      end)
      if replica_down then
        server.sh(REPLICA_CTL .. " start -w -t 60")
      end
      server.write(stop_file, "")
      local summary = wait_for("load.js to finish", function()
        local text = server.read(sum_file)
        return text and text:match("^{") and require("cjson").decode(text)
      end)
      assert(ok, err)
      assert.is_true(summary.sent > 0)
      assert.are.equal(0, summary.failed, ("load: %s\n%s"):format(server.read(sum_file), server.read(out_file) or ""))
    end)
end)
