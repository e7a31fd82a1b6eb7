#!/usr/bin/env bash
# Server instructions per request (callgrind), for before/after comparisons
# of CPU work that wall-clock figures on this shared machine cannot show:
#
#   bench/lua_side.sh [REF...]     # default: HEAD; "." = the working tree as it is
#   ANNOTATE=1 bench/lua_side.sh main .   # + the top functions of each dump
#
# 1. builds each REF Release: a git commit with common.sh's build_release_at
#    (var/lua-side/<sha>/), "." with build_taskapi into build-release/;
# 2. starts a private PostgreSQL in var/pg-lua-side (BENCH_PG_PORT, fsync off),
#    recreates the database bench_lua_side, migrates it and seeds it through
#    the API with bench/seed.js (TASKS tasks) on the first REF's server: every
#    REF then serves the same rows, so their answers can be compared byte for
#    byte (the REFs must have the same migrations/);
# 3. per REF: the server under `valgrind --tool=callgrind` (WORKERS=1,
#    JOB_POLL_MS=60000, the seed's queued mail deleted, otherwise as
#    bench/run.sh starts it); per scenario,
#    WARM requests, then callgrind's counters are zeroed, N identical requests
#    are sent on one keep-alive connection (curl), and the counters dumped:
#    instructions (Ir) of the whole server process / N;
# 4. prints a table (also var/lua-side/results.md) with each answer's sha256:
#    a REF whose body differs from the first REF's is flagged.
#
# Scenarios (SCENARIOS): list = GET /api/v1/tasks?projectId=P&limit=20;
# list2 = the same with the first page's nextCursor (page 2); get = GET
# /api/v1/tasks/:id (the first seeded task); me = GET /api/v1/auth/me.
#
# Environment (defaults in brackets): N [200] WARM [20] TASKS [1000]
#   SCENARIOS ["list list2 get"] BENCH_PG_PORT [18950] TASKAPI_PORT [18951]
#   TASKAPI_WS_PORT [18952] ANNOTATE [0]
# Functions below run from traps: shellcheck cannot see the calls.
# shellcheck disable=SC2317
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bin/lib/common.sh
source bin/lib/common.sh

