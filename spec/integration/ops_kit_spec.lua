-- The operations kit in docker/: Prometheus alert rules (with promtool's
-- own checks and unit tests) and the Grafana dashboard. Every taskapi_*
-- series they query must exist on this server's GET /metrics, so a renamed
-- metric fails here, not silently on a dashboard. promtool comes from
-- Debian's prometheus package (bin/lib/deps.txt).
local h = require "spec.integration.helper"
local E = require "spec.integration.support.plugin_env"
local cjson = require "cjson"

local ALERTS = "docker/prometheus/alerts.yml"
local ALERT_TESTS = "docker/prometheus/alerts_test.yml"
local DASHBOARD = "docker/grafana/taskapi-dashboard.json"

local function read(path)
  local f = assert(io.open(path, "rb"), path .. " is missing")
  local s = f:read("a")
  f:close()
  return s
end

-- The metric names a PromQL text mentions.
local function names_in(text, into)
  for name in text:gmatch("taskapi_[%w_]+") do
    into[name] = true
  end
  return into
end

-- The dashboard's queries, with Grafana's variables given concrete values.
local function dashboard_exprs()
  local d = cjson.decode(read(DASHBOARD))
  local exprs = {}
  for _, p in ipairs(d.panels) do
    assert.is_table(p.targets, "panel without queries: " .. tostring(p.title))
    for _, t in ipairs(p.targets) do
      exprs[#exprs + 1] = { title = p.title,
        expr = t.expr:gsub("%$__rate_interval", "5m"):gsub("%$instance", ".*") }
    end
  end
  return exprs
end

local function scrape()
  local status, _, _, raw = h.request("GET", "/metrics")
  assert.are.equal(200, status)
  return raw
end

describe("ops kit (docker/prometheus, docker/grafana)", function()
  teardown(function()
    E.cleanup()
  end)

  it("alert rules pass promtool check and their unit tests", function()
    local ok, out = E.run("promtool check rules " .. ALERTS)
    assert(ok, out)
    ok, out = E.run("cd docker/prometheus && promtool test rules alerts_test.yml")
    assert(ok, out)
    assert.matches("SUCCESS", out)
  end)

  it("every dashboard query is valid PromQL (promtool, as recording rules)", function()
    local dir = E.tmpdir("dash")
    local lines = { "groups:", "  - name: dashboard", "    rules:" }
    for i, q in ipairs(dashboard_exprs()) do
      lines[#lines + 1] = ("      - record: dashboard_query_%d"):format(i)
      lines[#lines + 1] = "        expr: '" .. q.expr:gsub("'", "''") .. "'" -- YAML single-quoted
    end
    E.write_file(dir .. "/dashboard.yml", table.concat(lines, "\n") .. "\n")
    local ok, out = E.run("promtool check rules " .. dir .. "/dashboard.yml")
    assert(ok, out)
  end)

  it("every series the alerts and the dashboard query exists on /metrics", function()
    -- a request and a finished job make the per-route and job series appear;
    -- a due job of a kind nobody handles, taskapi_jobs_unhandled (read every 5 s)
    h.expect_status(h.call("GET", "/health/live"), 200)
    local id = h.psql("INSERT INTO jobs (kind, payload) VALUES ('ops_kit.nobody', '{}') "
      .. "RETURNING id")
    local text = E.wait_for(20, function()
      local t = scrape()
      return t:find('\ntaskapi_jobs_unhandled{kind="ops_kit.nobody"} ', 1, true) and t or nil
    end)
    h.psql("DELETE FROM jobs WHERE id = " .. id)
    assert.is_string(text, "taskapi_jobs_unhandled never showed the kind")
    local wanted = names_in(read(ALERTS), {})
    for _, q in ipairs(dashboard_exprs()) do
      names_in(q.expr, wanted)
    end
    names_in(read(ALERT_TESTS), wanted)
    local missing, n = {}, 0
    for name in pairs(wanted) do
      n = n + 1
      if not (text:find("\n" .. name .. "{", 1, true) or text:find("\n" .. name .. " ", 1, true)) then
        missing[#missing + 1] = name
      end
    end
    table.sort(missing)
    assert.are.same({}, missing)
    assert.is_true(n >= 15, "only " .. n .. " series named: the files were not read whole")
  end)

  it("counts job outcomes and reports the backlog", function()
    -- a registration queues a verification mail; the mail lane runs it
    local text
    local before = tonumber(scrape():match('\ntaskapi_jobs_total{outcome="done"} (%d+)'))
    h.session()
    E.wait_for(10, function()
      text = scrape()
      local now = tonumber(text:match('\ntaskapi_jobs_total{outcome="done"} (%d+)'))
      return now > before or nil
    end)
    assert.is_true(tonumber(text:match('\ntaskapi_jobs_total{outcome="done"} (%d+)')) > before)
    assert.matches("\ntaskapi_jobs_due %d+\n", text)
    assert.matches("\ntaskapi_jobs_oldest_due_seconds [%d%.]+\n", text)
  end)
end)
