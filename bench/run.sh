#!/usr/bin/env bash
# Load benchmark: taskapi against the Express peer of the same API
# (/work/shared/peers/express, or $PEER_SRC), measured in the same run on this
# machine. One command does everything:
#
#   bench/run.sh
#
# 1. installs wrk (and the build packages) if missing, builds build-bench/taskapi
#    (CMAKE_BUILD_TYPE=Release) if needed;
# 2. copies the peer into var/bench/express and runs `npm ci` there (when its
#    package-lock.json changed);
# 3. starts a private PostgreSQL in var/pg-bench (port BENCH_PG_PORT, fsync off
#    unless BENCH_DURABLE=1) or, when DATABASE_URL is set, uses that server;
#    recreates the databases bench_taskapi (migrated) and peer_express
#    (the peer's schema.sql);
# 4. starts taskapi (its defaults: WORKERS=16) and the peer twice: WORKERS=1
#    (its default, one process) and WORKERS=2 (cluster); DB_POOL_SIZE=20 and
#    both rate limits at 1e9 everywhere;
# 5. seeds the same data through each API (bench/seed.js) and checks that both
#    answer the benchmarked requests with the same shapes (bench/check.js);
# 6. per scenario, per server in turn: WARMUP s of wrk (discarded), then
#    DURATION s measured, with the RSS and CPU time of the server and of
#    PostgreSQL sampled; non-2xx answers are counted from the servers' logs;
# 7. prints the table (also in var/bench/results.md; raw rows in
#    var/bench/results.tsv; server logs in var/bench/logs/).
#
# Environment (defaults in brackets):
#   DURATION [15]  WARMUP [3]  THREADS [2]  CONNECTIONS [64]  WRK_TIMEOUT [5s]
#   SCENARIOS ["health me list get search create patch"]
#   TARGETS   ["express express2 nginx taskapi"]  (express2 = the peer with WORKERS=2;
#             nginx = nginx-light answering GET /health/live with a Lua constant,
#             one worker, access log on: the ceiling for the health scenario,
#             and only measured there; base = taskapi at git BASE_REF, for a
#             before/after in the same run: built Release from `git archive`
#             into var/bench/base, its own migrated database bench_base, its
#             own scripts, seeded like the others; its "taskapi ÷ this" column
#             is after ÷ before)
#   BASE_REF [main]  BASE_PORT [18903] (its WS port is BASE_PORT + 1)
#   NGINX_PORT [18902]
#   TASKS [1000]  BENCH_PG_PORT [18910]  TASKAPI_PORT [18900]  TASKAPI_WS_PORT [18901]
#   EXPRESS_PORT [3000]  EXPRESS2_PORT [3001]  TASKAPI_WORKERS [taskapi's default]
#   BENCH_DURABLE [0]  DATABASE_URL (use that server instead of a private one)
#   KEEP=1 leaves the servers (and PostgreSQL) running after the table until
#   Ctrl-C, for poking at them (SCENARIOS= runs no scenario at all).
# Functions below run from traps: shellcheck cannot see the calls.
# shellcheck disable=SC2317
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bin/lib/common.sh
source bin/lib/common.sh

DURATION=${DURATION:-15}
WARMUP=${WARMUP:-3}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-64}
WRK_TIMEOUT=${WRK_TIMEOUT:-5s}
SCENARIOS=${SCENARIOS-health me list get search create patch}
TARGETS=${TARGETS:-express express2 nginx taskapi}
TASKS=${TASKS:-1000}
BENCH_PG_PORT=${BENCH_PG_PORT:-18910}
TASKAPI_PORT=${TASKAPI_PORT:-18900}
TASKAPI_WS_PORT=${TASKAPI_WS_PORT:-18901}
EXPRESS_PORT=${EXPRESS_PORT:-3000}
EXPRESS2_PORT=${EXPRESS2_PORT:-3001}
PEER_SRC=${PEER_SRC:-/work/shared/peers/express}
BENCH_DURABLE=${BENCH_DURABLE:-0}
RATE=1000000000
JWT_SECRET_BENCH=bench-secret-0123456789abcdef
TOKEN_TTL=86400 # both servers: tokens outlive the run

