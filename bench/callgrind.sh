#!/usr/bin/env bash
# Server instructions per request, counted by callgrind: stable on a loaded,
# shared machine where wall-clock and CPU-time figures are noise.
#
#   bench/callgrind.sh                     # get and list on this checkout
#   REFS="main ." bench/callgrind.sh get   # before/after: main against this checkout
#
# 1. installs missing packages (bin/lib/deps.txt: valgrind, curl, node),
#    builds build-callgrind/taskapi (Release, as bench/run.sh measures), and
#    each other ref of REFS with common.sh's build_release_at (var/callgrind/ref-*);
# 2. starts a private PostgreSQL (var/pg-callgrind, fsync off), migrates
#    bench_callgrind with this checkout's binary and seeds TASKS tasks
#    through the API (bench/seed.js), then VACUUM ANALYZE;
# 3. per ref: starts the server as bench/run.sh does (env -i, DB_POOL_SIZE=20,
#    rate limits at 1e9, frozen scripts: the ref's own) under
#    `valgrind --tool=callgrind --instr-atstart=no`, turns instrumentation on
#    (callgrind_control -i on), sends WARMUP requests of each scenario (every
#    worker's VM and every pool connection warm), then per scenario zeroes
#    the counters, sends N identical requests over one keep-alive connection
#    (curl; Host and Authorization only, like wrk) and dumps. Last, the same
#    for an idle stretch of IDLE seconds: what background threads (job
#    runner, timers) cost, for reading the per-request figure;
# 4. prints Ir per request (all threads; user space only: system calls and
#    the kernel's side are not counted) and the top functions (self Ir per
#    request) for each ref and scenario; keeps everything in var/callgrind/.
#
# Scenarios: get (GET /api/v1/tasks/:id, the first seeded task), list
# (GET /api/v1/tasks?projectId=P&limit=20), me (GET /api/v1/auth/me),
# health (GET /health/live).
#
# Environment (defaults in brackets): N [400] WARMUP [200] IDLE [5] TASKS [1000]
#   REFS ["."] (words: "." = this checkout, anything else a git ref)
#   CALLGRIND_PG_PORT [18940] TASKAPI_PORT [18941] TASKAPI_WS_PORT [18942]
#   TASKAPI_WORKERS [taskapi's default]  TOP [25] (functions listed)
#   EXTRA_ENV (more VAR=VALUE words for the server, e.g. "MALLOC_ARENA_MAX=2")
# Functions below run from traps: shellcheck cannot see the calls.
# shellcheck disable=SC2317
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bin/lib/common.sh
source bin/lib/common.sh

SCENARIOS=${*:-get list}
N=${N:-400}
WARMUP=${WARMUP:-200}
IDLE=${IDLE:-5}
TASKS=${TASKS:-1000}
REFS=${REFS:-.}
TOP=${TOP:-25}
CALLGRIND_PG_PORT=${CALLGRIND_PG_PORT:-18940}
TASKAPI_PORT=${TASKAPI_PORT:-18941}
TASKAPI_WS_PORT=${TASKAPI_WS_PORT:-18942}
JWT_SECRET_BENCH=bench-secret-0123456789abcdef
OUT=$TK_VAR/callgrind
BIN=$TK_ROOT/build-callgrind/taskapi
URL=http://127.0.0.1:$TASKAPI_PORT

for sc in $SCENARIOS; do
    case $sc in get | list | me | health) ;; *) die "unknown scenario $sc (get, list, me, health)" ;; esac
done
install_traps
lock_checkout callgrind
mkdir -p "$OUT/logs"

section "Debian packages"
ensure_deps
command -v callgrind_control >/dev/null || die "valgrind is not installed (Debian package valgrind)"

section "Build (Release)"
build_taskapi build-callgrind taskapi -DCMAKE_BUILD_TYPE=Release >"$OUT/logs/build.log" 2>&1 ||
    {
        tail -n 30 "$OUT/logs/build.log" >&2
        die "the build failed (all of it in $OUT/logs/build.log)"
    }
