-- GET /api/v1/tasks/:id over every seeded task in turn.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
bench.auth()

local ids, n

function init(args)
  ids = bench.ids()
  n = tid or 0
end

function request()
  n = n + 1
  return wrk.format("GET", "/api/v1/tasks/" .. ids[n % #ids + 1])
end
