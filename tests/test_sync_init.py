"""`nightshift sync init`: the definition it writes for real MariaDB and PostgreSQL schemas with the awkward
cases syncs every table in one round (the real operators into DuckDB), the quality gate and the
reconciliation agree, and the warehouse holds exactly the source's rows.

Servers not in UTC: PostgreSQL through a database-level TimeZone of a database the test owns; MariaDB,
whose zone is server-wide (@@global.time_zone, what the sync reads) and may not be changed on the shared
server, through a private server the test starts with --default-time-zone=+01:00.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from nightshift_core.sync.clock import ServerZone
from nightshift_core.sync.config import load

MANY = 200  # small tables besides the awkward ones


# -- running the command and one round of the sync -----------------------------------------------


def init(conn_id: str, out: Path, *args: str) -> tuple[int, str]:
    import contextlib
    import io

    from nightshift.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["sync", "init", conn_id, "-o", str(out), *args])
    return code, err.getvalue()


def one_round(config, hours_later: int = 0) -> dict[str, dict]:
    """One run of the DAG the definition builds (``nightshift.sync_dags.build``): every load task for one
    data interval (the hour ending at the next full hour, ``hours_later`` hours on) with the Params'
    defaults (no table filter, no full refresh), then its quality gate."""
    from nightshift.sync_dags import build

    dag = build(config)
    end = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0) + dt.timedelta(
        hours=1 + hours_later
    )
    ti = SimpleNamespace(dag_id=config.dag_id, task_id="t", run_id="init_test", map_index=-1)
    context = {"ti": ti, "data_interval_start": end - dt.timedelta(hours=1), "data_interval_end": end}
    results = {}
    for table in config.tables:
        task = dag.get_task(f"load_{table.target_table}")
        task.full_refresh, task.only_tables, task.reconcile = False, "", False  # the rendered Param defaults
        results[table.name] = task.execute(context)
    gate = dag.get_task("quality_gate")
    gate.load_results = list(results.values())
    checked = gate.execute({"ti": ti})
    assert len(checked["checked"]) == len(config.tables) and not checked["repaired"]
    return results


def _norm(value):
    if isinstance(value, dt.datetime):  # an instant as UTC wall time; a wall time as it is
        return (value.astimezone(dt.UTC) if value.tzinfo else value).replace(tzinfo=None).isoformat()
    if isinstance(value, (dict, list)) and not (
        isinstance(value, list) and all(isinstance(v, str) for v in value)
    ):
        return json.dumps(value)  # a JSON value as the driver parsed it; the warehouse holds its text
    if isinstance(value, Decimal):
        return str(value.normalize())
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    return value


def rows(cur, sql: str) -> list[tuple]:
    cur.execute(sql)
    return sorted((tuple(_norm(v) for v in row) for row in cur.fetchall()), key=repr)


def assert_equal_data(config, source_cur, quote: str, warehouse: Path) -> None:
    """Every synced table holds exactly its source's rows (read from the DuckDB file in one session). An
    array column is compared through its exact value: the ARRAY where its ``__json`` twin is NULL, else
    the twin (which holds what an ARRAY cannot: a NULL array, NULL elements)."""
    import duckdb

    with duckdb.connect(str(warehouse), read_only=True) as wh:
        for table in config.tables:
            where = f'"{config.target.dataset}"."{table.target_table}"'
            every = [
                n for (n, *_) in wh.execute(f"DESCRIBE {where}").fetchall() if not n.startswith("_nightshift")
            ]
            names = [n for n in every if not n.endswith("__json")]
            listed = ", ".join(quote + n + quote for n in names)
            want = rows(source_cur, f"SELECT {listed} FROM {quote}{table.name}{quote}")
            got = []
            for row in wh.execute(
                f"SELECT {', '.join(chr(34) + n + chr(34) for n in every)} FROM {where}"
            ).fetchall():
                values = dict(zip(every, row, strict=True))
                exact = [
                    json.loads(values[f"{n}__json"]) if values.get(f"{n}__json") is not None else values[n]
                    for n in names
                ]
                got.append(tuple(_norm(v) for v in exact))
            assert sorted(got, key=repr) == want, f"{table.name}: the warehouse differs from the source"


@pytest.fixture
def warehouse(tmp_path, monkeypatch):
    path = tmp_path / "warehouse.duckdb"
    monkeypatch.setenv(
        "AIRFLOW_CONN_NIGHTSHIFT_WAREHOUSE",
        json.dumps({"conn_type": "generic", "extra": {"engine": "duckdb", "path": str(path)}}),
    )
    return path


def by_name(config) -> dict:
    return {t.name: t for t in config.tables}


def prose(path: Path) -> str:
    """The file's words with comment marks and line breaks gone (comments are wrapped)."""
    return " ".join(word for word in path.read_text().split() if word != "#")