BENCH_DIR=$TK_ROOT/bench
OUT=$TK_VAR/bench
LOGS=$OUT/logs
BIN=$TK_ROOT/build-bench/taskapi
BASE_REF=${BASE_REF:-main}
BASE_PORT=${BASE_PORT:-18903}
BASE_DIR=$OUT/base
CLK_TCK=$(getconf CLK_TCK)

install_traps
lock_checkout bench
mkdir -p "$OUT" "$LOGS"

# --------------------------------------------------------------- helpers ---

# The pids of process $1 and its children (the peer's cluster workers).
tree_pids() {
    local p
    printf '%s\n' "$1"
    for p in $(pgrep -P "$1" 2>/dev/null || true); do printf '%s\n' "$p"; done
}

# Sum of the RSS (kB, ps -o rss) of the given pids.
rss_kb() {
    local list
    list=$(tr '\n' ',' <<<"$*" | tr ' ' ',' | sed 's/,,*/,/g; s/^,//; s/,$//')
    [[ -n $list ]] || {
        echo 0
        return
    }
    ps -o rss= -p "$list" 2>/dev/null | awk '{ s += $1 } END { print s + 0 }'
}

# Sum of user+system CPU clock ticks of the given pids (threads included).
cpu_ticks() {
    local p total=0 stat f
    for p in "$@"; do
        stat=$(cat "/proc/$p/stat" 2>/dev/null) || continue
        stat=${stat##*) }
        read -ra f <<<"$stat"
        total=$((total + f[11] + f[12])) # fields 14 and 15 (utime, stime)
    done
    echo "$total"
}

# CPU clock ticks used by the PostgreSQL cluster we started, monotonic: the
# postmaster's own time, the time of the children it has reaped (cutime,
# cstime: backends that closed) and the time of the live children. Empty
# when DATABASE_URL points elsewhere.
pg_ticks() {
    local pm stat f
    [[ -n $TK_PG_DATA && -r $TK_PG_DATA/postmaster.pid ]] || return 0
    pm=$(head -n1 "$TK_PG_DATA/postmaster.pid")
    stat=$(cat "/proc/$pm/stat" 2>/dev/null) || return 0
    stat=${stat##*) }
    read -ra f <<<"$stat"
    # shellcheck disable=SC2046
    echo $((f[13] + f[14] + $(cpu_ticks $(pgrep -P "$pm" 2>/dev/null || true))))
}

# wait_http URL SECONDS: until URL answers 200.
wait_http() {
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        if [[ $(curl -s -o /dev/null -w '%{http_code}' "$1" 2>/dev/null) == 200 ]]; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# ---------------------------------------------------------- dependencies ---

section "Debian packages"
ensure_deps
printf 'wrk\nnginx-light\nlibnginx-mod-http-lua\n' >"$OUT/deps.txt"
TK_DEPS_FILE=$OUT/deps.txt ensure_deps
command -v wrk >/dev/null || die "wrk is not installed and could not be installed (Debian package wrk)"
command -v node >/dev/null || die "node is not installed (Debian packages nodejs npm)"

section "Build (Release) -> build-bench/taskapi"
build_taskapi build-bench taskapi -DCMAKE_BUILD_TYPE=Release >"$LOGS/build.log" 2>&1 ||
    {
        tail -n 30 "$LOGS/build.log" >&2
        die "the build failed (output above, all of it in $LOGS/build.log)"
    }
info "$("$BIN" version)"

if [[ " $TARGETS " == *" base "* ]]; then
    section "Build (Release) of base = $BASE_REF -> var/bench/base"
    build_release_at "$BASE_REF" "$BASE_DIR" "$LOGS/build-base.log" || die "no base build"
    base_sha=$TK_BUILT_SHA
    info "base: git ${base_sha:0:7} ($BASE_REF), $("$BASE_DIR/build/taskapi" version)"
fi

section "Peer: $PEER_SRC -> var/bench/express"
[[ -f $PEER_SRC/package-lock.json ]] || die "no peer in $PEER_SRC (set PEER_SRC)"
mkdir -p "$OUT/express"
find "$OUT/express" -mindepth 1 -maxdepth 1 ! -name node_modules -exec rm -rf {} +
cp -r "$PEER_SRC/." "$OUT/express/"
chmod -R u+w "$OUT/express"
lock_sum=$(sha256sum "$OUT/express/package-lock.json" | cut -c1-64)
if [[ ! -d $OUT/express/node_modules || $(cat "$OUT/express/node_modules/.bench-lock" 2>/dev/null) != "$lock_sum" ]]; then
    info "npm ci"
    (cd "$OUT/express" && npm ci --no-audit --no-fund >"$LOGS/npm-ci.log" 2>&1) ||
        {
            tail -n 30 "$LOGS/npm-ci.log" >&2
            die "npm ci failed (log above)"
        }
    printf '%s\n' "$lock_sum" >"$OUT/express/node_modules/.bench-lock"
else
    info "node_modules matches package-lock.json"
fi

# ------------------------------------------------------------ PostgreSQL ---

section "PostgreSQL"
if [[ -n ${DATABASE_URL:-} ]]; then
    _pg_find_bin
    TK_PG_URL=$(sed -E 's#^(postgres(ql)?://[^/]*).*#\1#' <<<"$DATABASE_URL")
    info "DATABASE_URL is set: databases go to $(redact_url "$TK_PG_URL") (no private PostgreSQL; no PostgreSQL CPU figures)"
    unset DATABASE_URL
else
    unset TASKAPI_PG_PORT # bin/run's variable; BENCH_PG_PORT is ours
    if [[ $BENCH_DURABLE == 1 ]]; then
        start_pg pg-bench "$BENCH_PG_PORT"
    else
        start_pg pg-bench "$BENCH_PG_PORT" ephemeral
    fi
fi
PG_VERSION=$("$TK_PG_BIN/psql" -X -tA -d "$TK_PG_URL/postgres" -c 'SHOW server_version' | cut -d' ' -f1)
PG_FSYNC=$("$TK_PG_BIN/psql" -X -tA -d "$TK_PG_URL/postgres" -c 'SHOW fsync')
create_db bench_taskapi fresh
TASKAPI_DB=$DATABASE_URL
unset DATABASE_URL
(cd "$TK_ROOT" && DATABASE_URL=$TASKAPI_DB "$BIN" migrate >"$LOGS/migrate.log" 2>&1) ||
    {
        cat "$LOGS/migrate.log" >&2
        die "taskapi migrate failed"
    }
info "bench_taskapi migrated"
if [[ " $TARGETS " == *" base "* ]]; then
    create_db bench_base fresh
    BASE_DB=$DATABASE_URL
    unset DATABASE_URL
    (cd "$BASE_DIR" && DATABASE_URL=$BASE_DB "$BASE_DIR/build/taskapi" migrate >"$LOGS/migrate-base.log" 2>&1) ||
        {
            cat "$LOGS/migrate-base.log" >&2
            die "taskapi migrate (base) failed"
        }
    info "bench_base migrated (base's migrations)"
fi
PEER_DB=$TK_PG_URL/peer_express
(cd "$OUT/express" && node setup-db.js --reset "$PEER_DB" >"$LOGS/peer-setup-db.log" 2>&1) ||
    {
        cat "$LOGS/peer-setup-db.log" >&2
        die "the peer's setup-db.js failed"
    }
info "peer_express recreated (schema.sql)"

# --------------------------------------------------------------- servers ---

declare -A PID URL LOG
STARTED=()

stop_servers() {
    local t
    for t in "${STARTED[@]}"; do
        [[ -n ${PID[$t]:-} ]] || continue
        info "stopping $t (pid ${PID[$t]})"
        stop_child "${PID[$t]}" 15 || true
        PID[$t]=''
    done
}
on_exit stop_servers

# A frozen copy of the scripts: other people's edits during the run can neither
# reload the server (WATCH_SCRIPTS=off) nor change what is measured.
rm -rf "$OUT/scripts"
cp -r "$TK_ROOT/scripts" "$OUT/scripts"

start_target() {
    local t=$1 port
    LOG[$t]=$LOGS/$t.log
    : >"${LOG[$t]}"
    case $t in
    taskapi)
        port=$TASKAPI_PORT
        ! port_busy "$port" || die "port $port is taken (set TASKAPI_PORT)"
        (cd "$TK_ROOT" && exec env -i PATH="$PATH" HOME="${HOME:-/root}" LANG=C.UTF-8 \
            PORT="$port" WS_PORT="$TASKAPI_WS_PORT" DATABASE_URL="$TASKAPI_DB" DB_POOL_SIZE=20 \
            ${TASKAPI_WORKERS:+WORKERS="$TASKAPI_WORKERS"} \
            JWT_SECRET="$JWT_SECRET_BENCH" ACCESS_TOKEN_TTL=$TOKEN_TTL \
            RATE_LIMIT_PER_MIN=$RATE AUTH_RATE_LIMIT_PER_MIN=$RATE \
            SCRIPTS_DIR="$OUT/scripts" WATCH_SCRIPTS=off PID_FILE="$OUT/taskapi.pid" \
            "$BIN" serve >>"${LOG[$t]}" 2>&1 9>&-) &
        ;;
    base)
        port=$BASE_PORT
        ! port_busy "$port" || die "port $port is taken (set BASE_PORT)"
        (cd "$BASE_DIR" && exec env -i PATH="$PATH" HOME="${HOME:-/root}" LANG=C.UTF-8 \
            PORT="$port" WS_PORT=$((port + 1)) DATABASE_URL="$BASE_DB" DB_POOL_SIZE=20 \
            ${TASKAPI_WORKERS:+WORKERS="$TASKAPI_WORKERS"} \
            JWT_SECRET="$JWT_SECRET_BENCH" ACCESS_TOKEN_TTL=$TOKEN_TTL \
            RATE_LIMIT_PER_MIN=$RATE AUTH_RATE_LIMIT_PER_MIN=$RATE \
            SCRIPTS_DIR="$BASE_DIR/scripts" WATCH_SCRIPTS=off PID_FILE="$OUT/base.pid" \
            "$BASE_DIR/build/taskapi" serve >>"${LOG[$t]}" 2>&1 9>&-) &
        ;;
    express | express2)
        if [[ $t == express ]]; then port=$EXPRESS_PORT; else port=$EXPRESS2_PORT; fi
        ! port_busy "$port" || die "port $port is taken (set ${t^^}_PORT)"
        (cd "$OUT/express" && exec env -i PATH="$PATH" HOME="${HOME:-/root}" LANG=C.UTF-8 \
            NODE_ENV=production PORT="$port" DATABASE_URL="$PEER_DB" DB_POOL_SIZE=20 \
            WORKERS="$([[ $t == express ]] && echo 1 || echo 2)" \
            JWT_SECRET="$JWT_SECRET_BENCH" ACCESS_TOKEN_TTL=$TOKEN_TTL \
            RATE_LIMIT_PER_MIN=$RATE AUTH_RATE_LIMIT_PER_MIN=$RATE \
            node app.js >>"${LOG[$t]}" 2>&1 9>&-) &
        ;;
    nginx)
        port=${NGINX_PORT:-18902}
        ! port_busy "$port" || die "port $port is taken (set NGINX_PORT)"
        mkdir -p "$OUT/nginx"
        cat >"$OUT/nginx/nginx.conf" <<NGINX