N=${N:-200}
WARM=${WARM:-20}
TASKS=${TASKS:-1000}
SCENARIOS=${SCENARIOS:-list list2 get}
BENCH_PG_PORT=${BENCH_PG_PORT:-18950}
TASKAPI_PORT=${TASKAPI_PORT:-18951}
TASKAPI_WS_PORT=${TASKAPI_WS_PORT:-18952}
ANNOTATE=${ANNOTATE:-0}
JWT_SECRET_BENCH=bench-secret-0123456789abcdef
OUT=$TK_VAR/lua-side
LOGS=$OUT/logs
URL=http://127.0.0.1:$TASKAPI_PORT
REFS=("$@")
((${#REFS[@]} > 0)) || REFS=(HEAD)

command -v valgrind >/dev/null || die "valgrind is not installed (Debian package valgrind)"
command -v callgrind_control >/dev/null || die "callgrind_control is missing (package valgrind)"
command -v node >/dev/null || die "node is not installed (bench/seed.js needs it)"
install_traps
lock_checkout lua-side
mkdir -p "$LOGS"

wait_http() { # URL SECONDS
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        [[ $(curl -s -o /dev/null -w '%{http_code}' "$1" 2>/dev/null) == 200 ]] && return 0
        sleep 0.1
    done
    return 1
}

# ----------------------------------------------------------------- builds ---

declare -A DIR BINARY LABEL
section "Builds (Release)"
for ref in "${REFS[@]}"; do
    if [[ $ref == . ]]; then
        build_taskapi build-release taskapi -DCMAKE_BUILD_TYPE=Release >"$LOGS/build-worktree.log" 2>&1 ||
            {
                tail -n 30 "$LOGS/build-worktree.log" >&2
                die "the build of the working tree failed"
            }
        DIR[$ref]=$TK_ROOT BINARY[$ref]=$TK_ROOT/build-release/taskapi
        LABEL[$ref]="worktree ($(git rev-parse --short HEAD)$(git diff --quiet HEAD -- runtime scripts || echo ' + changes'))"
    else
        build_release_at "$ref" "$OUT/build-$ref" "$LOGS/build-${ref//\//_}.log" || die "no build of $ref"
        DIR[$ref]=$OUT/build-$ref BINARY[$ref]=$OUT/build-$ref/build/taskapi
        LABEL[$ref]="$ref (${TK_BUILT_SHA:0:7})"
    fi
    info "${LABEL[$ref]}: ${BINARY[$ref]#"$TK_ROOT"/}"
done
migrations_sum() { (cd "$1/migrations" && find . -type f | sort | xargs sha256sum | sha256sum); }
first=${REFS[0]}
for ref in "${REFS[@]}"; do
    [[ $(migrations_sum "${DIR[$ref]}") == $(migrations_sum "${DIR[$first]}") ]] ||
        die "$ref has other migrations than $first: they cannot share a database"
done

# -------------------------------------------------------- database, seed ---

section "PostgreSQL, seed ($TASKS tasks)"
unset TASKAPI_PG_PORT DATABASE_URL
start_pg pg-lua-side "$BENCH_PG_PORT" ephemeral
create_db bench_lua_side fresh
DB=$DATABASE_URL
unset DATABASE_URL
(cd "${DIR[$first]}" && DATABASE_URL=$DB "${BINARY[$first]}" migrate >"$LOGS/migrate.log" 2>&1) ||
    {
        cat "$LOGS/migrate.log" >&2
        die "taskapi migrate failed"
    }

SERVER_PID=''
stop_server() {
    [[ -n $SERVER_PID ]] || return 0
    stop_child "$SERVER_PID" 60 || true
    SERVER_PID=''
}
on_exit stop_server

# start_server REF LOG [COMMAND PREFIX...]: REF's server as bench/run.sh runs
# it, with one worker and a quiet job runner (less work between requests).
start_server() {
    local ref=$1 log=$2
    shift 2
    ! port_busy "$TASKAPI_PORT" || die "port $TASKAPI_PORT is taken (set TASKAPI_PORT)"
    rm -rf "$OUT/scripts"
    cp -r "${DIR[$ref]}/scripts" "$OUT/scripts"
    (cd "${DIR[$ref]}" && exec env -i PATH="$PATH" HOME="${HOME:-/root}" LANG=C.UTF-8 \
        PORT="$TASKAPI_PORT" WS_PORT="$TASKAPI_WS_PORT" DATABASE_URL="$DB" DB_POOL_SIZE=4 \
        WORKERS=1 JOB_POLL_MS=60000 JWT_SECRET="$JWT_SECRET_BENCH" ACCESS_TOKEN_TTL=86400 \
        RATE_LIMIT_PER_MIN=1000000000 AUTH_RATE_LIMIT_PER_MIN=1000000000 \
        SCRIPTS_DIR="$OUT/scripts" WATCH_SCRIPTS=off "$@" "${BINARY[$ref]}" serve >"$log" 2>&1 9>&-) &
    SERVER_PID=$!
    wait_http "$URL/health/live" 180 || {
        tail -n 20 "$log" >&2
        die "taskapi did not answer on $URL/health/live (log above)"
    }
}

start_server "$first" "$LOGS/seed-server.log"
node bench/seed.js "$URL" "$OUT/seed.json" "$TASKS" >"$LOGS/seed.log" 2>&1 || {
    cat "$LOGS/seed.log" >&2
    die "seeding failed"
}
read -r TOKEN PROJECT TASK < <(node -e 'const s = require(process.argv[1]);
    console.log(s.token, s.projectId, s.taskIds[0])' "$OUT/seed.json")
CURSOR=$(curl -sf -H "Authorization: Bearer $TOKEN" "$URL/api/v1/tasks?projectId=$PROJECT&limit=20" |
    node -e 'let s = ""; process.stdin.on("data", d => s += d).on("end", () => console.log(JSON.parse(s).meta.nextCursor))')
stop_server
# The seed queued notification mail: a job runner sending it during a
# measurement would be counted too.
"$TK_PG_BIN/psql" -X -q -d "$DB" -c 'DELETE FROM jobs' -c 'VACUUM ANALYZE' ||
    die "emptying the job queue failed"

path_of() {
    case $1 in
    list) echo "/api/v1/tasks?projectId=$PROJECT&limit=20" ;;
    list2) echo "/api/v1/tasks?projectId=$PROJECT&limit=20&cursor=$CURSOR" ;;
    get) echo "/api/v1/tasks/$TASK" ;;
    me) echo "/api/v1/auth/me" ;;
    *) die "unknown scenario $1 (list, list2, get, me)" ;;
    esac
}

