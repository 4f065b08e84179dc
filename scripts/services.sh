#!/usr/bin/env bash
# Make sure the local services the integration tests use are up: MariaDB (3306),
# PostgreSQL (5432), Redis (6379). Starts an installed but stopped server; never
# installs one. Tests that need a missing service fail in CI (see tests/support/services.py).
set -uo pipefail
source "$(dirname "$0")/lib.sh"

up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

step "Checking local services (MariaDB, PostgreSQL, Redis)"
if ! up 3306 && [ -x /usr/sbin/mariadbd ]; then
    echo "    starting MariaDB"
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd >/dev/null 2>&1 ||
        echo "    could not start MariaDB"
fi
if ! up 5432 && command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    echo "    starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start >/dev/null 2>&1 ||
        echo "    could not start PostgreSQL"
fi
if ! up 6379 && command -v redis-server >/dev/null; then
    echo "    starting Redis"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null 2>&1 ||
        echo "    could not start Redis"
fi
for _ in $(seq 1 20); do up 3306 && up 5432 && up 6379 && break; sleep 0.5; done
for svc in "MariaDB 3306" "PostgreSQL 5432" "Redis 6379"; do
    set -- $svc
    if up "$2"; then echo "    $1: up on 127.0.0.1:$2"; else echo "    $1: NOT reachable on 127.0.0.1:$2"; fi
done
_step_done
# The private binlog / logical-WAL servers the change-capture tests use (3307, 5433).
"$(dirname "$0")/cdc_services.sh" start
exit 0
