#!/usr/bin/env bash
# Does a user's list, get and search cost stay flat while the database grows
# with other people's data? Measures them with 1,000 tasks in the user's
# project, then again after adding 1,000,000 tasks (and 200,000 comments) in
# 1,000 projects the user is not a member of, and prints the two side by side.
#
#   bench/scale.sh                       # about 6 minutes on a 2-core machine
#   OTHERS=100000 DURATION=5 bench/scale.sh
#   REFS="a91fc76 HEAD" bench/scale.sh   # also measure another commit's scripts/
#
# Steps: builds build-bench/taskapi (Release); starts a private PostgreSQL in
# var/pg-scale with pg_stat_statements (fsync off: reads are measured);
# recreates database scale_taskapi and migrates it; starts taskapi on
# SCALE_PORT; registers a user through the API, who creates two projects (one
# stays empty, so "mine" merges two); loads 1,000 tasks into the first with
# bench/scale/mine.sql (generate_series); measures; loads the other projects
# with bench/scale/others.sql; measures again; then writes the plans of the
# hot statements (bench/scale/explain.lua: forced generic, and the plan
# PostgreSQL keeps by itself) to var/scale/explain.txt and explain-auto.txt.
#
# Each scenario runs wrk with one thread and one connection (latency, not
# throughput; --timeout 30s): WARMUP seconds discarded, then DURATION seconds measured.
# "PG ms/req" is PostgreSQL's own time per request from pg_stat_statements
# (total_exec_time + total_plan_time over every statement, divided by the
# requests wrk counted), "stmts/req" the statements it ran per request.
#
# Knobs: MINE (1000), OTHERS (1000000), OTHER_PROJECTS (1000), DURATION (10),
# WARMUP (2), CONNECTIONS (1), REFS ("HEAD": git refs whose scripts/ are
# served, each in turn; the working tree's scripts/ is "HEAD"), SCALE_PORT
# (18930), SCALE_PG_PORT (18920). Output also in var/scale/results.md.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bin/lib/common.sh
source bin/lib/common.sh

MINE=${MINE:-1000}
OTHERS=${OTHERS:-1000000}
OTHER_PROJECTS=${OTHER_PROJECTS:-1000}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
CONNECTIONS=${CONNECTIONS:-1}
REFS=${REFS:-HEAD}
SCALE_PORT=${SCALE_PORT:-18930}
SCALE_PG_PORT=${SCALE_PG_PORT:-18920}
SCENARIOS=(list list_status mine get search)

OUT=$TK_VAR/scale
LOGS=$OUT/logs
BIN=$TK_ROOT/build-bench/taskapi
BASE=http://127.0.0.1:$SCALE_PORT
JWT=scale-secret-0123456789abcdef0123

install_traps
lock_checkout scale
mkdir -p "$OUT" "$LOGS"
command -v wrk >/dev/null || die "wrk is not installed (Debian package wrk)"

section "Build (Release) -> build-bench/taskapi"
build_taskapi build-bench taskapi -DCMAKE_BUILD_TYPE=Release >"$LOGS/build.log" 2>&1 ||
    {
        tail -n 30 "$LOGS/build.log" >&2
        die "the build failed (all of it in $LOGS/build.log)"
    }

section "PostgreSQL (var/pg-scale) with pg_stat_statements"
unset TASKAPI_PG_PORT DATABASE_URL
start_pg pg-scale "$SCALE_PG_PORT" ephemeral
if [[ $(_psql -tA -c "SHOW shared_preload_libraries") != *pg_stat_statements* ]]; then
    _psql -c "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'"
    _pg pg_ctl restart -D "$TK_PG_DATA" -m fast -w -t 60 -l "$TK_PG_DIR/postgres.log" >/dev/null 9>&-
    info "restarted with pg_stat_statements"
fi
# Known only once the library is loaded; planning time counts too.
_psql -c "ALTER SYSTEM SET pg_stat_statements.track_planning = on" -c "SELECT pg_reload_conf()" >/dev/null
create_db scale_taskapi fresh
DB=$DATABASE_URL
unset DATABASE_URL
(DATABASE_URL=$DB "$BIN" migrate >"$LOGS/migrate.log" 2>&1) || {
    cat "$LOGS/migrate.log" >&2
    die "migrate failed"
}
psql_db() { "$TK_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$DB" "$@"; }
psql_db -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"

