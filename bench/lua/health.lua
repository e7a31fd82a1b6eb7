-- GET /health/live: no token, no database (the HTTP stack alone).
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
wrk.method = "GET"
wrk.path = "/health/live"
