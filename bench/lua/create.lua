-- POST /api/v1/projects/:id/tasks: insert + task:created event. The body is
-- the same on every request (no assignee, so no notification).
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")
bench.auth()
bench.json()
wrk.method = "POST"
wrk.path = "/api/v1/projects/" .. bench.env("BENCH_PROJECT") .. "/tasks"
wrk.body = '{"title":"bench write","description":"created by wrk","priority":"high","tags":["bench","load"]}'