# Written by bench/run.sh: one worker answering GET /health/live with a Lua
# constant, access log on (taskapi logs every request too).
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
worker_processes 1;
daemon off;
pid $OUT/nginx/nginx.pid;
error_log ${LOG[$t]};
events { worker_connections 4096; }
http {
    access_log ${LOG[$t]}.access;
    server {
        listen 127.0.0.1:$port;
        location = /health/live {
            default_type application/json;
            content_by_lua_block { ngx.print('{"status":"ok"}') }
        }
    }
}
NGINX
        (exec nginx -p "$OUT/nginx" -c "$OUT/nginx/nginx.conf" -e "${LOG[$t]}" >>"${LOG[$t]}" 2>&1 9>&-) &
        ;;
    *) die "unknown target $t (taskapi, base, express, express2, nginx)" ;;
    esac
    PID[$t]=$!
    URL[$t]=http://127.0.0.1:$port
    STARTED+=("$t")
    wait_http "${URL[$t]}/health/live" 30 || {
        tail -n 20 "${LOG[$t]}" >&2
        die "$t did not answer on ${URL[$t]}/health/live (log above)"
    }
    info "$t: ${URL[$t]} (pid ${PID[$t]}, log ${LOG[$t]#"$TK_ROOT"/})"
}

section "Servers"
for t in $TARGETS; do start_target "$t"; done
sleep 2
declare -A RSS_START RSS_IDLE RSS_END
for t in $TARGETS; do RSS_START[$t]=$(rss_kb "$(tree_pids "${PID[$t]}")"); done

