#!/usr/bin/env bash
# Realtime benchmark of taskapi (Socket.IO fan-out latency, memory per idle
# connection, soak), each run once without and once with Redis (REDIS_URL):
#
#   bench/realtime/run.sh          fan-out + memory (about 2 min)
#   bench/realtime/run.sh soak     soak: SOAK_SECS (600) of SOAK_RATE (10) writes/s each (about 22 min)
#   bench/realtime/run.sh all      both
#
# It builds build/taskapi if needed, uses a private PostgreSQL (var/pg-rtbench,
# a fresh database per invocation) unless DATABASE_URL is set, a private Redis
# (var/redis-rtbench), raises `ulimit -n`, starts taskapi with raised rate
# limits for each run, runs bench/realtime/fanout.js, stops everything.
# Results: var/rtbench/<time>-<mode>-redis-<off|on>.json (+ .log of the
# server), and a markdown table at the end. Exit status 1 if any run missed
# deliveries, lost connections or failed. This machine is shared: each run
# waits for a quiet CPU first, and a fan-out run during which other jobs took
# more than DISTURBED_PCT (10) % of a core is repeated (TRIES, 3).
#
# Knobs (environment): REDIS_MODES ("off on"), CLIENTS (1000), USERS (10),
# CLIENT (socket.io-client; raw: a hand-framed `ws` client, for comparison),
# CHILDREN (4), ROUNDS (200), WARMUP (10), RATE (20), SOAK_SECS (600),
# SOAK_RATE (10), SAMPLE_SECS (10), WORKERS (16), TASKAPI_BIN (build/taskapi,
# then no build), SKIP_BUILD=1, PORT (first port tried, 19000),
# TASKAPI_PG_PORT (19050), TASKAPI_REDIS_PORT (19060), NOFILE (8192),
# QUIET_BUSY (25) / QUIET_WAIT (300): wait for the machine to be quiet first,
# DISTURBED_PCT (10), TRIES (3).
# Functions below run from traps: shellcheck cannot see the calls.
# shellcheck disable=SC2317
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=bin/lib/common.sh
source bin/lib/common.sh

usage() { sed -n '2,26s/^# \{0,1\}//p' "$0"; }

case ${1:-fanout} in
fanout) MODES=(fanout) ;;
soak) MODES=(soak) ;;
all) MODES=(fanout soak) ;;
-h | --help | help)
    usage
    exit 0
    ;;
*)
    usage >&2
    exit 2
    ;;
esac
read -r -a REDIS_MODES <<<"${REDIS_MODES:-off on}"

install_traps
lock_checkout rtbench

OUT=$TK_VAR/rtbench
mkdir -p "$OUT"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)

section "Limits"
want=${NOFILE:-8192}
if (($(ulimit -n) < want)); then
    ulimit -n "$want" 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
fi
(($(ulimit -n) >= 4096)) || die "ulimit -n is $(ulimit -n) and cannot be raised to 4096 (hard limit $(ulimit -Hn))"
info "ulimit -n $(ulimit -n) (taskapi and the clients inherit it)"

section "Build"
BIN=${TASKAPI_BIN:-}
if [[ -z $BIN ]]; then
    BIN=$TK_ROOT/build/taskapi
    if [[ ${SKIP_BUILD:-0} != 1 ]]; then
        if [[ ! -f $TK_ROOT/build/CMakeCache.txt ]]; then
            cmake -S "$TK_ROOT" -B "$TK_ROOT/build" -DCMAKE_BUILD_TYPE=Release
        fi
        cmake --build "$TK_ROOT/build" --target taskapi -j"$(nproc)" || die "the build failed (output above)"
    fi
    info "build type: $(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$TK_ROOT/build/CMakeCache.txt" 2>/dev/null)"
fi
[[ -x $BIN ]] || die "$BIN is not an executable"
info "$BIN ($("$BIN" version 2>/dev/null || echo '?'))"

section "Node client"
command -v node >/dev/null 2>&1 || die "node not found (Node.js 20+)"
if [[ ! -f bench/realtime/node_modules/socket.io-client/package.json || ! -f bench/realtime/node_modules/ws/package.json ]]; then
    npm ci --prefix bench/realtime --no-audit --no-fund
fi
info "node $(node --version), socket.io-client $(node -p 'require("./bench/realtime/node_modules/socket.io-client/package.json").version')"

section "PostgreSQL"
setup_database pg-rtbench 19050 rtbench fresh
migrate_db "$BIN" >/dev/null || die "the migrations failed"

REDIS_URL_FOR_RUNS=''
for r in "${REDIS_MODES[@]}"; do
    case $r in
    on)
        if [[ -z $REDIS_URL_FOR_RUNS ]]; then
            section "Redis"
            start_redis redis-rtbench 19060
            REDIS_URL_FOR_RUNS=$TEST_REDIS_URL
        fi
        ;;
    off) ;;
    *) die "REDIS_MODES takes off and on, not '$r'" ;;
    esac
done

TK_SERVER_PID=''
stop_server() {
    local rc=0
    [[ -n $TK_SERVER_PID ]] || return 0
    stop_child "$TK_SERVER_PID" 30 || rc=$?
    TK_SERVER_PID=''
    return "$rc"
}
on_exit stop_server

