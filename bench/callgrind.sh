#!/usr/bin/env bash
# Server instructions per request, counted by callgrind: stable on a loaded,
# shared machine where wall-clock and CPU-time figures are noise. One or more
# builds (git refs) serve one seeded database, so their answers can also be
# compared byte for byte.
#
#   bench/callgrind.sh                          # this checkout, SCENARIOS
#   bench/callgrind.sh main .                   # before/after: main against this checkout
#   REFS="6f50dd8 a2387db ." SCENARIOS="list list2" bench/callgrind.sh
#
# 1. installs missing packages (bin/lib/deps.txt: valgrind, curl, node) and
#    builds each ref Release: "." (this checkout as it is, uncommitted
#    changes too) into build-callgrind/, any other git ref with common.sh's
#    build_release_at into var/callgrind/ref-<ref>/ (rebuilt only when the
#    ref moved); all refs must have the same migrations/;
# 2. starts a private PostgreSQL (var/pg-callgrind, BENCH_PG_PORT, fsync
#    off), recreates bench_callgrind, migrates it and seeds TASKS tasks
#    through the API (bench/seed.js) with the first ref's server; deletes the
#    seed's queued jobs (mail: a job run during a count would be counted),
#    then VACUUM ANALYZE. Every ref serves these same rows;
# 3. per ref: its server as bench/run.sh starts it (env -i, DB_POOL_SIZE=20,
#    rate limits at 1e9, the ref's own scripts/, run from the ref's tree)
#    under `valgrind --tool=callgrind --instr-atstart=no`; instrumentation on
#    (callgrind_control -i on), WARM requests of each scenario (every worker's
#    VM and pool connection warm), one more whose body is kept and hashed
#    (sha256); then per scenario the counters are zeroed, N identical
#    requests sent over one keep-alive connection (curl; Host and
#    Authorization only, like wrk) and the counters dumped. Last, the same
#    for an idle stretch of IDLE seconds: what background threads (job
#    runner, timers) cost per second, for reading the per-request figures;
# 4. prints Ir per request (whole server process, all threads; user space
#    only: system calls and the kernel's side are not counted), each
#    non-first ref's change against the first ref, a flag where a ref's body
#    differs from the first ref's, and the top functions (self Ir per
#    request, callgrind_annotate) of each ref and scenario. Everything stays
#    in var/callgrind/: results.md (the table), results.tsv (with the full
#    sha256), <ref>-<scenario>.callgrind.out (callgrind_annotate FILE),
#    <ref>-<scenario>.top.txt, body-<ref>-<scenario>.json, logs/.
#
# Refs: the arguments, else REFS (words), else "." (this checkout).
# Scenarios (SCENARIOS, words): get (GET /api/v1/tasks/:id, the first seeded
# task), list (GET /api/v1/tasks?projectId=P&limit=20), list2 (the same with
# the first page's nextCursor: page 2), me (GET /api/v1/auth/me), health
# (GET /health/live).
#
# Environment (defaults in brackets): N [400] WARM [200] (WARMUP: the same)
#   IDLE [5] TASKS [1000] REFS ["."] SCENARIOS ["get list list2"] TOP [25]
#   BENCH_PG_PORT [18940] TASKAPI_PORT [18941] TASKAPI_WS_PORT [18942]
#   TASKAPI_WORKERS [taskapi's default]
#   EXTRA_ENV (more VAR=VALUE words for the server; they override the ones
#   above, e.g. "DB_POOL_SIZE=4 JOB_POLL_MS=60000" with TASKAPI_WORKERS=1:
#   the set-up of the former bench/lua_side.sh)
# Functions below run from traps: shellcheck cannot see the calls.
# shellcheck disable=SC2317
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bin/lib/common.sh
source bin/lib/common.sh

