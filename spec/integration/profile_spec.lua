-- The Lua sampling profiler (TASKAPI_LUA_PROFILE, runtime/lua/profile.c) and
-- the stage trace (TASKAPI_TRACE_STAGES, runtime/obs/stages.c), on servers of
-- this spec's own: with them on, a few list requests leave folded stacks at
-- shutdown whose frames name a line of scripts/routes/*.lua, and one stage
-- line per request; with them off, nothing is written. Nothing here looks at
-- a duration: only that the files exist and have the documented shape.
local server = require "spec.integration.support.rel_server"
local E = require "spec.integration.support.plugin_env"

-- Enough list requests that a 10 kHz CPU timer ticks inside Lua many times.
local function load_lists(s)
  local api = E.api(s.url)
  local owner = api.user("Profile Owner")
  local project = api.project(owner)
  for i = 1, 30 do
    api.task(owner, project, { title = "profiled task " .. i, tags = { "a", "b" } })
  end
  for _ = 1, 150 do
    local res = api.call("GET", "/tasks?projectId=" .. project .. "&limit=20", owner.access)
    assert.are.equal(200, res.status)
  end
end

describe("profiling", function()
  local dir

  setup(function()
    dir = E.tmpdir("profile")
  end)

  teardown(function()
    E.cleanup()
  end)

  it("TASKAPI_LUA_PROFILE writes folded stacks naming scripts/routes lines, and the stage trace its lines",
    function()
      local folded, stages = dir .. "/lua.folded", dir .. "/stages.tsv"
      local s = server.start({ env = { TASKAPI_LUA_PROFILE = folded, TASKAPI_LUA_PROFILE_HZ = "10000",
        TASKAPI_TRACE_STAGES = stages, LUA_INSTRUCTION_BUDGET = "5000000" } })
      local ok, err = pcall(function()
        load_lists(s)
        -- the profiler shares the budget's hook: a runaway loop still ends,
        -- with pcall around it too
        for _, path in ipairs({ "/api/v1/__sandbox/loop", "/api/v1/__sandbox/loop-pcall" }) do
          local status, _, raw = s:get(path)
          assert.are.equal(500, status, raw)
        end
        assert.are.equal(0, s:stop(30), s:log())
        assert.are.same({}, s:sanitizer_reports())
        local text = assert(server.read(folded), "no profile written:\n" .. s:log())
        local routes, lines = 0, 0
        for line in text:gmatch("[^\n]+") do
          lines = lines + 1
          -- folded format: frames joined by ';', a space, a count
          local stack, count = line:match("^(.+) (%d+)$")
          assert.truthy(stack, "not a folded line: " .. line)
          assert.truthy(tonumber(count) >= 1)
          for frame in stack:gmatch("[^;]+") do
            assert.truthy(frame:match("^%[C%] ") or frame:match("^.+:%-?%d+$"), "bad frame: " .. frame)
          end
          if stack:find("scripts/routes/tasks.lua:%d+") then
            routes = routes + 1
          end
        end
        assert.truthy(lines > 0, "empty profile:\n" .. s:log())
        assert.truthy(routes > 0, "no frame in scripts/routes/tasks.lua:\n" .. text)
        assert.truthy(s:log():find("instruction budget exceeded", 1, true), s:log())

        local trace = assert(server.read(stages), "no stage trace written")
        local header, listed = nil, 0
        for line in trace:gmatch("[^\n]+") do
          local f = {}
          for v in (line .. "\t"):gmatch("([^\t]*)\t") do
            f[#f + 1] = v
          end
          if header == nil then
            header = f
            assert.are.equal("method", f[1])
            assert.are.equal("sql_each", f[#f])
          else
            assert.are.equal(#header, #f, line)
            if f[1] == "GET" and f[2] == "/api/v1/tasks" then
              listed = listed + 1
              assert.are.equal("200", f[3])
              for i = 4, #f - 1 do
                assert.truthy(tonumber(f[i]), header[i] .. " is not a number: " .. line)
              end
              -- the list runs at least one query, each "round trip/rows"
              assert.truthy(f[#f]:match("^[%d.]+/[%d.]+"), line)
            end
          end
        end
        assert.are.equal(150, listed)
      end)
      s:cleanup()
      assert(ok, err)
    end)

  it("writes nothing when TASKAPI_LUA_PROFILE and TASKAPI_TRACE_STAGES are unset or empty", function()
    local s = server.start({ env = { TASKAPI_LUA_PROFILE = "", TASKAPI_TRACE_STAGES = "" } })
    local ok, err = pcall(function()
      load_lists(s)
      assert.are.equal(0, s:stop(30), s:log())
      assert.falsy(s:log():find("profiler on", 1, true), s:log())
      assert.falsy(s:log():find("stage trace on", 1, true), s:log())
      assert.falsy(s:log():find("Lua profile:", 1, true), s:log())
      -- the server's own directory holds what every server leaves, nothing more
      local _, listing = E.run("ls -A " .. server.quote(s.dir))
      local names = {}
      for name in listing:gmatch("[^\n]+") do
        names[#names + 1] = name
      end
      table.sort(names)
      assert.are.same({ "exit-status", "plugins", "scripts", "server.log" }, names)
    end)
    s:cleanup()
    assert(ok, err)
  end)
end)
