#!/usr/bin/env bash
# A/B of the JSON path (bench/README.md "JSON"): a base revision and this
# checkout's HEAD, both Release builds from `git archive`, served side by side
# on one PostgreSQL database, measured in the same run, rounds interleaved.
#
#   bench/json_ab.sh [BASE_REV]        (default a91fc76)
#
# 1. git archive BASE_REV -> /tmp/json-base, HEAD -> /tmp/json-new; Release
#    builds there (kept between runs when the revision is the same);
# 2. a private PostgreSQL (var/pg-jsonab, fsync off), database bench_json
#    migrated; both servers on it (WORKERS default, DB_POOL_SIZE=20, rate
#    limits off), each with its own copy of its scripts; seeded once through
#    the new one (bench/seed.js, TASKS tasks);
# 3. ROUNDS rounds of: per scenario (list, get), per server: WARMUP s
#    discarded, DURATION s of wrk -t1 -c32 measured, with the server's and
#    PostgreSQL's CPU time; prints req/s and CPU per request;
# 4. with ALLOCS=1 (default), both servers again under an LD_PRELOAD counter
#    (bench/alloc_count.c) for ALLOC_SECONDS s per scenario: malloc, realloc
#    (Lua's allocator) and free calls per request.
# Environment: DURATION [10] WARMUP [2] ROUNDS [4] TASKS [1000] ALLOCS [1]
#   ALLOC_SECONDS [5] JSONAB_PG_PORT [18930] BASE_PORT [18940] NEW_PORT [18950]
# Functions below run from traps: shellcheck cannot see the calls.
# shellcheck disable=SC2317
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bin/lib/common.sh
source bin/lib/common.sh

BASE_REV=${1:-a91fc76}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
ROUNDS=${ROUNDS:-4}
TASKS=${TASKS:-1000}
ALLOCS=${ALLOCS:-1}
ALLOC_SECONDS=${ALLOC_SECONDS:-5}
JSONAB_PG_PORT=${JSONAB_PG_PORT:-18930}
BASE_PORT=${BASE_PORT:-18940}
NEW_PORT=${NEW_PORT:-18950}
JWT=bench-secret-0123456789abcdef
OUT=$TK_VAR/jsonab
CLK_TCK=$(getconf CLK_TCK)
mkdir -p "$OUT"
install_traps