N=${N:-400}
WARM=${WARM:-${WARMUP:-200}}
IDLE=${IDLE:-5}
TASKS=${TASKS:-1000}
SCENARIOS=${SCENARIOS:-get list list2}
TOP=${TOP:-25}
BENCH_PG_PORT=${BENCH_PG_PORT:-${CALLGRIND_PG_PORT:-18940}}
TASKAPI_PORT=${TASKAPI_PORT:-18941}
TASKAPI_WS_PORT=${TASKAPI_WS_PORT:-18942}
JWT_SECRET_BENCH=bench-secret-0123456789abcdef
OUT=$TK_VAR/callgrind
LOGS=$OUT/logs
URL=http://127.0.0.1:$TASKAPI_PORT
if (($# > 0)); then
    REFS=("$@")
else
    read -r -a REFS <<<"${REFS:-.}"
    ((${#REFS[@]} > 0)) || REFS=(.)
fi

for sc in $SCENARIOS; do
    case $sc in get | list | list2 | me | health) ;; *) die "unknown scenario $sc (get, list, list2, me, health)" ;; esac
done
[[ -n ${SCENARIOS// /} ]] || die "no scenario (SCENARIOS: get, list, list2, me, health)"
install_traps
lock_checkout callgrind
mkdir -p "$LOGS"

section "Debian packages"
ensure_deps
command -v callgrind_control >/dev/null || die "valgrind is not installed (Debian package valgrind)"
command -v node >/dev/null || die "node is not installed (bench/seed.js needs it)"

# ----------------------------------------------------------------- builds ---

# Per ref: DIR (its tree: scripts/, migrations/), BINARY, TAG (file names),
# LABEL (the table).
declare -A DIR BINARY TAG LABEL
section "Builds (Release)"
for ref in "${REFS[@]}"; do
    [[ -z ${DIR[$ref]:-} ]] || die "$ref is named twice"
    if [[ $ref == . ]]; then
        build_taskapi build-callgrind taskapi -DCMAKE_BUILD_TYPE=Release >"$LOGS/build.log" 2>&1 ||
            {
                tail -n 30 "$LOGS/build.log" >&2
                die "the build of this checkout failed (all of it in $LOGS/build.log)"
            }
        DIR[$ref]=$TK_ROOT BINARY[$ref]=$TK_ROOT/build-callgrind/taskapi TAG[$ref]=checkout
        LABEL[$ref]=". ($(git -C "$TK_ROOT" rev-parse --short HEAD)$(git -C "$TK_ROOT" diff --quiet HEAD -- runtime scripts migrations CMakeLists.txt || echo ' + changes'))"
    else
        tag=${ref//[^A-Za-z0-9._-]/_}
        build_release_at "$ref" "$OUT/ref-$tag" "$LOGS/build-ref-$tag.log" || die "no build of $ref"
        DIR[$ref]=$OUT/ref-$tag BINARY[$ref]=$OUT/ref-$tag/build/taskapi TAG[$ref]=ref-$tag
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

section "PostgreSQL"
unset TASKAPI_PG_PORT DATABASE_URL
start_pg pg-callgrind "$BENCH_PG_PORT" ephemeral
create_db bench_callgrind fresh
DB=$DATABASE_URL
unset DATABASE_URL
(cd "${DIR[$first]}" && DATABASE_URL=$DB "${BINARY[$first]}" migrate >"$LOGS/migrate.log" 2>&1) || {
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

# start_server REF LOG [COMMAND PREFIX...]: REF's taskapi as bench/run.sh
# starts it, in REF's tree (migrations/ is relative), with REF's scripts.
start_server() {
    local ref=$1 log=$2 wait=30 i
    shift 2
    (($# == 0)) || wait=300 # valgrind starts slowly
    ! port_busy "$TASKAPI_PORT" || die "port $TASKAPI_PORT is taken (set TASKAPI_PORT)"
    rm -rf "$OUT/scripts"
    cp -r "${DIR[$ref]}/scripts" "$OUT/scripts"
    # shellcheck disable=SC2086 # EXTRA_ENV: words
    (cd "${DIR[$ref]}" && exec env -i PATH="$PATH" HOME="${HOME:-/root}" LANG=C.UTF-8 \
        PORT="$TASKAPI_PORT" WS_PORT="$TASKAPI_WS_PORT" DATABASE_URL="$DB" DB_POOL_SIZE=20 \
        ${TASKAPI_WORKERS:+WORKERS="$TASKAPI_WORKERS"} \
        JWT_SECRET="$JWT_SECRET_BENCH" ACCESS_TOKEN_TTL=86400 \
        RATE_LIMIT_PER_MIN=1000000000 AUTH_RATE_LIMIT_PER_MIN=1000000000 \
        SCRIPTS_DIR="$OUT/scripts" WATCH_SCRIPTS=off PID_FILE="$OUT/taskapi.pid" ${EXTRA_ENV:-} \
        "$@" "${BINARY[$ref]}" serve >"$log" 2>&1 9>&-) &
    SERVER_PID=$!
    for ((i = 0; i < wait * 10; i++)); do
        [[ $(curl -s -o /dev/null -w '%{http_code}' "$URL/health/live" 2>/dev/null) == 200 ]] && return 0
        pid_alive "$SERVER_PID" || break
        sleep 0.1
    done
    tail -n 20 "$log" >&2
    die "taskapi did not answer on $URL/health/live (log above)"
}

section "Seed (bench/seed.js, $TASKS tasks, on ${LABEL[$first]})"
start_server "$first" "$LOGS/seed-server.log"
node "$TK_ROOT/bench/seed.js" "$URL" "$OUT/seed.json" "$TASKS" >"$LOGS/seed.log" 2>&1 || {
    cat "$LOGS/seed.log" >&2
    die "seeding failed"
}
read -r TOKEN PROJECT TASK_ID < <(node -e 'const s = require(process.argv[1]);
    console.log(s.token, s.projectId, s.taskIds[0])' "$OUT/seed.json")
CURSOR=$(curl -sf -H "Authorization: Bearer $TOKEN" "$URL/api/v1/tasks?projectId=$PROJECT&limit=20" |
    node -e 'let s = ""; process.stdin.on("data", d => s += d).on("end", () => console.log(JSON.parse(s).meta.nextCursor || ""))') ||
    die "the first page of the list failed"
[[ -n $CURSOR || " $SCENARIOS " != *" list2 "* ]] || die "the first page has no nextCursor (TASKS=$TASKS): no list2"
stop_server
# The seed queued notification mail: a job runner sending it during a count
# would be counted too.
"$TK_PG_BIN/psql" -X -q -d "$DB" -c 'DELETE FROM jobs' -c 'VACUUM ANALYZE' ||
    die "emptying the job queue or VACUUM ANALYZE failed"

path_of() {
    case $1 in
    get) echo "/api/v1/tasks/$TASK_ID" ;;
    list) echo "/api/v1/tasks?projectId=$PROJECT&limit=20" ;;
    list2) echo "/api/v1/tasks?projectId=$PROJECT&limit=20&cursor=$CURSOR" ;;
    me) echo "/api/v1/auth/me" ;;
    health) echo "/health/live" ;;
    esac
}

# drive SCENARIO COUNT [BODY-FILE]: COUNT identical requests on one
# keep-alive connection, the last answer's body into BODY-FILE if given;
# fails unless every answer is 200.
drive() {
    local cfg=$OUT/curl-$1.cfg path i bad out
    path=$(path_of "$1")
    {
        printf 'header = "Authorization: Bearer %s"\nheader = "User-Agent:"\nheader = "Accept:"\n' "$TOKEN"
        for ((i = 0; i < $2; i++)); do
            out=/dev/null
            ((i < $2 - 1)) || out=${3:-/dev/null}
            printf 'url = "%s%s"\noutput = "%s"\n' "$URL" "$path" "$out"
        done
    } >"$cfg"
    bad=$(curl -s -K "$cfg" -w '%{http_code}\n' | grep -vc '^200$' || true)
    [[ $bad == 0 ]] || die "$bad of $2 answers to $path were not 200 (server log: $LOGS/)"
}

# total_ir FILE: the Ir total of a callgrind dump.
total_ir() { awk '/^(summary|totals):/ { print $2; exit }' "$1"; }

# ---------------------------------------------------------------- measure ---

declare -A IR BODY
RESULTS=$OUT/results.tsv
printf 'ref\tcommit\tscenario\trequests\tIr\tIr_per_request\tbody_sha256\n' >"$RESULTS"
for ref in "${REFS[@]}"; do
    tag=${TAG[$ref]}
    section "${LABEL[$ref]}: callgrind, $N requests per scenario after $WARM of each"
    rm -f "$OUT/$tag".callgrind.out* "$OUT/$tag"-*.callgrind.out "$OUT/$tag"-*.top.txt "$OUT/body-$tag"-*.json
    start_server "$ref" "$LOGS/server-$tag.log" valgrind --tool=callgrind --instr-atstart=no \
        --callgrind-out-file="$OUT/$tag.callgrind.out"
    callgrind_control -i on "$SERVER_PID" >/dev/null 2>&1
    for sc in $SCENARIOS; do
        drive "$sc" "$WARM"
        drive "$sc" 1 "$OUT/body-$tag-$sc.json"
        BODY[$ref.$sc]=$(sha256sum <"$OUT/body-$tag-$sc.json" | cut -d' ' -f1)
    done
    dumps=0
    for sc in $SCENARIOS idle; do
        callgrind_control -z "$SERVER_PID" >/dev/null 2>&1
        if [[ $sc == idle ]]; then sleep "$IDLE"; else drive "$sc" "$N"; fi
        callgrind_control -d "$sc" "$SERVER_PID" >/dev/null 2>&1
        dumps=$((dumps + 1))
        f=$OUT/$tag.callgrind.out.$dumps
        for ((i = 0; i < 100; i++)); do
            [[ ! -s $f ]] || break
            sleep 0.1
        done
        [[ -s $f ]] || die "no callgrind dump $f"
        ir=$(total_ir "$f")
        n=$N
        [[ $sc != idle ]] || n=$IDLE # per second
        IR[$ref.$sc]=$(awk -v a="$ir" -v b="$n" 'BEGIN { printf "%.0f", a / b }')
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$ref" "${LABEL[$ref]}" "$sc" "$n" "$ir" "${IR[$ref.$sc]}" \
            "${BODY[$ref.$sc]:--}" >>"$RESULTS"
        if [[ $sc == idle ]]; then
            info "idle: ${IR[$ref.$sc]} instructions per second ($IDLE s)"
        else
            info "$sc: ${IR[$ref.$sc]} instructions per request ($N requests; body sha256 ${BODY[$ref.$sc]:0:12})"
        fi
        callgrind_annotate --threshold=100 "$f" 2>/dev/null |
            awk -v n="$n" -v top="$TOP" '/^-+$/ { sect++ } sect >= 3 && /^ *[0-9,]+ / {
                    v = $1; gsub(",", "", v); $1 = ""; if (k++ < top) printf "%10.0f %s\n", v / n, $0 }' \
                >"$OUT/$tag-$sc.top.txt" || true
        mv "$f" "$OUT/$tag-$sc.callgrind.out"
    done
    stop_server
done

# ----------------------------------------------------------------- report ---

REPORT=$OUT/results.md
{
    # shellcheck disable=SC2016 # the backquotes are Markdown
    printf 'Run of %s: `SCENARIOS="%s" N=%s WARM=%s bench/callgrind.sh %s` (git %s, %s tasks, load average %s)\n\n' \
        "$(date -u '+%Y-%m-%d %H:%M UTC')" "$SCENARIOS" "$N" "$WARM" "${REFS[*]}" \
        "$(git -C "$TK_ROOT" rev-parse --short HEAD)" "$TASKS" "$(cut -d' ' -f1-3 /proc/loadavg)"
    printf 'Instructions (Ir) per request, whole server process, user space; idle: per second.\n\n'
    printf '| ref |'
    for sc in $SCENARIOS idle; do printf ' %s |' "$sc"; done
    printf '\n|---|'
    for sc in $SCENARIOS idle; do printf -- '--:|'; done
    printf '\n'
    for ref in "${REFS[@]}"; do
        printf '| %s |' "${LABEL[$ref]}"
        for sc in $SCENARIOS idle; do
            change='' differs=''
            if [[ $ref != "$first" ]]; then
                change=$(awk -v a="${IR[$first.$sc]}" -v b="${IR[$ref.$sc]}" \
                    'BEGIN { if (a > 0) printf " (%+.1f %%)", (b - a) * 100 / a }')
                [[ $sc == idle || ${BODY[$ref.$sc]} == "${BODY[$first.$sc]}" ]] || differs=' **body differs**'
            fi
            printf ' %s%s%s |' "${IR[$ref.$sc]}" "$change" "$differs"
        done
        printf '\n'
    done
    printf '\nBody sha256 (first 12 hex digits; every ref serves the same database, so the bytes should match):\n\n'
    for ref in "${REFS[@]}"; do
        printf -- '- %s:' "${LABEL[$ref]}"
        for sc in $SCENARIOS; do printf ' %s %s' "$sc" "${BODY[$ref.$sc]:0:12}"; done
        printf '\n'
    done
} >"$REPORT"
if ((TOP > 0)); then
    for ref in "${REFS[@]}"; do
        for sc in $SCENARIOS; do
            printf '\n%s, %s: top functions, self Ir per request\n' "${LABEL[$ref]}" "$sc"
            head -n 15 "$OUT/${TAG[$ref]}-$sc.top.txt"
        done
    done
fi
section "Results (var/callgrind/results.md)"
cat "$REPORT"
printf '\n'
info "dumps: var/callgrind/*.callgrind.out (callgrind_annotate FILE), tops: *.top.txt, bodies: body-*.json, table: results.md, results.tsv"
differ=0
for ref in "${REFS[@]}"; do
    for sc in $SCENARIOS; do [[ ${BODY[$ref.$sc]} == "${BODY[$first.$sc]}" ]] || differ=1; done
done
((differ == 0)) || warn "some bodies differ from ${LABEL[$first]}'s (see the table)"
