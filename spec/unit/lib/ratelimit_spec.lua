-- lib.ratelimit: the checks on the policy's buckets before C compiles them.
local ratelimit = require "lib.ratelimit"

local function route(method, path, rate)
  return { method = method, path = path, where = "routes/x.lua:" .. #path, rate = rate }
end

local function bucket(name, limit, window, per)
  return { bucket = name, limit = limit, window = window or 60, per = per or "user" }
end

describe("lib.ratelimit.check", function()
  it("accepts routes sharing a bucket defined alike, and routes without limits", function()
    ratelimit.check({
      route("GET", "/a", { bucket("general", 100) }),
      route("GET", "/b", { bucket("general", 100), bucket("route:GET /b", 3) }),
      route("GET", "/health", {}),
    })
  end)

  it("refuses one bucket defined twice differently, naming both routes", function()
    local ok, err = pcall(ratelimit.check, {
      route("GET", "/a", { bucket("general", 100) }),
      route("GET", "/bb", { bucket("general", 3) }),
    })
    assert.is_false(ok)
    assert.matches("bucket general is defined twice", err, 1, true)
    assert.matches("GET /a (routes/x.lua:2)", err, 1, true)
    assert.matches("GET /bb (routes/x.lua:3)", err, 1, true)
    ok, err = pcall(ratelimit.check, {
      route("GET", "/a", { bucket("x", 5, 60, "user") }),
      route("GET", "/b", { bucket("x", 5, 60, "ip") }),
    })
    assert.is_false(ok)
    assert.matches("defined twice", err, 1, true)
  end)

  it("refuses malformed buckets with the route's name", function()
    local cases = {
      { { bucket("general", 0) }, "limit must be" },
      { { bucket("general", 1.5) }, "limit must be" },
      { { bucket("general", 10, 0) }, "window must be" },
      { { bucket("general", 10, 86401) }, "window must be" },
      { { bucket("general", 10, 60, "team") }, "per must be" },
      { { bucket("", 10) }, "bucket must be a name" },
      { { bucket("bad\nname", 10) }, "bucket must be a name" },
      { { "general" }, "each bucket must be a table" },
      { { bucket("a", 1), bucket("b", 1), bucket("c", 1), bucket("d", 1), bucket("e", 1) }, "at most 4" },
    }
    for _, case in ipairs(cases) do
      local ok, err = pcall(ratelimit.check, { route("POST", "/x", case[1]) })
      assert.is_false(ok)
      assert.matches(case[2], err, 1, true)
      assert.matches("POST /x", err, 1, true)
    end
    local ok, err = pcall(ratelimit.check, { route("POST", "/x", "general") })
    assert.is_false(ok)
    assert.matches("list of buckets", err, 1, true)
  end)
end)
