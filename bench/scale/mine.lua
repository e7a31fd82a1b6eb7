-- GET /api/v1/tasks?limit=20: every project the caller is a member of (bench/scale.sh).
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
bench.auth()
wrk.method = "GET"
wrk.path = "/api/v1/tasks?limit=20"
