-- The Lua sandbox and the instruction budget (runtime/lua/vm.c), proven
-- through the fixture routes of spec/fixtures/scripts/routes/zz_sandbox.lua:
--   * every way out of the sandbox a script could try is refused: os.execute
--     and the rest of os but time/clock/date/difftime, io (popen, open, lines;
--     also through _G, rawget, load and require), string.dump and binary
--     chunks for load (whatever mode is asked for), debug, package,
--     dofile/loadfile, require of paths outside the scripts or of standard
--     libraries; the globals are exactly the allow list;
--   * an endless loop ends with a clean 500 internal while other requests
--     keep being answered at once; swallowing the budget error with pcall or
--     a coroutine does not help; each worker serves normally afterwards;
--   * a spent budget stays spent: `while true do pcall(<endless loop>) end`
--     (and the same with xpcall and a looping message handler) ends with a
--     500 and the worker serves again;
--   * string patterns are bounded: an exponential pattern ends with a 500
--     and a log line naming the pattern budget, while ordinary patterns
--     (captures, position captures, %b, %f, anchors, back references, gsub
--     with string/table replacements) give exactly what stock Lua gives;
--   * a memory hog ends with a 500 (the VM's memory cap), not a crash, and
--     the server keeps serving.
local h = require "spec.integration.helper"
local socket = require "socket"
local cjson = require "cjson"

local WORKERS = tonumber(os.getenv("TASKAPI_WORKERS")) or 4

local function hex(s)
  return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) end))
end

-- Sends GET path on a connection of its own and returns the socket without
-- reading the answer.
local function send_get(path, rid)
  local c = assert(socket.tcp())
  c:settimeout(60)
  assert(c:connect(h.host, h.port))
  assert(c:send(("GET %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\nX-Request-Id: %s\r\n\r\n")
    :format(path, h.host, h.port, rid)))
  return c
end

local function answered(c)
  local readable = socket.select({ c }, nil, 0)
  return #readable > 0
end

-- Reads the whole answer of send_get: status, decoded body, raw body.
local function read_answer(c)
  local data, err, partial = c:receive("*a")
  c:close()
  data = data or partial
  assert(data and data ~= "", "no answer: " .. tostring(err))
  local status = tonumber(data:match("^HTTP/1%.%d (%d%d%d)"))
  local raw = data:match("\r\n\r\n(.*)$") or ""
  local ok, body = pcall(cjson.decode, raw)
  return status, ok and body or nil, raw
end

local function expect_internal(status, body, raw)
  assert.are.equal(500, status, raw)
  assert.is_table(body, raw)
  assert.are.equal("error", h.keys(body), raw)
  assert.are.equal("internal", body.error.code, raw)
  assert.are.equal("code,message", h.keys(body.error), raw)
end

local function rid(tag)
  return ("sandbox-%s-%d-%s"):format(tag, os.time(), h.random_word(8))
end

