#!/usr/bin/env bash
# What the per-request user check (runtime/auth/users.c) costs: req/s of an
# authenticated GET (default /api/v1/projects) with wrk, on
#   base    BASE_BIN, a taskapi built without the check (required)
#   cache   this tree's Release build, USER_CACHE_TTL_MS default (5000)
#   ttl0    the same with USER_CACHE_TTL_MS=0 (one users query per request)
# measured in turns (ROUNDS times base, cache, ttl0) against one private
# PostgreSQL cluster and one database, so the three see the same machine
# load. Prints one line per run (req/s and the server's CPU time per
# request, which the machine's noise moves less) and the medians' ratios.
#
#   git archive <commit-before> | tar -x -C /tmp/base && \
#     cmake -S /tmp/base -B /tmp/base/build -DCMAKE_BUILD_TYPE=Release && \
#     cmake --build /tmp/base/build --target taskapi
#   BASE_BIN=/tmp/base/build/taskapi bench/user_check.sh
#
# Environment: BASE_BIN, DURATION [10], CONNECTIONS [64], THREADS [2],
# ROUNDS [3], PATH_UNDER_TEST [/api/v1/projects], PORT_BASE [18960].
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bin/lib/common.sh
source bin/lib/common.sh
install_traps

BASE_BIN=${BASE_BIN:?set BASE_BIN to a taskapi built without the user check}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-3}
PATH_UNDER_TEST=${PATH_UNDER_TEST:-/api/v1/projects}
PORT_BASE=${PORT_BASE:-18960}
SECRET=bench-user-check-secret-0123456789abcdef
OUT=$TK_VAR/bench-user-check
mkdir -p "$OUT"

command -v wrk >/dev/null || die "wrk is not installed (Debian package wrk)"
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release >"$OUT/build.log" 2>&1 &&
    cmake --build build-bench --target taskapi -j2 >>"$OUT/build.log" 2>&1 ||
    die "build failed: $OUT/build.log"
NEW_BIN=$TK_ROOT/build-bench/taskapi

unset TASKAPI_PG_PORT DATABASE_URL
start_pg pg-bench-user-check 18950 ephemeral
create_db bench_user_check fresh
DB=$DATABASE_URL
unset DATABASE_URL
DATABASE_URL=$DB "$NEW_BIN" migrate >"$OUT/migrate.log" 2>&1 || die "migrate failed: $OUT/migrate.log"

SRV_PID=''
stop_srv() {
    [[ -z $SRV_PID ]] || stop_child "$SRV_PID" 15 || true
    SRV_PID=''
}
on_exit stop_srv

# start_srv BIN PORT [VAR=VALUE...]
start_srv() {
    local bin=$1 port=$2
    shift 2
    env -i PATH="$PATH" HOME="${HOME:-/root}" LANG=C.UTF-8 PORT="$port" WS_PORT=$((port + 1)) \
        DATABASE_URL="$DB" DB_POOL_SIZE=20 JWT_SECRET="$SECRET" ACCESS_TOKEN_TTL=3600 \
        RATE_LIMIT_PER_MIN=2000000000 AUTH_RATE_LIMIT_PER_MIN=2000000000 LOG_LEVEL=warn \
        WATCH_SCRIPTS=off PID_FILE="$OUT/taskapi.pid" "$@" "$bin" serve >>"$OUT/server.log" 2>&1 &
    SRV_PID=$!
    for _ in $(seq 100); do
        curl -fsS "http://127.0.0.1:$port/health/live" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    die "server did not start: $OUT/server.log"
}

# One user with a few projects; its token is signed with SECRET, so every
# server (same JWT_SECRET) accepts it.
start_srv "$NEW_BIN" "$PORT_BASE"
api=http://127.0.0.1:$PORT_BASE/api/v1
email=bench-$RANDOM$RANDOM@example.com
curl -fsS "$api/auth/register" -H 'content-type: application/json' \
    -d "{\"email\":\"$email\",\"password\":\"bench-password\",\"name\":\"Bench\"}" >/dev/null
TOKEN=$(curl -fsS "$api/auth/login" -H 'content-type: application/json' \
    -d "{\"email\":\"$email\",\"password\":\"bench-password\"}" |
    sed -E 's/.*"accessToken":"([^"]+)".*/\1/')
for i in 1 2 3 4 5; do
    curl -fsS "$api/projects" -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
        -d "{\"name\":\"Bench $i\"}" >/dev/null
done
stop_srv

declare -A RPS
run() { # run NAME BIN [VAR=VALUE...]
    local name=$1 bin=$2 port=$((PORT_BASE + 2)) rps
    shift 2
    start_srv "$bin" "$port" "$@"
    local url=http://127.0.0.1:$port$PATH_UNDER_TEST
    [[ $(curl -s -o /dev/null -w '%{http_code}' -H "authorization: Bearer $TOKEN" "$url") == 200 ]] ||
        die "$name: GET $PATH_UNDER_TEST is not 200"
    wrk -t"$THREADS" -c"$CONNECTIONS" -d2s -H "Authorization: Bearer $TOKEN" "$url" >/dev/null
    local t0 t1 out n us
    t0=$(cpu_ticks "$SRV_PID")
    out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" -H "Authorization: Bearer $TOKEN" "$url")
    t1=$(cpu_ticks "$SRV_PID")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    n=$(awk '/requests in/ {print $1}' <<<"$out")
    us=$(awk -v d=$((t1 - t0)) -v n="$n" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.0f", d / hz * 1e6 / n}')
    stop_srv
    RPS[$name]="${RPS[$name]:-} $rps"
    CPU[$name]="${CPU[$name]:-} $us"
    printf '%-6s %9s req/s %6s us server CPU/request\n' "$name" "$rps" "$us"
}

# utime + stime of a process, in clock ticks
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
declare -A CPU

for _ in $(seq "$ROUNDS"); do
    run base "$BASE_BIN"
    run cache "$NEW_BIN"
    run ttl0 "$NEW_BIN" USER_CACHE_TTL_MS=0
done

median() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
b=$(median <<<"${RPS[base]}")
c=$(median <<<"${RPS[cache]}")
z=$(median <<<"${RPS[ttl0]}")
printf 'median req/s: base %s, cache %s, ttl0 %s\n' "$b" "$c" "$z"
awk -v b="$b" -v c="$c" -v z="$z" \
    'BEGIN {printf "ratio cache/base %.3f, ttl0/base %.3f\n", c / b, z / b}'
b=$(median <<<"${CPU[base]}")
c=$(median <<<"${CPU[cache]}")
z=$(median <<<"${CPU[ttl0]}")
printf 'median server CPU us/request: base %s, cache %s, ttl0 %s\n' "$b" "$c" "$z"
