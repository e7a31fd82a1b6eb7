-- Shared by the scenario scripts (loaded with dofile; wrk runs LuaJIT).
-- Environment (set by bench/run.sh):
--   BENCH_TOKEN    access token of the seeded owner (Authorization: Bearer)
--   BENCH_PROJECT  id of the seeded project
--   BENCH_IDS      file with the seeded task ids, one a line
--   BENCH_QUERY    search words
-- done() prints one machine-readable line, "BENCH key=value ...", that run.sh parses.

bench = {}

function bench.env(name)
  local v = os.getenv(name)
  if v == nil or v == "" then
    error("bench: environment variable " .. name .. " is not set")
  end
  return v
end

function bench.auth()
  wrk.headers["Authorization"] = "Bearer " .. bench.env("BENCH_TOKEN")
end

function bench.json()
  wrk.headers["Content-Type"] = "application/json"
end

function bench.ids()
  local ids = {}
  for line in io.lines(bench.env("BENCH_IDS")) do
    if line ~= "" then ids[#ids + 1] = line end
  end
  if #ids == 0 then error("bench: no ids in " .. bench.env("BENCH_IDS")) end
  return ids
end

-- Numbers the threads 0..n-1 (global `tid` in each thread) so that threads
-- walk disjoint slices of the ids.
local nthreads = 0
function setup(thread)
  thread:set("tid", nthreads)
  nthreads = nthreads + 1
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d bytes=%d connect=%d read=%d write=%d status=%d timeout=%d" ..
    " p50_us=%d p90_us=%d p99_us=%d max_us=%d mean_us=%.1f\n",
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
