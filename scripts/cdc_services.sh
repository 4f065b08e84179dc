#!/usr/bin/env bash
# Private, log-enabled database servers for the change-capture tests: a MariaDB with the row-based
# binlog (127.0.0.1:3307) and a PostgreSQL cluster with wal_level=logical (127.0.0.1:5433), each with
# its data, socket and log under .nightshift/cdc/. The shared servers on 3306/5432 are never touched.
#
#   scripts/cdc_services.sh [start|stop|status]      (start is the default; scripts/services.sh calls it)
#   scripts/cdc_services.sh stop mariadb|postgres     (one server only)
#   scripts/cdc_services.sh running                   (prints which answer: mariadb, postgres, both or none)
#
# Idempotent: a server already answering on its port is left alone. .ci/run stops, at its end, the servers
# that were not running before it (`running` before, `stop NAME...` after). Runs as root (the servers then run
# as the system users mysql and postgres, since PostgreSQL refuses root) or as a normal user.
set -uo pipefail
source "$(dirname "$0")/lib.sh"

CDC_DIR="${NIGHTSHIFT_CDC_DIR:-$NIGHTSHIFT_ROOT/.nightshift/cdc}"
MARIADB_PORT="${NIGHTSHIFT_CDC_MARIADB_PORT:-3307}"
POSTGRES_PORT="${NIGHTSHIFT_CDC_POSTGRES_PORT:-5433}"
MY="$CDC_DIR/mariadb"
PG="$CDC_DIR/postgres"

up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_up() { for _ in $(seq 1 60); do up "$1" && return 0; sleep 0.5; done; return 1; }
is_root() { [ "$(id -u)" = 0 ]; }

# as USER CMD...: run CMD as USER when we are root, as ourselves otherwise.
as() {
    local user="$1"
    shift
    if is_root; then runuser -u "$user" -- "$@"; else "$@"; fi
}

postgres_bin() {
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && { echo "$dir"; return 0; }
    done
    command -v initdb >/dev/null && command -v pg_ctl >/dev/null && dirname "$(command -v initdb)"
}

mariadb_bin() {
    local name
    for name in mariadbd /usr/sbin/mariadbd mysqld /usr/sbin/mysqld; do
        command -v "$name" >/dev/null && { command -v "$name"; return 0; }
    done
    return 1
}

start_mariadb() {
    if up "$MARIADB_PORT"; then
        echo "    MariaDB (binlog): already up on 127.0.0.1:$MARIADB_PORT"
        return 0
    fi
    local server install
    server="$(mariadb_bin)" || {
        echo "    MariaDB (binlog): NOT started, no mariadbd on this machine (apt-get install mariadb-server)"
        return 1
    }
    install="$(command -v mariadb-install-db || command -v mysql_install_db)" || {
        echo "    MariaDB (binlog): NOT started, no mariadb-install-db on this machine (apt-get install mariadb-server)"
        return 1
    }
    local user_opt=()
    if is_root; then
        id mysql >/dev/null 2>&1 || {
            echo "    MariaDB (binlog): NOT started, running as root needs the system user mysql"
            return 1
        }
        user_opt=(--user=mysql)
    fi
    mkdir -p "$MY"
    is_root && chown mysql: "$MY"
    if [ ! -d "$MY/data/mysql" ]; then
        echo "    initialising a MariaDB data directory in $MY/data"
        "$install" --no-defaults --datadir="$MY/data" "${user_opt[@]}" \
            --auth-root-authentication-method=normal --skip-test-db >"$MY/install.log" 2>&1 || {
            echo "    MariaDB (binlog): mariadb-install-db failed, see $MY/install.log"
            return 1
        }
    fi
    echo "    starting MariaDB with the row-based binlog on 127.0.0.1:$MARIADB_PORT"
    setsid -f "$server" --no-defaults "${user_opt[@]}" --datadir="$MY/data" \
        --port="$MARIADB_PORT" --bind-address=127.0.0.1 --socket="$MY/mariadb.sock" \
        --pid-file="$MY/mariadb.pid" --log-error="$MY/error.log" \
        --server-id="$MARIADB_PORT" --log-bin="$MY/data/binlog" --binlog-format=ROW \
        --binlog-row-image=FULL --binlog-row-metadata=FULL --binlog-expire-logs-seconds=86400 \
        --innodb-buffer-pool-size=32M --max-connections=50 </dev/null >/dev/null 2>&1
    wait_up "$MARIADB_PORT" || {
        echo "    MariaDB (binlog): did not come up, see $MY/error.log"
        return 1
    }
}

