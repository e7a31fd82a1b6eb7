-- Idempotency-Key for POST (API.md §1). The first request with a key
-- claims a row in idempotency_keys (user, key, fingerprint of method, path
-- and body); when it finishes, its answer is stored there. A retry with the
-- same key, user and body within 24 h gets that answer again with
-- `Idempotent-Replayed: true` and changes nothing; a retry that arrives
-- while the first is still running waits for its answer; the same key with
-- another body is a 422. Answers of 5xx are not kept, so a retry can run
-- again. Only authenticated requests take part: the key is per user.
local db = require "lib.db"
local errors = require "lib.errors"
local json = require "lib.json"
local auth = require "tk.auth"

local M = {}

local WAIT_STEP_MS = 50
local WAIT_MAX_MS = 10000
local ABANDONED_AFTER_S = 60 -- a claim with no answer this old is taken over

--- Validates the header value; raises 400 on a malformed key.
function M.check_key(key)
  if #key < 1 or #key > 255 or key:find("[^\32-\126]") then
    errors.raise(400, "invalid_parameter", "Idempotency-Key must be 1..255 printable characters",
      { { field = "Idempotency-Key", message = "must be 1..255 printable characters" } })
  end
end

local function fingerprint(req, raw_body)
  return auth.sha256(req.method .. " " .. req.path .. "\n" .. (raw_body or ""))
end

local function sleep_ms(ms)
  -- The worker thread has nothing else to do while it waits; a server-side
  -- sleep keeps the loop off the CPU.
  db.query("SELECT pg_sleep($1)", ms / 1000)
end

--- Claims `key` for this request. Returns nil when the caller should run the
--- handler (and later call M.finish), or status, body, headers to replay.
function M.begin(req, key, raw_body)
  local hash = fingerprint(req, raw_body)
  local waited = 0
  while true do
    local claimed = db.one([[
      INSERT INTO idempotency_keys (user_id, key, request_hash) VALUES ($1, $2, $3)
      ON CONFLICT (user_id, key) DO UPDATE
         SET request_hash = EXCLUDED.request_hash, response_status = NULL, response_body = NULL,
             response_headers = NULL, created_at = now(), expires_at = now() + interval '24 hours'
       WHERE idempotency_keys.expires_at < now()
          OR (idempotency_keys.response_status IS NULL
              AND idempotency_keys.created_at < now() - make_interval(secs => $4))
      RETURNING 1 AS claimed]], req.user.id, key, hash, ABANDONED_AFTER_S)
    if claimed then
      return nil
    end
    local row = db.one([[
      SELECT request_hash, response_status, response_body, response_headers
        FROM idempotency_keys WHERE user_id = $1 AND key = $2]], req.user.id, key)
    if row then
      if row.request_hash ~= hash then
        errors.raise(422, "validation_failed",
          "Idempotency-Key was already used with a different request",
          { { field = "Idempotency-Key", message = "was used with a different request" } })
      end
      if row.response_status then
        local headers = row.response_headers or {}
        headers["Idempotent-Replayed"] = "true"
        return row.response_status, row.response_body or "", headers
      end
      if waited >= WAIT_MAX_MS then
        errors.conflict("a request with this Idempotency-Key is still being processed")
      end
      sleep_ms(WAIT_STEP_MS)
      waited = waited + WAIT_STEP_MS
    end
  end
end

--- Stores the answer for the claimed key (or releases the claim on a 5xx).
function M.finish(req, key, status, body, headers)
  if status >= 500 then
    db.try("DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2", req.user.id, key)
    return
  end
  local keep = {}
  for k, v in pairs(headers or {}) do
    keep[k] = v
  end
  db.try([[
    UPDATE idempotency_keys SET response_status = $3, response_body = $4, response_headers = $5::jsonb
     WHERE user_id = $1 AND key = $2]], req.user.id, key, status, body or "", json.encode(keep))
end

return M
