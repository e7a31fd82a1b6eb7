# shellcheck shell=bash
# Shared set-up for bin/run and bin/test, sourced by both: missing Debian
# packages, CMake builds, a private PostgreSQL cluster and Redis under var/,
# and exit hooks that stop whatever this process started. The callers own the
# flow (what to start, in which order) and `set -euo pipefail`.
#
# Public functions: section info warn die redact_url, install_traps on_exit,
# as_root, pid_alive stop_child, lock_checkout, port_busy free_port,
# ensure_deps, build_taskapi, build_release_at, setup_database start_pg stop_pg stop_pg_cluster
# start_pg_replica stop_pg_replica pg_ctl_command create_db migrate_db, start_redis stop_redis.

TK_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
TK_VAR=$TK_ROOT/var

# ---------------------------------------------------------------- output ---

if [[ -t 1 && -z ${NO_COLOR:-} ]]; then
    TK_BOLD=$'\e[1m' TK_RED=$'\e[31m' TK_YELLOW=$'\e[33m' TK_RESET=$'\e[0m'
else
    TK_BOLD='' TK_RED='' TK_YELLOW='' TK_RESET=''
fi

section() { printf '\n%s==> %s%s\n' "$TK_BOLD" "$*" "$TK_RESET"; }
info() { printf '    %s\n' "$*"; }
warn() { printf '%swarning:%s %s\n' "$TK_YELLOW" "$TK_RESET" "$*" >&2; }
die() {
    printf '%serror:%s %s\n' "$TK_RED" "$TK_RESET" "$*" >&2
    exit 1
}

# Prints a URL with its password (if any) masked.
redact_url() { sed -E 's#(//[^:/@]*):[^@/]*@#\1:***@#' <<<"$1"; }

# ------------------------------------------------------------ exit hooks ---

# Functions (names, no arguments) run at exit, last registered first. Each
# reads the state it needs from globals (TK_EXIT_STATUS: the script's exit
# status) and is safe to call twice.
TK_EXIT_HOOKS=() TK_EXIT_STATUS=0
on_exit() { TK_EXIT_HOOKS+=("$1"); }