# ------------------------------------------------------------ the server ---

SERVER_PID=''
stop_server() {
    [[ -n $SERVER_PID ]] || return 0
    stop_child "$SERVER_PID" 15 || true
    SERVER_PID=''
}
on_exit stop_server

# start_server REF: serves the scripts/ of git ref REF (HEAD: the working tree).
start_server() {
    local ref=$1 dir=$OUT/scripts-${1//\//_} i
    rm -rf "$dir"
    if [[ $ref == HEAD ]]; then
        cp -r scripts "$dir"
    else
        mkdir -p "$dir"
        git archive "$ref" scripts | tar -x -C "$dir" --strip-components=1
    fi
    ! port_busy "$SCALE_PORT" || die "port $SCALE_PORT is taken (set SCALE_PORT)"
    (exec env -i PATH="$PATH" HOME="${HOME:-/root}" LANG=C.UTF-8 PORT="$SCALE_PORT" \
        WS_PORT=$((SCALE_PORT + 1)) DATABASE_URL="$DB" DB_POOL_SIZE=20 JWT_SECRET=$JWT \
        ACCESS_TOKEN_TTL=86400 RATE_LIMIT_PER_MIN=1000000000 AUTH_RATE_LIMIT_PER_MIN=1000000000 \
        SCRIPTS_DIR="$dir" WATCH_SCRIPTS=off "$BIN" serve >>"$LOGS/taskapi-$ref.log" 2>&1 9>&-) &
    SERVER_PID=$!
    for ((i = 0; i < 300; i++)); do
        [[ $(curl -s -o /dev/null -w '%{http_code}' "$BASE/health/live") == 200 ]] && return 0
        sleep 0.1
    done
    die "taskapi did not start (log: $LOGS/taskapi-$ref.log)"
}

# api METHOD PATH [JSON]: the JSON answer (exits on a non-2xx status).
api() {
    curl -sf -X "$1" "$BASE$2" -H 'Content-Type: application/json' \
        ${TOKEN:+-H "Authorization: Bearer $TOKEN"} ${3:+--data "$3"} ||
        die "$1 $2 failed"
}
field() { node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{let v=JSON.parse(s);for(const k of process.argv[1].split("."))v=v[k];console.log(v)})' "$1"; }

section "Seed: a user, two projects, $MINE tasks"
start_server "${REFS%% *}"
TOKEN=''
api POST /api/v1/auth/register '{"email":"scale@example.com","password":"scale password 0123","name":"Scale"}' >/dev/null
TOKEN=$(api POST /api/v1/auth/login '{"email":"scale@example.com","password":"scale password 0123"}' | field data.accessToken)
OWNER=$(api GET /api/v1/auth/me | field data.id)
PROJECT=$(api POST /api/v1/projects '{"name":"Scale project"}' | field data.id)
api POST /api/v1/projects '{"name":"Scale empty"}' >/dev/null
psql_db -v mine="$MINE" -v owner="$OWNER" -v project="$PROJECT" -f bench/scale/mine.sql
psql_db -c "VACUUM ANALYZE"
psql_db -tA -c "SELECT id FROM tasks WHERE project_id = '$PROJECT' ORDER BY id" >"$OUT/ids"
info "user $OWNER, project $PROJECT"

# ------------------------------------------------------------- measuring ---

declare -A R # R[ref,size,scenario] = "p50 p99 pg_ms stmts"

# measure REF SIZE
measure() {
    local ref=$1 size=$2 s script raw reqs p50 p99 pg
    for s in "${SCENARIOS[@]}"; do
        case $s in
        list | get | search) script=bench/lua/$s.lua ;;
        *) script=bench/scale/$s.lua ;;
        esac
        env BENCH_LUA_DIR="$TK_ROOT/bench/lua" BENCH_TOKEN="$TOKEN" BENCH_PROJECT="$PROJECT" \
            BENCH_IDS="$OUT/ids" BENCH_QUERY=migration \
            wrk -t1 -c"$CONNECTIONS" -d"${WARMUP}s" --timeout 30s -s "$script" "$BASE" >/dev/null
        psql_db -tA -c "SELECT pg_stat_statements_reset()" >/dev/null
        raw=$(env BENCH_LUA_DIR="$TK_ROOT/bench/lua" BENCH_TOKEN="$TOKEN" BENCH_PROJECT="$PROJECT" \
            BENCH_IDS="$OUT/ids" BENCH_QUERY=migration \
            wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --timeout 30s --latency -s "$script" "$BASE")
        printf '%s\n' "$raw" >"$LOGS/wrk-$ref-$size-$s.txt"
        read -r reqs p50 p99 < <(sed -n 's/^BENCH .*requests=\([0-9]*\) .*p50_us=\([0-9]*\) .*p99_us=\([0-9]*\) .*/\1 \2 \3/p' <<<"$raw")
        [[ $(sed -n 's/^BENCH .*status=\([0-9]*\).*/\1/p' <<<"$raw") == 0 ]] ||
            warn "$s: non-2xx answers (see $LOGS/wrk-$ref-$size-$s.txt)"
        pg=$(psql_db -tA -F' ' -c "
            SELECT round((sum(total_exec_time + total_plan_time) / $reqs)::numeric, 3),
                   round((sum(calls)::numeric / $reqs), 2)
              FROM pg_stat_statements
             WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
               AND query NOT LIKE '%pg_stat_statements%'")
        R[$ref,$size,$s]="$p50 $p99 $pg"
        info "$ref $size $s: requests=$reqs p50=${p50}us p99=${p99}us pg_ms/stmts=$pg"
    done
}

