-- HTTPS and WSS served directly (TLS_CERT_FILE / TLS_KEY_FILE), with a
-- certificate this spec makes with openssl: the API answers over TLS 1.2+
-- only, the WebSocket port upgrades over TLS, SIGHUP puts a renewed
-- certificate in place on both ports, a broken file keeps the old one, and a
-- key that does not match stops start-up. Real clients: curl and openssl.
local server = require "spec.integration.support.server"
local E = require "spec.integration.support.plugin_env"
local R = require "spec.integration.support.rel_server"
local read, wait_for = function(path) return E.read_file(path) or "" end, E.wait_for
local sh_quote = R.quote

-- out, exit code of a shell command (stdout and stderr)
local function run(cmd)
  local ok, code, out = R.sh("(" .. cmd .. ")")
  return out, ok and 0 or code
end

local function make_cert(dir, name, days)
  local out, code = run(("openssl req -x509 -newkey rsa:2048 -nodes -keyout %s/%s.key -out %s/%s.pem "
    .. "-days %d -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1,DNS:localhost")
    :format(dir, name, dir, name, days))
  assert(code == 0, out)
  return dir .. "/" .. name .. ".pem", dir .. "/" .. name .. ".key"
end

-- The serial number of the certificate the port presents.
local function served_serial(port)
  local out = run(("echo | openssl s_client -connect 127.0.0.1:%d 2>/dev/null | openssl x509 -noout -serial")
    :format(port))
  return out:match("serial=(%x+)")
end

local function file_serial(pem)
  return (run("openssl x509 -noout -serial -in " .. sh_quote(pem))):match("serial=(%x+)")
end

describe("TLS (HTTPS and WSS)", function()
  local dir, srv, cert, key, ws_port

  setup(function()
    dir = (os.getenv("TASKAPI_TEST_DIR") or "/tmp") .. "/tls-" .. tostring(os.time()) .. "-"
      .. tostring(math.random(1e6))
    assert(os.execute("mkdir -p " .. sh_quote(dir)))
    local c1, k1 = make_cert(dir, "first", 2)
    cert, key = dir .. "/live.pem", dir .. "/live.key"
    assert(os.execute(("cp %s %s && cp %s %s"):format(c1, cert, k1, key)))
    local socket = require "socket"
    local s = assert(socket.bind("127.0.0.1", 0))
    ws_port = select(2, s:getsockname())
    s:close()
    srv = server.start({ TLS_CERT_FILE = cert, TLS_KEY_FILE = key, WS_PORT = ws_port })
  end)

  teardown(function()
    if srv then
      srv.stop()
    end
  end)

  it("answers HTTPS with the certificate, and nothing over plain HTTP or TLS 1.1", function()
    local out = run(("curl -s --max-time 10 --cacert %s https://127.0.0.1:%d/health/live")
      :format(sh_quote(cert), srv.port))
    assert.are.equal('{"status":"ok"}', out)
    local _, code = run(("curl -s --max-time 10 --cacert %s --tls-max 1.1 https://127.0.0.1:%d/health/live")
      :format(sh_quote(cert), srv.port))
    assert.are_not.equal(0, code)
    local plain = run(("curl -s --max-time 10 -o /dev/null -w '%%{http_code}' http://127.0.0.1:%d/health/live")
      :format(srv.port))
    assert.are.equal("000", plain)
  end)

  it("upgrades WebSockets over TLS on WS_PORT", function()
    -- curl waits out --max-time on the open socket after the 101; the
    -- realtime port may come up a moment after the HTTP one
    local out = wait_for(30, function()
      local o = run(("curl -s -i --max-time 4 --http1.1 --cacert %s -H 'Connection: Upgrade' "
        .. "-H 'Upgrade: websocket' -H 'Sec-WebSocket-Version: 13' "
        .. "-H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' https://127.0.0.1:%d/ws")
        :format(sh_quote(cert), ws_port))
      return o:find("^HTTP") and o or nil
    end) or ""
    assert.matches("^HTTP/1%.1 101", out)
    assert.matches("s3pPLMBiTxaQ9kYGzzhZRbK%+xOo=", out) -- RFC 6455's example accept key
  end)

  it("SIGHUP puts a renewed certificate in place on both ports; a broken file keeps it", function()
    local first = file_serial(cert)
    assert.are.equal(first, served_serial(srv.port))
    assert.are.equal(first, served_serial(ws_port))
    local c2, k2 = make_cert(dir, "second", 30)
    assert(os.execute(("cp %s %s && cp %s %s"):format(k2, key, c2, cert)))
    local second = file_serial(cert)
    assert.are_not.equal(first, second)
    assert(os.execute("kill -HUP " .. srv.pid))
    assert.are.equal(second, wait_for(10, function()
      local s = served_serial(srv.port)
      return s == second and s or nil
    end))
    assert.are.equal(second, wait_for(10, function()
      local s = served_serial(ws_port)
      return s == second and s or nil
    end))

    local f = assert(io.open(cert, "w"))
    f:write("not a certificate\n")
    f:close()
    assert(os.execute("kill -HUP " .. srv.pid))
    assert.truthy(wait_for(10, function()
      return read(srv.log):find("the previous certificate stays", 1, true)
    end))
    assert.are.equal(second, served_serial(srv.port))
    assert.are.equal(second, served_serial(ws_port))
  end)

  it("refuses to start with a key that is not the certificate's, or only one of the two", function()
    local c3 = make_cert(dir, "third", 2)
    local _, k4 = make_cert(dir, "fourth", 2)
    local bin, db = os.getenv("TASKAPI_BIN"), os.getenv("DATABASE_URL")
    local out = run(("env TLS_CERT_FILE=%s TLS_KEY_FILE=%s DATABASE_URL=%s PORT=1 WS_PORT=2 "
      .. "JWT_SECRET=x0123456789abcdefx %s serve; echo exit=$?")
      :format(sh_quote(c3), sh_quote(k4), sh_quote(db), sh_quote(bin)))
    assert.matches("TLS_CERT_FILE", out, 1, true)
    assert.matches("exit=1", out, 1, true)
    out = run(("env -u TLS_KEY_FILE TLS_CERT_FILE=%s DATABASE_URL=%s PORT=1 WS_PORT=2 %s serve; echo exit=$?")
      :format(sh_quote(c3), sh_quote(db), sh_quote(bin)))
    assert.matches("TLS_CERT_FILE and TLS_KEY_FILE go together", out, 1, true)
    assert.matches("exit=1", out, 1, true)
  end)
end)