# ----------------------------------------------------------- seed, check ---

section "Seed (bench/seed.js, through each API)"
declare -A SEED
for t in $TARGETS; do
    case $t in
    express2)
        [[ " $TARGETS " == *" express "* ]] && continue # same database as express
        ;;
    nginx) continue ;; # answers /health/live only
    esac
    SEED[$t]=$OUT/seed-$t.json
    node "$BENCH_DIR/seed.js" "${URL[$t]}" "${SEED[$t]}" "$TASKS" || die "seeding $t failed"
done
if [[ " $TARGETS " == *" express2 "* ]]; then
    if [[ -n ${SEED[express]:-} ]]; then
        # same database and JWT secret: express's token and ids serve express2
        node -e 'const s = require(process.argv[1]); s.base = process.argv[2]; require("fs").writeFileSync(process.argv[3], JSON.stringify(s))' \
            "${SEED[express]}" "${URL[express2]}" "$OUT/seed-express2.json"
        cp "$OUT/seed-express.ids" "$OUT/seed-express2.ids"
        SEED[express2]=$OUT/seed-express2.json
    fi
fi

# Fresh planner statistics in both databases (autovacuum would get there at
# some random point of the run otherwise).
for db in bench_taskapi peer_express ${BASE_DB:+bench_base}; do
    "$TK_PG_BIN/psql" -X -q -d "$TK_PG_URL/$db" -c 'VACUUM ANALYZE' || die "VACUUM ANALYZE $db failed"
