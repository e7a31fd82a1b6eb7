#!/usr/bin/env bash
# CPU profile of one benchmark scenario, kept as files and flame graphs:
#
#   bench/profile.sh [SCENARIO]        # list (default), get, create, ... (bench/lua/*.lua)
#
# 1. installs wrk and perf (linux-perf) if missing, builds build-profile/taskapi
#    (RelWithDebInfo: optimised, with symbols and frame pointers);
# 2. starts a private PostgreSQL in var/pg-profile (fsync off unless
#    BENCH_DURABLE=1), recreates the database bench_profile and seeds it
#    through the API with bench/seed.js (TASKS tasks), as bench/run.sh does;
# 3. pass 1, C frames: taskapi as bench/run.sh runs it, wrk drives the
#    scenario (WARMUP s discarded, then DURATION s) while `perf record` samples
#    the server (call graphs: PERF_CALLGRAPH, default dwarf: Debian's liblua
#    has no frame pointers). Server CPU per request is measured as in run.sh;
# 4. pass 2, Lua frames: the same server restarted with TASKAPI_LUA_PROFILE
#    (folded Lua stacks, file:line), same load; pass 3, stages: restarted
#    with TASKAPI_TRACE_STAGES alone (one line of stage times per request);
# 5. renders both profiles as flame graphs (bench/flame/flame.py: SVG; PNG
#    through headless chromium) and prints the per-request breakdown, the top
#    Lua lines and the top C functions (also in var/profile/SCENARIO/summary.md).
#
# Everything lands in var/profile/SCENARIO/: perf.data, c.folded, lua.folded,
# stages.tsv, c.svg/.png, lua.svg/.png, summary.md, logs.
#
# Environment (defaults in brackets): DURATION [10] WARMUP [2] THREADS [1]
#   CONNECTIONS [16] STAGE_CONNECTIONS [1] (pass 3) TASKS [1000] PERF_FREQ [499] PERF_CALLGRAPH [dwarf]
#   (or fp) PROFILE_HZ [1000] (Lua samples per CPU second per worker)
#   PROFILE_PG_PORT [18930] TASKAPI_PORT [18931] TASKAPI_WS_PORT [18932]
#   TASKAPI_WORKERS [taskapi's default] BENCH_DURABLE [0]
#   PNG_WIDTH [1200]
# Functions below run from traps: shellcheck cannot see the calls.
# shellcheck disable=SC2317
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bin/lib/common.sh
source bin/lib/common.sh

SCENARIO=${1:-list}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
THREADS=${THREADS:-1}
CONNECTIONS=${CONNECTIONS:-16}
STAGE_CONNECTIONS=${STAGE_CONNECTIONS:-1}
TASKS=${TASKS:-1000}
PERF_FREQ=${PERF_FREQ:-499}
PERF_CALLGRAPH=${PERF_CALLGRAPH:-dwarf}
PROFILE_HZ=${PROFILE_HZ:-1000}
PROFILE_PG_PORT=${PROFILE_PG_PORT:-18930}
TASKAPI_PORT=${TASKAPI_PORT:-18931}
TASKAPI_WS_PORT=${TASKAPI_WS_PORT:-18932}
BENCH_DURABLE=${BENCH_DURABLE:-0}
PNG_WIDTH=${PNG_WIDTH:-1200}
JWT_SECRET_BENCH=bench-secret-0123456789abcdef

BENCH_DIR=$TK_ROOT/bench
FLAME="python3 $BENCH_DIR/flame/flame.py"
OUT=$TK_VAR/profile/$SCENARIO
BIN=$TK_ROOT/build-profile/taskapi
CLK_TCK=$(getconf CLK_TCK)
URL=http://127.0.0.1:$TASKAPI_PORT

[[ -f $BENCH_DIR/lua/$SCENARIO.lua ]] || die "no scenario bench/lua/$SCENARIO.lua (list, get, create, ...)"
install_traps
lock_checkout profile
rm -rf "$OUT"
mkdir -p "$OUT/logs"

