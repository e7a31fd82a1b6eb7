-- A raw WebSocket client over luasocket for specs that must send what stock
-- clients never would (unmasked frames, absurd lengths, half-sent
-- handshakes) and read exactly what the server answers, close frames
-- included. RFC 6455 framing, text frames only.
--
--   local ws = require "spec.integration.support.rawws"
--   local c = assert(ws.connect(port))                 -- TCP only
--   local status, head = ws.handshake(c, "/ws?token=...")
--   c:send(ws.frame(0x1, '{"type":"ping"}'))           -- masked text frame
--   local op, payload = ws.read_frame(c, 5)
--   local code, reason = ws.read_close(c, 5)          -- the close frame, then EOF
local socket = require "socket"

local M = {}

M.KEY = "dGhlIHNhbXBsZSBub25jZQ==" -- any 16-byte base64 nonce does for a server

--- A TCP connection to 127.0.0.1:port, from local address `from` when given
--- (127.0.0.2 works on Linux loopback). Returns the socket or nil, err.
function M.connect(port, from)
  local c = socket.tcp()
  if from then
    local ok, err = c:bind(from, 0)
    if not ok then
      c:close()
      return nil, err
    end
  end
  c:settimeout(5)
  local ok, err = c:connect("127.0.0.1", port)
  if not ok then
    c:close()
    return nil, err
  end
  return c
end

--- The upgrade request for path (headers: a table overriding the defaults;
--- false drops a header).
function M.request(path, headers)
  local h = {
    Host = "127.0.0.1",
    Upgrade = "websocket",
    Connection = "Upgrade",
    ["Sec-WebSocket-Key"] = M.KEY,
    ["Sec-WebSocket-Version"] = "13",
  }
  for k, v in pairs(headers or {}) do
    h[k] = v or nil
  end
  local lines = { ("GET %s HTTP/1.1"):format(path) }
  for _, k in ipairs({ "Host", "Upgrade", "Connection", "Sec-WebSocket-Key", "Sec-WebSocket-Version" }) do
    if h[k] then
      lines[#lines + 1] = k .. ": " .. h[k]
      h[k] = nil
    end
  end
  for k, v in pairs(h) do
    lines[#lines + 1] = k .. ": " .. v
  end
  return table.concat(lines, "\r\n") .. "\r\n\r\n"
end

--- Sends the upgrade request and reads the answer's head. Returns the status
--- (number), the headers (lower-case names) and the raw head; nil, err when
--- the connection ended first.
function M.handshake(c, path, headers, timeout)
  c:settimeout(timeout or 5)
  local ok, err = c:send(M.request(path, headers))
  if not ok then
    return nil, err
  end
  local status_line, serr = c:receive("*l")
  if not status_line then
    return nil, serr
  end
  local status = tonumber(status_line:match("^HTTP/1%.[01] (%d%d%d)"))
  local head, raw = {}, { status_line }
  while true do
    local line, lerr = c:receive("*l")
    if not line then
      return nil, lerr
    end
    if line == "" then
      break
    end
    raw[#raw + 1] = line
    local k, v = line:match("^([^:]+):%s*(.-)%s*$")
    if k then
      head[k:lower()] = v
    end
  end
  return status, head, table.concat(raw, "\n")
end

local function be(n, bytes)
  local out = {}
  for i = bytes - 1, 0, -1 do
    out[#out + 1] = string.char((n >> (8 * i)) & 0xff)
  end
  return table.concat(out)
end

--- One frame. opts.mask (default true), opts.fin (default true),
--- opts.length: the length to declare instead of #payload.
function M.frame(opcode, payload, opts)
  opts = opts or {}
  local mask = opts.mask ~= false
  local n = opts.length or #payload
  local b1 = (opts.fin == false and 0 or 0x80) | opcode
  local mbit = mask and 0x80 or 0
  local head
  if n < 126 then
    head = string.char(b1, mbit | n)
  elseif n < 65536 then
    head = string.char(b1, mbit | 126) .. be(n, 2)
  else
    head = string.char(b1, mbit | 127) .. be(n, 8)
  end
  if not mask then
    return head .. payload
  end
  local key = { 0x37, 0xfa, 0x21, 0x3d }
  local out = {}
  for i = 1, #payload do
    out[i] = string.char(payload:byte(i) ~ key[(i - 1) % 4 + 1])
  end
  return head .. string.char(table.unpack(key)) .. table.concat(out)
end

--- Reads one server frame: opcode, payload; nil, "closed" | "timeout".
function M.read_frame(c, timeout)
  c:settimeout(timeout or 5)
  local h, err = c:receive(2)
  if not h then
    return nil, err
  end
  local b1, b2 = h:byte(1, 2)
  local n = b2 & 0x7f
  if n == 126 then
    local x = c:receive(2)
    if not x then
      return nil, "closed"
    end
    n = (x:byte(1) << 8) | x:byte(2)
  elseif n == 127 then
    local x = c:receive(8)
    if not x then
      return nil, "closed"
    end
    n = 0
    for i = 1, 8 do
      n = (n << 8) | x:byte(i)
    end
  end
  local payload = ""
  if n > 0 then
    payload, err = c:receive(n)
    if not payload then
      return nil, err
    end
  end
  return b1 & 0x0f, payload
end

--- Reads frames until the server's close frame, then waits for the TCP
--- close. Returns code, reason, eof (true when the connection then ended
--- within the timeout); nil, err when no close frame came.
function M.read_close(c, timeout)
  local deadline = socket.gettime() + (timeout or 5)
  while true do
    local left = deadline - socket.gettime()
    if left <= 0 then
      return nil, "timeout"
    end
    local op, payload = M.read_frame(c, left)
    if not op then
      return nil, payload
    end
    if op == 0x8 then
      local code = #payload >= 2 and ((payload:byte(1) << 8) | payload:byte(2)) or nil
      local reason = payload:sub(3)
      c:settimeout(math.max(deadline - socket.gettime(), 0.5))
      local _, err = c:receive(1)
      return code, reason, err == "closed"
    end
  end
end

--- True when the peer ends the connection within timeout (any data first is
--- read and dropped).
function M.wait_eof(c, timeout)
  local deadline = socket.gettime() + (timeout or 5)
  while socket.gettime() < deadline do
    c:settimeout(deadline - socket.gettime())
    local _, err, partial = c:receive(4096)
    if err == "closed" then
      return true
    end
    if err == "timeout" and (partial == nil or partial == "") then
      return false
    end
  end
  return false
end

return M
