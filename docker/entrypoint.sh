#!/bin/bash
# Entry point of the taskapi image (docker/Dockerfile).
#
#   entrypoint.sh [serve]        migrate (unless MIGRATE_ON_START=0), then exec `taskapi serve`
#   entrypoint.sh migrate        apply pending migrations, retrying while the database is not up
#   entrypoint.sh wait-migrated  wait until `taskapi migrate status` lists nothing pending
#                                (a Kubernetes init container, while the migration Job runs)
#   entrypoint.sh health [PATH]  exit 0 when GET http://127.0.0.1:$PORT/PATH answers 200
#                                (default /health/live; the image's HEALTHCHECK)
#   entrypoint.sh <taskapi command> ...   e.g. `routes`, `check`, `migrate status`,
#                                `users grant-admin EMAIL`, `version`
#   entrypoint.sh <program> ...  anything else is exec'd as is (e.g. `bash`)
#
# Environment (besides taskapi's own, see README.md "Configuration"):
#   MIGRATE_ON_START     1 (default) or 0: whether `serve` runs `taskapi migrate` first.
#                        Several replicas starting at once is fine: migrations take an
#                        advisory lock and each applies exactly once.
#   MIGRATE_RETRIES      attempts before giving up (default 30)
#   MIGRATE_RETRY_DELAY  seconds between attempts (default 2)
#   TASKAPI_BIN          the binary (default `taskapi` from PATH; docker/test-nginx.sh points
#                        it at build/taskapi)
set -euo pipefail

TASKAPI_BIN=${TASKAPI_BIN:-taskapi}

log() { printf 'entrypoint: %s\n' "$*" >&2; }

# As PID 1, bash ignores SIGTERM unless it traps it: make `docker stop` during
# the migration phase end the container at once instead of after the grace period.
trap 'log "stopped by signal"; exit 143' TERM INT

pause() { sleep "$1" & wait $!; }

migrate() {
    local tries=${MIGRATE_RETRIES:-30} delay=${MIGRATE_RETRY_DELAY:-2} i=1
    until "$TASKAPI_BIN" migrate; do
        if ((i >= tries)); then
            log "taskapi migrate failed $i times; giving up"
            return 1
        fi
        log "taskapi migrate failed (attempt $i/$tries); retrying in ${delay}s"
        pause "$delay"
        i=$((i + 1))
    done
}

wait_migrated() {
    local tries=${MIGRATE_RETRIES:-30} delay=${MIGRATE_RETRY_DELAY:-2} i=1 out
    while :; do
        if out=$("$TASKAPI_BIN" migrate status 2>&1) && ! grep -qw pending <<<"$out"; then
            log "schema is up to date"
            return 0
        fi
        if ((i >= tries)); then
            log "migrations still pending or database unreachable after $i checks; giving up"
            printf '%s\n' "$out" >&2
            return 1
        fi
        pause "$delay"
        i=$((i + 1))
    done
}

# A plain HTTP/1.0 GET over bash's /dev/tcp: the runtime image needs no curl.
health() {
    local path=${1:-/health/live} line
    exec 3<>"/dev/tcp/127.0.0.1/${PORT:-8080}" || return 1
    printf 'GET %s HTTP/1.0\r\nHost: localhost\r\nUser-Agent: taskapi-healthcheck\r\n\r\n' "$path" >&3
    IFS= read -r -t 5 line <&3 || return 1
    exec 3<&-
    [[ $line =~ ^HTTP/1\.[01]\ 200 ]] || { log "health $path: ${line%$'\r'}"; return 1; }
}

cmd=${1:-serve}
case "$cmd" in
serve)
    shift $(($# > 0 ? 1 : 0))
    if [[ ${MIGRATE_ON_START:-1} != 0 ]]; then
        migrate
    fi
    trap - TERM INT
    exec "$TASKAPI_BIN" serve "$@"
    ;;
migrate)
    if [[ $# -eq 1 ]]; then
        migrate
    else
        exec "$TASKAPI_BIN" "$@"
    fi
    ;;
wait-migrated)
    wait_migrated
    ;;
health)
    health "${2:-/health/live}"
    ;;
routes | check | reload | users | version)
    exec "$TASKAPI_BIN" "$@"
    ;;
*)
    exec "$@"
    ;;
esac