done

section "Sanity check: the same shapes and data on both"
SANITY=skipped
first=${TARGETS%% *}
if [[ " $TARGETS " == *" taskapi "* && $first != taskapi ]]; then
    if node "$BENCH_DIR/check.js" "${SEED[$first]}" "${SEED[taskapi]}" | tee "$OUT/sanity.txt"; then
        SANITY=ok
    else
        SANITY=DIFFERENCES
        warn "the servers differ (above); the figures compare different work"
    fi
fi
if [[ -n ${SEED[express2]:-} ]]; then
    # express2 serves express's database: check it answers like express
    node -e 'fetch(process.argv[1] + "/api/v1/auth/me", {headers: {authorization: "Bearer " + require(process.argv[2]).token}})
             .then(r => process.exit(r.status === 200 ? 0 : 1), () => process.exit(1))' \
        "${URL[express2]}" "${SEED[express2]}" || die "express2 does not accept the seeded token"
fi

sleep 2
for t in $TARGETS; do RSS_IDLE[$t]=$(rss_kb "$(tree_pids "${PID[$t]}")"); done

# ------------------------------------------------------------- scenarios ---

# Counts answers by status in the log lines written since byte offset $2 of
# log $1: "200:1234 409:2". taskapi writes "... GET /path 200 1.2ms", the peer
# Winston JSON with "status":200.
status_counts() {
    tail -c +"$(($2 + 1))" "$1" |
        { grep -oE '"status":[0-9]{3}|(GET|POST|PATCH|DELETE|PUT|HEAD|OPTIONS) [^ ]+ [0-9]{3} [0-9.]+ms' || true; } |
        sed -E 's/^"status":([0-9]{3})$/\1/; s/^[A-Z]+ [^ ]+ ([0-9]{3}) .*/\1/' |
        sort | uniq -c | awk '{ printf "%s%s:%s", (n++ ? " " : ""), $2, $1 } END { if (!n) printf "-" }'
}

