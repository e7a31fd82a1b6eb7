-- GET /api/v1/tasks?projectId=...&limit=20: first page, newest first.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
bench.auth()
wrk.method = "GET"
wrk.path = "/api/v1/tasks?projectId=" .. bench.env("BENCH_PROJECT") .. "&limit=20"