declare -A RBIN RSCRIPTS
for ref in $REFS; do
    if [[ $ref == . ]]; then
        RBIN[$ref]=$BIN RSCRIPTS[$ref]=$TK_ROOT/scripts
        info ".: this checkout ($(git -C "$TK_ROOT" rev-parse --short HEAD)$(git -C "$TK_ROOT" diff --quiet HEAD -- runtime scripts CMakeLists.txt || echo ' + uncommitted changes'))"
        continue
    fi
    dir=$OUT/ref-${ref//[^A-Za-z0-9._-]/_}
    build_release_at "$ref" "$dir" "$OUT/logs/build-ref.log" || die "no build of $ref"
    RBIN[$ref]=$dir/build/taskapi RSCRIPTS[$ref]=$dir/scripts
    info "$ref: git $(cut -c1-7 "$dir/.rev")"
done

section "PostgreSQL"
unset TASKAPI_PG_PORT DATABASE_URL
start_pg pg-callgrind "$CALLGRIND_PG_PORT" ephemeral
create_db bench_callgrind fresh
DB=$DATABASE_URL
unset DATABASE_URL
DATABASE_URL=$DB "$BIN" migrate >"$OUT/logs/migrate.log" 2>&1 || {
    cat "$OUT/logs/migrate.log" >&2
    die "taskapi migrate failed"
}

SERVER_PID=''
stop_server() {
    [[ -n $SERVER_PID ]] || return 0
    stop_child "$SERVER_PID" 60 || true
    SERVER_PID=''
}
on_exit stop_server

# start_server REF LOG [COMMAND PREFIX...]: taskapi as bench/run.sh starts it.
start_server() {
    local ref=$1 log=$2 wait=30 i
    shift 2
    (($# == 0)) || wait=300 # valgrind starts slowly
    ! port_busy "$TASKAPI_PORT" || die "port $TASKAPI_PORT is taken (set TASKAPI_PORT)"
    rm -rf "$OUT/scripts"
    cp -r "${RSCRIPTS[$ref]}" "$OUT/scripts"
    # shellcheck disable=SC2086 # EXTRA_ENV: words
    env -i PATH="$PATH" HOME="${HOME:-/root}" LANG=C.UTF-8 \
        PORT="$TASKAPI_PORT" WS_PORT="$TASKAPI_WS_PORT" DATABASE_URL="$DB" DB_POOL_SIZE=20 \
        ${TASKAPI_WORKERS:+WORKERS="$TASKAPI_WORKERS"} \
        JWT_SECRET="$JWT_SECRET_BENCH" ACCESS_TOKEN_TTL=86400 \
        RATE_LIMIT_PER_MIN=1000000000 AUTH_RATE_LIMIT_PER_MIN=1000000000 \
        SCRIPTS_DIR="$OUT/scripts" WATCH_SCRIPTS=off PID_FILE="$OUT/taskapi.pid" ${EXTRA_ENV:-} \
        "$@" "${RBIN[$ref]}" serve >"$log" 2>&1 9>&- &
    SERVER_PID=$!
    for ((i = 0; i < wait * 10; i++)); do
        [[ $(curl -s -o /dev/null -w '%{http_code}' "$URL/health/live" 2>/dev/null) == 200 ]] && return 0
        pid_alive "$SERVER_PID" || break
        sleep 0.1
    done
    tail -n 20 "$log" >&2
    die "taskapi did not answer on $URL/health/live (log above)"
}

section "Seed (bench/seed.js, $TASKS tasks)"
start_server . "$OUT/logs/seed.log"
node "$TK_ROOT/bench/seed.js" "$URL" "$OUT/seed.json" "$TASKS" >"$OUT/logs/seed-out.log" 2>&1 || {
    cat "$OUT/logs/seed-out.log" >&2
    die "seeding failed"
}
stop_server
read -r TOKEN PROJECT < <(node -e 'const s = require(process.argv[1]); console.log(s.token, s.projectId)' "$OUT/seed.json")
TASK_ID=$(head -n1 "$OUT/seed.ids")
"$TK_PG_BIN/psql" -X -q -d "$DB" -c 'VACUUM ANALYZE' || die "VACUUM ANALYZE failed"

path_of() {
    case $1 in
    get) echo "/api/v1/tasks/$TASK_ID" ;;
    list) echo "/api/v1/tasks?projectId=$PROJECT&limit=20" ;;
    me) echo "/api/v1/auth/me" ;;
    health) echo "/health/live" ;;
    esac
}