_tk_on_exit() {
    local rc=$? i
    # shellcheck disable=SC2034 # read by the hooks
    TK_EXIT_STATUS=$rc
    set +e
    trap '' INT TERM HUP # a second Ctrl-C must not cut the clean-up short
    for ((i = ${#TK_EXIT_HOOKS[@]} - 1; i >= 0; i--)); do
        "${TK_EXIT_HOOKS[i]}"
    done
    TK_EXIT_HOOKS=()
    return "$rc"
}

# EXIT runs the hooks; INT, TERM and HUP exit with 128+signal, which runs them.
install_traps() {
    trap _tk_on_exit EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    trap 'exit 129' HUP
}

# --------------------------------------------------------------- helpers ---

# Runs a command as root: directly when we are root, through sudo otherwise.
as_root() {
    if ((EUID == 0)); then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "needs root and sudo is not installed; run as root: $*"
    fi
}

# True if pid $1 exists and is not a zombie (a daemon we did not fork, or a
# child not yet reaped, can linger as a zombie when PID 1 does not reap).
pid_alive() {
    local stat
    [[ -n ${1:-} && -r /proc/$1/stat ]] || return 1
    stat=$(<"/proc/$1/stat") 2>/dev/null || return 1
    stat=${stat##*) }
    [[ ${stat%% *} != Z ]]
}

# Stops our background child $1 with SIGTERM, SIGKILL after $2 seconds
# (default 30), reaps it and returns its exit status (137 if it was killed).
stop_child() {
    local pid=$1 timeout=${2:-30} i rc=0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < timeout * 10; i++)); do
        pid_alive "$pid" || break
        sleep 0.1
    done
    if pid_alive "$pid"; then
        warn "process $pid did not stop within ${timeout}s; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || rc=$?
    return "$rc"
}

# lock_checkout NAME: holds var/NAME.lock (on fd 9) until this process exits,
# waiting while another process of this checkout holds it. Daemons started
# here close fd 9, so they never keep the lock alive.
lock_checkout() {
    mkdir -p "$TK_VAR"
    exec 9>"$TK_VAR/$1.lock"
    if ! flock -n 9; then
        info "another $1 run is using this checkout; waiting for it to finish"
        flock 9
    fi
}

# True if something accepts TCP connections on 127.0.0.1:$1.
port_busy() { (: <"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Prints the first port >= $1 nobody listens on (tries 100).
free_port() {
    local p
    for ((p = $1; p < $1 + 100; p++)); do
        if ! port_busy "$p"; then
            printf '%s\n' "$p"
            return 0
        fi
    done
    die "no free TCP port in $1..$(($1 + 99))"
}

# ------------------------------------------------------- Debian packages ---

TK_APT_UPDATED=0

_apt() { as_root env DEBIAN_FRONTEND=noninteractive apt-get "$@"; }

_pkg_installed() {
    [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]
}

# Installs the packages of bin/lib/deps.txt (or $TK_DEPS_FILE) that are not
# installed: one `apt-get update`, then one `apt-get install`. nodejs and npm
# are left alone when a `node` is already on PATH.
ensure_deps() {
    local file=${TK_DEPS_FILE:-$TK_ROOT/bin/lib/deps.txt} pkg cand
    local -a pkgs=() missing=() available=()
    command -v dpkg-query >/dev/null 2>&1 || die "dpkg-query not found: this set-up expects Debian 12"
    mapfile -t pkgs < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$/d' "$file")
    for pkg in "${pkgs[@]}"; do
        case $pkg in
        nodejs | npm)
            if command -v node >/dev/null 2>&1; then
                [[ $pkg == npm ]] || info "node $(node --version 2>/dev/null) is on PATH ($(command -v node)); nodejs/npm left as they are"
                if [[ $pkg == npm ]] && ! command -v npm >/dev/null 2>&1; then
                    if _pkg_installed nodejs && [[ $(dpkg-query -W -f='${Version}' nodejs) != *nodesource* ]]; then
                        missing+=(npm) # Debian's own nodejs: its npm fits
                    else
                        warn "node is installed ($(command -v node)) but npm is not; the Node specs will fail until it is"
                    fi
                fi
                continue
            fi
            ;;
        esac
        _pkg_installed "$pkg" || missing+=("$pkg")
    done
    if ((${#missing[@]} == 0)); then
        info "the packages of ${file#"$TK_ROOT"/} are installed"
        return 0
    fi
    info "missing: ${missing[*]}"
    if ((TK_APT_UPDATED == 0)); then
        _apt update
        TK_APT_UPDATED=1
    fi
    for pkg in "${missing[@]}"; do
        cand=$(apt-cache policy "$pkg" 2>/dev/null | awk '$1 == "Candidate:" { print $2 }')
        if [[ -z $cand || $cand == "(none)" ]]; then
            warn "package $pkg has no installation candidate here; skipping it"
        else
            available+=("$pkg")
        fi
    done
    ((${#available[@]} > 0)) || return 0
    _apt install -y --no-install-recommends "${available[@]}"
}

# ----------------------------------------------------------------- build ---

# build_taskapi DIR TARGET CMAKE-ARGS...: configures $TK_ROOT/DIR and builds
# TARGET there (`all` for the binary and the C tests, `taskapi` for the binary).
build_taskapi() {
    local dir=$TK_ROOT/$1 target=$2
    shift 2
    cmake -S "$TK_ROOT" -B "$dir" "$@" || return
    cmake --build "$dir" --target "$target" -j"$(nproc)"
}

# build_release_at REF DIR LOG: taskapi at git commit REF, built Release out
# of `git archive` into DIR (sources in DIR, binary DIR/build/taskapi, its
# scripts/ and migrations/ beside), rebuilt only when REF names another
# commit than the last build there (DIR/.rev). Build output goes to LOG; on
# failure its tail is shown and the function fails. Sets TK_BUILT_SHA.
TK_BUILT_SHA=''
build_release_at() {
    local ref=$1 dir=$2 log=$3 sha
    sha=$(git -C "$TK_ROOT" rev-parse --verify "$ref^{commit}") || {
        warn "$ref is not a commit"
        return 1
    }
    # shellcheck disable=SC2034 # for the callers
    TK_BUILT_SHA=$sha
    [[ $(cat "$dir/.rev" 2>/dev/null) != "$sha" || ! -x $dir/build/taskapi ]] || return 0
    rm -rf "$dir"
    mkdir -p "$dir"
    git -C "$TK_ROOT" archive "$sha" | tar -x -C "$dir" || return
    if ! { cmake -S "$dir" -B "$dir/build" -DCMAKE_BUILD_TYPE=Release &&
        cmake --build "$dir/build" --target taskapi -j"$(nproc)"; } >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        warn "the build of $ref failed (all of it in $log)"
        return 1
    fi
    echo "$sha" >"$dir/.rev"
}

# ------------------------------------------------------------ PostgreSQL ---
#
# A private cluster per purpose (var/pg for bin/run, var/pg-test for bin/test):
# data in var/<name>/data, socket in var/<name>/run, log var/<name>/postgres.log,
# TCP on 127.0.0.1 only, trust auth, superuser `postgres`. initdb refuses to
# run as root, so as root every server tool runs as the `postgres` system user;
# if that user cannot reach the checkout (say it lives under /root), the
# cluster goes to /tmp/taskapi-pg-<hash of checkout path>/<name> and
# var/<name> becomes a symlink to it.

TK_PG_BIN='' TK_PG_DIR='' TK_PG_DATA='' TK_PG_PORT='' TK_PG_URL='' TK_PG_STARTED=0

_pg_find_bin() {
    local d best=''
    for d in /usr/lib/postgresql/*/bin; do
        [[ -x $d/initdb ]] || continue
        if [[ -z $best ]] || [[ $(printf '%s\n%s\n' "$best" "$d" | sort -V | tail -n1) == "$d" ]]; then
            best=$d
        fi
    done
    [[ -n $best ]] || die "no PostgreSQL server binaries in /usr/lib/postgresql/*/bin (package postgresql)"
    TK_PG_BIN=$best
}

# Runs a PostgreSQL server tool as the cluster owner (from / so the tool can
# always enter its working directory).
_pg() {
    local tool=$TK_PG_BIN/$1
    shift
    if ((EUID == 0)); then
        (cd / && runuser -u postgres -- "$tool" "$@")
    else
        "$tool" "$@"
    fi
}

# True if the cluster owner can enter and write directory $1.
_pg_can_use() {
    if ((EUID == 0)); then
        runuser -u postgres -- test -d "$1" -a -w "$1" -a -x "$1" 2>/dev/null
    else
        [[ -d $1 && -w $1 && -x $1 ]]
    fi
}

# Creates directory $1 owned by the cluster owner, mode 0700.
_pg_mkdir() {
    mkdir -p "$1"
    if ((EUID == 0)); then chown postgres:postgres "$1"; fi
    chmod 0700 "$1"
}

# Sets TK_PG_DIR to the physical directory of cluster $1 (see above).
_pg_locate() {
    local name=$1 link=$TK_VAR/$1 base target
    mkdir -p "$TK_VAR"
    if ((EUID != 0)); then
        mkdir -p "$link"
        TK_PG_DIR=$(cd "$link" && pwd -P)
        return 0
    fi
    id postgres >/dev/null 2>&1 || die "no 'postgres' system user (is the postgresql package installed?)"
    if [[ -L $link ]]; then # set up by an earlier run; /tmp may have been emptied since
        target=$(readlink "$link")
        _pg_mkdir "$target"
        _pg_can_use "$target" || die "user postgres cannot use $target (var/$name points there)"
        TK_PG_DIR=$target
        return 0
    fi
    _pg_mkdir "$link"
    if _pg_can_use "$link"; then
        TK_PG_DIR=$(cd "$link" && pwd -P)
        return 0
    fi
    base=/tmp/taskapi-pg-$(printf '%s' "$TK_ROOT" | sha256sum | cut -c1-12)
    [[ -e $base ]] || mkdir -m 0755 "$base"
    [[ -d $base && ! -L $base && $(stat -c %u "$base") == 0 ]] ||
        die "$base exists but is not a directory owned by root; remove it"
    chmod 0755 "$base"
    target=$base/$name
    _pg_mkdir "$target"
    _pg_can_use "$target" || die "user postgres cannot use $target either"
    [[ ! -e $link/data/PG_VERSION ]] ||
        die "var/$name/data holds a cluster that user postgres cannot reach; move it away or fix the directory modes"
    rm -rf -- "$link"
    ln -s "$target" "$link"
    info "user postgres cannot reach $link (a parent directory is closed to it);"
    info "the cluster lives in $target instead (var/$name links to it)"
    TK_PG_DIR=$target
}

# start_pg NAME DEFAULT-PORT [ephemeral]: initialises (first time) and starts
# cluster NAME unless it already runs. Port: $TASKAPI_PG_PORT or DEFAULT-PORT,
# or the next free one if taken. `ephemeral` (the test cluster, which can be
# recreated at any time) turns off fsync and friends, and a cluster found
# running is taken as a leftover of a killed run and stopped at exit too.
# Sets TK_PG_PORT, TK_PG_URL (server URL without database) and
# TK_PG_STARTED=1 if it started it, in which case stop_pg runs at exit.
# _pg_tls_cert DATA: a self-signed certificate for 127.0.0.1/localhost in
# DATA/server.crt (+ server.key, 0600, owned by the cluster's user), made
# once; prints nothing, fails if openssl does.
_pg_tls_cert() {
    local data=$1
    [[ -s $data/server.crt && -s $data/server.key ]] ||
        openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=localhost \
            -addext subjectAltName=IP:127.0.0.1,DNS:localhost \
            -keyout "$data/server.key" -out "$data/server.crt" >/dev/null 2>&1 || return
    chmod 600 "$data/server.key"
    if ((EUID == 0)); then chown postgres:postgres "$data/server.crt" "$data/server.key"; fi
}

start_pg() {
    local name=$1 port=${TASKAPI_PG_PORT:-$2} mode=${3:-} sock conf version
    _pg_find_bin
    version=${TK_PG_BIN%/bin}
    version=${version##*/}
    _pg_locate "$name"
    TK_PG_DATA=$TK_PG_DIR/data
    if [[ ! -f $TK_PG_DATA/PG_VERSION ]]; then
        info "initialising PostgreSQL $version cluster in $TK_PG_DATA"
        _pg_mkdir "$TK_PG_DATA"
        if ! _pg initdb -D "$TK_PG_DATA" -U postgres --auth=trust --encoding=UTF8 \
            --locale=C.UTF-8 --text-search-config=english >"$TK_PG_DIR/initdb.log" 2>&1; then
            cat "$TK_PG_DIR/initdb.log" >&2
            die "initdb failed (log above, also in $TK_PG_DIR/initdb.log)"
        fi
        printf "\n# Written by bin/lib/common.sh, rewritten on each start.\ninclude_if_exists = 'taskapi.conf'\n" \
            >>"$TK_PG_DATA/postgresql.conf"
    fi
    [[ $(<"$TK_PG_DATA/PG_VERSION") == "$version" ]] ||
        die "cluster $TK_PG_DATA is PostgreSQL $(<"$TK_PG_DATA/PG_VERSION"), binaries are $version; remove var/$name to start afresh"

    if _pg pg_ctl status -D "$TK_PG_DATA" >/dev/null 2>&1; then
        TK_PG_PORT=$(sed -n 4p "$TK_PG_DATA/postmaster.pid")
        info "reusing the running cluster $TK_PG_DATA (port $TK_PG_PORT)"
        TK_PG_STARTED=0
        if [[ $mode == ephemeral ]]; then # a leftover of a killed run: ours now
            TK_PG_STARTED=1
            on_exit stop_pg
        fi
    else
        TK_PG_PORT=$(free_port "$port")
        [[ $TK_PG_PORT == "$port" ]] || info "port $port is taken; using $TK_PG_PORT"
        sock=$TK_PG_DIR/run
        _pg_mkdir "$sock"
        # A Unix socket path must fit in 107 bytes; TCP is what we use anyway.
        ((${#sock} + 20 < 107)) || sock=''
        conf=$TK_PG_DATA/taskapi.conf
        {
            printf "listen_addresses = '127.0.0.1'\n"
            printf "port = %s\n" "$TK_PG_PORT"
            printf "unix_socket_directories = '%s'\n" "${sock//\'/\'\'}"
            if [[ $mode == ephemeral ]]; then
                printf 'fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n'
            fi
            if [[ ${TK_PG_TLS:-} == 1 ]]; then
                # TLS (bin/test), so specs can connect with sslmode=verify-full
                # (the certificate is its own CA: DATA/server.crt); other
                # clients keep libpq's default, prefer.
                _pg_tls_cert "$TK_PG_DATA" &&
                    printf "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n"
            fi
        } >"$conf"
        if ((EUID == 0)); then chown postgres:postgres "$conf"; fi
        if ! _pg pg_ctl start -D "$TK_PG_DATA" -l "$TK_PG_DIR/postgres.log" -w -t 60 >/dev/null 9>&-; then
            tail -n 30 "$TK_PG_DIR/postgres.log" >&2 || true
            die "PostgreSQL did not start (log above, also in $TK_PG_DIR/postgres.log)"
        fi
        TK_PG_STARTED=1
        on_exit stop_pg
        info "started PostgreSQL $version on 127.0.0.1:$TK_PG_PORT (data $TK_PG_DATA)"
    fi
    TK_PG_URL=postgresql://postgres@127.0.0.1:$TK_PG_PORT
}

# start_pg_replica NAME DEFAULT-PORT: a streaming replica of the running
# cluster (start_pg first), made afresh each time with `pg_basebackup -R`
# into var/NAME/data (initdb's defaults suffice on the primary: wal_level
# replica, max_wal_senders 10, and a trust `replication` line in pg_hba for
# 127.0.0.1), started hot standby on $TASKAPI_PG_REPLICA_PORT or DEFAULT-PORT
# (or the next free one), stopped at exit. Sets TK_PG_REPLICA_DATA,
# TK_PG_REPLICA_PORT, TK_PG_REPLICA_LOG and TK_PG_REPLICA_URL (server URL
# without database).
TK_PG_REPLICA_DATA='' TK_PG_REPLICA_PORT='' TK_PG_REPLICA_URL='' TK_PG_REPLICA_LOG='' TK_PG_REPLICA_STARTED=0
start_pg_replica() {
    local name=$1 port=${TASKAPI_PG_REPLICA_PORT:-$2} primary_dir=$TK_PG_DIR dir conf
    _pg_locate "$name"
    dir=$TK_PG_DIR
    TK_PG_DIR=$primary_dir
    TK_PG_REPLICA_DATA=$dir/data
    if [[ -f $TK_PG_REPLICA_DATA/postmaster.pid ]] && _pg pg_ctl status -D "$TK_PG_REPLICA_DATA" >/dev/null 2>&1; then
        _pg pg_ctl stop -D "$TK_PG_REPLICA_DATA" -m immediate -w -t 60 >/dev/null || true
    fi
    rm -rf -- "$TK_PG_REPLICA_DATA"
    _pg_mkdir "$TK_PG_REPLICA_DATA"
    if ! _pg pg_basebackup -h 127.0.0.1 -p "$TK_PG_PORT" -U postgres -D "$TK_PG_REPLICA_DATA" \
        -R -X stream -c fast >"$dir/basebackup.log" 2>&1; then
        cat "$dir/basebackup.log" >&2
        return 1
    fi
    TK_PG_REPLICA_PORT=$(free_port "$port")
    conf=$TK_PG_REPLICA_DATA/taskapi.conf # the primary's copy named the primary's port
    printf "listen_addresses = '127.0.0.1'\nport = %s\nunix_socket_directories = ''\nhot_standby = on\nfsync = off\n" \
        "$TK_PG_REPLICA_PORT" >"$conf"
    if ((EUID == 0)); then chown postgres:postgres "$conf"; fi
    if ! _pg pg_ctl start -D "$TK_PG_REPLICA_DATA" -l "$dir/postgres.log" -w -t 60 >/dev/null 9>&-; then
        tail -n 30 "$dir/postgres.log" >&2 || true
        return 1
    fi
    TK_PG_REPLICA_STARTED=1
    on_exit stop_pg_replica
    # shellcheck disable=SC2034 # for the callers
    TK_PG_REPLICA_URL=postgresql://postgres@127.0.0.1:$TK_PG_REPLICA_PORT TK_PG_REPLICA_LOG=$dir/postgres.log
    info "started a streaming replica on 127.0.0.1:$TK_PG_REPLICA_PORT (data $TK_PG_REPLICA_DATA)"
}

stop_pg_replica() {
    ((TK_PG_REPLICA_STARTED == 1)) || return 0
    TK_PG_REPLICA_STARTED=0
    _pg pg_ctl stop -D "$TK_PG_REPLICA_DATA" -m fast -w -t 60 >/dev/null 2>&1 || true
}

# Prints a POSIX-shell command prefix running pg_ctl on the private cluster as
# its owner, `-D` included (for specs that stop and start the database).
# With an argument: on that data directory instead.
pg_ctl_command() {
    local q="'\''"
    local d=${1:-$TK_PG_DATA}
    local bin="'${TK_PG_BIN//\'/$q}/pg_ctl'" data="'${d//\'/$q}'"
    if ((EUID == 0)); then
        printf 'runuser -u postgres -- %s -D %s\n' "$bin" "$data"
    else
        printf '%s -D %s\n' "$bin" "$data"
    fi
}

# Stops the private cluster if this process started it.
stop_pg() {
    ((TK_PG_STARTED == 1)) || return 0
    TK_PG_STARTED=0
    info "stopping PostgreSQL ($TK_PG_DATA)"
    _pg pg_ctl stop -D "$TK_PG_DATA" -m fast -w -t 60 >/dev/null || warn "pg_ctl stop failed"
}

# stop_pg_cluster NAME: stops cluster NAME whoever started it (bin/run stop).
stop_pg_cluster() {
    local name=$1 data
    _pg_find_bin
    data=$TK_VAR/$name/data
    [[ -f $data/PG_VERSION ]] || {
        info "no cluster in var/$name"
        return 0
    }
    data=$(cd "$data" && pwd -P)
    if _pg pg_ctl status -D "$data" >/dev/null 2>&1; then
        _pg pg_ctl stop -D "$data" -m fast -w -t 60 >/dev/null
        info "stopped PostgreSQL (var/$name)"
    else
        info "PostgreSQL (var/$name) is not running"
    fi
}

_psql() {
    "$TK_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$TK_PG_URL/postgres" "$@"
}

# create_db NAME [fresh]: creates database NAME in the private cluster if it
# does not exist (drops it first when `fresh`), exports DATABASE_URL.
create_db() {
    local db=$1 fresh=${2:-}
    if [[ $fresh == fresh ]]; then
        _psql -c 'SET client_min_messages = warning' -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)"
    fi
    if [[ $(_psql -tA -c "SELECT 1 FROM pg_database WHERE datname = '$db'") != 1 ]]; then
        _psql -c "CREATE DATABASE \"$db\""
        info "created database $db"
    fi
    export DATABASE_URL=$TK_PG_URL/$db
}

# setup_database NAME DEFAULT-PORT DB [fresh] [ephemeral]: a private cluster
# and database, unless DATABASE_URL is already set (then that is used as is).
setup_database() {
    if [[ -n ${DATABASE_URL:-} ]]; then
        info "DATABASE_URL is set; using $(redact_url "$DATABASE_URL") (no private PostgreSQL)"
        return 0
    fi
    start_pg "$1" "$2" "${5:-}"
    create_db "$3" "${4:-}"
    info "DATABASE_URL=$DATABASE_URL"
}

# migrate_db BINARY: applies ./migrations to DATABASE_URL.
migrate_db() {
    (cd "$TK_ROOT" && "$1" migrate)
}

# ----------------------------------------------------------------- Redis ---

TK_REDIS_DIR='' TK_REDIS_PORT='' TK_REDIS_STARTED=0

# start_redis [NAME] [DEFAULT-PORT]: a private, non-persistent redis-server
# on 127.0.0.1 (port $TASKAPI_REDIS_PORT, DEFAULT-PORT or 56379, the next
# free one if taken), files in var/NAME (default var/redis). Exports
# TEST_REDIS_URL; stop_redis runs at exit.
start_redis() {
    local name=${1:-redis} port=${TASKAPI_REDIS_PORT:-${2:-56379}} pid i
    command -v redis-server >/dev/null 2>&1 || die "redis-server not found (package redis-server)"
    TK_REDIS_DIR=$TK_VAR/$name
    mkdir -p "$TK_REDIS_DIR"
    if [[ -f $TK_REDIS_DIR/redis.pid ]]; then # left over from a run that was killed
        pid=$(<"$TK_REDIS_DIR/redis.pid")
        if pid_alive "$pid" && [[ $(cat "/proc/$pid/comm" 2>/dev/null) == redis-server* ]]; then
            info "stopping a leftover redis-server (pid $pid)"
            kill -TERM "$pid" 2>/dev/null || true
            for ((i = 0; i < 50; i++)); do
                pid_alive "$pid" || break
                sleep 0.1
            done
        fi
        rm -f "$TK_REDIS_DIR/redis.pid"
    fi
    TK_REDIS_PORT=$(free_port "$port")
    {
        printf 'bind 127.0.0.1\nport %s\ndaemonize yes\n' "$TK_REDIS_PORT"
        printf 'pidfile "%s"\nlogfile "%s"\ndir "%s"\n' \
            "$TK_REDIS_DIR/redis.pid" "$TK_REDIS_DIR/redis.log" "$TK_REDIS_DIR"
        printf 'save ""\nappendonly no\n'
    } >"$TK_REDIS_DIR/redis.conf"
    redis-server "$TK_REDIS_DIR/redis.conf" >/dev/null 9>&- || die "redis-server did not start (see $TK_REDIS_DIR/redis.log)"
    TK_REDIS_STARTED=1
    on_exit stop_redis
    for ((i = 0; i < 100; i++)); do
        [[ $(redis-cli -h 127.0.0.1 -p "$TK_REDIS_PORT" ping 2>/dev/null) == PONG ]] && break
        sleep 0.1
    done
    ((i < 100)) || {
        tail -n 20 "$TK_REDIS_DIR/redis.log" >&2 || true
        die "redis-server does not answer on port $TK_REDIS_PORT"
    }
    export TEST_REDIS_URL=redis://127.0.0.1:$TK_REDIS_PORT/0
    info "started Redis on 127.0.0.1:$TK_REDIS_PORT (TEST_REDIS_URL=$TEST_REDIS_URL)"
}

# Stops the private redis-server if this process started it.
stop_redis() {
    local pid='' i
    ((TK_REDIS_STARTED == 1)) || return 0
    TK_REDIS_STARTED=0
    info "stopping Redis (port $TK_REDIS_PORT)"
    [[ -f $TK_REDIS_DIR/redis.pid ]] && pid=$(<"$TK_REDIS_DIR/redis.pid")
    redis-cli -h 127.0.0.1 -p "$TK_REDIS_PORT" shutdown nosave >/dev/null 2>&1 ||
        { [[ -n $pid ]] && kill -TERM "$pid" 2>/dev/null; } || true
    for ((i = 0; i < 50; i++)); do
        pid_alive "$pid" || break
        sleep 0.1
    done
    if pid_alive "$pid"; then
        warn "redis-server (pid $pid) did not stop; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
}