# -- MariaDB --------------------------------------------------------------------------------------

MARIADB_SCHEMA = [
    "CREATE TABLE orders (id INT AUTO_INCREMENT PRIMARY KEY, note VARCHAR(20), amount DECIMAL(12, 2), "
    "updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6), KEY (updated_at))",
    "CREATE TABLE OrderLines (orderId INT NOT NULL, lineNo INT NOT NULL, qty INT, "
    "changedAt DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6), "
    "PRIMARY KEY (orderId, lineNo), KEY (changedAt))",
    "CREATE TABLE `select` (`from` INT NOT NULL, `where` VARCHAR(10) NOT NULL, `order` INT, "
    "PRIMARY KEY (`from`, `where`))",
    "CREATE TABLE nokey (a INT, b TEXT)",
    "CREATE TABLE uniq (code VARCHAR(10) NOT NULL, maybe VARCHAR(10) NULL, x INT, UNIQUE KEY (maybe), "
    "UNIQUE KEY (code))",
    "CREATE TABLE events (id BIGINT AUTO_INCREMENT PRIMARY KEY, kind VARCHAR(10))",
    "CREATE TABLE unindexed (id INT PRIMARY KEY, "
    "at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP)",
    "CREATE TABLE `Bad Name` (a INT)",
    "CREATE VIEW v_orders AS SELECT id, note FROM orders",
]
MARIADB_ROWS = [
    "INSERT INTO orders (note, amount) VALUES ('a', 1.50), ('b', NULL), ('c', 99999.99)",
    "INSERT INTO OrderLines (orderId, lineNo, qty) VALUES (1, 1, 3), (1, 2, 4), (2, 1, 5)",
    "INSERT INTO `select` VALUES (1, 'x', 2), (2, 'y', NULL)",
    "INSERT INTO nokey VALUES (1, 'a'), (1, 'a'), (NULL, NULL)",
    "INSERT INTO uniq VALUES ('A', NULL, 1), ('B', 'm', 2)",
    "INSERT INTO events (kind) VALUES ('k1'), ('k2')",
    "INSERT INTO unindexed (id) VALUES (1)",
]


@pytest.fixture
def mariadb_source(mariadb, monkeypatch, warehouse):
    from support.services import scratch_database

    with scratch_database(mariadb, "ns_init") as db:
        cur = db.conn.cursor()
        for sql in MARIADB_SCHEMA + MARIADB_ROWS:
            cur.execute(sql)
        monkeypatch.setenv("AIRFLOW_CONN_SHOP_MARIADB", db.airflow_conn)
        yield db, cur


