-- GET /api/v1/auth/me: JWT verification and one query.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
bench.auth()
wrk.method = "GET"
wrk.path = "/api/v1/auth/me"
