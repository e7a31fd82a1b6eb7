-- Hot reload under sustained load (README "Reload"): the spec starts its own
-- server (support/rel_server.lua: TASKAPI_BIN, a temp copy of the scripts,
-- own ports and PID_FILE, WORKERS=4), runs spec/integration/support/load.js
-- against a fixture route that answers {version = N} (4 keep-alive loops at
-- a steady rate, every answer recorded, until the spec is done), and
-- meanwhile changes the scripts 20 times, 5 of them broken (a syntax error,
-- a route conflict, a bad schema, an app.lua error, a routes file that
-- errors at load). Reloads are triggered in turn by SIGHUP, `taskapi
-- reload` and the file write alone (inotify). Each step waits until its
-- reload has visibly ended (the new version answers, or the log names the
-- broken one), so the spec is paced by the server, not by a clock: a slow,
-- loaded machine makes it longer, never red. It proves:
--   * no request failed or was dropped (all 200, no socket errors; the
--     server logged every one of them as answered);
--   * every good version is served, and once a client has seen it no
--     request sent later gets an older one;
--   * no broken version ever served a request, and the log has a
--     "reload failed" line naming each;
--   * every trigger was heard once and every reload ended once;
--   * HTTP and realtime joins always run the same generation: the spec's
--     own probes (an HTTP request, then a join of the room "probe:version",
--     in turn, all through the run) each report the generation number and
--     the script version the answering VM runs (the join through a patched
--     lib/realtime.lua); every generation number means one version for
--     both, and along the probe sequence the number never goes back, from
--     HTTP to a join or from a join to HTTP (each probe starts after the
--     previous one was answered, so it must see that generation or a newer
--     one). Both hold without any timing;
--   * the server then stops on SIGTERM with exit status 0 (and, for the
--     ASan build, no sanitizer report).
-- Set REL_VERBOSE=1 to print the numbers (switch latencies are measured and
-- printed, never asserted: the machine may be loaded).
local socket = require "socket"
local cjson = require "cjson"
local http = require "socket.http"
local ltn12 = require "ltn12"
local server = require "spec.integration.support.rel_server"
local ws = require "spec.integration.support.rawws"

local LOAD_MAX_MS = 240000 -- the load stops when the spec says so, or after this
local CONCURRENCY = 4     -- loops (connections)
local RATE = 800          -- requests per second, all loops together
local STEPS = 20          -- script changes
local FIRST_STEP = 1.0    -- seconds after the load starts
local DWELL = 0.2         -- seconds the load runs on each version before the next change
local STEP_TIMEOUT = 60   -- seconds a reload may take before the spec gives up on it

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
local runtime = require "tk.runtime"
local r = route.group("/api/v1/__version")
r.version = %d -- read by the probe in lib/realtime.lua
r:get("", { auth = "none" }, function()
  local gen = runtime.generation()
  return 200, { version = r.version, generation = gen and gen.id or 0 }
end)
%sreturn r
]]):format(v, broken and (" (broken: " .. broken .. ")") or "", v, extra)
end

-- Patched into the temp copy's lib/realtime.lua: a join of "probe:version"
-- is refused with the code "g<generation>_v<version>" of the VM that ran it.
local PROBE = [[
function M.can_join(user, room)
  if room == "probe:version" then
    local gen = require("tk.runtime").generation()
    return false, ("g%d_v%d"):format(gen and gen.id or 0, require("routes.zz_version").version)
  end
  return M.can_join_unprobed(user, room)
end
return M
]]

local function now()
  return socket.gettime()
end