# Sum of user+system CPU clock ticks of process $1 (all its threads).
cpu_ticks() {
    local stat f
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || {
        echo 0
        return
    }
    stat=${stat##*) }
    read -ra f <<<"$stat"
    echo $((f[11] + f[12]))
}

wait_http() { # URL SECONDS
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        [[ $(curl -s -o /dev/null -w '%{http_code}' "$1" 2>/dev/null) == 200 ]] && return 0
        sleep 0.1
    done
    return 1
}

# ---------------------------------------------------------- dependencies ---

section "Debian packages"
ensure_deps
# perf: Debian's linux-perf; chromium (in bin/lib/deps.txt) turns SVG into PNG
printf 'wrk\nlinux-perf\n' >"$OUT/deps.txt"
TK_DEPS_FILE=$OUT/deps.txt ensure_deps
command -v wrk >/dev/null || die "wrk is not installed (Debian package wrk)"
command -v node >/dev/null || die "node is not installed (Debian packages nodejs npm)"

section "Build (RelWithDebInfo) -> build-profile/taskapi"
build_taskapi build-profile taskapi -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$OUT/logs/build.log" 2>&1 ||
    {
        tail -n 30 "$OUT/logs/build.log" >&2
        die "the build failed (all of it in $OUT/logs/build.log)"
    }
info "$("$BIN" version)"

# ------------------------------------------------------------ PostgreSQL ---

section "PostgreSQL"
unset TASKAPI_PG_PORT DATABASE_URL
if [[ $BENCH_DURABLE == 1 ]]; then
    start_pg pg-profile "$PROFILE_PG_PORT"
else
    start_pg pg-profile "$PROFILE_PG_PORT" ephemeral
fi
create_db bench_profile fresh
DB=$DATABASE_URL
unset DATABASE_URL
DATABASE_URL=$DB "$BIN" migrate >"$OUT/logs/migrate.log" 2>&1 || {
    cat "$OUT/logs/migrate.log" >&2
    die "taskapi migrate failed"
}

# ---------------------------------------------------------------- server ---

rm -rf "$OUT/scripts"
cp -r "$TK_ROOT/scripts" "$OUT/scripts" # frozen: edits during the run change nothing
SERVER_PID=''
stop_server() {
    [[ -n $SERVER_PID ]] || return 0
    stop_child "$SERVER_PID" 30 || true
    SERVER_PID=''
}
on_exit stop_server

start_server() { # LOG [VAR=VALUE...]: taskapi as bench/run.sh starts it, plus the given variables
    local log=$1
    shift
    ! port_busy "$TASKAPI_PORT" || die "port $TASKAPI_PORT is taken (set TASKAPI_PORT)"
    env -i PATH="$PATH" HOME="${HOME:-/root}" LANG=C.UTF-8 \
        PORT="$TASKAPI_PORT" WS_PORT="$TASKAPI_WS_PORT" DATABASE_URL="$DB" DB_POOL_SIZE=20 \
        ${TASKAPI_WORKERS:+WORKERS="$TASKAPI_WORKERS"} \
        JWT_SECRET="$JWT_SECRET_BENCH" ACCESS_TOKEN_TTL=86400 \
        RATE_LIMIT_PER_MIN=1000000000 AUTH_RATE_LIMIT_PER_MIN=1000000000 \
        SCRIPTS_DIR="$OUT/scripts" WATCH_SCRIPTS=off PID_FILE="$OUT/taskapi.pid" "$@" \
        "$BIN" serve >"$log" 2>&1 9>&- &
    SERVER_PID=$!
    wait_http "$URL/health/live" 30 || {
        tail -n 20 "$log" >&2
        die "taskapi did not answer on $URL/health/live (log above)"
    }
}

run_wrk() { # SECONDS OUTFILE [CONNECTIONS]
    local conns=${3:-$CONNECTIONS}
    BENCH_LUA_DIR=$BENCH_DIR/lua BENCH_TOKEN=$TOKEN BENCH_PROJECT=$PROJECT \
        BENCH_IDS=$OUT/seed.ids BENCH_QUERY=$QUERY BENCH_THREADS=$THREADS \
        wrk -t"$THREADS" -c"$conns" -d"${1}s" --timeout 5s --latency \
        -s "$BENCH_DIR/lua/$SCENARIO.lua" "$URL" >"$2" 2>&1
}

# "req/s µs-of-server-CPU-per-request" of the measured wrk run in $1 (its
# BENCH line) and the CPU ticks $2 -> $3.
rate_line() {
    local line n us
    line=$(grep '^BENCH ' "$1" | tail -n1) || die "no BENCH line from wrk ($1)"
    n=$(sed -E 's/.*requests=([0-9]+).*/\1/' <<<"$line")
    us=$(sed -E 's/.*duration_us=([0-9]+).*/\1/' <<<"$line")
    awk -v n="$n" -v us="$us" -v d=$(($3 - $2)) -v hz="$CLK_TCK" \
        'BEGIN { printf "%.0f %.0f %d\n", n / (us / 1e6), n ? d / hz * 1e6 / n : 0, n }'
}

section "Seed (bench/seed.js, $TASKS tasks)"
start_server "$OUT/logs/seed.log"
node "$BENCH_DIR/seed.js" "$URL" "$OUT/seed.json" "$TASKS" >"$OUT/logs/seed-out.log" 2>&1 || {
    cat "$OUT/logs/seed-out.log" >&2
    die "seeding failed"
}
read -r TOKEN PROJECT QUERY < <(node -e 'const s = require(process.argv[1]);
    console.log(s.token, s.projectId, encodeURIComponent(s.searchQuery))' "$OUT/seed.json")
"$TK_PG_BIN/psql" -X -q -d "$DB" -c 'VACUUM ANALYZE' || die "VACUUM ANALYZE failed"
stop_server

# ------------------------------------------------------- pass 1: C (perf) ---

section "Pass 1: perf record of the server under $SCENARIO (wrk -t$THREADS -c$CONNECTIONS, ${DURATION}s)"
start_server "$OUT/logs/taskapi-perf.log"
run_wrk "$WARMUP" "$OUT/wrk-warmup.txt" || true
PERF_OK=0
PERF_NOTE=''
cpu0=$(cpu_ticks "$SERVER_PID")
case $PERF_CALLGRAPH in
dwarf) cg=(--call-graph 'dwarf,16384') ;;
*) cg=(-g) ;;
esac
if command -v perf >/dev/null; then
    perf record -F "$PERF_FREQ" "${cg[@]}" -p "$SERVER_PID" -o "$OUT/perf.data" \
        -- sleep "$((DURATION + 1))" >"$OUT/logs/perf-record.log" 2>&1 9>&- &
    perf_pid=$!
    sleep 0.5
    run_wrk "$DURATION" "$OUT/wrk-perf.txt" || die "wrk failed: $(cat "$OUT/wrk-perf.txt")"
    cpu1=$(cpu_ticks "$SERVER_PID")
    if wait "$perf_pid" && [[ -s $OUT/perf.data ]]; then
        PERF_OK=1
    else
        PERF_NOTE="perf record failed (not permitted? kernel.perf_event_paranoid=$(cat /proc/sys/kernel/perf_event_paranoid 2>/dev/null || echo '?')): $(tail -n 3 "$OUT/logs/perf-record.log" | tr '\n' ' ')"
    fi