@pytest.mark.integration
def test_mariadb_definition_syncs_every_table_in_one_round(mariadb_source, warehouse, tmp_path):
    db, cur = mariadb_source
    for i in range(MANY):
        cur.execute(f"CREATE TABLE t{i:03d} (id INT PRIMARY KEY, v VARCHAR(10))")
    cur.execute("INSERT INTO t000 VALUES (1, 'one'), (2, 'two')")
    out = tmp_path / "shop.yaml"
    started = time.monotonic()
    code, said = init("shop_mariadb", out, "--name", "shop", "--append-only", "events")
    took = time.monotonic() - started
    assert code == 0, said
    config = load(out)
    tables = by_name(config)
    assert len(tables) == 7 + MANY, sorted(tables)
    assert "v_orders" not in tables and "Bad Name" not in tables
    assert "# - name: Bad Name" in out.read_text() or '# - name: "Bad Name"' in out.read_text()
    assert (tables["orders"].mode, tables["orders"].cursor, tables["orders"].detect_deletes) == (
        "incremental", "updated_at", True,
    )  # fmt: skip
    assert tables["orders"].lag == dt.timedelta(minutes=10)
    assert (tables["OrderLines"].primary_key, tables["OrderLines"].cursor) == (
        ("orderId", "lineNo"),
        "changedAt",
    )
    assert tables["select"].primary_key == ("from", "where") and tables["select"].mode == "full"
    assert tables["nokey"].primary_key == () and tables["nokey"].mode == "full"
    assert tables["uniq"].primary_key == ("code",)
    assert (tables["events"].cursor, tables["events"].lag) == ("id", dt.timedelta(0))
    assert tables["unindexed"].mode == "full" and "no index starts with it" in prose(out)
    assert config.source.timezone is None, "a UTC server needs no source.timezone"
    started = time.monotonic()
    results = one_round(config)
    synced = time.monotonic() - started
    assert all(r["staged_rows"] == r["source_rows"] for r in results.values())
    assert (
        results["orders"]["reconciled"]["repaired"] == 0 and results["orders"]["reconciled"]["checked"] == 3
    )
    assert_equal_data(config, cur, "`", warehouse)
    print(f"MariaDB: init {took:.1f}s, one round of {len(tables)} tables {synced:.1f}s")


@pytest.mark.integration
def test_an_existing_file_is_kept_unless_forced_and_views_come_on_request(mariadb_source, tmp_path):
    out = tmp_path / "shop.yaml"
    out.write_text("mine\n")
    code, said = init("shop_mariadb", out, "--include", "orders", "--include", "v_*")
    assert code == 2 and "exists" in said and "--force" in said and out.read_text() == "mine\n"
    code, said = init("shop_mariadb", out, "--include", "orders", "--include", "v_*", "--force", "--views")
    assert code == 0, said
    tables = by_name(load(out))
    assert sorted(tables) == ["orders", "v_orders"] and tables["v_orders"].mode == "full"