# Log lines at warn or error level written since offset $2 of log $1
# (taskapi: "<ts> error <request id> message"; the peer: "level":"error").
error_lines() {
    tail -c +"$(($2 + 1))" "$1" | grep -E '"level":"(warn|error)"|^[0-9T:.-]+Z (warn |error) ' || true
}

declare -A TOKEN PROJECT QUERY
for t in $TARGETS; do
    [[ -n ${SEED[$t]:-} ]] || continue # nginx
    read -r "TOKEN[$t]" "PROJECT[$t]" "QUERY[$t]" < <(node -e 'const s = require(process.argv[1]);
        console.log(s.token, s.projectId, encodeURIComponent(s.searchQuery))' "${SEED[$t]}")
done

RESULTS=$OUT/results.tsv
printf 'scenario\ttarget\trps\tp50_ms\tp99_ms\tmax_ms\trequests\tnon2xx\tsock_errors\tbytes_per_resp\tsrv_cpu_us_per_req\tpg_cpu_us_per_req\twrk_cpu_s\trss_max_mb\tstatuses\n' >"$RESULTS"

run_wrk() { # run_wrk TARGET SCENARIO SECONDS OUTFILE
    local t=$1 sc=$2 secs=$3 out=$4
    BENCH_LUA_DIR=$BENCH_DIR/lua BENCH_TOKEN=${TOKEN[$t]:-} BENCH_PROJECT=${PROJECT[$t]:-} \
        BENCH_IDS=${SEED[$t]:+${SEED[$t]%.json}.ids} BENCH_QUERY=${QUERY[$t]:-} BENCH_THREADS=$THREADS \
        /usr/bin/time -f '%U %S' -o "$out.time" \
        wrk -t"$THREADS" -c"$CONNECTIONS" -d"${secs}s" --timeout "$WRK_TIMEOUT" --latency \
        -s "$BENCH_DIR/lua/$sc.lua" "${URL[$t]}" >"$out" 2>&1
}

KEEP_PID=''
stop_keep() { [[ -z $KEEP_PID ]] || kill "$KEEP_PID" 2>/dev/null || true; }

SAMPLER_PID=''
stop_sampler() {
    [[ -n $SAMPLER_PID ]] || return 0
    kill "$SAMPLER_PID" 2>/dev/null || true
    wait "$SAMPLER_PID" 2>/dev/null || true
    SAMPLER_PID=''
}
on_exit stop_sampler

section "Benchmark: $DURATION s per run after $WARMUP s warm-up, wrk -t$THREADS -c$CONNECTIONS"
STARTED_AT=$(date -u '+%Y-%m-%d %H:%M UTC')
LOADAVG_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
declare -A RSS_LOAD
for sc in $SCENARIOS; do
    [[ -f $BENCH_DIR/lua/$sc.lua ]] || die "no scenario bench/lua/$sc.lua"
    for t in $TARGETS; do
        [[ $t != nginx || $sc == health ]] || continue # nginx is the ceiling of /health/live only
        pid_alive "${PID[$t]}" || die "$t (pid ${PID[$t]}) is gone; see ${LOG[$t]}"
        raw=$OUT/raw-$sc-$t
        run_wrk "$t" "$sc" "$WARMUP" "$raw.warmup" || true

        pids=$(tree_pids "${PID[$t]}")
        # shellcheck disable=SC2086
        (while :; do rss_kb $pids; sleep 0.5; done) >"$raw.rss" 2>/dev/null 9>&- &
        SAMPLER_PID=$!
        log_off=$(stat -c %s "${LOG[$t]}")
        # shellcheck disable=SC2086
        cpu0=$(cpu_ticks $pids) pg0=$(pg_ticks)
        rc=0
        run_wrk "$t" "$sc" "$DURATION" "$raw.txt" || rc=$?
        # shellcheck disable=SC2046
        cpu1=$(cpu_ticks $(tree_pids "${PID[$t]}")) pg1=$(pg_ticks)
        stop_sampler
        sleep 0.3 # the last access-log lines
        ((rc == 0)) || {
            cat "$raw.txt" >&2
            die "wrk failed for $sc on $t"
        }
        line=$(grep '^BENCH ' "$raw.txt" | tail -n1)
        [[ -n $line ]] || {
            cat "$raw.txt" >&2
            die "no BENCH line from wrk for $sc on $t"
        }
        declare -A r=()
        for kv in ${line#BENCH }; do r[${kv%%=*}]=${kv#*=}; done
        statuses=$(status_counts "${LOG[$t]}" "$log_off")
        error_lines "${LOG[$t]}" "$log_off" >"$raw.errors"
        rss_max=$(sort -n "$raw.rss" | tail -n1)
        RSS_LOAD[$t]=$(((${RSS_LOAD[$t]:-0} > ${rss_max:-0}) ? ${RSS_LOAD[$t]:-0} : ${rss_max:-0}))
        read -r wu ws <"$raw.txt.time" || true
        sockerr=$((r[connect] + r[read] + r[write] + r[timeout]))
        pg_us='-'
        if [[ -n $pg0 && -n $pg1 ]]; then
            pg_us=$(awk -v d=$((pg1 - pg0)) -v n="${r[requests]}" -v hz="$CLK_TCK" 'BEGIN { printf "%.0f", n ? d / hz * 1e6 / n : 0 }')
        fi
        awk -v sc="$sc" -v t="$t" -v n="${r[requests]}" -v us="${r[duration_us]}" -v p50="${r[p50_us]}" \
            -v p99="${r[p99_us]}" -v mx="${r[max_us]}" -v st="${r[status]}" -v se="$sockerr" -v by="${r[bytes]}" \
            -v cpu=$((cpu1 - cpu0)) -v hz="$CLK_TCK" -v pg="$pg_us" -v wcpu="$(awk -v a="${wu:-0}" -v b="${ws:-0}" 'BEGIN { print a + b }')" \
            -v rss="${rss_max:-0}" -v stc="$statuses" 'BEGIN {
                printf "%s\t%s\t%.0f\t%.2f\t%.2f\t%.1f\t%d\t%d\t%d\t%.0f\t%.0f\t%s\t%.1f\t%.1f\t%s\n",
                    sc, t, n / (us / 1e6), p50 / 1000, p99 / 1000, mx / 1000, n, st, se, n ? by / n : 0,
                    n ? cpu / hz * 1e6 / n : 0, pg, wcpu, rss / 1024, stc }' >>"$RESULTS"
        tail -n1 "$RESULTS" | awk -F'\t' '{ printf "    %-7s %-9s %8s req/s  p50 %6s ms  p99 %7s ms  non-2xx %s  socket errors %s  [%s]\n", $1, $2, $3, $4, $5, $8, $9, $15 }'
        if [[ -s $raw.errors ]]; then
            warn "$t logged $(wc -l <"$raw.errors") error line(s) during $sc; first ones:"
            head -n 3 "$raw.errors" | cut -c1-300 >&2
        fi
    done
done
LOADAVG_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
for t in $TARGETS; do RSS_END[$t]=$(rss_kb "$(tree_pids "${PID[$t]}")"); done

# ----------------------------------------------------------------- table ---

section "Results"
REPORT=$OUT/results.md
{
    # shellcheck disable=SC2016 # the backquotes are Markdown
    printf 'Run of %s: `bench/run.sh` (DURATION=%s WARMUP=%s THREADS=%s CONNECTIONS=%s)\n\n' \
        "$STARTED_AT" "$DURATION" "$WARMUP" "$THREADS" "$CONNECTIONS"
    printf -- '- machine: %s CPUs (%s), %s, load average before/after: %s / %s\n' "$(nproc)" \
        "$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n1)" "$(uname -sr)" "$LOADAVG_BEFORE" "$LOADAVG_AFTER"
    printf -- '- taskapi %s (%s, git %s%s), PostgreSQL %s (fsync=%s), node %s, wrk %s\n' \
        "$("$BIN" version | awk '{ print $NF }')" "Release build" "$(git -C "$TK_ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')" \
        "$(git -C "$TK_ROOT" diff --quiet HEAD -- scripts runtime 2>/dev/null || echo ' + uncommitted changes')" \
        "$PG_VERSION" "$PG_FSYNC" "$(node --version)" "$(wrk -v 2>&1 | head -n1 | awk '{ print $2 }')"
    printf -- '- sanity check (same shapes and data): %s\n\n' "$SANITY"
    printf '| scenario | server | req/s | p50 ms | p99 ms | non-2xx | sock err | B/resp | server CPU µs/req | PG CPU µs/req | RSS max MB | taskapi ÷ this, req/s | this ÷ taskapi, server CPU/req |\n'
    printf '|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n'
    awk -F'\t' 'NR > 1 { row[NR] = $0; rps[$1, $2] = $3; cpu[$1, $2] = $11; last = NR }
        END {
            for (i = 2; i <= last; i++) {
                split(row[i], f, "\t")
                ratio = "—"; cratio = "—"
                if (f[2] != "taskapi" && ((f[1], "taskapi") in rps) && f[3] > 0) {
                    ratio = sprintf("**%.2f×**", rps[f[1], "taskapi"] / f[3])
                    if (cpu[f[1], "taskapi"] > 0) cratio = sprintf("%.1f×", f[11] / cpu[f[1], "taskapi"])
                }
                printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
                    f[1], f[2], f[3], f[4], f[5], f[8], f[9], f[10], f[11], f[12], f[14], ratio, cratio
            }
        }' "$RESULTS"
    printf '\nRSS (MB, ps -o rss; the peer with WORKERS=2 is the primary + 2 workers):\n\n'
    printf '| server | after start | idle after seeding | max under load | at the end |\n|---|--:|--:|--:|--:|\n'
    for t in $TARGETS; do
        awk -v t="$t" -v a="${RSS_START[$t]}" -v b="${RSS_IDLE[$t]}" -v c="${RSS_LOAD[$t]:-0}" -v d="${RSS_END[$t]}" \
            'BEGIN { printf "| %s | %.1f | %.1f | %.1f | %.1f |\n", t, a / 1024, b / 1024, c / 1024, d / 1024 }'
    done
} >"$REPORT"
cat "$REPORT"
printf '\n'
info "raw wrk output: var/bench/raw-*; rows: var/bench/results.tsv; this table: var/bench/results.md"

if [[ ${KEEP:-0} == 1 ]]; then
    section "KEEP=1: the servers keep running until Ctrl-C"
    for t in $TARGETS; do info "$t: ${URL[$t]}  (pid ${PID[$t]}; seed ${SEED[$t]#"$TK_ROOT"/})"; done
    info "token: Authorization: Bearer \$(node -p 'require(\"./var/bench/seed-taskapi.json\").token')"
    sleep infinity 9>&- &
    KEEP_PID=$!
    on_exit stop_keep
    wait "$KEEP_PID" || true
fi
