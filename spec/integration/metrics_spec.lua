-- GET /metrics (API.md §9): Prometheus text, no token, not rate limited;
-- request counts and latency histograms by method, route pattern and
-- status; pool, Redis, WebSocket, events, rate-limit and reload series.
local h = require "spec.integration.helper"

local function scrape()
  local status, _, headers, raw = h.request("GET", "/metrics")
  assert.are.equal(200, status)
  return raw, headers
end

local function value(text, series)
  local escaped = series:gsub("[%p]", "%%%0")
  local v = text:match("\n" .. escaped .. " ([%d%.%-e+]+)")
  return v and tonumber(v)
end

describe("GET /metrics", function()
  it("answers Prometheus text without a token", function()
    local text, headers = scrape()
    assert.matches("^text/plain; version=0%.0%.4", headers["content-type"])
    assert.is_nil(headers["ratelimit-limit"])
    for _, name in ipairs({ "taskapi_http_requests_total", "taskapi_http_request_duration_seconds",
      "taskapi_db_pool_connections", "taskapi_db_pool_waiting", "taskapi_redis_up",
      "taskapi_websocket_connections", "taskapi_events_published_total", "taskapi_events_delivered_total",
      "taskapi_rate_limit_rejections_total", "taskapi_script_reloads_total",
      "taskapi_script_reload_failures_total", "taskapi_plugin_hook_failures_total" }) do
      assert.matches("# TYPE " .. name .. " ", text, 1, true)
    end
  end)

  it("counts requests by method, route pattern and status, with a latency histogram", function()
    local u = h.session()
    local series = 'taskapi_http_requests_total{method="GET",route="/api/v1/auth/me",status="200"}'
    local before = value(scrape(), series) or 0
    for _ = 1, 3 do
      h.expect_status(h.call("GET", "/api/v1/auth/me", { token = u.access }), 200)
    end
    local text = scrape()
    assert.are.equal(before + 3, value(text, series))
    local labels = 'method="GET",route="/api/v1/auth/me"'
    local count = value(text, "taskapi_http_request_duration_seconds_count{" .. labels .. "}")
    local inf = value(text, "taskapi_http_request_duration_seconds_bucket{" .. labels .. ',le="+Inf"}')
    assert.is_true(count >= 3)
    assert.are.equal(count, inf)
  end)

  it("labels unknown paths as one series, so clients cannot grow it without bound", function()
    h.request("GET", "/no/such/" .. h.random_word(12))
    h.request("GET", "/no/such/" .. h.random_word(12))
    local text = scrape()
    assert.is_true(value(text, 'taskapi_http_requests_total{method="GET",route="unmatched",status="404"}') >= 2)
    assert.is_nil(text:find("/no/such/", 1, true))
  end)

  it("names counters _total and reports the pool as gauges", function()
    local text = scrape()
    for name, kind in text:gmatch("# TYPE (%S+) (%S+)") do
      if kind == "counter" then
        assert.matches("_total$", name)
      end
    end
    assert.is_true(value(text, "taskapi_db_pool_size") >= 1)
    assert.is_not_nil(value(text, 'taskapi_db_pool_connections{state="idle"}'))
  end)

  describe("metrics scripts declare (tk.metrics, spec/fixtures/scripts/routes/zz_metrics.lua)", function()
    local function post(path, body)
      assert.are.equal(204, h.call("POST", h.base .. "/api/v1/__metrics" .. path, { body = body }).status)
    end

    it("adds up samples from every worker into one series per label set", function()
      local before = value(scrape(), 'fixture_hits_total{kind="spec"}') or 0
      for _ = 1, 8 do
        post("/hit", { kind = "spec" })
      end
      post("/hit", { kind = "spec", n = 2.5 })
      local text = scrape()
      assert.matches("# TYPE fixture_hits_total counter", text, 1, true)
      assert.are.equal(before + 10.5, value(text, 'fixture_hits_total{kind="spec"}'))
    end)

    it("exports a histogram with its own buckets", function()
      local text = scrape()
      local count = value(text, "fixture_size_bytes_count") or 0
      local low = value(text, 'fixture_size_bytes_bucket{le="10"}') or 0
      post("/size", { v = 5 })
      post("/size", { v = 500 })
      text = scrape()
      assert.matches("# TYPE fixture_size_bytes histogram", text, 1, true)
      assert.are.equal(count + 2, value(text, "fixture_size_bytes_count"))
      assert.are.equal(low + 1, value(text, 'fixture_size_bytes_bucket{le="10"}'))
      assert.are.equal(count + 2, value(text, 'fixture_size_bytes_bucket{le="+Inf"}'))
    end)

    it("refuses a declaration during a request and misuse, each with a clear error", function()
      local d = h.expect_status(h.call("GET", h.base .. "/api/v1/__metrics/misuse"), 200).data
      assert.matches("metric late_total: metrics are declared when the scripts load", d.declare_now,
        1, true)
      assert.matches("metric fixture_hits_total: label values missing", d.missing_label, 1, true)
      assert.matches("metric fixture_hits_total: unknown label", d.unknown_label, 1, true)
      assert.matches("a counter only goes up", d.negative, 1, true)
      assert.matches("metric fixture_hits_total is a counter: use inc", d.observe_counter, 1, true)
      assert.is_nil(scrape():find("late_total", 1, true))
    end)
  end)
end)