@pytest.fixture
def mariadb_at_utc_plus_one(warehouse, monkeypatch):
    """A private MariaDB server of this test's own, started with --default-time-zone=+01:00: the sync reads
    MariaDB's zone server-wide (@@global.time_zone), which the shared server's settings must not change."""
    import os
    import shutil
    import subprocess
    import tempfile

    import MySQLdb
    from support.net import free_port
    from support.services import missing, reachable

    candidates = (shutil.which("mariadbd"), "/usr/sbin/mariadbd", shutil.which("mysqld"), "/usr/sbin/mysqld")
    server = next((c for c in candidates if c and Path(c).is_file()), None)
    install = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
    if server is None or install is None:
        missing(
            "mariadbd and mariadb-install-db (a private MariaDB server)", "apt-get install mariadb-server"
        )
    user = ["--user=mysql"] if os.geteuid() == 0 else []  # as root the server runs as mysql
    folder = Path(tempfile.mkdtemp(prefix="nightshift-init-mariadb-"))
    if user:
        shutil.chown(folder, "mysql")
    installed = subprocess.run(
        [install, "--no-defaults", f"--datadir={folder}/data", *user, "--auth-root-authentication-method=normal",
         "--skip-test-db"], capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stdout[-2000:] + installed.stderr[-2000:]
    port = free_port()
    process = subprocess.Popen(
        [server, "--no-defaults", *user, f"--datadir={folder}/data", f"--port={port}", "--bind-address=127.0.0.1",
         f"--socket={folder}/mariadb.sock", f"--pid-file={folder}/mariadb.pid", f"--log-error={folder}/error.log",
         "--default-time-zone=+01:00", "--innodb-buffer-pool-size=32M", "--skip-log-bin"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not reachable("127.0.0.1", port, 0.5):
            assert process.poll() is None and time.monotonic() < deadline, "the private MariaDB did not start"
            time.sleep(0.3)
        conn = MySQLdb.connect(host="127.0.0.1", port=port, user="root", autocommit=True)
        conn.cursor().execute("CREATE DATABASE shop")
        conn.select_db("shop")
        conn_json = {
            "conn_type": "mysql",
            "host": "127.0.0.1",
            "port": port,
            "login": "root",
            "schema": "shop",
        }
        monkeypatch.setenv("AIRFLOW_CONN_SHOP_AT_PLUS_ONE", json.dumps(conn_json))
        yield conn.cursor()
        conn.close()
    finally:
        process.terminate()
        process.wait(timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.integration
def test_a_mariadb_server_not_in_utc_gets_its_zone_for_a_datetime_cursor(
    mariadb_at_utc_plus_one, warehouse, tmp_path
):
    cur = mariadb_at_utc_plus_one
    cur.execute(
        "CREATE TABLE `lines` (id INT PRIMARY KEY, qty INT, "
        "changedAt DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6), KEY (changedAt))"
    )
    cur.execute("INSERT INTO `lines` (id, qty) VALUES (1, 3), (2, 4)")  # wall clock of UTC+01:00
    cur.execute("UPDATE `lines` SET qty = 5 WHERE id = 2")
    out = tmp_path / "shop.yaml"
    code, said = init("shop_at_plus_one", out)
    assert code == 0, said
    config = load(out)
    assert config.source.timezone == "Etc/GMT-1", "the server's +01:00 as an IANA zone (Etc/GMT-1 is UTC+1)"
    assert (config.tables[0].mode, config.tables[0].cursor) == ("incremental", "changedAt")
    results = one_round(config)
    assert results["lines"]["staged_rows"] == 2 and results["lines"]["reconciled"]["repaired"] == 0
    assert_equal_data(config, cur, "`", warehouse)


# -- PostgreSQL -----------------------------------------------------------------------------------

POSTGRES_SCHEMA = [
    "CREATE FUNCTION stamp() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN NEW.updated_at := now(); RETURN NEW; END $$",
    'CREATE FUNCTION stamp_mixed() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW."changedAt" = now(); '
    "RETURN NEW; END $$",
    "CREATE TABLE orders (id INT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, note TEXT, amount NUMERIC(12, 2), "
    "tags TEXT[], updated_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    "CREATE INDEX ON orders (updated_at)",
    "CREATE TRIGGER orders_stamp BEFORE UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION stamp()",
    'CREATE TABLE "OrderLines" ("orderId" INT, "lineNo" INT, qty INT, '
    '"changedAt" TIMESTAMP NOT NULL DEFAULT now(), PRIMARY KEY ("orderId", "lineNo"))',
    'CREATE INDEX ON "OrderLines" ("changedAt")',
    'CREATE TRIGGER lines_stamp BEFORE UPDATE ON "OrderLines" FOR EACH ROW EXECUTE FUNCTION stamp_mixed()',
    'CREATE TABLE "user" ("select" INT PRIMARY KEY, "group" TEXT, "Order" INT)',
    "CREATE TABLE nokey (a INT, b TEXT)",
    "CREATE TABLE uniq (code TEXT NOT NULL, x INT)",
    "CREATE UNIQUE INDEX ON uniq (code)",
    "CREATE TYPE pair AS (a INT, b INT)",
    "CREATE TABLE odd (id BIGINT PRIMARY KEY, span INT4RANGE, p pair, fine JSONB)",
    "CREATE TABLE measurements (id INT, at DATE, v INT, PRIMARY KEY (id, at)) PARTITION BY RANGE (at)",
    "CREATE TABLE measurements_2025 PARTITION OF measurements FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')",
    "CREATE TABLE measurements_2026 PARTITION OF measurements FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')",
    "CREATE TABLE nullable_stamp (id INT PRIMARY KEY, updated_at TIMESTAMPTZ DEFAULT now())",
    "CREATE INDEX ON nullable_stamp (updated_at)",
    "CREATE TRIGGER n_stamp BEFORE UPDATE ON nullable_stamp FOR EACH ROW EXECUTE FUNCTION stamp()",
    "CREATE VIEW v_orders AS SELECT id, note FROM orders",
]
POSTGRES_ROWS = [
    "INSERT INTO orders (note, amount, tags) VALUES ('a', 1.5, ARRAY['x', 'y']), ('b', NULL, NULL), "
    "('c', 99999.99, '{}')",
    "UPDATE orders SET note = 'a2' WHERE note = 'a'",
    'INSERT INTO "OrderLines" ("orderId", "lineNo", qty) VALUES (1, 1, 3), (1, 2, 4), (2, 1, 5)',
    "INSERT INTO \"user\" VALUES (1, 'g', 2), (2, NULL, NULL)",
    "INSERT INTO nokey VALUES (1, 'a'), (1, 'a'), (NULL, NULL)",
    "INSERT INTO uniq VALUES ('A', 1), ('B', 2)",
    "INSERT INTO odd VALUES (1, '[1,5)', ROW(1, 2), '{\"k\": 1}'), (2, NULL, NULL, NULL)",
    "INSERT INTO measurements VALUES (1, '2025-06-01', 10), (2, '2026-06-01', 20), (3, '2026-07-01', 30)",
    "INSERT INTO nullable_stamp (id) VALUES (1)",
]


@pytest.fixture
def postgres_source(postgres, monkeypatch, warehouse):
    """A database of the test's own whose sessions run in Europe/Paris (ALTER DATABASE ... SET timezone),
    as a server configured so would: the server's settings stay untouched."""
    import psycopg2
    from support.services import scratch_database

    with scratch_database(postgres, "ns_init") as db:
        db.conn.cursor().execute(f"ALTER DATABASE \"{db.name}\" SET timezone = 'Europe/Paris'")
        conn = psycopg2.connect(host=postgres.host, port=postgres.port, user="postgres", dbname=db.name)
        conn.autocommit = True
        cur = conn.cursor()
        try:
            for sql in POSTGRES_SCHEMA + POSTGRES_ROWS:
                cur.execute(sql)
            cur.execute(
                "DO $$ BEGIN FOR i IN 0..%s LOOP EXECUTE format('CREATE TABLE t%%s (id INT PRIMARY KEY, v TEXT)', "
                "lpad(i::text, 3, '0')); END LOOP; END $$",
                (MANY - 1,),
            )
            cur.execute("INSERT INTO t000 VALUES (1, 'one'), (2, 'two')")
            monkeypatch.setenv("AIRFLOW_CONN_SHOP_POSTGRES", db.airflow_conn)
            yield db, cur
        finally:
            conn.close()


@pytest.mark.integration
def test_postgres_definition_syncs_every_table_in_one_round(postgres_source, warehouse, tmp_path):
    db, cur = postgres_source
    out = tmp_path / "shop.yaml"
    started = time.monotonic()
    code, said = init("shop_postgres", out, "--name", "shop")
    took = time.monotonic() - started
    assert code == 0, said
    text = out.read_text()
    config = load(out)
    tables = by_name(config)
    assert len(tables) == 8 + MANY, sorted(tables)
    assert "measurements" in tables and not any(n.startswith("measurements_") for n in tables)
    assert "2 partition(s) not listed" in prose(out) and "v_orders" not in tables
    assert (tables["orders"].mode, tables["orders"].cursor) == ("incremental", "updated_at")
    assert "set by trigger orders_stamp" in prose(out)
    assert (tables["OrderLines"].cursor, tables["OrderLines"].primary_key) == (
        "changedAt",
        ("orderId", "lineNo"),
    )
    assert config.source.timezone == "Europe/Paris", "a DATETIME cursor on a Paris server needs its zone"
    assert "Confirm it is the zone the applications write in" in prose(out)
    assert tables["user"].primary_key == ("select",)
    assert tables["nokey"].primary_key == () and tables["uniq"].primary_key == ("code",)
    assert tables["odd"].exclude == ("span", "p") and tables["odd"].mode == "full"
    odd = yaml.safe_load(text)  # the comments are not data; the reasons are on the excluded lines
    assert odd is not None and "- span  # int4range: PostgreSQL range type int4range" in text
    assert "- p  # pair: PostgreSQL composite type pair" in text
    assert tables["nullable_stamp"].mode == "full" and "it is nullable" in prose(out)
    started = time.monotonic()
    results = one_round(config)
    synced = time.monotonic() - started
    assert results["measurements"]["staged_rows"] == 3
    assert results["OrderLines"]["reconciled"]["repaired"] == 0
    assert_equal_data(config, cur, '"', warehouse)
    print(f"PostgreSQL: init {took:.1f}s, one round of {len(tables)} tables {synced:.1f}s")


# -- --cdc ----------------------------------------------------------------------------------------

CDC_SCHEMA = {
    "mysql": [
        "CREATE TABLE orders (id INT PRIMARY KEY, note VARCHAR(20))",
        "CREATE TABLE olines (orderId INT NOT NULL, lineNo INT NOT NULL, qty INT, PRIMARY KEY (orderId, lineNo))",
        "CREATE TABLE nokey (a INT, b TEXT)",
        "CREATE TABLE hosts (id INT PRIMARY KEY, ip INET6)",  # INET6: the binlog's form is MariaDB's own
    ],
    "postgres": [
        "CREATE TABLE orders (id INT PRIMARY KEY, note VARCHAR(20))",
        'CREATE TABLE olines ("orderId" INT NOT NULL, "lineNo" INT NOT NULL, qty INT, PRIMARY KEY ("orderId", "lineNo"))',
        "CREATE TABLE nokey (a INT, b TEXT)",
        "CREATE TABLE hosts (id INT NOT NULL, ip TEXT)",  # a unique index, no primary key: no replica identity
        "CREATE UNIQUE INDEX hosts_id ON hosts (id)",
    ],
}


@pytest.mark.integration
@pytest.mark.parametrize("engine", ["mysql", "postgres"])
def test_cdc_definition_puts_keyed_tables_on_the_log_and_says_why_not_for_the_rest(
    engine, request, warehouse, tmp_path, monkeypatch
):
    from support.services import scratch_database

    service = request.getfixturevalue("mariadb_binlog" if engine == "mysql" else "postgres_logical")
    with scratch_database(service, "ns_initcdc") as db:
        cur = db.conn.cursor()
        try:
            for sql in CDC_SCHEMA[engine]:
                cur.execute(sql)
            cur.execute("INSERT INTO orders VALUES (1, 'a'), (2, 'b'), (3, 'c')")
            cur.execute("INSERT INTO olines VALUES (1, 1, 5), (1, 2, 6)")
            cur.execute("INSERT INTO nokey VALUES (1, 'x')")
            cur.execute("INSERT INTO hosts VALUES (1, " + ("'::1')" if engine == "mysql" else "'h1')"))
            monkeypatch.setenv("AIRFLOW_CONN_SHOP_LOG", db.airflow_conn)
            out = tmp_path / "shop.yaml"
            code, said = init("shop_log", out, "--name", "shoplog", "--cdc")
            assert code == 0 and "warning" not in said, said
            config = load(out)
            modes = {t.name: t.mode for t in config.tables}
            assert modes == {"orders": "cdc", "olines": "cdc", "nokey": "full", "hosts": "full"}, modes
            words = prose(out)
            assert "Before change capture can run" not in words  # the private server writes the log
            fix = (
                "(MariaDB INET4/INET6/UUID) cannot be read from the binlog exactly"
                if engine == "mysql"
                else "ALTER TABLE public.hosts REPLICA IDENTITY USING INDEX hosts_id;"
            )
            named = "hosts" if engine == "mysql" else "public.hosts"  # PostgreSQL's in the schema read
            assert f"kept on mode full, not cdc: table '{named}'" in words and fix in words, words
            assert config.schedule == "*/15 * * * *"
            first = one_round(config)
            assert {n: r.get("reader") for n, r in first.items() if n in ("orders", "olines")} == {
                "orders": "snapshot", "olines": "snapshot",
            }  # fmt: skip
            cur.execute("UPDATE orders SET note = 'b2' WHERE id = 2")
            cur.execute("DELETE FROM orders WHERE id = 3")
            cur.execute("INSERT INTO orders VALUES (4, 'd')")
            second = one_round(config, hours_later=1)
            assert second["orders"]["reader"] == "log" and second["orders"]["marked_deleted"] == 1
            import duckdb

            with duckdb.connect(str(warehouse), read_only=True) as wh:
                live = wh.execute(
                    "SELECT id, note FROM shoplog.orders WHERE _nightshift_deleted_at IS NULL ORDER BY id"
                ).fetchall()
            assert live == [(1, "a"), (2, "b2"), (4, "d")]
        finally:
            if engine == "postgres":  # a slot keeps its database from being dropped
                cur.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                            "WHERE database = current_database()")  # fmt: skip


@pytest.mark.integration
def test_cdc_on_postgresql_counts_the_replication_slots_the_tables_need(
    postgres_logical, tmp_path, monkeypatch
):
    from support.services import scratch_database

    with scratch_database(postgres_logical, "ns_initslots") as db:
        cur = db.conn.cursor()
        cur.execute("SELECT current_setting('max_replication_slots')::int")
        (limit,) = cur.fetchone()
        for i in range(limit + 1):  # one more table than the server has slots
            cur.execute(f"CREATE TABLE t{i:03d} (id INT PRIMARY KEY)")
        monkeypatch.setenv("AIRFLOW_CONN_SLOTS", db.airflow_conn)
        out = tmp_path / "slots.yaml"
        code, said = init("slots", out, "--name", "slots", "--cdc")
        assert code == 0, said
        words = prose(out)
        assert f"{limit + 1} table(s) on change capture take a replication slot each" in words, words
        assert f"max_replication_slots is {limit}" in words and "raise it" in said
        assert all(t.mode == "cdc" for t in load(out).tables)


@pytest.mark.integration
def test_cdc_on_a_server_without_the_log_names_each_setting_in_the_file_and_on_stderr(
    mariadb_source, tmp_path
):
    out = tmp_path / "shop.yaml"
    code, said = init("shop_mariadb", out, "--name", "shop", "--cdc")
    assert code == 0, said
    words = prose(out)
    # the machine's shared MariaDB writes no binlog
    assert "Before change capture can run on this server" in words and "log_bin is" in words
    assert "warning:" in said and "log_bin is" in said
    tables = by_name(load(out))
    assert tables["orders"].mode == "cdc" and tables["nokey"].mode == "full"
    assert "change capture needs one too" in words


# -- errors and the planner -----------------------------------------------------------------------


def test_a_bad_connection_id_or_url_says_which_and_how_to_fix(tmp_path, monkeypatch):
    code, said = init("no_such_conn", tmp_path / "x.yaml")
    assert (
        code == 2
        and "connection 'no_such_conn' is not defined" in said
        and "AIRFLOW_CONN_NO_SUCH_CONN" in said
    )
    code, said = init("oracle://me:s3cret@db.example/x", tmp_path / "x.yaml")
    assert code == 2 and "scheme 'oracle'" in said and "s3cret" not in said and "me:***@" in said
    code, said = init("postgresql://me:s3cret@127.0.0.1:1/x", tmp_path / "x.yaml")
    assert code == 2 and "cannot connect" in said and "s3cret" not in said, said
    code, said = init("no_such_conn", tmp_path / "x.yaml", "--name", "my-shop")
    assert code == 2 and "--name 'my-shop': use letters, digits and '_'" in said
    code, said = init("no_such_conn", tmp_path / "x.yaml", "--lag", "ten minutes")
    assert code == 2 and "write a duration like 10m" in said
    assert not (tmp_path / "x.yaml").exists()


def _catalog(cursor_type: str):
    import pyarrow as pa

    from nightshift_core.sync.discover.base import Catalog, CatalogColumn, CatalogTable, ColumnTypes

    table = CatalogTable(
        "orders", "table", "BASE TABLE",
        (CatalogColumn("id", "int", False), CatalogColumn("at", cursor_type, False, False, True, True, "ON UPDATE")),
        ("id",), (), frozenset({"at"}),
    )  # fmt: skip
    arrow = pa.timestamp("us") if cursor_type == "datetime" else pa.timestamp("us", tz="UTC")
    return Catalog((table,)), {"orders": ColumnTypes({"id": pa.int64(), "at": arrow})}


@pytest.mark.parametrize(
    ("server", "cursor_type", "zone", "mode"),
    [
        (ServerZone("Europe/Paris", dt.timedelta(hours=1)), "datetime", "Europe/Paris", "incremental"),
        (ServerZone("Europe/Paris", dt.timedelta(hours=1)), "timestamp", None, "incremental"),
        (ServerZone("+09:00", dt.timedelta(hours=9)), "datetime", "Etc/GMT-9", "incremental"),
        (ServerZone("CET", dt.timedelta(hours=1)), "datetime", None, "full"),  # names no IANA zone
        (ServerZone("UTC", dt.timedelta(0)), "datetime", None, "incremental"),
    ],
)
def test_the_zone_is_written_only_for_a_datetime_cursor_on_a_server_not_in_utc(
    server, cursor_type, zone, mode
):
    from nightshift_core.sync.discover.plan import Options, plan, render

    catalog, types = _catalog(cursor_type)
    chosen = plan(catalog, types, server, Options(name="shop", conn_id="shop"))
    assert (chosen.timezone, chosen.tables[0].mode) == (zone, mode)
    assert yaml.safe_load(render(chosen, dialect="mysql"))["source"].get("timezone") == zone


@pytest.mark.parametrize("name", ["on", "off", "yes", "null", "true", "1e3", "0x1F", "order", "Select_2"])
def test_names_yaml_would_read_as_something_else_are_quoted(name):
    from nightshift_core.sync.discover.plan import _q

    assert yaml.safe_load(f"name: {_q(name)}") == {"name": name}


@pytest.mark.parametrize(
    ("body", "stamped"),
    [
        ("BEGIN NEW.updated_at := now(); RETURN NEW; END", {"updated_at"}),
        ('BEGIN NEW."changedAt" = CURRENT_TIMESTAMP; RETURN NEW; END', {"changedAt"}),
        ("begin new.Modified := clock_timestamp(); return new; end", {"modified"}),  # unquoted: folded
        ("BEGIN NEW.updated_at := OLD.updated_at; RETURN NEW; END", set()),  # kept, not stamped
        ("BEGIN NEW.note := 'now()'; RETURN NEW; END", set()),
    ],
)
def test_a_trigger_function_stamps_the_columns_it_assigns_the_current_time(body, stamped):
    from nightshift_core.sync.discover.postgres import stamped_columns

    assert stamped_columns(body) == stamped


def test_two_tables_whose_names_differ_only_in_case_do_not_share_a_warehouse_table():
    import pyarrow as pa

    from nightshift_core.sync.discover.base import Catalog, CatalogColumn, CatalogTable, ColumnTypes
    from nightshift_core.sync.discover.plan import Options, plan, render

    tables = tuple(CatalogTable(n, "table", "BASE TABLE", (CatalogColumn("id", "int", False),), ("id",))
                   for n in ("Orders", "orders"))  # fmt: skip
    types = {n: ColumnTypes({"id": pa.int64()}) for n in ("Orders", "orders")}
    chosen = plan(
        Catalog(tables), types, ServerZone("UTC", dt.timedelta(0)), Options(name="shop", conn_id="shop")
    )
    assert [t.skipped != "" for t in chosen.tables] == [False, True]
    text = render(chosen, dialect="mysql")
    assert [t["name"] for t in yaml.safe_load(text)["tables"]] == ["Orders"]
    assert "warehouse names ignore case" in " ".join(text.split())