else
    PERF_NOTE="perf is not installed (Debian package linux-perf)"
    run_wrk "$DURATION" "$OUT/wrk-perf.txt" || die "wrk failed: $(cat "$OUT/wrk-perf.txt")"
    cpu1=$(cpu_ticks "$SERVER_PID")
fi
read -r RPS1 CPU1 N1 < <(rate_line "$OUT/wrk-perf.txt" "$cpu0" "$cpu1")
info "$RPS1 req/s, server CPU $CPU1 µs per request ($N1 requests, while perf samples)"
stop_server
if ((PERF_OK)); then
    info "perf script -> c.folded (dwarf unwinding takes a while)"
    perf script -i "$OUT/perf.data" 2>"$OUT/logs/perf-script.log" | $FLAME collapse-perf --where "$OUT/c-where.tsv" >"$OUT/c.folded"
else
    warn "no C profile: $PERF_NOTE"
fi

# ------------------------------------------------------ pass 2: Lua frames ---

section "Pass 2: TASKAPI_LUA_PROFILE under $SCENARIO"
start_server "$OUT/logs/taskapi-lua.log" TASKAPI_LUA_PROFILE="$OUT/lua.folded" \
    TASKAPI_LUA_PROFILE_HZ="$PROFILE_HZ"
run_wrk "$WARMUP" "$OUT/wrk-warmup2.txt" || true
cpu0=$(cpu_ticks "$SERVER_PID")
run_wrk "$DURATION" "$OUT/wrk-lua.txt" || die "wrk failed: $(cat "$OUT/wrk-lua.txt")"
cpu1=$(cpu_ticks "$SERVER_PID")
read -r RPS2 CPU2 N2 < <(rate_line "$OUT/wrk-lua.txt" "$cpu0" "$cpu1")
info "$RPS2 req/s, server CPU $CPU2 µs per request ($N2 requests, Lua profiler on)"
stop_server # writes lua.folded

# --------------------------------------------------------- pass 3: stages ---

