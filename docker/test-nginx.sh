#!/bin/bash
# Runs docker/nginx.conf for real, in front of locally started taskapi
# instances, and checks through it what a client of the compose deployment
# would see. No Docker needed: nginx, node, redis-server, a PostgreSQL and a
# built taskapi (build/taskapi) are.
#
#   docker/test-nginx.sh
#
# What it does:
#   1. starts a private redis-server and INSTANCES (default 2) taskapi instances
#      through docker/entrypoint.sh (so `taskapi migrate` runs concurrently on
#      each, then `taskapi serve`), each with its own PORT/WS_PORT, REDIS_URL
#      and the database DATABASE_URL (created if missing);
#   2. renders a copy of docker/nginx.conf whose upstreams list those instances
#      (only the `server api:… resolve;` lines, `listen 8080;` and the temp
#      paths change) and runs nginx in the foreground (not a daemon) with a
#      temp prefix on a free port;
#   3. checks through nginx: /health, request ids, the edge's own answers in
#      the contract's shape, register + login, native /ws (ready, Origin,
#      4401), Socket.IO on /socket.io/ joining a project and receiving
#      task:created after a REST POST — on two clients that sit on different
#      instances — and the per-IP auth limit; then the access log (both
#      instances used, no token in it);
#   4. renders the same file again in front of an echo upstream and checks the
#      headers nginx forwards (X-Forwarded-For, X-Real-IP, X-Request-Id,
#      Upgrade/Connection for WebSockets, none for REST keep-alive);
#   5. stops everything it started (SIGTERM to taskapi must exit 0).
#
# Environment:
#   TASKAPI_BIN   default build/taskapi
#   DATABASE_URL  default postgresql://postgres@127.0.0.1:55440/dock_db (the dev cluster)
#   DATABASE_READ_URL  optional: a streaming replica of it, given to every
#                 instance; then /health must report it ok and the replica
#                 must have served reads (bin/scale-test sets it)
#   INSTANCES     default 2 (1 if redis-server is missing)
#   PORT_MIN/PORT_MAX  ports to pick free ones from (default 19100..19199)
#   RUN_SPECS=1   also run every spec/node/*.test.js through nginx (about a minute)
#   ROLLING=1     also restart every instance in turn, then kill -9 one, under load
#                 through nginx (docker/rolling.js): no failed request, no lost write
#   DRAIN_MS      the instances' SHUTDOWN_DRAIN_MS (default 6000: nginx.conf's
#                 upstream keepalive_timeout is 5 s)
#   RESTART_GAP   seconds between one instance ready and the next SIGTERM (11:
#                 nginx's fail_timeout is 10 s)
#   KEEP=1        keep the temp directory (logs, rendered configs)
#   FRESH_DB=1    the database is empty: check that the instances, migrating it
#                 at once, applied every file exactly once (bin/scale-test)
# Last line: `N passed, N failed`; exit 1 if anything failed.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
TASKAPI_BIN=${TASKAPI_BIN:-$ROOT/build/taskapi}
DATABASE_URL=${DATABASE_URL:-postgresql://postgres@127.0.0.1:55440/dock_db}
INSTANCES=${INSTANCES:-2}
PORT_MIN=${PORT_MIN:-19100}
PORT_MAX=${PORT_MAX:-19199}
NGINX=${NGINX:-nginx}
JWT_SECRET=dock-test-secret-0123456789

PASS=0
FAIL=0
ok() { PASS=$((PASS + 1)); echo "ok - $*"; }
notok() { FAIL=$((FAIL + 1)); echo "not ok - $*"; }
check() { # check NAME CMD...
    local name=$1
    shift
    if "$@"; then ok "$name"; else notok "$name"; fi
}
die() {
    echo "test-nginx: $*" >&2
    echo "$PASS passed, $((FAIL + 1)) failed"
    exit 1
}

# ---- prerequisites ---------------------------------------------------------
command -v "$NGINX" >/dev/null || die "nginx not found (apt-get install -y nginx)"
command -v node >/dev/null || die "node not found"
command -v curl >/dev/null || die "curl not found"
command -v psql >/dev/null || die "psql not found"
[[ -x $TASKAPI_BIN ]] || die "$TASKAPI_BIN not built (cmake -S . -B build && cmake --build build)"
if [[ ! -d $ROOT/spec/node/node_modules/socket.io-client ]]; then
    npm ci --prefix "$ROOT/spec/node" >/dev/null || die "npm ci --prefix spec/node failed"
fi
export NODE_PATH=$ROOT/spec/node/node_modules
if ! command -v redis-server >/dev/null; then
    echo "# redis-server not found: one instance, no cross-instance checks"
    INSTANCES=1
fi

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true # nginx's worker_connections wants many files
W=$(mktemp -d /tmp/dock-nginx.XXXXXX)
chmod 755 "$W" # nginx workers run as nobody when the master is root
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
    if [[ ${KEEP:-0} == 1 ]]; then echo "# kept $W"; else rm -rf "$W"; fi
}
trap cleanup EXIT

