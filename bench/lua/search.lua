-- GET /api/v1/search?q=...: full-text search over tasks, comments, projects
-- (ranked, ts_headline snippets), first page of 20.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
bench.auth()
wrk.method = "GET"
wrk.path = "/api/v1/search?q=" .. bench.env("BENCH_QUERY")
