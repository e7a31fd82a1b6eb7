#!/usr/bin/env bash
# Dispatch benchmark (issue #9, "Cheap dispatch"): this checkout against a
# base commit (BASE_REF) and against nginx answering a Lua constant, in the
# same run on this machine.
#
#   bench/dispatch.sh
#
# 1. builds build-bench/taskapi (Release) from this checkout, and BASE_REF
#    (git archive) in var/bench-dispatch/base with CMAKE_BUILD_TYPE=Release;
#    the base gets bench/dispatch/count-allocs.patch (the allocation counter
#    and its X-Lua-Allocs header alone) when it has no counter of its own;
# 2. a private PostgreSQL (var/pg-bench-dispatch, fsync off), one database
#    migrated by this checkout and seeded through its API (bench/seed.js);
# 3. starts nginx (nginx-light + libnginx-mod-http-lua, worker_processes 1,
#    access log on) answering GET /health/live with a Lua constant, and both
#    taskapi builds (defaults, LOG_LEVEL=info: one access-log line a request);
# 4. ROUNDS rounds of `wrk -t1 -c32 -d DURATION` on /health/live, each round
#    nginx, base, this checkout in turn (WARMUP s first, discarded), with
#    the serving process's CPU time per request (/proc/PID/stat; nginx: its
#    worker), the figure that survives a shared machine;
# 5. restarts both taskapi builds with TASKAPI_DEBUG_QUERIES=1 and WORKERS=2
#    and reads X-Lua-Allocs for /health/live, GET /tasks/:id and GET /tasks
#    (list): the median of 51 requests each, after 100 that warm the caches
#    (a worker's first requests prepare statements and load the user);
# 6. validation µs per call (bench/dispatch/validate.lua: the base's table
#    walk against the compiled validators, on the real route schemas).
# Prints everything; var/bench-dispatch/results.md has the tables.
#
# Environment: DURATION [10] WARMUP [2] ROUNDS [3] CONNECTIONS [32]
#   BASE_REF [a91fc76] BENCH_PG_PORT [18920] and three HTTP ports from 18921.
# Functions below run from traps: shellcheck cannot see the calls.
# shellcheck disable=SC2317
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bin/lib/common.sh
source bin/lib/common.sh

DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-32}
BASE_REF=${BASE_REF:-a91fc76}
BENCH_PG_PORT=${BENCH_PG_PORT:-18920}
NGINX_PORT=${NGINX_PORT:-18921}
BASE_PORT=${BASE_PORT:-18922}
HEAD_PORT=${HEAD_PORT:-18923}
JWT=bench-secret-0123456789abcdef
OUT=$TK_VAR/bench-dispatch
BENCH_DIR=$TK_ROOT/bench

install_traps
lock_checkout bench-dispatch
mkdir -p "$OUT/logs"
command -v wrk >/dev/null || die "wrk is not installed (Debian package wrk)"
command -v nginx >/dev/null || die "nginx is not installed (nginx-light, libnginx-mod-http-lua)"
[[ -f /usr/lib/nginx/modules/ngx_http_lua_module.so ]] ||
    die "the nginx Lua module is not installed (libnginx-mod-http-lua)"

section "Build (Release): this checkout and $BASE_REF"
build_taskapi build-bench taskapi -DCMAKE_BUILD_TYPE=Release >"$OUT/logs/build-head.log" 2>&1 ||
    die "build failed: $OUT/logs/build-head.log"
HEAD_BIN=$TK_ROOT/build-bench/taskapi
rev=$(git -C "$TK_ROOT" rev-parse --short "$BASE_REF")
if [[ ! -x $OUT/base-$rev/build/taskapi ]]; then
    rm -rf "$OUT/base-$rev"
    mkdir -p "$OUT/base-$rev/src"
    git -C "$TK_ROOT" archive "$BASE_REF" | tar -x -C "$OUT/base-$rev/src"
    if ! grep -q tk_lua_vm_allocs "$OUT/base-$rev/src/runtime/lua/vm.h"; then
        patch -d "$OUT/base-$rev/src" -p1 <"$BENCH_DIR/dispatch/count-allocs.patch" >/dev/null ||
            die "count-allocs.patch does not apply to $BASE_REF"
    fi
    (cmake -S "$OUT/base-$rev/src" -B "$OUT/base-$rev/build" -DCMAKE_BUILD_TYPE=Release &&
        cmake --build "$OUT/base-$rev/build" --target taskapi -j"$(nproc)") \
        >"$OUT/logs/build-base.log" 2>&1 || die "base build failed: $OUT/logs/build-base.log"
fi
BASE_BIN=$OUT/base-$rev/build/taskapi
info "head: $(git -C "$TK_ROOT" rev-parse --short HEAD)$(git -C "$TK_ROOT" diff --quiet || echo '+dirty'), base: $rev"

