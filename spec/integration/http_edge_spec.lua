-- The HTTP/1.1 edge on the wire (issue 8), byte for byte over raw TCP, on a
-- server of this spec's own with a short header deadline, a small
-- per-address cap, HOST and METRICS_TOKEN set. For each class of bad input:
-- exactly one response with the expected status, then the server closes the
-- connection; refusals decided by the headers come before any body byte is
-- sent; half-sent requests neither starve other clients nor outlive the
-- header deadline.
local server = require "spec.integration.support.server"
local socket = require "socket"

local HEADER_TIMEOUT = 2 -- seconds (HTTP_HEADER_TIMEOUT)
local PER_IP = 20 -- HTTP_CONN_PER_IP
local METRICS_TOKEN = "metrics-token-0123456789"

-- Sends `bytes` (then half-closes if asked), reads until the server closes
-- or `wait` seconds pass. Returns the text received and whether the server
-- closed the connection.
local function exchange(port, bytes, opts)
  opts = opts or {}
  local c = assert(socket.tcp())
  if opts.from then
    assert(c:bind(opts.from, 0))
  end
  c:settimeout(5)
  assert(c:connect("127.0.0.1", port))
  -- the server may refuse and close before it has read everything: a send
  -- error after the answer is fine, the answer is what counts
  c:send(bytes)
  if opts.half_close then
    c:shutdown("send")
  end
  c:settimeout(0.2)
  local got, closed = {}, false
  local deadline = socket.gettime() + (opts.wait or 8)
  while socket.gettime() < deadline do
    local data, err, partial = c:receive(8192)
    local piece = data or partial
    if piece and #piece > 0 then
      got[#got + 1] = piece
    end
    if err == "closed" or (err and err ~= "timeout") then
      closed = true
      break
    end
  end
  c:close()
  return table.concat(got), closed
end

-- The status codes of every status line in a response stream (a second
-- response follows the first one's body directly, without a line break).
local function statuses(text)
  local out = {}
  for code in text:gmatch("HTTP/1%.%d (%d%d%d) ") do
    out[#out + 1] = tonumber(code)
  end
  return out
end

local function expect_one(text, closed, status)
  assert.are.same({ status }, statuses(text))
  assert.is_true(closed, "the server kept the connection open")
end

local function request(lines, body)
  return table.concat(lines, "\r\n") .. "\r\n\r\n" .. (body or "")
end

describe("HTTP/1.1 edge", function()
  local srv

  setup(function()
    srv = server.start({ HTTP_HEADER_TIMEOUT = HEADER_TIMEOUT, HTTP_CONN_PER_IP = PER_IP,
      HOST = "127.0.0.1", METRICS_TOKEN = METRICS_TOKEN })
  end)

  teardown(function()
    if srv then
      srv.stop()
    end
  end)

  local smuggled = "GET /health/live HTTP/1.1\r\nHost: a\r\n\r\n"

  local classes = {
    { "Content-Length and Transfer-Encoding", 400, request({ "POST /api/v1/auth/login HTTP/1.1",
      "Host: a", "Content-Length: " .. (5 + #smuggled), "Transfer-Encoding: chunked" },
      "0\r\n\r\n" .. smuggled) },
    { "two Transfer-Encoding headers", 400, request({ "POST /api/v1/auth/login HTTP/1.1", "Host: a",
      "Transfer-Encoding: chunked", "Transfer-Encoding: chunked" }, "0\r\n\r\n" .. smuggled) },
    { "'Transfer-Encoding :' (space before the colon)", 400, request({
      "POST /api/v1/auth/login HTTP/1.1", "Host: a", "Transfer-Encoding : chunked",
      "Content-Length: 5" }, "0\r\n\r\n" .. smuggled) },
    { "Transfer-Encoding folded onto a continuation line", 400, request({
      "POST /api/v1/auth/login HTTP/1.1", "Host: a", "Transfer-Encoding:", " chunked",
      "Content-Length: 5" }, "0\r\n\r\n" .. smuggled) },
    { "a header folded into Transfer-Encoding", 400, request({ "POST /api/v1/auth/login HTTP/1.1",
      "Host: a", "X-A: b", " Transfer-Encoding: chunked" }, "0\r\n\r\n" .. smuggled) },
    { "Transfer-Encoding: xchunked", 501, request({ "POST /api/v1/auth/login HTTP/1.1", "Host: a",
      "Transfer-Encoding: xchunked" }, "0\r\n\r\n") },
    { "Transfer-Encoding: chunked, identity", 501, request({ "POST /api/v1/auth/login HTTP/1.1",
      "Host: a", "Transfer-Encoding: chunked, identity" }, "0\r\n\r\n") },
    { "Transfer-Encoding with a trailing tab", 501, request({ "POST /api/v1/auth/login HTTP/1.1",
      "Host: a", "Transfer-Encoding: chunked\t" }, "0\r\n\r\n") },
    { "Transfer-Encoding with a vertical tab", 400, request({ "POST /api/v1/auth/login HTTP/1.1",
      "Host: a", "Transfer-Encoding: \11chunked" }, "0\r\n\r\n") },
    { "Transfer-Encoding on HTTP/1.0", 400, request({ "POST /api/v1/auth/login HTTP/1.0",
      "Transfer-Encoding: chunked" }, "0\r\n\r\n") },
    { "HTTP/1.1 without Host", 400, request({ "GET /health/live HTTP/1.1" }) },
    { "two different Host headers", 400, request({ "GET /health/live HTTP/1.1", "Host: a",
      "Host: b" }) },
    { "whitespace between a header name and the colon", 400, request({
      "GET /health/live HTTP/1.1", "Host: a", "X-A : b" }) },
    { "a bare CR in a header value", 400, request({ "GET /health/live HTTP/1.1", "Host: a",
      "X-A: b\rc" }) },
    { "a NUL in a header value", 400, request({ "GET /health/live HTTP/1.1", "Host: a",
      "X-A: b\0c" }) },
    { "a control byte in a header value", 400, request({ "GET /health/live HTTP/1.1", "Host: a",
      "X-A: b\1c" }) },
    { "a 20-digit Content-Length", 400, request({ "POST /api/v1/auth/login HTTP/1.1", "Host: a",
      "Content-Type: application/json", "Content-Length: 12345678901234567890" }, "{}") },
    { "two Content-Length headers", 400, request({ "POST /api/v1/auth/login HTTP/1.1", "Host: a",
      "Content-Type: application/json", "Content-Length: 2", "Content-Length: 3" }, "{}x") },
    { "a chunked body with a 100 KB chunk extension", 411, request({
      "POST /api/v1/auth/login HTTP/1.1", "Host: a", "Content-Type: application/json",
      "Transfer-Encoding: chunked" }, "2;" .. ("e"):rep(100 * 1024) .. "\r\n{}\r\n0\r\n\r\n") },
  }

  for _, case in ipairs(classes) do
    local name, status, bytes = case[1], case[2], case[3]
    it(("answers %s with one %d and closes"):format(name, status), function()
      local text, closed = exchange(srv.port, bytes)
      expect_one(text, closed, status)
      assert.truthy(text:find('"error":{"code":"', 1, true), "not the contract's error shape")
    end)
  end

  -- libmicrohttpd 0.9.75 parses Content-Length itself (when there is no
  -- Transfer-Encoding) and refuses one that is not 1*DIGIT before the
  -- application sees the request; its error path writes the status line and
  -- headers twice (see the report / README). What it does get right:
  -- the first answer is a 400 (413 for an overflow) and the connection closes.
  for _, case in ipairs({ { "-1", 400 }, { "1e3", 400 }, { "+2", 400 },
    { "99999999999999999999", 413 } }) do
    it(("refuses Content-Length: %s with %d and closes"):format(case[1], case[2]), function()
      local text, closed = exchange(srv.port, request({ "POST /api/v1/auth/login HTTP/1.1",
        "Host: a", "Content-Length: " .. case[1] }, "ab" .. smuggled))
      assert.are.equal(case[2], statuses(text)[1])
      assert.is_true(closed)
      for _, s in ipairs(statuses(text)) do -- never an answer to the smuggled request
        assert.are.equal(case[2], s)
      end
    end)
  end
  pending("answers a malformed Content-Length with a single status line (libmicrohttpd 0.9.75 " ..
    "writes its own error's headers twice)")

  it("answers a truncated chunked body followed by a half-close at once", function()
    local text, closed = exchange(srv.port, request({ "POST /api/v1/auth/login HTTP/1.1",
      "Host: a", "Content-Type: application/json", "Transfer-Encoding: chunked" }, "10\r\n{\"a\""),
      { half_close = true })
    expect_one(text, closed, 411)
  end)

  it("answers a 2 GB Content-Length with 413 before any body byte is sent", function()
    local text, closed = exchange(srv.port, request({ "POST /api/v1/auth/login HTTP/1.1",
      "Host: a", "Content-Type: application/json", "Content-Length: 2147483648" }))
    expect_one(text, closed, 413)
    assert.truthy(text:find("payload_too_large", 1, true))
  end)

  it("serves a 12 KiB header section and answers a 20 KiB one with 431 and a close", function()
    local text = exchange(srv.port, request({ "GET /health/live HTTP/1.1", "Host: a",
      "X-Pad: " .. ("p"):rep(12 * 1024), "Connection: close" }))
    assert.are.same({ 200 }, statuses(text))
    local closed
    text, closed = exchange(srv.port, request({ "GET /health/live HTTP/1.1", "Host: a",
      "X-Pad: " .. ("p"):rep(20 * 1024) }))
    expect_one(text, closed, 431)
  end)

  it("answers a 1 MiB POST to an unknown path with 404 without reading the body", function()
    local text, closed = exchange(srv.port, request({ "POST /api/v1/no-such-thing HTTP/1.1",
      "Host: a", "Content-Type: application/json", "Content-Length: 1048576" }))
    expect_one(text, closed, 404)
  end)

  it("refuses a body for an authenticated route without a token before reading it (401)", function()
    local text, closed = exchange(srv.port, request({ "POST /api/v1/projects HTTP/1.1", "Host: a",
      "Content-Type: application/json", "Content-Length: 100000" }))
    expect_one(text, closed, 401)
  end)

  it("lets a client that sends the whole refused body first still read the answer", function()
    -- answered before the body, then drained (lingering close): no reset
    local body = ("x"):rep(900 * 1024)
    local text, closed = exchange(srv.port, request({ "POST /api/v1/projects HTTP/1.1", "Host: a",
      "Content-Type: application/json", "Content-Length: " .. #body }, body))
    expect_one(text, closed, 401)
  end)

  it("refuses a body that is not JSON before reading it (415)", function()
    local text, closed = exchange(srv.port, request({ "POST /api/v1/auth/login HTTP/1.1",
      "Host: a", "Content-Type: text/plain", "Content-Length: 100000" }))
    expect_one(text, closed, 415)
  end)

  it("keeps the connection for refusals of requests without a body", function()
    local one = request({ "GET /api/v1/no-such-thing HTTP/1.1", "Host: a" })
    local text = exchange(srv.port, one .. one, { wait = 1 })
    assert.are.same({ 404, 404 }, statuses(text))
  end)

  it("still serves well-formed requests, with and without a body", function()
    local text, closed = exchange(srv.port, request({ "GET /health/live HTTP/1.1", "Host: a",
      "Connection: close" }))
    expect_one(text, closed, 200)
    text, closed = exchange(srv.port, request({ "POST /api/v1/auth/login HTTP/1.1", "Host: a",
      "Connection: close", "Content-Type: application/json", "Content-Length: 2" }, "{}"))
    assert.are.equal(1, #statuses(text))
    assert.is_true(statuses(text)[1] == 400 or statuses(text)[1] == 422)
    assert.is_true(closed)
  end)

  describe("slow clients", function()
    it("caps half-sent requests per address, serves other addresses and closes the rest " ..
      "after the header deadline", function()
      local held = {}
      for i = 1, PER_IP + 5 do
        local c = assert(socket.tcp())
        assert(c:bind("127.0.0.1", 0))
        c:settimeout(2)
        if c:connect("127.0.0.1", srv.port) then
          c:send("GET /health/live HTTP/1.1\r\nHost: a\r\nX-Slow-" .. i .. ": 1\r\n")
          held[#held + 1] = c
        else
          c:close()
        end
      end
      -- another address is served at once
      local text, closed = exchange(srv.port, request({ "GET /health/live HTTP/1.1", "Host: a",
        "Connection: close" }), { from = "127.0.0.2" })
      expect_one(text, closed, 200)
      -- every half-sent connection is closed without an answer: the ones over
      -- the cap at once, the others when the header deadline passes
      local open = #held
      local deadline = socket.gettime() + HEADER_TIMEOUT + 10
      local closed_ones = {}
      while open > 0 and socket.gettime() < deadline do
        for i, c in ipairs(held) do
          if not closed_ones[i] then
            c:settimeout(0)
            local data, err, partial = c:receive(1)
            assert.is_nil(data)
            assert.are.equal("", partial or "", "an answer to a half-sent request")
            if err ~= "timeout" then
              closed_ones[i] = true
              open = open - 1
            end
          end
        end
        socket.sleep(0.1)
      end
      for _, c in ipairs(held) do
        c:close()
      end
      assert.are.equal(0, open, "half-sent connections outlived the header deadline")
    end)

    it("closes a request that trickles its headers past the deadline", function()
      local c = assert(socket.tcp())
      c:settimeout(1)
      assert(c:connect("127.0.0.1", srv.port))
      assert(c:send("GET /health/live HTTP/1.1\r\nHost: a\r\n"))
      local t0, closed = socket.gettime(), false
      while socket.gettime() - t0 < HEADER_TIMEOUT + 10 do
        -- a byte every half second keeps an idle timeout from firing
        if not c:send("X: y\r\n") then
          closed = true
          break
        end
        local _, err = c:receive(1)
        if err == "closed" then
          closed = true
          break
        end
        socket.sleep(0.4)
      end
      c:close()
      assert.is_true(closed)
    end)
  end)

  describe("HOST and METRICS_TOKEN", function()
    it("listens only on HOST", function()
      local c = assert(socket.tcp())
      c:settimeout(2)
      local ok = c:connect("127.0.0.2", srv.port)
      c:close()
      assert.is_nil(ok)
    end)

    it("answers /metrics only with the metrics token", function()
      local function metrics(auth)
        local lines = { "GET /metrics HTTP/1.1", "Host: a", "Connection: close" }
        if auth then
          lines[#lines + 1] = "Authorization: " .. auth
        end
        return exchange(srv.port, request(lines))
      end
      local text = metrics(nil)
      assert.are.same({ 401 }, statuses(text))
      assert.truthy(text:find("WWW%-Authenticate: Bearer"))
      assert.are.same({ 401 }, statuses(metrics("Bearer wrong-token-0123456789")))
      assert.are.same({ 401 }, statuses(metrics("Bearer " .. METRICS_TOKEN .. "x")))
      text = metrics("Bearer " .. METRICS_TOKEN)
      assert.are.same({ 200 }, statuses(text))
      assert.truthy(text:find("taskapi_", 1, true))
    end)
  end)
end)