# start_server LOG [REDIS_URL]: taskapi on free ports (HTTP_PORT, WS_PORT set).
start_server() {
    local log=$1 redis=${2:-} i
    HTTP_PORT=$(free_port "${PORT:-19000}")
    WS_PORT_=$(free_port $((HTTP_PORT + 1)))
    env PORT="$HTTP_PORT" WS_PORT="$WS_PORT_" DATABASE_URL="$DATABASE_URL" \
        REDIS_URL="$redis" \
        JWT_SECRET="rtbench-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')" \
        RATE_LIMIT_PER_MIN=10000000 AUTH_RATE_LIMIT_PER_MIN=100000 \
        ACCESS_TOKEN_TTL=7200 WORKERS="${WORKERS:-16}" LOG_LEVEL=warn WATCH_SCRIPTS=off \
        WS_MAX_PENDING_PER_IP=0 WS_MAX_CONN_PER_IP=0 WS_MAX_CONN_PER_USER=0 \
        PID_FILE="$OUT/taskapi.pid" \
        "$BIN" serve >"$log" 2>&1 9>&- &
    TK_SERVER_PID=$!
    for ((i = 0; i < 200; i++)); do
        pid_alive "$TK_SERVER_PID" || {
            tail -n 30 "$log" >&2
            die "taskapi exited at start (log above: $log)"
        }
        curl -fsS "http://127.0.0.1:$HTTP_PORT/health" >/dev/null 2>&1 && port_busy "$WS_PORT_" && return 0
        sleep 0.1
    done
    die "taskapi did not answer /health within 20 s (log: $log)"
}

# CPU busy share of the whole machine over one second, percent (/proc/stat).
cpu_busy() {
    local a b
    read -r -a a < <(head -n1 /proc/stat)
    sleep 1
    read -r -a b < <(head -n1 /proc/stat)
    local busy=$(((b[1] + b[2] + b[3] + b[6] + b[7]) - (a[1] + a[2] + a[3] + a[6] + a[7])))
    local idle=$(((b[4] + b[5]) - (a[4] + a[5])))
    echo $((100 * busy / (busy + idle > 0 ? busy + idle : 1)))
}

# This machine is shared: wait (QUIET_WAIT seconds at most, default 300) for a
# second in which the CPUs are less than QUIET_BUSY percent (25) busy, so that
# another job's load does not end up in the latency figures.
wait_quiet() {
    local deadline=$((SECONDS + ${QUIET_WAIT:-300})) busy
    while :; do
        busy=$(cpu_busy)
        if ((busy < ${QUIET_BUSY:-25})); then
            info "machine CPU busy ${busy}% before the run"
            return 0
        fi
        if ((SECONDS >= deadline)); then
            warn "the machine is still ${busy}% busy (other jobs); measuring anyway, the figures will show it"
            return 0
        fi
        sleep 4
    done
}

# run_one MODE REDIS(off|on) BASE: one server, one fanout.js run; sets run_rc
# (0 fine, 1 failed or missed deliveries, 3 disturbed by other jobs).
run_one() {
    local mode=$1 r=$2 base=$3 redis='' label='no Redis'
    if [[ $r == on ]]; then redis=$REDIS_URL_FOR_RUNS label='Redis'; fi
    start_server "$base.log" "$redis"
    info "taskapi pid $TK_SERVER_PID on :$HTTP_PORT (WS :$WS_PORT_), $(curl -fsS "http://127.0.0.1:$HTTP_PORT/health")"
    wait_quiet
    info "loadavg before: $(cat /proc/loadavg)"
    run_rc=0
    TASKAPI_URL=http://127.0.0.1:$HTTP_PORT TASKAPI_WS_URL=ws://127.0.0.1:$WS_PORT_ \
        TASKAPI_PID=$TK_SERVER_PID LABEL=$label \
        node bench/realtime/fanout.js "$mode" "$base.json" 9>&- || run_rc=$?
    if ! pid_alive "$TK_SERVER_PID"; then
        warn "taskapi died during the run (log: $base.log)"
        tail -n 30 "$base.log" >&2 || true
        run_rc=1
    fi
    stop_server || warn "taskapi exited with status $? at shutdown (log: $base.log)"
    if grep -Eiq 'error|fatal|abort' "$base.log"; then
        warn "the server log has errors worth a look: $base.log"
        grep -Ei 'error|fatal|abort' "$base.log" | head -n 5 >&2
    fi
}

RESULTS=()
rc=0
for mode in "${MODES[@]}"; do
    for r in "${REDIS_MODES[@]}"; do
        base=$OUT/$STAMP-$mode-redis-$r
        for ((try = 1; ; try++)); do
            if ((try == 1)); then section "$mode, Redis $r"; else section "$mode, Redis $r (attempt $try)"; fi
            run_one "$mode" "$r" "$base"
            # A fan-out run that other jobs disturbed is repeated (TRIES, default 3).
            if ((run_rc == 3)) && [[ $mode == fanout ]] && ((try < ${TRIES:-3})); then
                warn "other jobs used the CPU during the run; keeping it as $base.try$try.json and measuring again"
                mv "$base.json" "$base.try$try.json"
                sleep 10
                continue
            fi
            break
        done
        case $run_rc in
        0) ;;
        3) warn "$mode (Redis $r): other jobs used the CPU during the run; its figures include their load" ;;
        *)
            warn "$mode (Redis $r) failed or missed deliveries (status $run_rc)"
            rc=1
            ;;
        esac
        [[ -f $base.json ]] && RESULTS+=("$base.json")
    done
done

section "Results ($(date -u +%FT%TZ), $(nproc) cores, results in ${OUT#"$TK_ROOT"/})"
((${#RESULTS[@]} == 0)) || node bench/realtime/fanout.js table "${RESULTS[@]}"
exit "$rc"
