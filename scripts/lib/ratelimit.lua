-- Checks the rate-limit buckets the policy gave each route (policies/
-- ratelimits.lua) before the C runtime compiles them: well-formed, at most
-- MAX_BUCKETS per route, and one definition per bucket name, since routes
-- that name the same bucket share its counter.
local type, error, ipairs, tostring = type, error, ipairs, tostring
local math_type = math.type

local M = {}

M.MAX_BUCKETS = 4 -- the C route table's room per route
local PER = { user = true, ip = true }

local function where(r)
  return ("%s %s (%s)"):format(r.method, r.path, tostring(r.where))
end

local function check_one(r, b)
  local function bad(msg)
    error(("rate limit of %s: %s"):format(where(r), msg), 0)
  end
  if type(b) ~= "table" then
    bad("each bucket must be a table")
  end
  if type(b.bucket) ~= "string" or not b.bucket:find("^[%w:_ /.{}%-]+$") or #b.bucket > 120 then
    bad("bucket must be a name of 1..120 letters, digits and :_-/.{} or space")
  end
  if math_type(b.limit) ~= "integer" or b.limit < 1 or b.limit > 2000000000 then
    bad(("bucket %s: limit must be an integer 1..2e9"):format(b.bucket))
  end
  if math_type(b.window) ~= "integer" or b.window < 1 or b.window > 86400 then
    bad(("bucket %s: window must be an integer 1..86400 seconds"):format(b.bucket))
  end
  if not PER[b.per] then
    bad(("bucket %s: per must be \"user\" or \"ip\""):format(b.bucket))
  end
end

--- Raises (naming the route, or both routes) on the first bad bucket.
function M.check(routes)
  local seen = {} -- bucket name -> { bucket, route }
  for _, r in ipairs(routes) do
    local rate = r.rate
    if type(rate) ~= "table" then
      error(("rate limit of %s: the policy must return a list of buckets"):format(where(r)), 0)
    end
    if #rate > M.MAX_BUCKETS then
      error(("rate limit of %s: at most %d buckets"):format(where(r), M.MAX_BUCKETS), 0)
    end
    for _, b in ipairs(rate) do
      check_one(r, b)
      local first = seen[b.bucket]
      if not first then
        seen[b.bucket] = { b = b, r = r }
      elseif first.b.limit ~= b.limit or first.b.window ~= b.window or first.b.per ~= b.per then
        error(("rate limit bucket %s is defined twice, differently: %d per %d s per %s by %s, "
          .. "%d per %d s per %s by %s (routes that share a bucket share its counter: give one "
          .. "a bucket of its own)"):format(b.bucket, first.b.limit, first.b.window, first.b.per,
          where(first.r), b.limit, b.window, b.per, where(r)), 0)
      end
    end
  end
end

return M
