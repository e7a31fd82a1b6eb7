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
end)