start_postgres() {
    if up "$POSTGRES_PORT"; then
        echo "    PostgreSQL (logical WAL): already up on 127.0.0.1:$POSTGRES_PORT"
        return 0
    fi
    local bin
    bin="$(postgres_bin)" || {
        echo "    PostgreSQL (logical WAL): NOT started, no initdb/pg_ctl on this machine (apt-get install postgresql)"
        return 1
    }
    local user
    user="$(id -un)"
    if is_root; then
        id postgres >/dev/null 2>&1 || {
            echo "    PostgreSQL (logical WAL): NOT started, PostgreSQL refuses root and there is no system user postgres"
            return 1
        }
        user=postgres
    fi
    mkdir -p "$PG"
    is_root && chown postgres: "$PG"
    if [ ! -f "$PG/data/PG_VERSION" ]; then
        echo "    initialising a PostgreSQL cluster in $PG/data ($bin)"
        as "$user" "$bin/initdb" -D "$PG/data" -U postgres -A trust -E UTF8 --no-sync >"$PG/initdb.log" 2>&1 || {
            echo "    PostgreSQL (logical WAL): initdb failed, see $PG/initdb.log"
            return 1
        }
        # Settings in their own file, so a re-start reads the same ones.
        as "$user" tee "$PG/data/nightshift.conf" >/dev/null <<EOF
port = $POSTGRES_PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$PG'
wal_level = logical
max_replication_slots = 20
max_wal_senders = 20
max_connections = 50
shared_buffers = 16MB
fsync = off
EOF
        echo "include 'nightshift.conf'" | as "$user" tee -a "$PG/data/postgresql.conf" >/dev/null
    fi
    echo "    starting PostgreSQL with wal_level=logical on 127.0.0.1:$POSTGRES_PORT"
    as "$user" "$bin/pg_ctl" -D "$PG/data" -l "$PG/server.log" -w -t 30 start >/dev/null 2>&1 || {
        echo "    PostgreSQL (logical WAL): did not come up, see $PG/server.log"
        return 1
    }
}

stop_postgres() {
    local bin
    if [ -f "$PG/data/postmaster.pid" ] && bin="$(postgres_bin)"; then
        as "$(is_root && echo postgres || id -un)" "$bin/pg_ctl" -D "$PG/data" -m fast -w stop >/dev/null 2>&1 &&
            echo "    PostgreSQL (logical WAL): stopped"
    fi
}

stop_mariadb() {
    if [ -f "$MY/mariadb.pid" ]; then
        kill "$(cat "$MY/mariadb.pid")" 2>/dev/null && echo "    MariaDB (binlog): stopping"
        for _ in $(seq 1 60); do up "$MARIADB_PORT" || break; sleep 0.5; done
    fi
}

# running: the servers answering on their ports, as `stop` names them
running() {
    local found=()
    up "$MARIADB_PORT" && found+=(mariadb)
    up "$POSTGRES_PORT" && found+=(postgres)
    echo "${found[*]}"
}

status() {
    local rc=0
    if up "$MARIADB_PORT"; then echo "    MariaDB (binlog): up on 127.0.0.1:$MARIADB_PORT"; else
        echo "    MariaDB (binlog): NOT reachable on 127.0.0.1:$MARIADB_PORT"
        rc=1
    fi
    if up "$POSTGRES_PORT"; then echo "    PostgreSQL (logical WAL): up on 127.0.0.1:$POSTGRES_PORT"; else
        echo "    PostgreSQL (logical WAL): NOT reachable on 127.0.0.1:$POSTGRES_PORT"
        rc=1
    fi
    return $rc
}

case "${1:-start}" in
start)
    step "Private log-enabled servers for change capture (MariaDB binlog, PostgreSQL logical WAL)"
    start_mariadb
    start_postgres
    status
    rc=$?
    _step_done
    exit $rc
    ;;
stop)
    shift
    [ $# -gt 0 ] || set -- postgres mariadb
    for name in "$@"; do
        case "$name" in mariadb | postgres) ;; *) die "usage: $0 stop [mariadb] [postgres]" ;; esac
    done
    step "Stopping the private change-capture servers ($*)"
    for name in "$@"; do "stop_$name"; done
    _step_done
    ;;
status) status ;;
running) running ;;
*) die "usage: $0 [start|stop [mariadb] [postgres]|status|running]" ;;
esac