# send PATH COUNT: COUNT requests on one connection; fails unless all are 200.
send() {
    local cfg=$OUT/curl.cfg i codes
    : >"$cfg"
    for ((i = 0; i < $2; i++)); do
        printf 'url = "%s%s"\noutput = "/dev/null"\n' "$URL" "$1" >>"$cfg"
    done
    codes=$(curl -s -H "Authorization: Bearer $TOKEN" -w '%{http_code}\n' -K "$cfg")
    [[ $(grep -c '^200$' <<<"$codes") == "$2" ]] || die "not every answer was 200 for $1: $(sort <<<"$codes" | uniq -c | tr '\n' ' ')"
}

# The instructions counted by the newest dump of callgrind output $1.*.
last_total() {
    local f
    # shellcheck disable=SC2012 # our own file names
    f=$(ls -t "$1".* 2>/dev/null | head -n1)
    [[ -n $f ]] || die "no callgrind dump $1.*"
    awk '/^(summary|totals):/ { print $2; exit }' "$f"
}

# ---------------------------------------------------------------- measure ---

declare -A IR BODY
for ref in "${REFS[@]}"; do
    section "${LABEL[$ref]} under callgrind"
    tag=${ref//[^A-Za-z0-9]/_}
    cg=$OUT/callgrind.$tag
    rm -f "$cg".*
    start_server "$ref" "$LOGS/server-$tag.log" valgrind --tool=callgrind --callgrind-out-file="$cg" \
        --dump-instr=no --collect-jumps=no
    for s in $SCENARIOS; do
        path=$(path_of "$s")
        send "$path" "$WARM"
        curl -s -H "Authorization: Bearer $TOKEN" -o "$OUT/body-$tag-$s.json" "$URL$path"
        BODY[$ref.$s]=$(sha256sum <"$OUT/body-$tag-$s.json" | cut -c1-12)
        callgrind_control -z "$SERVER_PID" >/dev/null 2>&1
        send "$path" "$N"
        callgrind_control -d "$s" "$SERVER_PID" >/dev/null 2>&1
        total=$(last_total "$cg")
        IR[$ref.$s]=$((total / N))
        info "$s: $((total / N)) instructions per request ($N requests; body sha256 ${BODY[$ref.$s]})"
        if ((ANNOTATE)); then
            # shellcheck disable=SC2012 # our own file names
            callgrind_annotate --threshold=100 "$(ls -t "$cg".* | head -n1)" 2>/dev/null |
                sed -n '18,100p' >"$OUT/annotate-$tag-$s.txt" || true
            info "top functions: ${OUT#"$TK_ROOT"/}/annotate-$tag-$s.txt"
        fi
    done
    stop_server
done

# ----------------------------------------------------------------- table ---

section "Instructions per request (callgrind, whole server process)"
{
    printf '%s, N=%s, %s tasks; load average %s\n\n' "$(date -u '+%Y-%m-%d %H:%M UTC')" "$N" "$TASKS" \
        "$(cut -d' ' -f1-3 /proc/loadavg)"
    printf '| build |'
    for s in $SCENARIOS; do printf ' %s |' "$s"; done
    printf '\n|---|'
    for s in $SCENARIOS; do printf -- '--:|'; done
    printf '\n'
    for ref in "${REFS[@]}"; do
        printf '| %s |' "${LABEL[$ref]}"
        for s in $SCENARIOS; do
            change=''
            if [[ $ref != "$first" ]]; then
                change=$(awk -v a="${IR[$first.$s]}" -v b="${IR[$ref.$s]}" 'BEGIN { printf " (%+.1f %%)", (b - a) * 100 / a }')
            fi
            same=''
            [[ ${BODY[$ref.$s]} == "${BODY[$first.$s]}" ]] || same=' **body differs**'
            printf ' %s%s%s |' "${IR[$ref.$s]}" "$change" "$same"
        done
        printf '\n'
    done
} | tee "$OUT/results.md"