measure_all() {
    local size=$1 ref first=1
    for ref in $REFS; do
        if ((first == 0)); then
            stop_server
            start_server "$ref"
        fi
        first=0
        measure "$ref" "$size"
    done
}

section "Measure: $MINE tasks in the database"
measure_all small
stop_server

section "Load: $OTHERS tasks in $OTHER_PROJECTS other projects"
SECONDS=0
psql_db -v others="$OTHERS" -v projects="$OTHER_PROJECTS" -f bench/scale/others.sql
info "loaded in ${SECONDS}s: $(psql_db -tA -c 'SELECT count(*) FROM tasks') tasks, $(psql_db -tA -c 'SELECT count(*) FROM comments') comments"

section "Measure: $((MINE + OTHERS)) tasks in the database"
start_server "${REFS%% *}"
measure_all large

section "Plans kept on the large database -> var/scale/explain*.txt"
(cd "$TK_ROOT" && lua5.4 bench/scale/explain.lua "$PROJECT" "$OWNER") | psql_db >"$OUT/explain.txt" 2>&1 ||
    warn "explain failed (see $OUT/explain.txt)"
(cd "$TK_ROOT" && PLAN_MODE=auto lua5.4 bench/scale/explain.lua "$PROJECT" "$OWNER") |
    psql_db >"$OUT/explain-auto.txt" 2>&1 || warn "explain (auto) failed (see $OUT/explain-auto.txt)"

# ----------------------------------------------------------------- table ---

ms() { awk -v u="$1" 'BEGIN { printf "%.2f", u / 1000 }'; }
{
    printf '| scripts | scenario | p50 ms, %s / %s tasks | p99 ms, %s / %s | PG ms/req, %s / %s | stmts/req |\n' \
        "$MINE" "$((MINE + OTHERS))" "$MINE" "$((MINE + OTHERS))" "$MINE" "$((MINE + OTHERS))"
    printf '|---|---|--:|--:|--:|--:|\n'
    for ref in $REFS; do
        for s in "${SCENARIOS[@]}"; do
            read -r a50 a99 apg ast <<<"${R[$ref,small,$s]}"
            read -r b50 b99 bpg bst <<<"${R[$ref,large,$s]}"
            printf '| %s | %s | %s / %s | %s / %s | %s / %s | %s / %s |\n' "$ref" "$s" \
                "$(ms "$a50")" "$(ms "$b50")" "$(ms "$a99")" "$(ms "$b99")" "$apg" "$bpg" "$ast" "$bst"
        done
    done
} | tee "$OUT/results.md"
info "wrk -t1 -c$CONNECTIONS, ${DURATION}s per scenario after ${WARMUP}s warm-up; table in var/scale/results.md"