cpu_ticks() { # user+system ticks of pid $1 (all its threads)
    local stat f
    stat=$(cat "/proc/$1/stat") || return 1
    stat=${stat##*) }
    read -ra f <<<"$stat"
    echo $((f[11] + f[12]))
}

pg_ticks() { # the cluster's CPU ticks: postmaster, reaped and live children
    local pm stat f total p
    pm=$(head -n1 "$TK_PG_DATA/postmaster.pid")
    stat=$(cat "/proc/$pm/stat")
    stat=${stat##*) }
    read -ra f <<<"$stat"
    total=$((f[11] + f[12] + f[13] + f[14]))
    for p in $(pgrep -P "$pm"); do total=$((total + $(cpu_ticks "$p" || echo 0))); done
    echo "$total"
}

build() { # build REV DIR
    local rev=$1 dir=$2 sha
    sha=$(git rev-parse "$rev")
    if [[ -x $dir/build/taskapi && $(cat "$dir/.rev" 2>/dev/null) == "$sha" ]]; then
        info "$dir: $sha already built"
        return
    fi
    rm -rf "$dir"
    mkdir -p "$dir"
    git archive "$sha" | tar -x -C "$dir"
    cmake -S "$dir" -B "$dir/build" -DCMAKE_BUILD_TYPE=Release >"$OUT/build-$(basename "$dir").log" 2>&1
    cmake --build "$dir/build" --target taskapi -j"$(nproc)" >>"$OUT/build-$(basename "$dir").log" 2>&1
    echo "$sha" >"$dir/.rev"
    info "$dir: $sha built (Release)"
}

section "Builds"
build "$BASE_REV" /tmp/json-base
build HEAD /tmp/json-new
cc -O2 -shared -fPIC -o "$OUT/alloc_count.so" bench/alloc_count.c -lpthread

section "PostgreSQL"
unset TASKAPI_PG_PORT DATABASE_URL
start_pg pg-jsonab "$JSONAB_PG_PORT" ephemeral
create_db bench_json fresh
DB=$DATABASE_URL
unset DATABASE_URL
(cd /tmp/json-new && DATABASE_URL=$DB build/taskapi migrate >"$OUT/migrate.log" 2>&1)

declare -A PID PORT DIR
PORT[base]=$BASE_PORT PORT[new]=$NEW_PORT DIR[base]=/tmp/json-base DIR[new]=/tmp/json-new
stop_servers() {
    local t
    for t in base new; do
        [[ -n ${PID[$t]:-} ]] || continue
        stop_child "${PID[$t]}" 15 || true
        PID[$t]=''
    done
}
on_exit stop_servers

start_server() { # start_server base|new [extra env...]
    local t=$1 i
    shift
    ! port_busy "${PORT[$t]}" || die "port ${PORT[$t]} is taken"
    (cd "${DIR[$t]}" && exec env -i PATH="$PATH" HOME="${HOME:-/root}" LANG=C.UTF-8 "$@" \
        PORT="${PORT[$t]}" WS_PORT=$((PORT[$t] + 1)) DATABASE_URL="$DB" DB_POOL_SIZE=20 \
        JWT_SECRET=$JWT ACCESS_TOKEN_TTL=86400 RATE_LIMIT_PER_MIN=1000000000 \
        AUTH_RATE_LIMIT_PER_MIN=1000000000 SCRIPTS_DIR="${DIR[$t]}/scripts" WATCH_SCRIPTS=off \
        PID_FILE="$OUT/$t.pid" build/taskapi serve >>"$OUT/$t.log" 2>&1 9>&-) &
    PID[$t]=$!
    for ((i = 0; i < 300; i++)); do
        [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${PORT[$t]}/health/live") == 200 ]] &&
            return 0
        sleep 0.1
    done
    die "$t did not start (see $OUT/$t.log)"
}

section "Servers and data"
start_server base
start_server new
node bench/seed.js "http://127.0.0.1:$NEW_PORT" "$OUT/seed.json" "$TASKS" >"$OUT/seed.log"
"$TK_PG_BIN/psql" -X -q -d "$DB" -c 'VACUUM ANALYZE'
read -r TOKEN PROJECT < <(node -e 'const s = require(process.argv[1]); console.log(s.token, s.projectId)' "$OUT/seed.json")

run_wrk() { # run_wrk base|new SCENARIO SECONDS OUT
    BENCH_LUA_DIR=$TK_ROOT/bench/lua BENCH_TOKEN=$TOKEN BENCH_PROJECT=$PROJECT \
        BENCH_IDS=$OUT/seed.ids BENCH_THREADS=1 \
        wrk -t1 -c32 -d"${3}s" --latency -s "bench/lua/$2.lua" "http://127.0.0.1:${PORT[$1]}" >"$4" 2>&1
}

bench_line() { grep '^BENCH ' "$1" | tail -n1; }
field() { sed -E "s/.* $2=([0-9.]+).*/\\1/" <<<" $1"; }

section "Same bytes? (list and get, base vs new, decoded and compared by node)"
for path in "/api/v1/tasks?projectId=$PROJECT&limit=20" "/api/v1/tasks/$(head -n1 "$OUT/seed.ids")"; do
    for t in base new; do
        curl -s -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:${PORT[$t]}$path" >"$OUT/body-$t.json"
    done
    node -e 'const fs = require("fs");
             const canon = v => Array.isArray(v) ? v.map(canon) : v && typeof v === "object"
               ? Object.fromEntries(Object.keys(v).sort().map(k => [k, canon(v[k])])) : v;
             const [ra, rb] = process.argv.slice(1, 3).map(f => fs.readFileSync(f, "utf8"));
             const [a, b] = [ra, rb].map(s => JSON.parse(s));
             const same = JSON.stringify(canon(a)) === JSON.stringify(canon(b));
             console.log("    " + process.argv[3] + ": values " + (same ? "equal" : "DIFFER") +
               ", bytes " + (ra === rb ? "identical" : "differ (key order, escaping)"))' \
        "$OUT/body-base.json" "$OUT/body-new.json" "$path" || true
done

RESULTS=$OUT/results.tsv
printf 'round\tscenario\ttarget\trps\tp50_ms\tp99_ms\tsrv_cpu_us_per_req\tpg_cpu_us_per_req\tbytes_per_resp\n' >"$RESULTS"
section "Benchmark: wrk -t1 -c32, $WARMUP s warm-up + $DURATION s, $ROUNDS rounds"
for ((round = 1; round <= ROUNDS; round++)); do
    for sc in list get; do
        for t in base new; do
            run_wrk "$t" "$sc" "$WARMUP" "$OUT/warmup.txt" || true
            c0=$(cpu_ticks "${PID[$t]}") p0=$(pg_ticks)
            run_wrk "$t" "$sc" "$DURATION" "$OUT/raw-$round-$sc-$t.txt"
            c1=$(cpu_ticks "${PID[$t]}") p1=$(pg_ticks)
            line=$(bench_line "$OUT/raw-$round-$sc-$t.txt")
            n=$(field "$line" requests) us=$(field "$line" duration_us)
            awk -v r="$round" -v sc="$sc" -v t="$t" -v n="$n" -v us="$us" -v hz="$CLK_TCK" \
                -v c=$((c1 - c0)) -v p=$((p1 - p0)) -v p50="$(field "$line" p50_us)" \
                -v p99="$(field "$line" p99_us)" -v by="$(field "$line" bytes)" 'BEGIN {
                printf "%d\t%s\t%s\t%.0f\t%.2f\t%.2f\t%.0f\t%.0f\t%.0f\n", r, sc, t, n / (us / 1e6),
                    p50 / 1000, p99 / 1000, c / hz * 1e6 / n, p / hz * 1e6 / n, by / n }' >>"$RESULTS"
            tail -n1 "$RESULTS" | awk -F'\t' '{ printf "    round %s %-4s %-4s %7s req/s  p50 %5s ms  p99 %6s ms  server %4s us/req  pg %4s us/req  %s B\n", $1, $2, $3, $4, $5, $6, $7, $8, $9 }'
        done
    done
done

section "Median over the rounds (mean in brackets)"
awk -F'\t' 'NR > 1 { k = $2 " " $3; i = ++n[k]; rps[k, i] = $4; cpu[k, i] = $7; pg[k, i] = $8
                      srps[k] += $4; scpu[k] += $7; spg[k] += $8 }
    function med(a, k, m,    i, j, t, v) {
        for (i = 1; i <= m; i++) v[i] = a[k, i]
        for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
        return m % 2 ? v[(m + 1) / 2] : (v[m / 2] + v[m / 2 + 1]) / 2
    }
    END { for (k in n) printf "    %-9s %7.0f req/s (%5.0f)  server %4.0f us/req (%4.0f)  pg %4.0f us/req (%4.0f)\n",
            k, med(rps, k, n[k]), srps[k] / n[k], med(cpu, k, n[k]), scpu[k] / n[k], med(pg, k, n[k]), spg[k] / n[k] }' \
    "$RESULTS" | sort

if [[ $ALLOCS == 1 ]]; then
    section "Allocations per request (LD_PRELOAD counter, $ALLOC_SECONDS s per scenario)"
    stop_servers
    for t in base new; do
        start_server "$t" LD_PRELOAD="$OUT/alloc_count.so" ALLOC_COUNT_FILE="$OUT/alloc-$t.txt"
    done
    for sc in list get; do
        for t in base new; do
            run_wrk "$t" "$sc" 1 "$OUT/warmup.txt" || true
            sleep 0.3
            read -r m0 c0 r0 f0 <"$OUT/alloc-$t.txt"
            run_wrk "$t" "$sc" "$ALLOC_SECONDS" "$OUT/alloc-raw-$sc-$t.txt"
            sleep 0.3
            read -r m1 c1 r1 f1 <"$OUT/alloc-$t.txt"
            n=$(field "$(bench_line "$OUT/alloc-raw-$sc-$t.txt")" requests)
            awk -v sc="$sc" -v t="$t" -v n="$n" -v m=$((m1 - m0 + c1 - c0)) -v r=$((r1 - r0)) -v f=$((f1 - f0)) \
                'BEGIN { printf "    %-4s %-4s malloc+calloc %6.1f  realloc %6.1f  free %6.1f  per request\n", sc, t, m / n, r / n, f / n }'
        done
    done
fi