# drive SCENARIO COUNT: COUNT identical requests on one keep-alive
# connection; fails unless every answer is 200.
drive() {
    local cfg=$OUT/curl-$1.cfg path i bad
    path=$(path_of "$1")
    {
        printf 'header = "Authorization: Bearer %s"\nheader = "User-Agent:"\nheader = "Accept:"\n' "$TOKEN"
        for ((i = 0; i < $2; i++)); do printf 'url = "%s%s"\noutput = "/dev/null"\n' "$URL" "$path"; done
    } >"$cfg"
    bad=$(curl -s -K "$cfg" -w '%{http_code}\n' | grep -vc '^200$' || true)
    [[ $bad == 0 ]] || die "$bad of $2 answers to $path were not 200 (server log: $OUT/logs/)"
}

# total_ir FILE: the Ir total of a callgrind dump.
total_ir() { awk '/^(summary|totals):/ { print $2; exit }' "$1"; }

RESULTS=$OUT/results.tsv
printf 'ref\tscenario\trequests\tIr\tIr_per_request\n' >"$RESULTS"
for ref in $REFS; do
    label=${ref//[^A-Za-z0-9._-]/_}
    [[ $label != . ]] || label=checkout
    section "$ref: callgrind, $N requests per scenario after $WARMUP of each"
    rm -f "$OUT/$label".callgrind.out*
    start_server "$ref" "$OUT/logs/server-$label.log" valgrind --tool=callgrind --instr-atstart=no \
        --callgrind-out-file="$OUT/$label.callgrind.out"
    callgrind_control -i on "$SERVER_PID" >/dev/null 2>&1
    for sc in $SCENARIOS; do drive "$sc" "$WARMUP"; done
    dumps=0
    for sc in $SCENARIOS idle; do
        callgrind_control -z "$SERVER_PID" >/dev/null 2>&1
        if [[ $sc == idle ]]; then sleep "$IDLE"; else drive "$sc" "$N"; fi
        callgrind_control -d "$sc" "$SERVER_PID" >/dev/null 2>&1
        dumps=$((dumps + 1))
        f=$OUT/$label.callgrind.out.$dumps
        for ((i = 0; i < 100; i++)); do
            [[ ! -s $f ]] || break
            sleep 0.1
        done
        [[ -s $f ]] || die "no callgrind dump $f"
        ir=$(total_ir "$f")
        n=$N
        [[ $sc != idle ]] || n=$IDLE # per second
        printf '%s\t%s\t%s\t%s\t%.0f\n' "$ref" "$sc" "$n" "$ir" "$(awk -v a="$ir" -v b="$n" 'BEGIN { print a / b }')" >>"$RESULTS"
        callgrind_annotate --threshold=100 "$f" 2>/dev/null |
            awk -v n="$n" -v top="$TOP" '/^-+$/ { sect++ } sect >= 3 && /^ *[0-9,]+ / {
                    v = $1; gsub(",", "", v); $1 = ""; if (k++ < top) printf "%10.0f %s\n", v / n, $0 }' \
                >"$OUT/$label-$sc.top.txt"
        mv "$f" "$OUT/$label-$sc.callgrind.out"
    done
    stop_server
done

section "Results: instructions (Ir) per request, all threads, user space"
REPORT=$OUT/results.md
{
    # shellcheck disable=SC2016 # the backquotes are Markdown
    printf 'Run of %s: `bench/callgrind.sh %s` (N=%s WARMUP=%s, git %s)\n\n' "$(date -u '+%Y-%m-%d %H:%M UTC')" \
        "$SCENARIOS" "$N" "$WARMUP" "$(git -C "$TK_ROOT" rev-parse --short HEAD)"
    printf '| ref | scenario | Ir per request |\n|---|---|--:|\n'
    awk -F'\t' 'NR > 1 { printf "| %s | %s | %s%s |\n", $1, $2, $5, ($2 == "idle" ? " per second" : "") }' "$RESULTS"
} >"$REPORT"
cat "$REPORT"
for ref in $REFS; do
    label=${ref//[^A-Za-z0-9._-]/_}
    [[ $label != . ]] || label=checkout
    for sc in $SCENARIOS; do
        printf '\n%s, %s: top functions, self Ir per request\n' "$ref" "$sc"
        head -n 15 "$OUT/$label-$sc.top.txt"
    done
done
printf '\n'
info "dumps: var/callgrind/*.callgrind.out (callgrind_annotate FILE), tops: *.top.txt, table: var/callgrind/results.md"