declare -A TAKEN
# free_port: sets REPLY to a port in PORT_MIN..PORT_MAX nobody listens on.
free_port() {
    local p
    for ((p = PORT_MIN; p <= PORT_MAX; p++)); do
        [[ -n ${TAKEN[$p]:-} ]] && continue
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            TAKEN[$p]=1
            REPLY=$p
            return 0
        fi
    done
    die "no free port in $PORT_MIN..$PORT_MAX"
}
wait_port() { # wait_port PORT SECONDS
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# ---- database ----------------------------------------------------------------
DBNAME=${DATABASE_URL##*/}
DBNAME=${DBNAME%%\?*}
if ! psql "$DATABASE_URL" -Atqc 'SELECT 1' >/dev/null 2>&1; then
    psql "${DATABASE_URL%/*}/postgres" -qc "CREATE DATABASE \"$DBNAME\"" >/dev/null ||
        die "cannot reach or create the database of $DATABASE_URL"
fi

# ---- entrypoint.sh wait-migrated / migrate on an empty database -------------------
WAIT_URL="${DATABASE_URL%/*}/${DBNAME}_wait"
psql "${DATABASE_URL%/*}/postgres" -qc "DROP DATABASE IF EXISTS \"${DBNAME}_wait\"" -c "CREATE DATABASE \"${DBNAME}_wait\"" \
    >/dev/null 2>&1 || die "cannot create ${DBNAME}_wait"
env TASKAPI_BIN="$TASKAPI_BIN" DATABASE_URL="$WAIT_URL" MIGRATIONS_DIR="$ROOT/migrations" \
    MIGRATE_RETRIES=40 MIGRATE_RETRY_DELAY=0.25 "$HERE/entrypoint.sh" wait-migrated >"$W/wait.log" 2>&1 &
WAITER=$!
PIDS+=("$WAITER")
sleep 1
check "entrypoint.sh wait-migrated keeps waiting while migrations are pending" kill -0 "$WAITER"
migrate_wait_db() {
    env TASKAPI_BIN="$TASKAPI_BIN" DATABASE_URL="$WAIT_URL" MIGRATIONS_DIR="$ROOT/migrations" \
        "$HERE/entrypoint.sh" migrate >>"$W/wait.log" 2>&1
}
check "entrypoint.sh migrate applies them" migrate_wait_db
wait "$WAITER"
check "entrypoint.sh wait-migrated then exits 0 (the pods' init container)" test $? = 0
psql "${DATABASE_URL%/*}/postgres" -qc "DROP DATABASE IF EXISTS \"${DBNAME}_wait\"" >/dev/null 2>&1

# ---- redis and the taskapi instances ------------------------------------------
REDIS_URL=
if ((INSTANCES > 1)); then
    free_port
    RPORT=$REPLY
    redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no \
        >"$W/redis.log" 2>&1 &
    PIDS+=($!)
    wait_port "$RPORT" 10 || die "redis-server did not start ($W/redis.log)"
    REDIS_URL=redis://127.0.0.1:$RPORT/0
fi

# a snapshot of the application, so that edits in the tree meanwhile do not reload it
cp -r "$ROOT/scripts" "$W/scripts"
cp -r "$ROOT/plugins" "$W/plugins"
SCRIPTS_DIR=$W/scripts PLUGINS_DIR=$W/plugins "$TASKAPI_BIN" check >"$W/check.log" 2>&1 ||
    die "taskapi check failed: $(cat "$W/check.log")"

free_port
NGX=$REPLY
ORIGIN=http://127.0.0.1:$NGX
REST_PORTS=()
WS_PORTS=()
TK_PIDS=()
# start_instance I: instance I on its ports (entrypoint.sh: migrate, then exec
# taskapi serve, so TK_PIDS[I] is taskapi's pid); its log is appended to.
start_instance() {
    local i=$1
    env TASKAPI_BIN="$TASKAPI_BIN" MIGRATE_ON_START=1 MIGRATE_RETRIES=5 MIGRATE_RETRY_DELAY=1 \
        PORT="${REST_PORTS[i]}" WS_PORT="${WS_PORTS[i]}" DATABASE_URL="$DATABASE_URL" \
        ${DATABASE_READ_URL:+DATABASE_READ_URL="$DATABASE_READ_URL"} \
        REDIS_URL="$REDIS_URL" JWT_SECRET="$JWT_SECRET" WORKERS=4 DB_POOL_SIZE=8 \
        SCRIPTS_DIR="$W/scripts" PLUGINS_DIR="$W/plugins" MIGRATIONS_DIR="$ROOT/migrations" \
        PID_FILE="$W/taskapi-$i.pid" WATCH_SCRIPTS=off CORS_ORIGINS="$ORIGIN" \
        AUTH_RATE_LIMIT_PER_MIN=100000 RATE_LIMIT_PER_MIN=1000000 LOG_LEVEL=info \
        SHUTDOWN_DRAIN_MS="${DRAIN_MS:-6000}" \
        "$HERE/entrypoint.sh" serve >>"$W/taskapi-$i.log" 2>&1 &
    TK_PIDS[i]=$!
    PIDS+=($!)
}
# wait_ready I: until instance I answers /health/ready (15 s), or die
wait_ready() {
    local i=$1 t
    for ((t = 0; t < 150; t++)); do
        PORT=${REST_PORTS[i]} "$HERE/entrypoint.sh" health /health/ready 2>/dev/null && return 0
        kill -0 "${TK_PIDS[i]}" 2>/dev/null || break
        sleep 0.1
    done
    die "taskapi instance $i did not become ready: $(tail -5 "$W/taskapi-$i.log")"
}
for ((i = 0; i < INSTANCES; i++)); do
    free_port
    REST_PORTS+=("$REPLY")
    free_port
    WS_PORTS+=("$REPLY")
    start_instance "$i"
done
for ((i = 0; i < INSTANCES; i++)); do wait_ready "$i"; done
# every instance ran `taskapi migrate` at start, at once: each file applied once
nfiles=$(find "$ROOT/migrations" -maxdepth 1 -name '*.sql' | wc -l)
napplied=$(cat "$W"/taskapi-*.log | grep -c '^applied ')
nrows=$(psql "$DATABASE_URL" -Atqc 'SELECT count(*) FROM schema_migrations' 2>/dev/null)
if [[ ${FRESH_DB:-0} == 1 ]]; then
    check "$INSTANCES instances migrating a fresh database at once applied each of the $nfiles files once ($napplied 'applied' lines, $nrows rows)" \
        test "$napplied $nrows" = "$nfiles $nfiles"
else
    check "schema_migrations holds every migration file once ($nrows rows, $nfiles files)" test "$nrows" = "$nfiles"
fi
ok "$INSTANCES taskapi instance(s) started by entrypoint.sh (migrate, then serve) are ready"
check "entrypoint.sh health (the image's HEALTHCHECK) succeeds on /health/live" \
    env PORT="${REST_PORTS[0]}" "$HERE/entrypoint.sh" health /health/live
check "entrypoint.sh health fails on a port nobody serves" \
    bash -c "! PORT=$PORT_MAX '$HERE/entrypoint.sh' health /health/live 2>/dev/null"

# ---- render and start nginx -------------------------------------------------------
CONF=$HERE/nginx.conf
for pat in '        server api:8080 resolve;' '        server api:8081 resolve;' '        listen 8080;' 'http {'; do
    n=$(grep -cxF -- "$pat" "$CONF")
    [[ $n == 1 ]] || die "nginx.conf: expected exactly one line '$pat', found $n (update test-nginx.sh)"
done

# render PREFIX LISTEN_PORT "REST servers" "WS servers" [AUTH_RATE] -> PREFIX/nginx.conf
render() {
    local prefix=$1 port=$2 rest=$3 ws=$4 rate=${5:-} s
    mkdir -p "$prefix"/{client_body,proxy,fastcgi,uwsgi,scgi}
    chmod 1777 "$prefix"/{client_body,proxy,fastcgi,uwsgi,scgi}
    local rest_lines="" ws_lines=""
    for s in $rest; do rest_lines+="        server 127.0.0.1:$s;\n"; done
    for s in $ws; do ws_lines+="        server 127.0.0.1:$s;\n"; done
    awk -v rest="$rest_lines" -v ws="$ws_lines" -v port="$port" -v prefix="$prefix" -v rate="$rate" '
        $0 == "        server api:8080 resolve;" { printf "%s", rest; next }
        $0 == "        server api:8081 resolve;" { printf "%s", ws; next }
        $0 == "        listen 8080;"             { print "        listen 127.0.0.1:" port ";"; next }
        $0 == "http {" {
            print
            print "    client_body_temp_path " prefix "/client_body;"
            print "    proxy_temp_path " prefix "/proxy;"
            print "    fastcgi_temp_path " prefix "/fastcgi;"
            print "    uwsgi_temp_path " prefix "/uwsgi;"
            print "    scgi_temp_path " prefix "/scgi;"
            next
        }
        rate != "" { sub(/ rate=10r\/m;/, " rate=" rate ";") }
        { print }' "$CONF" >"$prefix/nginx.conf"
}
# start_nginx PREFIX PORT: nginx in the foreground (daemon off), stdout = access log
start_nginx() {
    "$NGINX" -p "$1" -c "$1/nginx.conf" -g "daemon off; pid $1/nginx.pid;" \
        >"$1/access.log" 2>"$1/error.log" &
    PIDS+=($!)
    NGINX_PID=$!
    wait_port "$2" 10
}

render "$W/nginx" "$NGX" "${REST_PORTS[*]}" "${WS_PORTS[*]}"
if "$NGINX" -t -q -p "$W/nginx" -c "$W/nginx/nginx.conf" -g "pid $W/nginx/nginx.pid;" 2>"$W/nginx-t.log"; then
    ok "nginx -t accepts the rendered docker/nginx.conf ($("$NGINX" -v 2>&1))"
else
    notok "nginx -t accepts the rendered docker/nginx.conf: $(cat "$W/nginx-t.log")"
fi
start_nginx "$W/nginx" "$NGX" || die "nginx did not start: $(cat "$W/nginx/error.log")"
MAIN_NGINX=$NGINX_PID
BASE=http://127.0.0.1:$NGX
echo "# nginx $NGX -> REST ${REST_PORTS[*]}, WS ${WS_PORTS[*]}${REDIS_URL:+, Redis ${REDIS_URL##*:}}"

# ---- plain HTTP checks through nginx -------------------------------------------------
# curl_to FILE URL ARGS...: body to FILE, headers to FILE.h, prints the status
curl_to() {
    local out=$1 url=$2
    shift 2
    curl -s -o "$out" -D "$out.h" -w '%{http_code}' "$@" "$url"
}
hdr() { grep -i "^$2:" "$1.h" | head -1 | cut -d' ' -f2- | tr -d '\r'; }
jq_() { node -e 'const o=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")); const v=process.argv[2].split(".").reduce((a,k)=>a==null?a:a[k],o); process.stdout.write(v===undefined?"undefined":typeof v==="string"?v:JSON.stringify(v))' "$@"; }

st=$(curl_to "$W/h" "$BASE/health")
check "GET /health through nginx: 200, status ok, database ok" \
    test "$st $(jq_ "$W/h" status) $(jq_ "$W/h" checks.database)" = "200 ok ok"
if [[ -n $REDIS_URL ]]; then
    check "GET /health reports redis ok (REDIS_URL shared by the instances)" test "$(jq_ "$W/h" checks.redis)" = ok
fi
if [[ -n ${DATABASE_READ_URL:-} ]]; then
    # the instances' replica monitors check every second
    for ((t = 0; t < 150; t++)); do
        curl_to "$W/h" "$BASE/health" >/dev/null
        [[ $(jq_ "$W/h" checks.replica) == ok ]] && break
        sleep 0.1
    done
    check "GET /health reports the read replica ok (DATABASE_READ_URL, lag $(jq_ "$W/h" replicaLagSeconds) s)" \
        test "$(jq_ "$W/h" checks.replica)" = ok
fi
check "the answer carries taskapi's security headers and no nginx version" \
    bash -c "grep -qi '^x-content-type-options: nosniff' '$W/h.h' && ! grep -qi '^server: .*[0-9]' '$W/h.h'"

st=$(curl_to "$W/r" "$BASE/health/live" -H 'X-Request-Id: dock-check.42')
check "a client's X-Request-Id reaches taskapi and comes back" test "$st $(hdr "$W/r" x-request-id)" = "200 dock-check.42"
st=$(curl_to "$W/r" "$BASE/health/live")
rid=$(hdr "$W/r" x-request-id)
check "without one, taskapi adopts nginx's \$request_id (32 hex, the same in nginx's log)" \
    bash -c "[[ '$rid' =~ ^[0-9a-f]{32}\$ ]] && sleep 0.2 && grep -q 'rid=$rid ' '$W/nginx/access.log'"
st=$(curl_to "$W/r" "$BASE/health/live" -H 'X-Request-Id: bad id with spaces')
rid=$(hdr "$W/r" x-request-id)
check "an unacceptable client X-Request-Id is replaced by nginx's" bash -c "[[ '$rid' =~ ^[0-9a-f]{32}\$ ]]"

st=$(curl_to "$W/m" "$BASE/metrics")
check "GET /metrics is not served through the proxy: 404 in the contract's error shape" \
    test "$st $(jq_ "$W/m" error.code) $(hdr "$W/m" content-type)" = "404 not_found application/json"
st=$(curl_to "$W/u" "$BASE/api/v1/no-such-thing")
check "an unknown path is answered by taskapi itself (its 404 not_found, all its security headers)" \
    test "$st $(jq_ "$W/u" error.code) $(jq_ "$W/u" error.message) $(hdr "$W/u" strict-transport-security)" = \
    "404 not_found no such resource max-age=15552000; includeSubDomains"
head -c 2000000 /dev/zero | tr '\0' 'a' >"$W/big"
st=$(curl_to "$W/b" "$BASE/api/v1/auth/me" -H 'content-type: application/json' --data-binary @"$W/big")
check "a 2 MB body passes nginx and gets taskapi's own 413 payload_too_large" \
    test "$st $(jq_ "$W/b" error.code)" = "413 payload_too_large"
head -c 9000000 /dev/zero | tr '\0' 'a' >"$W/big"
st=$(curl_to "$W/b" "$BASE/api/v1/auth/me" -H 'content-type: application/json' --data-binary @"$W/big")
check "a 9 MB body (over client_max_body_size) gets nginx's 413 in the same shape" \
    test "$st $(jq_ "$W/b" error.code)" = "413 payload_too_large"
rm -f "$W/big"

# ---- realtime and REST end to end (node) ---------------------------------------------
NGINX_URL=$BASE ALLOWED_ORIGIN=$ORIGIN node "$HERE/test-nginx.js" e2e >"$W/e2e.out" 2>&1
cat "$W/e2e.out"
PASS=$((PASS + $(grep -c '^ok - ' "$W/e2e.out")))
FAIL=$((FAIL + $(grep -c '^not ok - ' "$W/e2e.out")))
grep -q '^\(not \)\?ok - ' "$W/e2e.out" || notok "node test-nginx.js e2e ran: $(tail -5 "$W/e2e.out")"

# ---- the access log ------------------------------------------------------------------
sleep 0.3
LOG=$W/nginx/access.log
check "nginx's access log holds the /ws and /socket.io/ connections" \
    bash -c "grep -q '\"GET /ws HTTP/1.1\" 101 ' '$LOG' && grep -q '\"GET /socket.io/ HTTP/1.1\" 101 ' '$LOG'"
check "no access token (nor any query string) in nginx's access log" \
    bash -c "! grep -qE 'token=|eyJ' '$LOG'"
if ((INSTANCES > 1)); then
    sio_on=0
    for ((i = 0; i < INSTANCES; i++)); do
        check "REST requests reached instance $i (127.0.0.1:${REST_PORTS[i]})" \
            grep -q "upstream=127.0.0.1:${REST_PORTS[i]} " "$LOG"
        grep '"GET /socket.io/ ' "$LOG" | grep -q "upstream=127.0.0.1:${WS_PORTS[i]} " && sio_on=$((sio_on + 1))
    done
    # the e2e part has two Socket.IO clients, balanced least_conn
    check "the two socket.io clients sat on two different instances ($sio_on of $INSTANCES had one): events crossed instances through Redis" \
        test "$sio_on" = 2
fi

# ---- optional: the realtime specs of spec/node through nginx ----------------------------
# RUN_SPECS=1: every spec/node/*.test.js against the nginx origin (REST, /ws and
# /socket.io/ all on one port), in front of the same instances. They register
# many users, so this copy of the config allows 100000 auth POSTs a minute.
if [[ ${RUN_SPECS:-0} == 1 ]]; then
    free_port
    NGX3=$REPLY
    render "$W/nginx3" "$NGX3" "${REST_PORTS[*]}" "${WS_PORTS[*]}" 100000r/m
    grep -q 'rate=100000r/m;' "$W/nginx3/nginx.conf" || die "render: the auth rate was not replaced"
    start_nginx "$W/nginx3" "$NGX3" || die "third nginx did not start: $(cat "$W/nginx3/error.log")"
    # (the instances allow their own Origin check only for $ORIGIN, which the specs do not send)
    (cd "$ROOT" && TASKAPI_URL=http://127.0.0.1:$NGX3 TASKAPI_WS_URL=ws://127.0.0.1:$NGX3 JWT_SECRET=$JWT_SECRET \
        TASKAPI_BIN=$TASKAPI_BIN DATABASE_URL=$DATABASE_URL node --test spec/node/) >"$W/specs.out" 2>&1
    rc=$?
    summary=$(grep -E '^# (pass|fail)' "$W/specs.out" | tr '\n' ' ')
    check "spec/node (node --test) passes through nginx: $summary" test "$rc" = 0
    ((rc == 0)) || grep -B2 -A20 'not ok' "$W/specs.out" | head -60
    kill -QUIT "$NGINX_PID"
    wait "$NGINX_PID" 2>/dev/null
fi

# ---- optional: rolling restart and kill -9 under load -------------------------------------
# ROLLING=1: docker/rolling.js keeps writing and reading through nginx, with
# Socket.IO clients joined, while each instance in turn gets SIGTERM (it
# drains SHUTDOWN_DRAIN_MS, exits 0) and is started again: no request may
# fail, no acknowledged write may be lost, every client must be receiving
# again. Then, under load again, one instance is killed with SIGKILL and
# restarted: requests in flight on it may fail, acknowledged writes must
# all read back and nginx must keep serving from the others.
# rolling_phase NAME ACTION: runs rolling.js around ACTION; report in $W/NAME.json
rolling_phase() {
    local name=$1 action=$2 rpid
    rm -f "$W/$name.stop"
    node "$HERE/rolling.js" "$ROLL_BASE" "$W/$name.stop" "$W/$name.json" >"$W/$name.out" 2>&1 &
    rpid=$!
    sleep 3
    "$action"
    sleep 3
    touch "$W/$name.stop"
    wait "$rpid" || notok "$name: rolling.js failed: $(tail -5 "$W/$name.out")"
    echo "# $name: $(tr -d '\n ' <"$W/$name.json" 2>/dev/null | cut -c1-400)"
}
restart_each() {
    local i rc
    for ((i = 0; i < INSTANCES; i++)); do
        kill -TERM "${TK_PIDS[i]}"
        wait "${TK_PIDS[i]}"
        rc=$?
        check "rolling restart: instance $i drains and exits 0 on SIGTERM under load" test "$rc" = 0
        start_instance "$i"
        wait_ready "$i"
        # nginx holds a refused server out for fail_timeout (10 s by default)
        # even once it is back: the next instance may only go after that, or
        # both are out at once ("no live upstreams")
        sleep "${RESTART_GAP:-11}"
    done
}
kill_one() {
    kill -KILL "${TK_PIDS[0]}"
    wait "${TK_PIDS[0]}" 2>/dev/null
    sleep 2
    start_instance 0
    wait_ready 0
}
if [[ ${ROLLING:-0} == 1 ]]; then
    free_port
    NGX4=$REPLY
    render "$W/nginx4" "$NGX4" "${REST_PORTS[*]}" "${WS_PORTS[*]}" 100000r/m
    start_nginx "$W/nginx4" "$NGX4" || die "rolling nginx did not start: $(cat "$W/nginx4/error.log")"
    ROLL_NGINX=$NGINX_PID
    ROLL_BASE=http://127.0.0.1:$NGX4
    rolling_phase rolling restart_each
    R=$W/rolling.json
    check "rolling restart: $(jq_ "$R" requests) requests, none failed" test "$(jq_ "$R" failed)" = 0
    check "rolling restart: $(jq_ "$R" acknowledgedWrites) acknowledged writes, none lost" test "$(jq_ "$R" writesLost)" = 0
    check "rolling restart: every Socket.IO client reconnected and receives again" \
        node -e 'const r=JSON.parse(require("fs").readFileSync(process.argv[1]));
            process.exit(r.clients.every((c)=>c.receivesAfterRestarts && c.connects>1) ? 0 : 1)' "$R"
    for ((i = 0; i < INSTANCES; i++)); do
        n=$(grep -c "upstream=127.0.0.1:${REST_PORTS[i]} " "$W/nginx4/access.log")
        check "rolling restart: instance $i served $n requests through nginx" test "$n" -gt 0
    done
    rolling_phase kill9 kill_one
    K=$W/kill9.json
    check "kill -9 under load: $(jq_ "$K" acknowledgedWrites) acknowledged writes, none lost" test "$(jq_ "$K" writesLost)" = 0
    check "kill -9 under load: nginx kept serving ($(jq_ "$K" failed) of $(jq_ "$K" requests) requests failed, those in flight on the killed instance)" \
        test "$(jq_ "$K" failed)" -le "${WRITERS:-6}"
    check "kill -9 under load: every Socket.IO client reconnected and receives again" \
        node -e 'const r=JSON.parse(require("fs").readFileSync(process.argv[1]));
            process.exit(r.clients.every((c)=>c.receivesAfterRestarts) ? 0 : 1)' "$K"
    kill -QUIT "$ROLL_NGINX"
    wait "$ROLL_NGINX" 2>/dev/null
fi

# ---- per-IP auth budget at the edge ----------------------------------------------------
# taskapi's own auth limit is raised to 1000 here, so a 429 comes from nginx.
codes=""
for ((k = 0; k < 14; k++)); do
    codes+="$(curl_to "$W/l" "$BASE/api/v1/auth/forgot-password" -H 'content-type: application/json' \
        -d '{"email":"nobody@example.test"}') "
    [[ $codes == *429* ]] && break
done
# register + login spent 2 of the 10; one comes back every 6 s (RUN_SPECS takes minutes)
n202=$(grep -o 202 <<<"$codes" | wc -l)
check "POST auth routes are limited per client IP at nginx: at most 10 a minute, then 429 [$codes]" \
    test "$((n202 >= 8 && n202 <= 10)) $(hdr "$W/l" retry-after) $(jq_ "$W/l" error.code) $(hdr "$W/l" content-type)" = \
    "1 6 rate_limited application/json"
st=$(curl_to "$W/l" "$BASE/api/v1/auth/me")
check "other routes are not affected by the auth budget (GET /auth/me without token: taskapi's 401)" test "$st" = 401

# ---- the read replica ----------------------------------------------------------------
# Reads each instance routed since it last started (counters are per process):
# with DATABASE_READ_URL the replica served some, and the rolling phases above
# (writers reading their own writes through any instance) lost nothing.
if [[ -n ${DATABASE_READ_URL:-} ]]; then
    rrep=0 rprim=0 rfall=0 per=""
    for ((i = 0; i < INSTANCES; i++)); do
        curl -s "http://127.0.0.1:${REST_PORTS[i]}/metrics" >"$W/m$i"
        a=$(awk '$1 == "taskapi_db_reads_total{target=\"replica\"}" { print $2 }' "$W/m$i")
        b=$(awk '$1 == "taskapi_db_reads_total{target=\"primary\"}" { print $2 }' "$W/m$i")
        c=$(awk '$1 == "taskapi_db_replica_fallbacks_total" { print $2 }' "$W/m$i")
        rrep=$((rrep + ${a:-0})) rprim=$((rprim + ${b:-0})) rfall=$((rfall + ${c:-0}))
        per+=" instance$i=${a:-0}/${b:-0}"
    done
    echo "# replica: reads replica/primary per instance:$per; fallbacks $rfall"
    check "reads served by the streaming replica: $rrep on the replica, $rprim on the primary (read-your-writes, lag), $rfall fallbacks" \
        test "$rrep" -gt 0
fi

# ---- upstream down -------------------------------------------------------------------
# (last with taskapi: stop the instances gracefully, then ask nginx)
for ((i = 0; i < INSTANCES; i++)); do kill -TERM "${TK_PIDS[i]}"; done
for ((i = 0; i < INSTANCES; i++)); do
    wait "${TK_PIDS[i]}"
    rc=$?
    check "instance $i exits 0 on SIGTERM (taskapi is PID 1 after entrypoint.sh's exec)" test "$rc" = 0
done
st=$(curl_to "$W/d" "$BASE/health")
check "with every instance down nginx answers 503 unavailable in the contract's shape" \
    test "$st $(jq_ "$W/d" error.code) $(hdr "$W/d" retry-after)" = "503 unavailable 5"
kill -QUIT "$MAIN_NGINX"
wait "$MAIN_NGINX" 2>/dev/null
check "nginx logged no error but the expected ones (the 9 MB body, the refused upstreams at the end)" \
    bash -c "! grep -E '\[(error|crit|alert|emerg)\]' '$W/nginx/error.log' |
        grep -vE 'Connection refused|client intended to send too large body' | grep -q ."

# ---- forwarded headers (echo upstream) -------------------------------------------------
free_port
E1=$REPLY
free_port
E2=$REPLY
free_port
NGX2=$REPLY
node "$HERE/test-nginx.js" echo "$E1" "$E2" >"$W/echo.log" 2>&1 &
PIDS+=($!)
{ wait_port "$E1" 10 && wait_port "$E2" 10; } || die "echo upstream did not start: $(cat "$W/echo.log")"
render "$W/nginx2" "$NGX2" "$E1" "$E2"
start_nginx "$W/nginx2" "$NGX2" || die "second nginx did not start: $(cat "$W/nginx2/error.log")"
B2=http://127.0.0.1:$NGX2
st=$(curl_to "$W/e" "$B2/api/v1/projects?limit=5" -H 'X-Forwarded-For: 203.0.113.7' -H 'X-Request-Id: rid-77' \
    -H 'Authorization: Bearer abc.def.ghi')
check "REST: X-Forwarded-For is appended to (203.0.113.7, 127.0.0.1)" test "$(jq_ "$W/e" headers.x-forwarded-for)" = "203.0.113.7, 127.0.0.1"
check "REST: X-Real-IP, X-Forwarded-Proto, X-Forwarded-Host, Host are set" \
    test "$(jq_ "$W/e" headers.x-real-ip) $(jq_ "$W/e" headers.x-forwarded-proto) $(jq_ "$W/e" headers.x-forwarded-host) $(jq_ "$W/e" headers.host)" = "127.0.0.1 http 127.0.0.1 127.0.0.1"
check "REST: X-Request-Id, Authorization and the query string pass through unchanged" \
    test "$(jq_ "$W/e" headers.x-request-id) $(jq_ "$W/e" headers.authorization) $(jq_ "$W/e" url)" = "rid-77 Bearer abc.def.ghi /api/v1/projects?limit=5"
check "REST: no Connection/Upgrade header is sent upstream (HTTP/1.1 keep-alive to the instances)" \
    test "$(jq_ "$W/e" headers.connection) $(jq_ "$W/e" headers.upgrade) $(jq_ "$W/e" port)" = "undefined undefined $E1"
st=$(curl_to "$W/e" "$B2/ws?token=t0k" -H 'Connection: Upgrade' -H 'Upgrade: websocket' -H 'Sec-WebSocket-Version: 13' \
    -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' -H 'Origin: https://app.example')
check "/ws goes to the WS upstream with Upgrade: websocket, Connection: upgrade, Origin and the query" \
    test "$(jq_ "$W/e" port) $(jq_ "$W/e" headers.upgrade) $(jq_ "$W/e" headers.connection) $(jq_ "$W/e" headers.origin) $(jq_ "$W/e" url)" = "$E2 websocket upgrade https://app.example /ws?token=t0k"
st=$(curl_to "$W/e" "$B2/socket.io/?EIO=4&transport=websocket" -H 'Connection: Upgrade' -H 'Upgrade: websocket' \
    -H 'Sec-WebSocket-Version: 13' -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==')
check "/socket.io/ goes to the WS upstream with the upgrade headers and X-Forwarded-For" \
    test "$(jq_ "$W/e" port) $(jq_ "$W/e" headers.upgrade) $(jq_ "$W/e" headers.x-forwarded-for)" = "$E2 websocket 127.0.0.1"
st=$(curl_to "$W/e" "$B2/wsx")
check "/wsx is REST, not WebSocket (exact /ws match)" test "$(jq_ "$W/e" port)" = "$E1"

echo "$PASS passed, $FAIL failed"
((FAIL == 0))