section "PostgreSQL"
setup_database pg-bench-dispatch "$BENCH_PG_PORT" bench_dispatch fresh ephemeral
DB=$DATABASE_URL
unset DATABASE_URL
(cd "$TK_ROOT" && DATABASE_URL=$DB "$HEAD_BIN" migrate >"$OUT/logs/migrate.log" 2>&1) ||
    die "migrate failed: $OUT/logs/migrate.log"

# ------------------------------------------------------------- servers ---

declare -A PID
start_taskapi() { # start_taskapi NAME BIN PORT [extra env...]
    local name=$1 bin=$2 port=$3 src
    shift 3
    src=$TK_ROOT
    [[ $name == base ]] && src=$OUT/base-$rev/src
    rm -rf "$OUT/scripts-$name"
    cp -r "$src/scripts" "$OUT/scripts-$name"
    (cd "$src" && exec env -i PATH="$PATH" HOME="${HOME:-/root}" LANG=C.UTF-8 \
        PORT="$port" WS_PORT=$((port + 100)) DATABASE_URL="$DB" JWT_SECRET="$JWT" \
        ACCESS_TOKEN_TTL=86400 RATE_LIMIT_PER_MIN=1000000000 AUTH_RATE_LIMIT_PER_MIN=1000000000 \
        DB_POOL_SIZE=20 SCRIPTS_DIR="$OUT/scripts-$name" WATCH_SCRIPTS=off \
        PID_FILE="$OUT/$name.pid" MAIL_DIR="$OUT/mail" "$@" "$bin" serve \
        >>"$OUT/logs/$name.log" 2>&1) &
    PID[$name]=$!
    for _ in $(seq 200); do
        curl -fsS "http://127.0.0.1:$port/health/live" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    die "$name did not start: $OUT/logs/$name.log"
}
stop_taskapi() {
    local name=$1
    [[ -n ${PID[$name]:-} ]] || return 0
    stop_child "${PID[$name]}" 30 || true
    PID[$name]=''
}
stop_all() {
    stop_taskapi base
    stop_taskapi head
    if [[ -f $OUT/nginx/nginx.pid ]]; then
        kill -QUIT "$(<"$OUT/nginx/nginx.pid")" 2>/dev/null || true
        rm -f "$OUT/nginx/nginx.pid"
    fi
}
on_exit stop_all

mkdir -p "$OUT/nginx"
cat >"$OUT/nginx/nginx.conf" <<EOF
# Written by bench/dispatch.sh: one worker answering a Lua constant.
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
worker_processes 1;
daemon on;
pid $OUT/nginx/nginx.pid;
error_log $OUT/logs/nginx-error.log;
events { worker_connections 1024; }
http {
    access_log $OUT/logs/nginx-access.log;
    lua_package_path "/usr/share/lua/5.1/?.lua;;";
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location = /health/live {
            default_type application/json;
            content_by_lua_block { ngx.print('{"status":"ok"}') }
        }
    }
}
EOF
nginx -p "$OUT/nginx" -c "$OUT/nginx/nginx.conf" -e "$OUT/logs/nginx-error.log" ||
    die "nginx did not start: $OUT/logs/nginx-error.log"
start_taskapi base "$BASE_BIN" "$BASE_PORT"
start_taskapi head "$HEAD_BIN" "$HEAD_PORT"
curl -fsS "http://127.0.0.1:$NGINX_PORT/health/live" >/dev/null || die "nginx does not answer"

section "Seed (bench/seed.js through this checkout's server)"
node "$BENCH_DIR/seed.js" "http://127.0.0.1:$HEAD_PORT" "$OUT/seed.json" 200 >"$OUT/logs/seed.log" 2>&1 ||
    die "seeding failed: $OUT/logs/seed.log"
TOKEN=$(node -e 'console.log(require(process.argv[1]).token)' "$OUT/seed.json")
PROJECT=$(node -e 'console.log(require(process.argv[1]).projectId)' "$OUT/seed.json")
FIRST_ID=$(head -n1 "$OUT/seed.ids")

# ------------------------------------------------------------ /health/live ---

declare -A URL=([nginx]="http://127.0.0.1:$NGINX_PORT" [base]="http://127.0.0.1:$BASE_PORT"
    [head]="http://127.0.0.1:$HEAD_PORT")
CLK_TCK=$(getconf CLK_TCK)
server_pid() { # the process that serves: nginx's worker, taskapi itself
    if [[ $1 == nginx ]]; then pgrep -P "$(<"$OUT/nginx/nginx.pid")" | head -n1; else echo "${PID[$1]}"; fi
}
cpu_ticks() { # utime + stime of process $1, all threads
    awk '{ print $14 + $15 }' "/proc/$1/stat"
}
run_wrk() { # run_wrk TARGET SECONDS -> prints req/s
    BENCH_LUA_DIR=$BENCH_DIR/lua wrk -t1 -c"$CONNECTIONS" -d"$2s" -s "$BENCH_DIR/lua/health.lua" \
        "${URL[$1]}" | awk '/^BENCH/ { for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
            printf "%.0f %d\n", v["requests"] / (v["duration_us"] / 1e6), v["status"] }'
}
section "GET /health/live: wrk -t1 -c$CONNECTIONS, $ROUNDS rounds of ${DURATION}s (after ${WARMUP}s warm-up)"
declare -A SUM CPU
for t in nginx base head; do
    SUM[$t]=0
    CPU[$t]=0
