-- DATABASE_URL with TLS: bin/test's PostgreSQL serves TLS with a
-- self-signed certificate (TASKAPI_PG_CA). A server given
-- sslmode=verify-full and that certificate as its root connects over TLS
-- (pg_stat_ssl says so for every one of its connections); given another
-- root it refuses the database, and says so, rather than talk in clear.
local h = require "spec.integration.helper"
local server = require "spec.integration.support.server"

local CA = os.getenv("TASKAPI_PG_CA")

local function with_params(url, params)
  return url .. (url:find("?", 1, true) and "&" or "?") .. params
end

local function health(srv)
  local status, body = h.request("GET", srv.url .. "/health")
  return status, body
end

describe("DATABASE_URL over TLS", function()
  if not CA or CA == "" then
    pending("TASKAPI_PG_CA is not set: bin/test's own PostgreSQL serves TLS, an outside DATABASE_URL may not")
    return
  end

  it("sslmode=verify-full with the server's CA: every connection is encrypted", function()
    local url = with_params(os.getenv("DATABASE_URL"),
      "sslmode=verify-full&sslrootcert=" .. CA .. "&application_name=taskapi-db-tls-spec")
    local srv = server.start({ DATABASE_URL = url })
    local ok, err = pcall(function()
      local status, body = health(srv)
      assert.are.equal(200, status)
      assert.are.equal("ok", body.checks.database)
      local reg = h.request("POST", srv.url .. "/api/v1/auth/register", { body = {
        email = h.unique_email("dbtls"), password = h.unique_password(), name = "DB TLS" } })
      assert.are.equal(201, reg)
      local row = h.psql([[SELECT count(*) || '|' || bool_and(s.ssl) || '|' || min(s.version)
        FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
        WHERE a.application_name = 'taskapi-db-tls-spec']])
      local n, all_ssl, version = row:match("^(%d+)|(%a+)|(.*)$")
      assert.is_true(tonumber(n) >= 1, row)
      assert.are.equal("true", all_ssl)
      assert.matches("^TLSv1%.[23]$", version)
    end)
    srv.stop()
    assert(ok, err)
  end)

  it("verify-full with another CA: the database is unavailable, never used in clear", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir))
    assert(os.execute(("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=other "
      .. "-keyout %s/k.pem -out %s/ca.pem >/dev/null 2>&1"):format(dir, dir)))
    local url = with_params(os.getenv("DATABASE_URL"),
      "sslmode=verify-full&sslrootcert=" .. dir .. "/ca.pem&application_name=taskapi-db-tls-wrong")
    local srv = server.start({ DATABASE_URL = url })
    local ok, err = pcall(function()
      local status, body = health(srv)
      assert.are.equal(503, status)
      assert.are.equal("unavailable", body.checks.database)
      assert.are.equal("0", h.psql([[SELECT count(*) FROM pg_stat_activity
        WHERE application_name = 'taskapi-db-tls-wrong']]))
    end)
    local log = srv.stop()
    os.execute("rm -rf " .. dir)
    assert(ok, err)
    assert.matches("certificate verify failed", log, 1, true)
  end)
end)