local function post(url, body, token)
  local payload = cjson.encode(body)
  local chunks = {}
  local headers = { ["content-type"] = "application/json", ["content-length"] = tostring(#payload) }
  if token then
    headers.authorization = "Bearer " .. token
  end
  local _, status = http.request({ url = url, method = "POST", headers = headers,
    source = ltn12.source.string(payload), sink = ltn12.sink.table(chunks) })
  local ok, decoded = pcall(cjson.decode, table.concat(chunks))
  return status, ok and decoded or nil
end

--- The next text frame on c; a ping on the way is answered (lws pings a
--- socket it has not heard from lately, and a loaded machine makes that
--- happen anywhere).
local function read_text(c)
  while true do
    local op, payload = ws.read_frame(c, 60)
    if op == 0x9 then
      assert(c:send(ws.frame(0xA, payload or "")))
    else
      assert.are.equal(0x1, op, tostring(payload))
      return payload
    end
  end
end

--- A native realtime socket on srv for a new user, after its "ready".
local function probe_socket(srv)
  local email = ("reload%d%d@example.com"):format(os.time(), math.random(1e9))
  local password = "Pw-reload-" .. math.random(1e9)
  assert.are.equal(201, (post(srv.url .. "/api/v1/auth/register",
    { email = email, password = password, name = "Reload probe" })))
  local st, body = post(srv.url .. "/api/v1/auth/login", { email = email, password = password })
  assert.are.equal(200, st)
  local c = assert(ws.connect(srv.ws_port))
  assert.are.equal(101, (ws.handshake(c, "/ws?token=" .. body.data.accessToken)))
  assert.are.equal("ready", cjson.decode(read_text(c)).type)
  return c
end

--- Joins "probe:version" on c: generation, version of the VM that answered.
local function probe_join(c)
  assert(c:send(ws.frame(0x1, '{"type":"join","room":"probe:version"}')))
  while true do
    local payload = read_text(c)
    local m = cjson.decode(payload)
    if m.type == "error" and m.room == "probe:version" then
      local g, v = tostring(m.code):match("^g(%d+)_v(%d+)$")
      assert(g, "unexpected probe answer: " .. payload)
      return tonumber(g), tonumber(v)
    end
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
  local polls = {}          -- the spec's own requests while it waits for a reload
  local summary             -- load.js's own summary
  local probes = {}         -- {kind = "http" | "join", generation =, version =}, in the order made
  local exit_status, log_text, sanitizer
  local load_dir

  setup(function()
    local app_original
    srv = server.start({
      before = function(scripts)
        server.write(scripts .. "/routes/zz_version.lua", version_file(0))
        app_original = server.read(scripts .. "/app.lua")
        local rt_path = scripts .. "/lib/realtime.lua"
        local rt = server.read(rt_path)
        local patched = rt:gsub("\nfunction M%.can_join%(", "\nfunction M.can_join_unprobed(", 1)
          :gsub("\nreturn M\n$", function() return "\n" .. PROBE end)
        assert(patched:find("can_join_unprobed", 1, true) and patched:find("probe:version", 1, true),
          "cannot patch lib/realtime.lua")
        server.write(rt_path, patched)
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
    local stop_file = load_dir .. "/load.stop"
    local ok, code, out = server.sh(("node spec/integration/support/load.js %s %d %d %d %s %s >%s 2>%s/load.err &")
      :format(server.quote(srv.url .. "/api/v1/__version"), LOAD_MAX_MS, CONCURRENCY, RATE,
        server.quote(out_file), server.quote(stop_file), server.quote(sum_file), server.quote(load_dir)))
    assert(ok, ("cannot start node (%s): %s"):format(tostring(code), out))

    -- Requests of the load the server has answered so far (its access log,
    -- less the spec's own), and a wait until it answered more than `n`: the
    -- load runs on every version, however slowly a loaded machine runs it.
    local function load_answered()
      return count(srv:log(), "GET /api/v1/__version 200 ") - #polls
    end
    local function wait_load(n)
      local deadline = now() + STEP_TIMEOUT
      while load_answered() <= n do
        assert(now() < deadline, "the load sent nothing for " .. STEP_TIMEOUT .. " s: see " .. load_dir)
        socket.sleep(0.02)
      end
    end
    wait_load(0)
    local probe_ws = probe_socket(srv)
    -- One HTTP probe and one join probe, each after the previous answer.
    local function probe()
      local status, body = srv:get("/api/v1/__version")
      polls[#polls + 1] = { status = status }
      if status == 200 and body then
        probes[#probes + 1] = { kind = "http", generation = body.generation, version = body.version }
      end
      local g, v = probe_join(probe_ws)
      probes[#probes + 1] = { kind = "join", generation = g, version = v }
      return status, body
    end
    probe()
    socket.sleep(FIRST_STEP)

    -- Waits until reload i has ended: version i answers (good), or the log
    -- names broken_v<i> (broken). Records when the spec itself saw it.
    local function settle(i, step)
      local deadline = now() + STEP_TIMEOUT
      while now() < deadline do
        if step.broken then
          if srv:log():find("reload failed; still serving generation %d+: [^\n]*broken_v" .. i .. "%D") then
            step.t_seen = now()
            return
          end
        else
          local t_sent = now()
          local status, body = probe()
          if status == 200 and body and body.version == i then
            step.t_seen, step.t_seen_sent = now(), t_sent
            return
          end
        end
        socket.sleep(0.02)
      end
      error(("step %d (%s%s): the reload did not end within %d s"):format(i, step.trigger,
        step.broken and (", broken: " .. step.broken) or "", STEP_TIMEOUT))
    end

    local app_is_broken, broken_file = false, false
    for i = 1, STEPS do
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
      settle(i, step)
      probe()
      wait_load(load_answered())
      socket.sleep(DWELL)
    end
    probe()
    probe_ws:close()
    server.write(stop_file, "stop\n")

    local deadline = now() + 60
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
    -- the load ran across every reload: requests before the first trigger and after the last
    assert.is_true(#records >= STEPS * 5, "only " .. #records .. " requests")
    assert.is_true(records[1].sent < steps[1].t_write, "no request before the first reload")
    assert.is_true(records[#records].answered > steps[STEPS].t_seen, "no request after the last reload")
    local bad = {}
    for _, r in ipairs(records) do
      if r.status ~= 200 or r.err ~= "-" or r.version == nil then
        bad[#bad + 1] = ("%d %s v=%s"):format(r.status, r.err, r.raw_version)
      end
    end
    for _, p in ipairs(polls) do
      if p.status ~= 200 then
        bad[#bad + 1] = ("spec's own request: %s"):format(tostring(p.status))
      end
    end
    assert.are.same({}, { table.unpack(bad, 1, 10) })
    assert.are.equal(0, summary.failed)
    -- the server saw and answered each of them (its access log)
    assert.are.equal(#records + #polls, count(log_text, "GET /api/v1/__version 200 "))
    assert.are.equal(0, count(log_text, "(connection closed early)"))
  end)

  it("serves every good version, never an older one after", function()
    local first = {} -- version -> when a client (the load or the spec) first received it
    for _, r in ipairs(records) do
      if r.version and (first[r.version] == nil or r.answered < first[r.version]) then
        first[r.version] = r.answered
      end
    end
    -- The load's times and the spec's come from two clocks (node's
    -- timeOrigin + performance.now(), luasocket's gettimeofday) that may be
    -- a few ms apart: the order of the load's requests is judged on the
    -- load's clock alone; the spec's own probes are checked in order below.
    local first_load = {}
    for v, t in pairs(first) do
      first_load[v] = t
    end
    for i, step in ipairs(steps) do
      if step.t_seen_sent and (first[i] == nil or step.t_seen < first[i]) then
        first[i] = step.t_seen
      end
    end
    local latencies, report = {}, {}
    for i, step in ipairs(steps) do
      if not step.broken then
        local t = first[i]
        assert.is_truthy(t, ("version %d (%s) was never served"):format(i, step.trigger))
        local latency = t - step.t_trigger
        assert.is_true(t >= step.t_write, ("version %d served before it was written"):format(i))
        step.latency = latency
        latencies[#latencies + 1] = latency
        report[#report + 1] = ("v%d %s %.0fms"):format(i, step.trigger, latency * 1000)
      end
    end
    -- Once a client has received version N, every request sent later gets N or newer.
    local older = {}
    for _, r in ipairs(records) do
      for v, t in pairs(first_load) do
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
    -- every reload attempt ended one way or the other
    local attempts = count(log_text, "SIGHUP: reloading scripts")
      + count(log_text, "scripts changed on disk; reloading")
    assert.are.equal(attempts, count(log_text, "reloaded: generation") + count(log_text, "reload failed;"))
  end)

  it("runs HTTP and realtime joins on one generation at any moment", function()
    local version_of, by_kind, last, back = {}, { http = 0, join = 0 }, nil, {}
    for n, p in ipairs(probes) do
      by_kind[p.kind] = by_kind[p.kind] + 1
      assert.is_true(p.generation >= 1, ("probe %d (%s) ran outside a generation"):format(n, p.kind))
      -- one generation number, one script version, whoever answered
      local seen = version_of[p.generation]
      if seen == nil then
        version_of[p.generation] = { version = p.version, kind = p.kind }
      elseif seen.version ~= p.version then
        error(("generation %d ran version %d for %s but version %d for %s"):format(p.generation,
          seen.version, seen.kind, p.version, p.kind))
      end
      -- each probe starts after the previous answer: never an older generation
      if last and p.generation < last.generation then
        back[#back + 1] = ("probe %d (%s) ran generation %d after %s had answered from %d"):format(n,
          p.kind, p.generation, last.kind, last.generation)
      end
      last = p
    end
    assert.are.same({}, { table.unpack(back, 1, 5) })
    assert.is_true(by_kind.join >= STEPS and by_kind.http >= STEPS, "too few probes")
    -- every probe ran a generation the log announced
    local announced = {}
    for g in log_text:gmatch("loaded: generation (%d+)") do
      announced[tonumber(g)] = true
    end
    for g in pairs(version_of) do
      assert.is_true(announced[g], ("generation %d was never announced"):format(g))
    end
    -- every good version was run by a join too
    for i, step in ipairs(steps) do
      if not step.broken then
        local found = false
        for _, p in ipairs(probes) do
          found = found or (p.kind == "join" and p.version == i)
        end
        assert.is_true(found, ("no join ran version %d"):format(i))
      end
    end
  end)

  it("stops on SIGTERM with exit status 0 and no sanitizer report", function()
    assert.are.equal(0, exit_status, "exit status; log tail:\n" .. log_text:sub(-2000))
    assert.truthy(log_text:find("SIGTERM: shutting down", 1, true))
    assert.are.same({}, sanitizer)
  end)
end)
