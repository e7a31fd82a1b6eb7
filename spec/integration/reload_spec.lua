-- Hot reload under sustained load (README "Reload"): the spec starts its own
-- server (support/rel_server.lua: TASKAPI_BIN, a temp copy of the scripts,
-- own ports and PID_FILE, WORKERS=4), runs spec/integration/support/load.js
-- against a fixture route that answers {version = N} (4 keep-alive loops at
-- a steady total rate for 20 s, every answer recorded), and meanwhile
-- changes the scripts 20 times, 5 of them broken (a syntax error, a route
-- conflict, a bad schema, an app.lua error, a routes file that errors at
-- load). Reloads are triggered in turn by SIGHUP, `taskapi reload` and
-- the file write alone (inotify). It proves:
--   * no request failed or was dropped (all 200, no socket errors; the
--     server logged every one of them as answered);
--   * each good version is served within a second of its trigger, and once
--     a client has seen it no later request gets an older one;
--   * no broken version ever served a request, and the log has a
--     "reload failed" line naming each;
--   * the server then stops on SIGTERM with exit status 0 (and, for the
--     ASan build, no sanitizer report).
-- Set REL_VERBOSE=1 to print the numbers.
local socket = require "socket"
local cjson = require "cjson"
local server = require "spec.integration.support.rel_server"

local LOAD_MS = 20000     -- load duration
local CONCURRENCY = 4     -- loops (connections)
local RATE = 800          -- requests per second, all loops together
local STEPS = 20          -- script changes
local FIRST_STEP = 1.0    -- seconds after the load starts
local STEP_EVERY = 0.85   -- seconds between two changes
local SWITCH_LIMIT = 1.0  -- seconds from trigger to the first answer of the new version

-- Broken versions: what is broken (each error message names "broken_vN").
local BROKEN = { [3] = "syntax", [7] = "conflict", [11] = "schema", [15] = "app", [19] = "routes_file" }

local function trigger_of(i)
  return ({ [1] = "sighup", [2] = "cli", [0] = "inotify" })[i % 3]
end

local function version_file(v, broken)
  local extra = ""
  if broken == "syntax" then
    extra = ("broken_v%d broken_v%d\n"):format(v, v)
  elseif broken == "conflict" then
    extra = ('r:get("/broken_v%d", { auth = "none" }, function() return 200, {} end)\n'):rep(2):format(v, v)
  elseif broken == "schema" then
    extra = ('r:post("/broken_v%d", { auth = "none", body = { type = "objekt" } }, '
      .. "function() return 200, {} end)\n"):format(v)
  end
  return ([[
-- Written by spec/integration/reload_spec.lua: version %d%s.
local route = require "lib.route"
local r = route.group("/api/v1/__version")
r:get("", { auth = "none" }, function()
  return 200, { version = %d }
end)
%sreturn r
]]):format(v, broken and (" (broken: " .. broken .. ")") or "", v, extra)
end

local function now()
  return socket.gettime()
end

local function sleep_until(t)
  local d = t - now()
  if d > 0 then
    socket.sleep(d)
  end
end

local function count(text, plain)
  local n, pos = 0, 1
  while true do
    local a, b = text:find(plain, pos, true)
    if not a then
      return n
    end
    n, pos = n + 1, b + 1
  end
end