-- The server log's lines carrying request id `id`.
local function log_lines(id)
  local out = {}
  for line in h.server_log():gmatch("[^\n]+") do
    if line:find("[" .. id .. "]", 1, true) then
      out[#out + 1] = line
    end
  end
  return table.concat(out, "\n")
end

describe("the Lua sandbox", function()
  local res, path

  setup(function()
    path = ("/tmp/taskapi-sandbox-escape-%d-%s"):format(os.time(), h.random_word(8))
    os.remove(path)
    res = h.call("GET", "/api/v1/__sandbox/escapes?path=" .. path)
  end)

  teardown(function()
    if path then
      os.remove(path)
      os.remove(path .. ".x")
    end
  end)

  it("runs the attempts and reports each", function()
    local body = h.expect_status(res, 200)
    assert.is_table(body.data.results)
  end)

  it("offers exactly the allowed globals", function()
    local d = res.body.data
    assert.are.same({ "_G", "_VERSION", "assert", "collectgarbage", "coroutine", "error", "getmetatable",
      "ipairs", "load", "math", "next", "os", "pairs", "pcall", "print", "rawequal", "rawget", "rawlen",
      "rawset", "require", "select", "setmetatable", "string", "table", "tonumber", "tostring", "type",
      "utf8", "xpcall" }, d.globals)
    assert.are.same({ "clock", "date", "difftime", "time" }, d.os)
    for _, name in ipairs(d.string) do
      assert.are_not.equal("dump", name)
    end
  end)

  -- attempt -> a fragment of the error it must have raised
  local EXPECTED = {
    ["os.execute"] = "attempt to call a nil value (field 'execute')",
    ["os.getenv"] = "attempt to call a nil value (field 'getenv')",
    ["os.exit"] = "attempt to call a nil value (field 'exit')",
    ["os.remove"] = "attempt to call a nil value (field 'remove')",
    ["os.rename"] = "attempt to call a nil value (field 'rename')",
    ["os.tmpname"] = "attempt to call a nil value (field 'tmpname')",
    ["io.popen"] = "attempt to index a nil value (global 'io')",
    ["io.open (write)"] = "attempt to index a nil value (global 'io')",
    ["io.lines"] = "attempt to index a nil value (global 'io')",
    ["io via _G"] = "attempt to index a nil value (field 'io')",
    ["io via rawget"] = "attempt to index a nil value",
    ["io via load"] = "attempt to index a nil value",
    ["io via require"] = "module 'io' not found",
    ["string.dump"] = "attempt to call a nil value (field 'dump')",
    ["load binary chunk"] = "attempt to load a binary chunk (mode is 't')",
    ["load with a reader function"] = "bad argument #1 to 'load' (string expected, got function)",
    ["debug"] = "attempt to index a nil value (global 'debug')",
    ["debug via require"] = "module 'debug' not found",
    ["package"] = "attempt to index a nil value (global 'package')",
    ["package via require"] = "module 'package' not found",
    ["require ../../etc/passwd"] = "module '../../etc/passwd' not found: bad module name",
    ["require /etc/passwd"] = "module '/etc/passwd' not found: bad module name",
    ["require ..lib.db"] = "module '..lib.db' not found: bad module name",
    ["require lib..db"] = "module 'lib..db' not found: bad module name",
    ["require os"] = "module 'os' not found",
    ["require ffi"] = "module 'ffi' not found",
    ["dofile"] = "attempt to call a nil value (global 'dofile')",
    ["loadfile"] = "attempt to call a nil value (global 'loadfile')",
    ["loadstring"] = "attempt to call a nil value (field 'loadstring')",
    ["setfenv"] = "attempt to call a nil value (field 'setfenv')",
    ["__gc finalizer"] = "__gc metamethods are not allowed in scripts",
  }

  it("refuses every attempt, each for the expected reason", function()
    local results = res.body.data.results
    local names = {}
    for name in pairs(EXPECTED) do
      names[#names + 1] = name
    end
    table.sort(names)
    for _, name in ipairs(names) do
      local r = results[name]
      assert.is_table(r, "attempt not reported: " .. name)
      assert.is_true(r.blocked, ("%s was not blocked: got %s"):format(name, tostring(r.value)))
      assert.truthy(r.error:find(EXPECTED[name], 1, true),
        ("%s: expected %q in %q"):format(name, EXPECTED[name], r.error))
    end
    -- and nothing else was tried (a new attempt needs an expectation here)
    for name in pairs(results) do
      assert.is_truthy(EXPECTED[name], "attempt without an expected error: " .. name)
    end
  end)

  it("wrote no file (io.open, os.rename, ...)", function()
    assert.is_nil(io.open(path, "rb"))
    assert.is_nil(io.open(path .. ".x", "rb"))
  end)

  it("loads no bytecode, whatever mode the script asks for; text still loads", function()
    local chunk = string.dump(function() return 42 end)
    assert.are.equal("\27Lua", chunk:sub(1, 4))
    local body = h.expect_status(h.call("POST", "/api/v1/__sandbox/load", { body = { hex = hex(chunk) } }), 200)
    for _, mode in ipairs({ "default", "b", "bt", "t" }) do
      assert.is_false(body.data[mode].loaded, mode)
      assert.truthy(tostring(body.data[mode].error):find("attempt to load a binary chunk", 1, true),
        mode .. ": " .. tostring(body.data[mode].error))
    end
    body = h.expect_status(h.call("POST", "/api/v1/__sandbox/load", { body = { hex = hex("return 1") } }), 200)
    assert.is_true(body.data.default.loaded)
    assert.is_true(body.data.t.loaded)
  end)
end)

describe("the instruction budget", function()
  it("ends an endless loop with a clean 500 while other requests are answered at once", function()
    local id = rid("loop")
    local t0 = socket.gettime()
    local c = send_get("/api/v1/__sandbox/loop", id)
    socket.sleep(0.02) -- let a worker take it
    local fast = {}
    for i = 1, 5 do
      local t = socket.gettime()
      local r = h.call("GET", "/api/v1/__sandbox/ping")
      fast[i] = { status = r.status, seconds = socket.gettime() - t, during = not answered(c) }
    end
    local status, body, raw = read_answer(c)
    local loop_seconds = socket.gettime() - t0
    expect_internal(status, body, raw)
    for i, f in ipairs(fast) do
      assert.are.equal(200, f.status, "fast request " .. i)
      assert.is_true(f.seconds < 1, ("fast request %d took %.3f s"):format(i, f.seconds))
      assert.is_true(f.during, ("fast request %d answered after the loop ended (%.3f s)"):format(i, loop_seconds))
    end
    assert.truthy(log_lines(id):find("instruction budget exceeded", 1, true), log_lines(id))
  end)

  it("cannot be swallowed by pcall", function()
    local id = rid("pcall")
    local status, body, raw = read_answer(send_get("/api/v1/__sandbox/loop-pcall", id))
    expect_internal(status, body, raw)
    assert.falsy(raw:find("swallowed", 1, true))
    assert.truthy(log_lines(id):find("instruction budget exceeded", 1, true))
  end)

  it("cannot be swallowed by a coroutine", function()
    local status, body, raw = read_answer(send_get("/api/v1/__sandbox/loop-coroutine", rid("co")))
    expect_internal(status, body, raw)
    assert.falsy(raw:find("swallowed", 1, true))
  end)

  it("leaves every worker serving: loops on all workers at once, then normal answers", function()
    local loops = h.parallel(WORKERS, "GET", "/api/v1/__sandbox/loop")
    for _, r in ipairs(loops) do
      expect_internal(r.status, r.body, r.raw)
    end
    local pings = h.parallel(WORKERS * 2, "GET", "/api/v1/__sandbox/ping")
    for _, r in ipairs(pings) do
      assert.are.equal(200, r.status, r.raw)
      assert.is_number(r.body.data.worker)
    end
  end)
end)

describe("a spent budget", function()
  for _, name in ipairs({ "loop-pcall-forever", "loop-xpcall-forever" }) do
    it("ends " .. name .. " with a 500; the worker then serves normally", function()
      local id = rid(name)
      local status, body, raw = read_answer(send_get("/api/v1/__sandbox/" .. name, id))
      expect_internal(status, body, raw)
      assert.truthy(log_lines(id):find("instruction budget exceeded", 1, true), log_lines(id))
      local pings = h.parallel(WORKERS * 2, "GET", "/api/v1/__sandbox/ping")
      for _, r in ipairs(pings) do
        assert.are.equal(200, r.status, r.raw)
      end
    end)
  end

  it("ends loops of pcall on every worker at once; all workers serve afterwards", function()
    local loops = h.parallel(WORKERS, "GET", "/api/v1/__sandbox/loop-pcall-forever")
    for _, r in ipairs(loops) do
      expect_internal(r.status, r.body, r.raw)
    end
    local pings = h.parallel(WORKERS * 2, "GET", "/api/v1/__sandbox/ping")
    for _, r in ipairs(pings) do
      assert.are.equal(200, r.status, r.raw)
    end
  end)
end)

describe("string patterns", function()
  it("end an exponential pattern with a 500 and a clear log line", function()
    local id = rid("pattern")
    local status, body, raw = read_answer(send_get("/api/v1/__sandbox/pattern-bomb", id))
    expect_internal(status, body, raw)
    assert.truthy(log_lines(id):find("instruction budget exceeded in a string pattern", 1, true),
      log_lines(id))
    assert.are.equal(200, (h.call("GET", "/api/v1/__sandbox/ping")).status)
  end)

  it("give exactly what stock Lua gives for ordinary patterns", function()
    local cases = {}
    local subjects = { "hello world from Lua", "key = value; k2=v2", "f(a(b)c) [x] {y}", "THE (quick) fox",
      "2026-12-04T17:32:49.123Z", "  trim me  ", "aaa", "", "a,b,,c", "abcabc" }
    local patterns = { "(%w+)", "(%w+)%s*=%s*(%w+)", "%b()", "%b[]", "%f[%a]%a+", "^%s*(.-)%s*$", "()a()",
      "(a)(b)?", "(.)%1", "[^,]*", "^(%d+)%-(%d+)%-(%d+)T", "%u+", "x*$", "[%a_][%w_]*", "(%a+)(%d?)", ".-b",
      "o%f[%W]", "" }
    for _, s in ipairs(subjects) do
      for _, p in ipairs(patterns) do
        cases[#cases + 1] = { s = s, p = p, init = 2, repl = "<%0>" }
        cases[#cases + 1] = { s = s, p = p, init = 1, repl = { hello = "HI", a = "A", key = false } }
      end
    end
    local res = h.call("POST", "/api/v1/__sandbox/patterns", { body = { cases = cases } })
    local body = h.expect_status(res, 200)
    local function pack(...)
      local v = {}
      local n = select("#", ...)
      for i = 1, n do
        local x = select(i, ...)
        if x == nil then x = cjson.null end
        v[i] = x
      end
      return { n = n, v = v }
    end
    for i, c in ipairs(cases) do
      local got = body.data[i]
      local what = ("%q ~ %q"):format(c.s, c.p)
      assert.are.same(pack(c.s:find(c.p, c.init)), got.find, what .. " find")
      assert.are.same(pack(c.s:match(c.p, c.init)), got.match, what .. " match")
      assert.are.same(pack(c.s:gsub(c.p, c.repl)), got.gsub, what .. " gsub")
      local words = {}
      for a, b in c.s:gmatch(c.p) do
        words[#words + 1] = pack(a, b)
        if #words > 50 then break end
      end
      assert.are.same(words, got.gmatch, what .. " gmatch")
    end
  end)
end)

describe("the memory cap", function()
  it("ends a memory hog with a 500, not a crash; the server keeps serving", function()
    local id = rid("hog")
    local status, body, raw = read_answer(send_get("/api/v1/__sandbox/hog", id))
    expect_internal(status, body, raw)
    assert.truthy(log_lines(id):find("not enough memory", 1, true), log_lines(id))
    local pings = h.parallel(WORKERS * 2, "GET", "/api/v1/__sandbox/ping")
    for _, r in ipairs(pings) do
      assert.are.equal(200, r.status, r.raw)
    end
  end)

  it("survives hogs on every worker at once", function()
    -- every worker fills its VM to the cap at once: slow under ASan on a loaded machine
    local hogs = h.parallel(WORKERS, "GET", "/api/v1/__sandbox/hog", { timeout = 120 })
    for _, r in ipairs(hogs) do
      expect_internal(r.status, r.body, r.raw)
    end
    for _ = 1, 3 do
      local pings = h.parallel(WORKERS * 2, "GET", "/api/v1/__sandbox/ping")
      for _, r in ipairs(pings) do
        assert.are.equal(200, r.status, r.raw)
      end
    end
    assert.are.equal(200, (h.call("GET", "/health/live")).status)
  end)
end)