done
: >"$OUT/health.tsv"
for round in $(seq "$ROUNDS"); do
    for t in nginx base head; do
        run_wrk "$t" "$WARMUP" >/dev/null
        spid=$(server_pid "$t")
        c0=$(cpu_ticks "$spid")
        read -r rps non2xx < <(run_wrk "$t" "$DURATION")
        c1=$(cpu_ticks "$spid")
        # server CPU µs per request: robust on a shared machine, where req/s
        # mostly says who got the cores
        us=$(awk -v c=$((c1 - c0)) -v hz="$CLK_TCK" -v n="$rps" -v d="$DURATION" \
            'BEGIN { printf "%.1f", c / hz * 1e6 / (n * d) }')
        printf '%s\t%s\t%s\t%s\t%s\n' "$round" "$t" "$rps" "$non2xx" "$us" >>"$OUT/health.tsv"
        info "round $round $t: $rps req/s, server CPU $us µs/request (non-2xx: $non2xx)"
        SUM[$t]=$((SUM[$t] + rps))
        CPU[$t]=$(awk -v a="${CPU[$t]}" -v b="$us" 'BEGIN { print a + b }')
    done
done

# ---------------------------------------------------------- allocations ---

section "Lua allocations per request (X-Lua-Allocs, WORKERS=2, median of 51 after 100)"
stop_taskapi base
stop_taskapi head
start_taskapi base "$BASE_BIN" "$BASE_PORT" TASKAPI_DEBUG_QUERIES=1 WORKERS=2
start_taskapi head "$HEAD_BIN" "$HEAD_PORT" TASKAPI_DEBUG_QUERIES=1 WORKERS=2
allocs() { # allocs TARGET PATH -> median X-Lua-Allocs of 51, after 100 to warm up
    for _ in $(seq 100); do # every worker's first requests fill caches (statements, users)
        curl -fsS -o /dev/null -H "Authorization: Bearer $TOKEN" "${URL[$1]}$2"
    done
    for _ in $(seq 51); do
        curl -fsS -o /dev/null -D - -H "Authorization: Bearer $TOKEN" "${URL[$1]}$2" |
            tr -d '\r' | awk -F': ' 'tolower($1) == "x-lua-allocs" { print $2 }'
    done | sort -n | sed -n 26p
}
declare -A PATHS=([health]="/health/live" [get]="/api/v1/tasks/$FIRST_ID"
    [list]="/api/v1/tasks?projectId=$PROJECT&limit=20")
declare -A ALLOC
for sc in health get list; do
    for t in base head; do
        ALLOC[$t.$sc]=$(allocs "$t" "${PATHS[$sc]}")
    done
    info "$sc: base ${ALLOC[base.$sc]}, head ${ALLOC[head.$sc]}"
done

section "Validation µs per call (bench/dispatch/validate.lua)"
VALIDATE=$(cd "$TK_ROOT" && BASE_SCRIPTS=$OUT/base-$rev/src/scripts lua5.4 bench/dispatch/validate.lua)
printf '%s\n' "$VALIDATE"

# ---------------------------------------------------------------- table ---

# shellcheck disable=SC2016 # backquotes are Markdown here
{
    printf '### Run of %s UTC, `bench/dispatch.sh` (head %s, base %s)\n\n' "$(date -u '+%Y-%m-%d %H:%M')" \
        "$(git -C "$TK_ROOT" rev-parse --short HEAD)" "$rev"
    printf '| GET /health/live, wrk -t1 -c%s | mean req/s (%s × %ss) | req/s / nginx+Lua | server CPU µs/request | nginx+Lua CPU / server CPU |\n|---|--:|--:|--:|--:|\n' \
        "$CONNECTIONS" "$ROUNDS" "$DURATION"
    for t in nginx base head; do
        awk -v t="$t" -v s="${SUM[$t]}" -v n="${SUM[nginx]}" -v r="$ROUNDS" -v c="${CPU[$t]}" \
            -v cn="${CPU[nginx]}" \
            'BEGIN { printf "| %s | %.0f | %.2f× | %.1f | %.2f× |\n", t, s / r, s / n, c / r, cn / c }'
    done
    printf '\n| Lua allocations per request | base | head |\n|---|--:|--:|\n'
    for sc in health get list; do
        printf '| %s `%s` | %s | %s |\n' "$sc" "${PATHS[$sc]//$PROJECT/:project}" "${ALLOC[base.$sc]}" \
            "${ALLOC[head.$sc]}"
    done
    printf '\nValidation, µs per call (walk = base schema.validate, compiled = schema.compile):\n\n```\n%s\n```\n' \
        "$VALIDATE"
} >"$OUT/results.md"
section "Results (var/bench-dispatch/results.md)"
cat "$OUT/results.md"
