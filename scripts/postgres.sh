#!/usr/bin/env bash
# A private PostgreSQL cluster for the tests of the PostgreSQL store.
#
#   eval "$(scripts/postgres.sh)"   start one (or reuse the running one) and
#                                   export POWGATE_TEST_POSTGRES and
#                                   POWGATE_TEST_POSTGRES_CA
#   scripts/postgres.sh stop        stop it and delete its files
#   scripts/postgres.sh pg_ctl ARGS  run `pg_ctl ARGS` on it as the server's
#                                   owner (`restart -m fast`, `stop -m fast`,
#                                   `start`), keeping its files
#
# The cluster listens on 127.0.0.1 on a free port and on a private socket
# directory, never on the system's own PostgreSQL. TLS is on, with a CA made
# here by openssl, so `sslmode=verify-full` is tested for real; powgate's
# tests connect as the role `powgate`, which logs in with a random password
# (scram-sha-256), so "the password never appears in logs" is tested with a
# real one. The role may create databases: each test makes its own.
#
# Where it is recorded ($POWGATE_TEST_POSTGRES_STATE, default
# /tmp/powgate-test-postgres.env) lets the next run, from any worktree, reuse
# the cluster instead of starting another. A test that stops or restarts the
# server starts a cluster of its own with a state file of its own, so the
# tests sharing the default one never see it go away.
set -euo pipefail

state=${POWGATE_TEST_POSTGRES_STATE:-/tmp/powgate-test-postgres.env}

say() { printf '%s\n' "$*" >&2; }

# initdb and pg_ctl are not on PATH on Debian: they live under the version's
# own directory.
pg_bin() {
    local dir
    for dir in /usr/lib/postgresql/*/bin; do
        [[ -x $dir/pg_ctl ]] && { echo "$dir"; return; }
    done
    dir=$(dirname "$(command -v pg_ctl 2>/dev/null || echo /nonexistent/pg_ctl)")
    [[ -x $dir/pg_ctl ]] && { echo "$dir"; return; }
    say "PostgreSQL server programs not found; install them (Debian: apt-get install postgresql)"
    exit 1
}

# The server refuses to run as root, so as root it runs as `postgres`.
as_owner() {
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

running() {
    [[ -f $state ]] || return 1
    # shellcheck disable=SC1090
    (source "$state" && as_owner "$PGBIN/pg_ctl" status -D "$PGDATA_DIR" >/dev/null 2>&1)
}

stop() {
    [[ -f $state ]] || return 0
    # shellcheck disable=SC1090
    source "$state"
    as_owner "$PGBIN/pg_ctl" stop -D "$PGDATA_DIR" -m fast >/dev/null 2>&1 || true
    rm -rf "$PGROOT"
    rm -f "$state"
}

free_port() {
    local port
    for port in $(seq 55432 55532); do
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
    say "no free port between 55432 and 55532"
    exit 1
}

start() {
    local bin root data port password
    bin=$(pg_bin)
    # /tmp itself, not a root-only directory inside it: the server's user
    # must reach its data directory.
    root=$(mktemp -d /tmp/powgate-pg.XXXXXX)
    chmod 0755 "$root"
    data=$root/data
    port=$(free_port)
    password=$(openssl rand -hex 16)

    # The CA the tests trust, and a server certificate for both names the
    # tests connect by.
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=powgate test CA" \
        -keyout "$root/ca.key" -out "$root/ca.crt" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
        -keyout "$root/server.key" -out "$root/server.csr" 2>/dev/null
    openssl x509 -req -in "$root/server.csr" -CA "$root/ca.crt" -CAkey "$root/ca.key" \
        -CAcreateserial -days 3650 -out "$root/server.crt" \
        -extfile <(printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n') 2>/dev/null
    rm -f "$root/server.csr" "$root/ca.key" "$root/ca.srl"
    chmod 0600 "$root/server.key"
    chmod 0644 "$root/ca.crt" "$root/server.crt"
    if [[ $(id -u) -eq 0 ]]; then
        chown -R postgres: "$root"
    fi

    as_owner "$bin/initdb" -D "$data" -U postgres --auth-local=trust --auth-host=reject \
        -E UTF8 --locale=C.UTF-8 >/dev/null
    cat >>"$data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$root'
ssl = on
ssl_cert_file = '$root/server.crt'
ssl_key_file = '$root/server.key'
max_connections = 300
# A test cluster: durability is not what is tested, speed is welcome.
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
    # The socket (as postgres, for set-up) trusts; TCP wants the password.
    cat >"$data/pg_hba.conf" <<EOF
local all postgres trust
host  all powgate 127.0.0.1/32 scram-sha-256
EOF
    as_owner "$bin/pg_ctl" start -D "$data" -l "$root/server.log" -w >/dev/null
    as_owner "$bin/psql" -h "$root" -p "$port" -U postgres -d postgres -qAt -v ON_ERROR_STOP=1 \
        -c "CREATE ROLE powgate LOGIN CREATEDB PASSWORD '$password'" >/dev/null

    cat >"$state" <<EOF
PGBIN=$bin
PGROOT=$root
PGDATA_DIR=$data
POWGATE_TEST_POSTGRES=postgres://powgate:$password@127.0.0.1:$port/postgres
POWGATE_TEST_POSTGRES_CA=$root/ca.crt
EOF
    chmod 0600 "$state"
    say "PostgreSQL test cluster started on 127.0.0.1:$port (data in $data)"
}

case ${1:-start} in
    start)
        running || { stop; start; }
        # shellcheck disable=SC1090
        source "$state"
        echo "export POWGATE_TEST_POSTGRES=$POWGATE_TEST_POSTGRES"
        echo "export POWGATE_TEST_POSTGRES_CA=$POWGATE_TEST_POSTGRES_CA"
        ;;
    stop) stop ;;
    pg_ctl)
        shift
        [[ -f $state ]] || { say "no cluster is recorded in $state"; exit 1; }
        # shellcheck disable=SC1090
        source "$state"
        as_owner "$PGBIN/pg_ctl" -D "$PGDATA_DIR" -l "$PGROOT/server.log" -w "$@" >/dev/null
        ;;
    *)
        say "usage: $0 [start|stop|pg_ctl ARGS…]"
        exit 2
        ;;
esac