# Alone: the profiler's hook would slow the Lua stages down.
# With STAGE_CONNECTIONS (1) connections: one request's own path through
# the server, without the queueing a loaded server adds to hand-off and SQL.
section "Pass 3: TASKAPI_TRACE_STAGES under $SCENARIO (wrk -c$STAGE_CONNECTIONS)"
start_server "$OUT/logs/taskapi-stages.log" TASKAPI_TRACE_STAGES="$OUT/stages.tsv"
run_wrk "$WARMUP" "$OUT/wrk-warmup3.txt" "$STAGE_CONNECTIONS" || true
# the breakdown counts only the measured run: skip the warm-up's lines (the
# file is buffered, so count them from wrk's side)
skip=$(grep '^BENCH ' "$OUT/wrk-warmup3.txt" | sed -E 's/.*requests=([0-9]+).*/\1/' || echo 0)
cpu0=$(cpu_ticks "$SERVER_PID")
run_wrk "$DURATION" "$OUT/wrk-stages.txt" "$STAGE_CONNECTIONS" || die "wrk failed: $(cat "$OUT/wrk-stages.txt")"
cpu1=$(cpu_ticks "$SERVER_PID")
read -r RPS3 CPU3 N3 < <(rate_line "$OUT/wrk-stages.txt" "$cpu0" "$cpu1")
info "$RPS3 req/s, server CPU $CPU3 µs per request ($N3 requests, stage trace on)"
stop_server # closes stages.tsv
{
    head -n1 "$OUT/stages.tsv"
    tail -n +"$((${skip:-0} + 2))" "$OUT/stages.tsv"
} >"$OUT/stages-measured.tsv"

# ------------------------------------------------------------ rendering ---

section "Flame graphs"
png() { # SVG PNG WIDTH HEIGHT
    chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size="$3,$4" \
        --screenshot="$2" "file://$1" >"$OUT/logs/chromium.log" 2>&1 ||
        warn "chromium could not render $2 (see $OUT/logs/chromium.log)"
}
GIT=$(git -C "$TK_ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')
for kind in c lua; do
    [[ -s $OUT/$kind.folded ]] || continue
    if [[ $kind == c ]]; then
        title="taskapi $SCENARIO: C frames (perf, $PERF_CALLGRAPH call graphs), git $GIT"
    else
        title="taskapi $SCENARIO: Lua frames (TASKAPI_LUA_PROFILE, file:line), git $GIT"
    fi
    read -r w h < <($FLAME svg "$OUT/$kind.folded" "$OUT/$kind.svg" --title "$title" --width "$PNG_WIDTH")
    png "$OUT/$kind.svg" "$OUT/$kind.png" "$w" "$h"
    info "$kind: var/profile/$SCENARIO/$kind.svg, $kind.png ($(du -k "$OUT/$kind.png" 2>/dev/null | cut -f1) kB)"
done

# -------------------------------------------------------------- summary ---

section "Summary"
{
    # shellcheck disable=SC2016 # the backquotes are Markdown
    printf '## Profile of `%s` (git %s%s, %s)\n\n' "$SCENARIO" "$GIT" \
        "$(git -C "$TK_ROOT" diff --quiet HEAD -- scripts runtime 2>/dev/null || echo ' + uncommitted changes')" \
        "$(date -u '+%Y-%m-%d %H:%M UTC')"
    printf -- '- wrk -t%s -c%s, %s s measured after %s s warm-up, %s tasks; load average %s\n' \
        "$THREADS" "$CONNECTIONS" "$DURATION" "$WARMUP" "$TASKS" "$(cut -d' ' -f1-3 /proc/loadavg)"
    printf -- '- pass 1 (perf): %s req/s, server CPU %s µs/request\n' "$RPS1" "$CPU1"
    printf -- '- pass 2 (Lua profiler at %s Hz): %s req/s, server CPU %s µs/request\n' \
        "$PROFILE_HZ" "$RPS2" "$CPU2"
    printf -- '- pass 3 (stage trace, wrk -c%s): %s req/s, server CPU %s µs/request\n\n' \
        "$STAGE_CONNECTIONS" "$RPS3" "$CPU3"
    printf '### Per-request breakdown (pass 3)\n\n'
    $FLAME stages "$OUT/stages-measured.tsv"
    if [[ -s $OUT/lua.folded ]]; then
        printf '\n### Lua: the running script line (the C functions it called included)\n\n'
        $FLAME top "$OUT/lua.folded" --mode lines --n 15
        printf '\n### Lua: C functions called from Lua, with the calling line\n\n'
        $FLAME top "$OUT/lua.folded" --mode cfuncs --n 10
        printf '\n### Lua: lines of scripts/routes/ (their callees included)\n\n'
        $FLAME top "$OUT/lua.folded" --mode routes --n 10
    fi
    if [[ -s $OUT/c.folded ]]; then
        printf '\n### C: top functions (self)\n\n'
        $FLAME top "$OUT/c.folded" --mode self --n 20
        printf '\n### C: where the leaf samples were\n\n'
        $FLAME where "$OUT/c-where.tsv"
    else
        printf '\n(no C profile: %s)\n' "$PERF_NOTE"
    fi
} >"$OUT/summary.md"
cat "$OUT/summary.md"
printf '\n'
info "files: var/profile/$SCENARIO/ (summary.md, c.svg, lua.svg, *.png, *.folded, stages.tsv, perf.data)"
