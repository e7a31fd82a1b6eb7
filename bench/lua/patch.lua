-- PATCH /api/v1/tasks/:id without If-Match: a new title each time (always a
-- real change: version + 1, task:updated event). Thread k of n walks the
-- seeded ids k, k+n, k+2n, ... so two requests in flight never touch the same
-- task unless a whole slice wraps around while one is still pending.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
bench.auth()
bench.json()

local ids, slice, n

function init(args)
  local all = bench.ids()
  local k = tid or 0
  local threads = tonumber(os.getenv("BENCH_THREADS") or "1")
  slice = {}
  for i = k + 1, #all, threads do slice[#slice + 1] = all[i] end
  n = 0
end

function request()
  n = n + 1
  local body = '{"title":"patched by wrk ' .. (tid or 0) .. '-' .. n .. '"}'
  return wrk.format("PATCH", "/api/v1/tasks/" .. slice[n % #slice + 1], nil, body)
end