describe("hot reload under sustained load", function()
  local srv
  local steps = {}          -- [i] = {trigger=, broken=, t_write=, t_trigger=, cli_ok=, cli_out=}
  local records = {}        -- every answer load.js saw
  local summary             -- load.js's own summary
  local exit_status, log_text, sanitizer
  local load_dir

  setup(function()
    local app_original
    srv = server.start({
      before = function(scripts)
        server.write(scripts .. "/routes/zz_version.lua", version_file(0))
        app_original = server.read(scripts .. "/app.lua")
      end,
    })
    local scripts = srv.scripts
    local version_path = scripts .. "/routes/zz_version.lua"
    local broken_path = scripts .. "/routes/zz_broken.lua"
    local app_path = scripts .. "/app.lua"
    local app_broken = app_original:gsub("\nreturn {",
      '\nerror("broken_v15: app.lua fails at load", 0)\nreturn {', 1)
    assert(app_broken ~= app_original, "app.lua has no final 'return {' to break")

    load_dir = srv.dir
    local out_file = load_dir .. "/load.txt"
    local sum_file = load_dir .. "/load.json"
    local ok, code, out = server.sh(("node spec/integration/support/load.js %s %d %d %d %s >%s 2>%s/load.err &")
      :format(server.quote(srv.url .. "/api/v1/__version"), LOAD_MS, CONCURRENCY, RATE,
        server.quote(out_file), server.quote(sum_file), server.quote(load_dir)))
    assert(ok, ("cannot start node (%s): %s"):format(tostring(code), out))
    local t0 = now()

    local app_is_broken, broken_file = false, false
    for i = 1, STEPS do
      sleep_until(t0 + FIRST_STEP + (i - 1) * STEP_EVERY)
      local step = { trigger = trigger_of(i), broken = BROKEN[i] }
      steps[i] = step
      step.t_write = now()
      if step.broken == "app" then
        server.replace(app_path, app_broken)
        app_is_broken = true
      elseif app_is_broken then
        server.replace(app_path, app_original)
        app_is_broken = false
      end
      if step.broken == "routes_file" then
        server.replace(broken_path, ('error("broken_v%d: this routes file fails at load")\n'):format(i))
        broken_file = true
      elseif broken_file then
        assert(os.remove(broken_path))
        broken_file = false
      end
      server.replace(version_path, version_file(i, step.broken))
      step.t_trigger = now()
      if step.trigger == "inotify" then
        step.t_trigger = step.t_write -- the write is the trigger
      elseif step.trigger == "sighup" then
        assert(server.sh("kill -HUP " .. srv:pid()))
      else
        local ok_cli, _, out_cli = srv:cli("reload")
        step.cli_ok, step.cli_out = ok_cli, out_cli
      end
    end

    local deadline = now() + LOAD_MS / 1000 + 20
    while now() < deadline do
      local s = server.read(sum_file)
      if s and s:find("}") then
        summary = cjson.decode(s)
        break
      end
      socket.sleep(0.1)
    end
    assert(summary, "load.js gave no summary: " .. tostring(server.read(load_dir .. "/load.err")))
    for line in (server.read(out_file) or ""):gmatch("[^\n]+") do
      local loop, sent, answered, status, version, err = line:match("^(%d+) (%S+) (%S+) (%d+) (%S+) (%S+)$")
      records[#records + 1] = { loop = tonumber(loop), sent = tonumber(sent) / 1000,
        answered = tonumber(answered) / 1000, status = tonumber(status), version = tonumber(version),
        raw_version = version, err = err }
    end
    table.sort(records, function(a, b) return a.answered < b.answered end)

    exit_status = srv:stop(30)
    log_text = srv:log()
    sanitizer = srv:sanitizer_reports()
  end)

  teardown(function()
    if srv then
      srv:cleanup()
    end
  end)

  it("the CLI reload found the server through PID_FILE", function()
    for i, step in ipairs(steps) do
      if step.trigger == "cli" then
        assert.is_true(step.cli_ok, ("taskapi reload (step %d): %s"):format(i, tostring(step.cli_out)))
        assert.truthy(step.cli_out:find("asked server %d+ to reload"), step.cli_out)
      end
    end
  end)

  it("answers every request with 200: no error, no dropped connection", function()
    assert.are.equal(summary.sent, #records)
    -- a steady load: at least 80% of the planned requests went out
    assert.is_true(#records >= RATE * LOAD_MS / 1000 * 0.8, "only " .. #records .. " requests")
    local bad = {}
    for _, r in ipairs(records) do
      if r.status ~= 200 or r.err ~= "-" or r.version == nil then
        bad[#bad + 1] = ("%d %s v=%s"):format(r.status, r.err, r.raw_version)
      end
    end
    assert.are.same({}, { table.unpack(bad, 1, 10) })
    assert.are.equal(0, summary.failed)
    -- the server saw and answered each of them (its access log)
    assert.are.equal(#records, count(log_text, "GET /api/v1/__version 200 "))
    assert.are.equal(0, count(log_text, "(connection closed early)"))
  end)

  it("serves each good version within a second of its trigger, never an older one after", function()
    local first = {}
    for _, r in ipairs(records) do
      if r.version and first[r.version] == nil then
        first[r.version] = r.answered
      end
    end
    local latencies, report = {}, {}
    for i, step in ipairs(steps) do
      if not step.broken then
        local t = first[i]
        assert.is_truthy(t, ("version %d (%s) was never served"):format(i, step.trigger))
        local latency = t - step.t_trigger
        assert.is_true(t >= step.t_write, ("version %d served before it was written"):format(i))
        assert.is_true(latency <= SWITCH_LIMIT,
          ("version %d (%s): first served %.3f s after the trigger"):format(i, step.trigger, latency))
        step.latency = latency
        latencies[#latencies + 1] = latency
        report[#report + 1] = ("v%d %s %.0fms"):format(i, step.trigger, latency * 1000)
      end
    end
    -- Once a client has received version N, every request sent later gets N or newer.
    local older = {}
    for _, r in ipairs(records) do
      for v, t in pairs(first) do
        if r.sent > t and r.version < v then
          older[#older + 1] = ("sent %.3f got v%d, v%d served since %.3f"):format(r.sent, r.version, v, t)
          break
        end
      end
    end
    assert.are.same({}, { table.unpack(older, 1, 5) })
    if os.getenv("REL_VERBOSE") then
      table.sort(latencies)
      io.stderr:write(("\nreload_spec: %d requests, %d failed, %.0f req/s; switch latency min %.0f ms, "
        .. "median %.0f ms, max %.0f ms\n  %s\n"):format(#records, summary.failed,
        #records / (summary.elapsedMs / 1000), latencies[1] * 1000,
        latencies[(#latencies + 1) // 2] * 1000, latencies[#latencies] * 1000, table.concat(report, ", ")))
    end
  end)

  it("never serves a broken version, and logs a failed reload naming each", function()
    local seen = {}
    for _, r in ipairs(records) do
      seen[r.version] = (seen[r.version] or 0) + 1
    end
    for i, kind in pairs(BROKEN) do
      assert.is_nil(seen[i], ("broken version %d (%s) served %s requests"):format(i, kind, tostring(seen[i])))
      local found = false
      for line in log_text:gmatch("[^\n]+") do
        if line:find("reload failed; still serving generation", 1, true)
          and line:find("broken_v" .. i, 1, true) then
          found = true
          break
        end
      end
      assert.is_true(found, ("no \"reload failed\" line naming broken_v%d (%s)"):format(i, kind))
    end
    -- every trigger was heard: 14 SIGHUPs (signal and CLI), the file watcher at least once per file trigger
    local signals = 0
    for _, step in ipairs(steps) do
      if step.trigger ~= "inotify" then
        signals = signals + 1
      end
    end
    assert.are.equal(signals, count(log_text, "SIGHUP: reloading scripts"))
    assert.is_true(count(log_text, "scripts changed on disk; reloading") >= STEPS - signals)
    -- every reload attempt ended one way or the other (the HTTP generation's
    -- outcome: the realtime policy reloads afterwards, from disk again, and
    -- may log a "realtime: reload failed" of its own when the next version
    -- was written in between)
    local attempts = count(log_text, "SIGHUP: reloading scripts")
      + count(log_text, "scripts changed on disk; reloading")
    assert.are.equal(attempts, count(log_text, "reloaded: generation")
      + count(log_text, "reload failed; still serving generation"))
  end)

  it("stops on SIGTERM with exit status 0 and no sanitizer report", function()
    assert.are.equal(0, exit_status, "exit status; log tail:\n" .. log_text:sub(-2000))
    assert.truthy(log_text:find("SIGTERM: shutting down", 1, true))
    assert.are.same({}, sanitizer)
  end)
end)
