-- GET /api/v1/tasks?projectId=...&status=todo,in_progress&limit=20 (bench/scale.sh).
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
bench.auth()
wrk.method = "GET"
wrk.path = "/api/v1/tasks?projectId=" .. bench.env("BENCH_PROJECT") .. "&status=todo,in_progress&limit=20"
