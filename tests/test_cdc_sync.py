"""mode: cdc end to end: a snapshot, then the log into a DuckDB warehouse, on the private log-enabled
MariaDB (binlog) and PostgreSQL (wal_level=logical) that scripts/cdc_services.sh starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from test_warehouse_contract import wh as contract_warehouse  # noqa: F401 - DuckDB and the BigQuery emulator

from nightshift_core.errors import SourceDefinitionError
from nightshift_core.sync.cdc.endpoint import Endpoint

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Harness:
    """A scratch source database, a DuckDB warehouse, and a way to run one CDC step of a table."""

    engine: str  # "mysql" | "postgres"
    service: Any
    database: str
    cur: Any
    warehouse_path: Path
    definition: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:8]}")

    def sql(self, *statements: str) -> None:
        for statement in statements:
            self.cur.execute(statement)

    def endpoint(self) -> Endpoint:
        user = "root" if self.engine == "mysql" else "postgres"
        return Endpoint(self.service.host, self.service.port, user, self.database)

    def connect(self) -> Any:
        if self.engine == "mysql":
            import MySQLdb

            return MySQLdb.connect(
                host=self.service.host, port=self.service.port, user="root", database=self.database
            )
        import psycopg2

        return psycopg2.connect(
            host=self.service.host, port=self.service.port, user="postgres", dbname=self.database
        )

    def airflow_connections(self, monkeypatch: Any) -> None:
        """The operator's connections: the DuckDB warehouse and this source (as cdc_source)."""
        extra = {"engine": "duckdb", "path": str(self.warehouse_path)}
        monkeypatch.setenv(
            "AIRFLOW_CONN_NIGHTSHIFT_WAREHOUSE", json.dumps({"conn_type": "generic", "extra": extra})
        )
        kind, user = ("mysql", "root") if self.engine == "mysql" else ("postgres", "postgres")
        source = {"conn_type": kind, "host": self.service.host, "port": self.service.port, "login": user,
                  "schema": self.database}  # fmt: skip
        monkeypatch.setenv("AIRFLOW_CONN_CDC_SOURCE", json.dumps(source))

    def table(self, name: str = "orders", **options: Any) -> Any:
        from nightshift_core.sync.cdc.run import CdcTable

        options.setdefault("primary_key", ("id",))
        return CdcTable(name=name, definition=self.definition, **options)

    def run(
        self, name: str = "orders", *, full_refresh: bool = False, warehouse: Any = None, **options: Any
    ) -> Any:
        from nightshift_core.sync.cdc.run import sync_table
        from nightshift_core.warehouse import JobKey, TableRef
        from nightshift_core.warehouse.duckdb_engine import DuckDBWarehouse

        conn = self.connect()
        try:
            return sync_table(
                conn, self.engine, self.endpoint(), self.table(name, **options),
                warehouse or DuckDBWarehouse(self.warehouse_path), TableRef("cdc", name),
                JobKey("cdc", name, run_id=uuid.uuid4().hex), full_refresh=full_refresh,
            )  # fmt: skip
        finally:
            conn.close()

    def rows(self, name: str = "orders", order: str = "id") -> list[dict]:
        from nightshift_core.warehouse.duckdb_engine import DuckDBWarehouse

        return (
            DuckDBWarehouse(self.warehouse_path)
            .query(f"SELECT * FROM cdc.{name} ORDER BY {order}")
            .to_pylist()
        )

    def rows_of(self, table: str) -> list[dict]:
        from nightshift_core.warehouse.duckdb_engine import DuckDBWarehouse

        return DuckDBWarehouse(self.warehouse_path).query(f"SELECT * FROM {table} ORDER BY id").to_pylist()

    def live(self, name: str = "orders") -> list[tuple]:
        """(id, status) of the rows not soft-deleted."""
        return [(r["id"], r["status"]) for r in self.rows(name) if r.get("_nightshift_deleted_at") is None]

    def position(self, name: str = "orders") -> dict:
        from nightshift_core.warehouse import TableRef
        from nightshift_core.warehouse.duckdb_engine import DuckDBWarehouse

        return json.loads(DuckDBWarehouse(self.warehouse_path).log_position(TableRef("cdc", name)))

    def drop_slots(self) -> None:
        if self.engine != "postgres":
            return
        import psycopg2

        conn = psycopg2.connect(
            host=self.service.host, port=self.service.port, user="postgres", dbname=self.database
        )
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name LIKE %s",
                [f"nightshift_{self.definition}%"],
            )
            cur.execute("SELECT pubname FROM pg_publication")
            for (name,) in cur.fetchall():
                cur.execute(f'DROP PUBLICATION IF EXISTS "{name}"')
        conn.close()


@pytest.fixture(params=["mysql", "postgres"])
def cdc(request, tmp_path) -> Iterator[Harness]:
    from support.services import scratch_database

    service = request.getfixturevalue("mariadb_binlog" if request.param == "mysql" else "postgres_logical")
    with scratch_database(service, "ns_cdcsync") as db:
        harness = Harness(request.param, service, db.name, db.conn.cursor(), tmp_path / "w.duckdb")
        harness.sql("CREATE TABLE orders (id INT PRIMARY KEY, status VARCHAR(20), note TEXT)")
        try:
            yield harness
        finally:
            harness.drop_slots()


def test_snapshot_then_insert_update_delete_and_key_change(cdc):
    cdc.sql("INSERT INTO orders VALUES (1, 'new', 'a'), (2, 'new', 'b'), (3, 'new', 'c')")
    first = cdc.run()
    assert first.mode == "snapshot" and first.staged_rows == 3
    assert cdc.live() == [(1, "new"), (2, "new"), (3, "new")]
    cdc.sql(
        "INSERT INTO orders VALUES (4, 'new', 'd')",
        "UPDATE orders SET status = 'paid' WHERE id = 1",
        "DELETE FROM orders WHERE id = 2",
        "UPDATE orders SET id = 30 WHERE id = 3",
    )
    second = cdc.run()
    assert second.mode == "log" and second.changes == 4 and second.deleted == 2
    assert cdc.live() == [(1, "paid"), (4, "new"), (30, "new")]
    deleted = {r["id"]: r for r in cdc.rows() if r["_nightshift_deleted_at"] is not None}
    # soft deletes keep the row's last values and carry the commit time
    assert sorted(deleted) == [2, 3] and deleted[2]["status"] == "new" and deleted[2]["note"] == "b"
    # a key deleted and inserted again is live again
    cdc.sql("INSERT INTO orders VALUES (2, 'back', 'e')")
    cdc.run()
    assert (2, "back") in cdc.live()


def test_hard_deletes_remove_the_row(cdc):
    cdc.sql("INSERT INTO orders VALUES (1, 'new', 'a'), (2, 'new', 'b')")
    cdc.run(deletes="hard")
    cdc.sql("DELETE FROM orders WHERE id = 1")
    cdc.run(deletes="hard")
    assert [r["id"] for r in cdc.rows()] == [2]
    assert "_nightshift_deleted_at" not in cdc.rows()[0]


def test_a_rolled_back_transaction_is_never_applied(cdc):
    cdc.run()
    cdc.sql("BEGIN", "INSERT INTO orders VALUES (10, 'ghost', 'x')", "ROLLBACK")
    cdc.sql("INSERT INTO orders VALUES (11, 'real', 'y')")
    result = cdc.run()
    assert result.changes == 1 and cdc.live() == [(11, "real")]
    # a savepoint rolled back inside a committed transaction: its rows never reach the log
    begin = "BEGIN" if cdc.engine == "postgres" else "START TRANSACTION"
    cdc.sql(begin, "INSERT INTO orders VALUES (12, 'kept', 'z')", "SAVEPOINT s1",
            "INSERT INTO orders VALUES (13, 'ghost', 'z')", "UPDATE orders SET status = 'ghost' WHERE id = 11",
            "ROLLBACK TO SAVEPOINT s1", "COMMIT")  # fmt: skip
    assert cdc.run().changes == 1 and cdc.live() == [(11, "real"), (12, "kept")]


def test_the_operator_runs_mode_cdc_snapshot_then_log(cdc, monkeypatch):
    from types import SimpleNamespace

    from nightshift.operators.sql_to_warehouse import SqlToWarehouseOperator

    cdc.airflow_connections(monkeypatch)
    cdc.sql("INSERT INTO orders VALUES (1, 'new', 'a'), (2, 'new', 'b')")

    def run() -> dict:
        op = SqlToWarehouseOperator(task_id="load_orders", source_conn_id="cdc_source", table="orders",
                                    dataset="cdc", primary_key=["id"], mode="cdc")  # fmt: skip
        ti = SimpleNamespace(
            dag_id=cdc.definition, task_id="load_orders", run_id=uuid.uuid4().hex, map_index=-1
        )
        return op.execute({"ti": ti})

    first = run()
    assert (first["mode"], first["reader"], first["staged_rows"]) == ("cdc", "snapshot", 2)
    cdc.sql("DELETE FROM orders WHERE id = 1", "UPDATE orders SET status = 'paid' WHERE id = 2")
    second = run()
    assert (second["reader"], second["window"]["changes"], second["marked_deleted"]) == ("log", 2, 1)
    assert cdc.live() == [(2, "paid")]


def test_one_transaction_over_two_tables_reaches_both(cdc):
    cdc.sql("CREATE TABLE items (order_id INT, line INT, qty INT, PRIMARY KEY (order_id, line))")
    cdc.run()
    cdc.run("items", primary_key=("order_id", "line"))
    cdc.sql(
        "BEGIN",
        "INSERT INTO orders VALUES (1, 'new', 'a')",
        "INSERT INTO items VALUES (1, 1, 5), (1, 2, 7)",
        "UPDATE items SET qty = 6 WHERE line = 1",
        "COMMIT",
    )
    assert cdc.run().changes == 1
    assert cdc.run("items", primary_key=("order_id", "line")).changes == 3
    assert cdc.live() == [(1, "new")]
    assert [(r["line"], r["qty"]) for r in cdc.rows("items", "line")] == [(1, 6), (2, 7)]


def test_a_table_without_a_cursor_reads_only_what_changed(cdc):
    values = ", ".join(f"({i}, 'new', 'n{i}')" for i in range(1, 201))
    cdc.sql(f"INSERT INTO orders VALUES {values}")
    assert cdc.run().staged_rows == 200
    cdc.sql("UPDATE orders SET status = 'paid' WHERE id = 17")
    again = cdc.run()
    assert (again.mode, again.changes, again.staged_rows) == ("log", 1, 1)
    assert len(cdc.live()) == 200 and (17, "paid") in cdc.live()


def test_a_large_transaction_and_chunks_that_end_at_transaction_boundaries(cdc):
    from nightshift_core.warehouse.duckdb_engine import DuckDBWarehouse

    cdc.run(chunk_changes=50)
    values = ", ".join(f"({i}, 'bulk', NULL)" for i in range(1, 1001))
    cdc.sql(f"INSERT INTO orders VALUES {values}")  # one transaction of 1,000 rows: never split
    for i in range(1, 121):
        cdc.sql(f"UPDATE orders SET status = 'u{i}' WHERE id = {i}")  # 120 one-row transactions
    result = cdc.run(chunk_changes=50)
    assert result.changes == result.staged_rows == 1120  # the 1,000 rows, then 120 in three chunks
    # the big transaction in 20 parts of 50 (each committed with the position before it), then 50
    # one-row transactions a chunk: 20 + 3 commits (no empty tail)
    assert result.chunks == 23
    live = dict(cdc.live())
    assert len(live) == 1000 and live[1] == "u1" and live[120] == "u120" and live[121] == "bulk"
    with DuckDBWarehouse(cdc.warehouse_path) as duck:
        states = duck.query(
            "SELECT position FROM _nightshift.sync_state WHERE target = 'cdc.orders' ORDER BY published_at"
        ).to_pylist()
    assert len(states) == 24 and json.loads(states[-1]["position"]) == cdc.position()
    assert len({s["position"] for s in states[1:21]}) == 1, (
        "the parts of one transaction: the position before it"
    )


def test_a_transaction_bigger_than_a_chunk_is_applied_in_parts(cdc):
    """Memory follows the chunk even inside one huge transaction: its parts are committed with the
    position before it, so a restart re-applies it whole."""
    cdc.run(chunk_changes=100)
    before = cdc.position()
    values = ", ".join(f"({i}, 'bulk', NULL)" for i in range(1, 1001))
    cdc.sql("BEGIN", f"INSERT INTO orders VALUES {values}", "UPDATE orders SET status = 'done'", "COMMIT")
    cdc.sql("INSERT INTO orders VALUES (5000, 'after', NULL)")
    child = _in_child(cdc, "chunk", chunk_changes=100)
    assert child.returncode == -9, child.stderr.decode()[-2000:]
    # killed after its first part: part of the transaction is in, the position still before it
    assert 0 < len(cdc.live()) < 1001 and cdc.position() == before
    result = cdc.run(chunk_changes=100)
    assert result.changes == 2001 and result.chunks > 10
    live = cdc.live()
    assert (
        len(live) == 1001 and all(s == "done" for i, s in live if i <= 1000) and live[-1] == (5000, "after")
    )


def test_truncate_fails_naming_full_refresh_which_reloads(cdc):
    from nightshift_core.sync.cdc import TruncatedError

    cdc.sql("INSERT INTO orders VALUES (1, 'new', 'a'), (2, 'new', 'b')")
    cdc.run()
    cdc.sql("TRUNCATE TABLE orders", "INSERT INTO orders VALUES (3, 'after', 'c')")
    with pytest.raises(TruncatedError, match="full_refresh"):
        cdc.run()
    assert cdc.live() == [(1, "new"), (2, "new")], "nothing applied past the TRUNCATE"
    reloaded = cdc.run(full_refresh=True)
    assert reloaded.mode == "snapshot" and cdc.live() == [(3, "after")]
    cdc.sql("INSERT INTO orders VALUES (4, 'later', 'd')")
    assert cdc.run().mode == "log" and cdc.live() == [(3, "after"), (4, "later")]


@pytest.mark.parametrize("cdc", ["mysql"], indirect=True)  # binlog formats are MariaDB/MySQL's
@pytest.mark.parametrize("fast", [True, False], ids=["dump-loop", "library-stream"])
def test_a_change_logged_as_a_statement_fails_naming_the_table_and_the_fix(cdc, monkeypatch, fast):
    """binlog_format=ROW is checked globally; a session may still write statements (STATEMENT or
    MIXED), which carry no row images: the run fails instead of silently missing those rows."""
    from nightshift_core.sync.cdc import mysql_binlog

    monkeypatch.setattr(mysql_binlog, "FAST_DECODE", fast)
    cdc.sql("INSERT INTO orders VALUES (1, 'new', 'a')")
    cdc.run()
    cdc.sql("CREATE TABLE notes (id INT PRIMARY KEY)")
    cdc.sql("SET SESSION binlog_format = 'STATEMENT'", "INSERT INTO notes VALUES (1)")
    cdc.sql("SET SESSION binlog_format = 'ROW'", "UPDATE orders SET status = 'paid' WHERE id = 1")
    assert cdc.run().mode == "log", "another table's statement is not this table's change"
    cdc.sql(
        "SET SESSION binlog_format = 'STATEMENT'", "/* app */ UPDATE orders SET status = 'sent' WHERE id = 1"
    )
    cdc.sql("SET SESSION binlog_format = 'ROW'")
    with pytest.raises(mysql_binlog.StatementLoggedError, match=r"orders.*STATEMENT or MIXED.*full_refresh"):
        cdc.run()
    assert cdc.live() == [(1, "paid")], "nothing applied past the statement"
    assert cdc.run(full_refresh=True).mode == "snapshot" and cdc.live() == [(1, "sent")]


@pytest.mark.parametrize("cdc", ["mysql"], indirect=True)  # XA in the binlog: MariaDB/MySQL's
@pytest.mark.parametrize("fast", [True, False], ids=["dump-loop", "library-stream"])
def test_rows_of_an_xa_transaction_fail_the_run_never_applied_before_their_outcome(cdc, monkeypatch, fast):
    """A prepared XA transaction's rows are logged before its XA COMMIT or XA ROLLBACK: applying them
    at XA END would keep rolled-back rows, so the run fails naming the table and the fix."""
    from nightshift_core.sync.cdc import mysql_binlog

    monkeypatch.setattr(mysql_binlog, "FAST_DECODE", fast)
    cdc.sql("INSERT INTO orders VALUES (1, 'new', 'a')")
    cdc.run()
    cdc.sql("CREATE TABLE notes (id INT PRIMARY KEY)")
    cdc.sql("XA START 'other'", "INSERT INTO notes VALUES (1)", "XA END 'other'", "XA PREPARE 'other'")
    cdc.sql("XA COMMIT 'other'", "UPDATE orders SET status = 'paid' WHERE id = 1")
    assert cdc.run().mode == "log", "another table's XA transaction is not this table's"
    cdc.sql("XA START 'x2'", "INSERT INTO orders VALUES (2, 'new', 'b')", "XA END 'x2'", "XA PREPARE 'x2'")
    cdc.sql("XA ROLLBACK 'x2'")
    with pytest.raises(mysql_binlog.XaTransactionError, match=r"orders.*XA.*full_refresh"):
        cdc.run()
    assert cdc.live() == [(1, "paid")], "the rolled-back row is not applied"
    assert cdc.run(full_refresh=True).mode == "snapshot" and cdc.live() == [(1, "paid")]


def test_columns_added_appear_dropped_stop_and_a_type_change_fails(cdc):
    from nightshift_core.warehouse.types import SchemaChangeError

    cdc.sql("INSERT INTO orders VALUES (1, 'new', 'a')")
    cdc.run()
    cdc.sql("ALTER TABLE orders ADD COLUMN qty INT", "INSERT INTO orders VALUES (2, 'new', 'b', 5)")
    result = cdc.run()
    assert result.added_columns == ["qty"]
    assert [(r["id"], r["qty"]) for r in cdc.rows()] == [(1, None), (2, 5)]
    cdc.sql("ALTER TABLE orders DROP COLUMN note", "INSERT INTO orders VALUES (3, 'new', 7)")
    cdc.sql("UPDATE orders SET qty = 9 WHERE id = 1")
    cdc.run()
    rows = {r["id"]: r for r in cdc.rows()}
    assert rows[3]["note"] is None and rows[3]["qty"] == 7
    assert rows[1]["note"] == "a" and rows[1]["qty"] == 9, "a dropped column keeps its warehouse value"
    retype = "MODIFY qty VARCHAR(10)" if cdc.engine == "mysql" else "ALTER COLUMN qty TYPE varchar(10)"
    cdc.sql(f"ALTER TABLE orders {retype}", "INSERT INTO orders VALUES (4, 'new', 'x')")
    with pytest.raises(SchemaChangeError, match=r"'qty'.*full_refresh"):
        cdc.run()


def test_two_runs_with_nothing_changed_read_nothing_quickly(cdc):
    cdc.sql("INSERT INTO orders VALUES (1, 'new', 'a')")
    cdc.run()
    cdc.sql("UPDATE orders SET status = 'paid' WHERE id = 1")
    cdc.run()
    for _ in range(2):
        idle = cdc.run()
        assert (idle.mode, idle.changes, idle.staged_rows) == ("log", 0, 0)
        assert idle.seconds < 0.5, f"a run with nothing to read took {idle.seconds}s"
    assert cdc.live() == [(1, "paid")]


@pytest.mark.parametrize("cdc", ["postgres"], indirect=True)  # a slot's read; the binlog has no such query
def test_a_read_at_the_flush_point_sends_no_decoding_query_and_an_open_read_holds_the_reader(
    cdc, monkeypatch
):
    from nightshift_core.sync.cdc import postgres_logical

    with postgres_logical.LogicalReader(cdc.endpoint(), cdc.definition, ["orders"], text=True) as reader:
        start = reader.ensure_slot()
        cdc.sql("INSERT INTO orders VALUES (2, 'new', 'b')")
        read = reader.read(start)
        changes = iter(read)
        assert next(changes).after["id"] == "2"
        # the read's transaction is on the reader's connection: a confirmation now would be rolled back
        with pytest.raises(RuntimeError, match="still open"):
            reader.confirm(read.end)
        assert list(changes) == []
        reader.confirm(read.end)
        assert reader.slot_position() > start
        decoded: list = []  # the reads' server-side cursors: each sends the decoding query

        class Recorded:  # the reader's connection, its named cursors recorded
            def __init__(self, conn):
                object.__setattr__(self, "conn", conn)

            def __getattr__(self, name):
                return getattr(self.conn, name)

            def __setattr__(self, name, value):
                setattr(self.conn, name, value)

            def cursor(self, *args, **kwargs):
                decoded.extend(kwargs.get("name", "") and [kwargs["name"]])
                return self.conn.cursor(*args, **kwargs)

        monkeypatch.setattr(reader, "_conn", Recorded(reader._conn))
        flushed = reader.current_position()
        monkeypatch.setattr(reader, "current_position", lambda: flushed)  # no other writer meanwhile
        assert list(reader.read(flushed)) == [] and list(reader.read(flushed).blocks()) == []
        assert decoded == []
        assert list(reader.read(flushed - 1)) == [] and len(decoded) == 1  # behind it: the query runs
        assert list(reader.read(flushed - 1).blocks()) == [] and len(decoded) == 2


# TOAST is PostgreSQL's: a FULL binlog row image has every column
@pytest.mark.parametrize("cdc", ["postgres"], indirect=True)
def test_unchanged_toast_values_keep_the_warehouse_value(cdc):
    big = uuid.uuid4().hex * 400  # 12,800 characters of little redundancy: stored out of line
    cdc.sql(f"INSERT INTO orders VALUES (1, 'new', '{big}')")
    cdc.run()
    cdc.sql("UPDATE orders SET status = 'paid' WHERE id = 1")  # pgoutput sends note as 'unchanged'
    cdc.run()
    assert cdc.rows()[0]["note"] == big and cdc.rows()[0]["status"] == "paid"


# A replica identity is PostgreSQL's: a publication on a table without one makes the server refuse
# every UPDATE and DELETE of it
@pytest.mark.parametrize("cdc", ["postgres"], indirect=True)
def test_a_table_without_a_replica_identity_is_refused_before_any_publication_and_the_advice_works(cdc):
    import re

    from nightshift_core.sync.cdc.preflight import ReplicaIdentityError

    cdc.sql(
        "CREATE TABLE lines (id INT NOT NULL, status VARCHAR(20))",  # a unique index, no primary key
        "CREATE UNIQUE INDEX lines_id ON lines (id)",
        "CREATE TABLE notes (id INT, status VARCHAR(20))",  # no index at all
        "INSERT INTO lines VALUES (1, 'new'), (2, 'new')",
        "INSERT INTO notes VALUES (1, 'new'), (2, 'new')",
    )
    fixes = {}
    for name, advice in (
        ("lines", "REPLICA IDENTITY USING INDEX lines_id;"),
        ("notes", "REPLICA IDENTITY FULL;"),
    ):
        with pytest.raises(ReplicaIdentityError, match="no replica identity") as caught:
            cdc.run(name)
        message = str(caught.value)
        assert "Nothing was created" in message and f"ALTER TABLE public.{name} {advice}" in message, message
        fixes[name] = re.search(r"(ALTER TABLE [^;]+;)", message).group(1)
    cdc.sql("SELECT count(*) FROM pg_publication")
    assert cdc.cur.fetchone()[0] == 0
    # the source's writes still work: nothing published the tables
    cdc.sql("UPDATE lines SET status = 'paid' WHERE id = 1", "DELETE FROM notes WHERE id = 2")
    for name, fix in fixes.items():  # the advice, followed as written
        cdc.sql(fix)
        assert cdc.run(name).mode == "snapshot"
        cdc.sql(f"UPDATE {name} SET status = 'sent' WHERE id = 1", f"INSERT INTO {name} VALUES (3, 'new')",
                f"DELETE FROM {name} WHERE id = 1")  # fmt: skip
        assert cdc.run(name).mode == "log"
    assert cdc.live("lines") == [(2, "new"), (3, "new")] and cdc.live("notes") == [(3, "new")]
    # an identity dropped once the table is published: the log run fails naming it
    cdc.sql("ALTER TABLE lines REPLICA IDENTITY NOTHING")
    with pytest.raises(ReplicaIdentityError, match="its publication exists, so they fail now"):
        cdc.run("lines")


@pytest.mark.parametrize("cdc", ["postgres"], indirect=True)  # schemas and search_path are PostgreSQL's
def test_a_table_of_the_current_schema_is_the_one_published_not_publics(cdc):
    """The query path reads a plain table name in the session's current schema (the first of its
    search_path); the publication must name that table, not public's of the same name."""
    cdc.sql(
        "CREATE SCHEMA shop",
        "CREATE TABLE shop.orders (id INT PRIMARY KEY, status VARCHAR(20), note TEXT)",
        "INSERT INTO shop.orders VALUES (1, 'shop', NULL)",
        "INSERT INTO public.orders VALUES (1, 'public', NULL)",  # the fixture's table, same name
        f'ALTER DATABASE "{cdc.database}" SET search_path = shop, public',
    )
    assert cdc.run().mode == "snapshot" and cdc.live() == [(1, "shop")]
    cdc.sql("UPDATE shop.orders SET status = 'paid' WHERE id = 1", "INSERT INTO shop.orders VALUES (2, 'new', NULL)",
            "UPDATE public.orders SET status = 'elsewhere' WHERE id = 1")  # fmt: skip
    assert cdc.run().mode == "log"
    assert cdc.live() == [(1, "paid"), (2, "new")]


@pytest.mark.parametrize("cdc", ["postgres"], indirect=True)  # declarative partitioning is PostgreSQL's
def test_a_partitioned_table_is_captured_through_its_partitions(cdc):
    cdc.sql(
        "CREATE TABLE parts (id INT, status VARCHAR(20), PRIMARY KEY (id)) PARTITION BY RANGE (id)",
        "CREATE TABLE parts_low PARTITION OF parts FOR VALUES FROM (0) TO (100)",
        "CREATE TABLE parts_high PARTITION OF parts FOR VALUES FROM (100) TO (200)",
        "INSERT INTO parts VALUES (1, 'a'), (150, 'b')",
    )
    assert cdc.run("parts").mode == "snapshot" and cdc.live("parts") == [(1, "a"), (150, "b")]
    cdc.sql("UPDATE parts SET status = 'a2' WHERE id = 1", "INSERT INTO parts VALUES (151, 'c')",
            "DELETE FROM parts WHERE id = 150", "UPDATE parts SET id = 2 WHERE id = 1")  # fmt: skip
    assert cdc.run("parts").mode == "log"
    assert cdc.live("parts") == [(2, "a2"), (151, "c")]


def test_generated_columns_follow_their_inputs_or_are_refused_naming_the_exclude(cdc):
    """The binlog's full row image holds generated columns, stored and virtual; PostgreSQL's logical
    decoding leaves them out of every row, so there the table is refused until they are excluded."""
    virtual = ", half INT GENERATED ALWAYS AS (qty DIV 2) VIRTUAL" if cdc.engine == "mysql" else ""
    cdc.sql(f"CREATE TABLE gen (id INT PRIMARY KEY, qty INT, twice INT GENERATED ALWAYS AS (qty * 2) STORED{virtual})",
            "INSERT INTO gen (id, qty) VALUES (1, 5), (2, 6)")  # fmt: skip
    exclude: tuple[str, ...] = ()
    if cdc.engine == "postgres":
        with pytest.raises(SourceDefinitionError, match=r"\['twice'\] are generated .*exclude: \['twice'\]"):
            cdc.run("gen")
        exclude = ("twice",)  # the advice, followed
    assert cdc.run("gen", exclude=exclude).mode == "snapshot"
    cdc.sql("UPDATE gen SET qty = 7 WHERE id = 1", "INSERT INTO gen (id, qty) VALUES (3, 1)")
    assert cdc.run("gen", exclude=exclude).mode == "log"
    rows = [(r["id"], r["qty"], r.get("twice"), r.get("half")) for r in cdc.rows("gen")]
    if cdc.engine == "mysql":
        assert rows == [(1, 7, 14, 3), (2, 6, 12, 3), (3, 1, 2, 0)]
    else:
        assert rows == [(1, 7, None, None), (2, 6, None, None), (3, 1, None, None)]
        with pytest.raises(SourceDefinitionError, match="are generated"):  # checked on every log run too
            cdc.run("gen")


def test_a_table_dropped_and_created_again_fails_naming_full_refresh_which_reloads_it(cdc):
    cdc.sql("INSERT INTO orders VALUES (1, 'old', NULL)")
    assert cdc.run().mode == "snapshot"
    cdc.sql("DROP TABLE orders", "CREATE TABLE orders (id INT PRIMARY KEY, status VARCHAR(20), note TEXT)",
            "INSERT INTO orders VALUES (2, 'new', NULL)")  # fmt: skip
    with pytest.raises(Exception, match="full_refresh"):
        cdc.run()
    assert cdc.run(full_refresh=True).mode == "snapshot" and cdc.live() == [(2, "new")]
    cdc.sql("INSERT INTO orders VALUES (3, 'later', NULL)")
    assert cdc.run().mode == "log" and cdc.live() == [(2, "new"), (3, "later")]


@pytest.mark.parametrize(
    ("query", "replaced"),
    [
        ("DROP TABLE `orders` /* generated by server */", "orders"),
        ("DROP TABLE IF EXISTS a, orders", "orders"),
        ("drop table `db`.`orders`", "orders"),
        ("RENAME TABLE orders TO orders_old, orders_new TO orders", "orders"),
        ("ALTER TABLE orders RENAME TO o2", "orders"),
        ("ALTER TABLE tmp RENAME AS orders", "orders"),
        ("CREATE OR REPLACE TABLE orders (id INT PRIMARY KEY)", "orders"),
        ("DROP TABLE orders_archive", None),
        ("DROP TABLE other.orders", None),  # another database's table of the same name
        ("DROP TEMPORARY TABLE orders", None),
        ("ALTER TABLE orders RENAME COLUMN a TO b", None),
        ("ALTER TABLE orders RENAME INDEX a TO b", None),
        ("ALTER TABLE orders ADD COLUMN x INT", None),
        ("CREATE TABLE orders (id INT PRIMARY KEY)", None),
    ],
)
def test_the_binlog_statements_that_drop_rename_or_replace_a_captured_table(query, replaced):
    from nightshift_core.sync.cdc.mysql_binlog import _replaced_table

    assert _replaced_table(query, "db", "db", {"orders"}) == replaced


def test_rows_a_foreign_key_cascade_deletes_or_updates_are_followed_or_the_table_refused(cdc):
    cdc.sql(
        "CREATE TABLE parent (id INT PRIMARY KEY)",
        "CREATE TABLE child (id INT PRIMARY KEY, parent_id INT, status VARCHAR(20), "
        "FOREIGN KEY (parent_id) REFERENCES parent (id) ON DELETE CASCADE ON UPDATE CASCADE)",
        "INSERT INTO parent VALUES (1), (2)",
        "INSERT INTO child VALUES (10, 1, 'a'), (20, 2, 'b')",
    )
    if cdc.engine == "mysql":  # InnoDB writes no binlog rows for what a cascade changes: refused
        with pytest.raises(SourceDefinitionError, match=r"change its rows by cascade.*ON DELETE RESTRICT"):
            cdc.run("child")
        cdc.sql("SELECT CONSTRAINT_NAME FROM information_schema.REFERENTIAL_CONSTRAINTS "
                "WHERE CONSTRAINT_SCHEMA = DATABASE() AND TABLE_NAME = 'child'")  # fmt: skip
        (name,) = cdc.cur.fetchone()
        cdc.sql(f"ALTER TABLE child DROP FOREIGN KEY {name}",  # the advice, followed
                "ALTER TABLE child ADD FOREIGN KEY (parent_id) REFERENCES parent (id) ON DELETE RESTRICT ON UPDATE RESTRICT")  # fmt: skip
    assert cdc.run("child").mode == "snapshot"
    if cdc.engine == "mysql":  # the application changes the child rows itself
        cdc.sql("DELETE FROM child WHERE parent_id = 1", "DELETE FROM parent WHERE id = 1",
                "INSERT INTO parent VALUES (3)", "UPDATE child SET parent_id = 3 WHERE parent_id = 2",
                "DELETE FROM parent WHERE id = 2")  # fmt: skip
    else:  # PostgreSQL's log holds the rows a cascade changes
        cdc.sql("DELETE FROM parent WHERE id = 1", "UPDATE parent SET id = 3 WHERE id = 2")
    assert cdc.run("child").mode == "log"
    rows = [(r["id"], r["parent_id"]) for r in cdc.rows("child") if r.get("_nightshift_deleted_at") is None]
    assert rows == [(20, 3)]
    if cdc.engine == "mysql":  # a cascade added after the snapshot fails the next log run
        cdc.sql(
            "ALTER TABLE child ADD CONSTRAINT again FOREIGN KEY (parent_id) REFERENCES parent (id) ON DELETE CASCADE"
        )
        with pytest.raises(SourceDefinitionError, match="by cascade"):
            cdc.run("child")


def test_a_column_added_between_others_and_upserts_by_replace_or_on_conflict(cdc):
    """A column added in the middle of the table (MariaDB's AFTER) lands under its own name, whatever
    the images' positions; a REPLACE / ON DUPLICATE KEY UPDATE (ON CONFLICT) reaches the warehouse as
    the row it leaves."""
    cdc.sql("INSERT INTO orders VALUES (1, 'new', 'n1'), (2, 'new', 'n2')")
    assert cdc.run().mode == "snapshot"
    if cdc.engine == "mysql":
        cdc.sql("ALTER TABLE orders ADD COLUMN region VARCHAR(10) AFTER id",
                "INSERT INTO orders (id, region, status, note) VALUES (3, 'eu', 'new', 'n3')",
                "REPLACE INTO orders (id, region, status, note) VALUES (1, 'us', 'replaced', 'r1')",
                "INSERT INTO orders (id, status) VALUES (2, 'dup') ON DUPLICATE KEY UPDATE status = 'upserted'")  # fmt: skip
    else:
        cdc.sql("ALTER TABLE orders ADD COLUMN region VARCHAR(10)",
                "INSERT INTO orders (id, region, status, note) VALUES (3, 'eu', 'new', 'n3')",
                "INSERT INTO orders (id, region, status, note) VALUES (1, 'us', 'replaced', 'r1') "
                "ON CONFLICT (id) DO UPDATE SET region = EXCLUDED.region, status = EXCLUDED.status, note = EXCLUDED.note",
                "INSERT INTO orders (id, status) VALUES (2, 'dup') ON CONFLICT (id) DO UPDATE SET status = 'upserted'")  # fmt: skip
    assert cdc.run().mode == "log"
    rows = [(r["id"], r["region"], r["status"], r["note"]) for r in cdc.rows()]
    assert rows == [(1, "us", "replaced", "r1"), (2, None, "upserted", "n2"), (3, "eu", "new", "n3")]


def test_a_type_change_the_warehouse_type_does_not_see_goes_on(cdc):
    """A longer VARCHAR, or INT widened to BIGINT, keeps the warehouse's type: the log goes on (a real
    type change fails, naming full_refresh: test_columns_added_appear_dropped_stop_and_a_type_change_fails)."""
    cdc.sql("CREATE TABLE widened (id INT PRIMARY KEY, label VARCHAR(5), qty INT)",
            "INSERT INTO widened VALUES (1, 'short', 1)")  # fmt: skip
    assert cdc.run("widened").mode == "snapshot"
    if cdc.engine == "mysql":
        cdc.sql("ALTER TABLE widened MODIFY label VARCHAR(50), MODIFY qty BIGINT")
    else:
        cdc.sql("ALTER TABLE widened ALTER COLUMN label TYPE VARCHAR(50), ALTER COLUMN qty TYPE BIGINT")
    cdc.sql("INSERT INTO widened VALUES (2, 'a much longer label', 9000000000)")
    assert cdc.run("widened").mode == "log"
    assert [(r["id"], r["label"], r["qty"]) for r in cdc.rows("widened")] == [
        (1, "short", 1), (2, "a much longer label", 9000000000),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("identity", "columns", "index", "expected"),
    [
        ("f", None, None, None),
        ("d", ["id"], None, None),
        ("i", ["code", "id"], None, None),  # more columns than the key: the key is among them
        (
            "d",
            None,
            None,
            r"no replica identity \(REPLICA IDENTITY DEFAULT and no primary key\).*add a primary key",
        ),
        ("n", None, None, r"no replica identity \(REPLICA IDENTITY NOTHING\).*IDENTITY FULL;"),
        ("i", None, "t_code", r"REPLICA IDENTITY USING INDEX and no index for it.*USING INDEX t_code;"),
        (
            "d",
            ["code"],
            "t_id",
            r"is \['code'\].*lacks primary_key column\(s\) \['id'\].*set primary_key to \['code'\]",
        ),
    ],
)
def test_the_replica_identity_verdict(identity, columns, index, expected):
    from nightshift_core.sync.cdc.preflight import ReplicaIdentityError, judge_replica_identity

    def judge():
        judge_replica_identity("t", ["id"], identity, columns, index,
                               qualified="public.t", server="db:5432")  # fmt: skip

    if expected is None:
        judge()
    else:
        with pytest.raises(ReplicaIdentityError, match=expected):
            judge()


def test_the_checks_fail_at_once_naming_each_setting(request, tmp_path):
    """The shared servers have no binlog / logical WAL: a cdc run fails before anything is written."""
    from support.services import scratch_database

    from nightshift_core.sync.cdc import PreflightError
    from nightshift_core.warehouse import TableRef
    from nightshift_core.warehouse.duckdb_engine import DuckDBWarehouse

    for name, engine in (("mariadb", "mysql"), ("postgres", "postgres")):
        service = request.getfixturevalue(name)
        with scratch_database(service, "ns_cdcpre") as db:
            harness = Harness(engine, service, db.name, db.conn.cursor(), tmp_path / f"{engine}.duckdb")
            harness.sql("CREATE TABLE orders (id INT PRIMARY KEY, status VARCHAR(20), note TEXT)")
            with pytest.raises(PreflightError) as info:
                harness.run()
            needed = (
                ("log_bin", "binlog_format")
                if engine == "mysql"
                else ("wal_level", "cloudsql.logical_decoding")
            )
            assert all(setting in str(info.value) for setting in needed)
            with DuckDBWarehouse(harness.warehouse_path) as wh:
                assert not wh.table_exists(TableRef("cdc", "orders")), "nothing may be published"


def _child(spec: str) -> None:
    """A CDC run in a subprocess (killed by a crash point). With ``measure``, a run of the table
    ``warm`` first (imports, the warehouse, a reader: what any run pays once), then the measured run:
    it prints its changes, commits, and the peak of the Python memory it allocated (MB; tracemalloc:
    what the run holds, not the warehouse engine's own native memory)."""
    args = json.loads(spec)
    service = type("Service", (), {"host": args["host"], "port": args["port"]})()
    harness = Harness(
        args["engine"], service, args["database"], None, Path(args["warehouse"]), args["definition"]
    )
    options = {k: args[k] for k in ("chunk_changes",) if k in args}
    if not args.get("measure"):
        harness.run(**options)
        return
    import tracemalloc

    harness.run("warm", **options)
    tracemalloc.start()
    result = harness.run(**options)
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    print(json.dumps({"changes": result.changes, "chunks": result.chunks, "peak_mb": round(peak, 1)}))


def _spec(cdc: Harness, **more: Any) -> str:
    return json.dumps({"engine": cdc.engine, "host": cdc.service.host, "port": cdc.service.port,
                       "database": cdc.database, "warehouse": str(cdc.warehouse_path),
                       "definition": cdc.definition, **more})  # fmt: skip


def _in_child(cdc: Harness, crash_at: str | None = None, **more: Any) -> subprocess.CompletedProcess:
    env = os.environ | {"PYTHONPATH": "include:plugins:tests"}
    if crash_at:
        env["NIGHTSHIFT_CDC_CRASH_AT"] = crash_at
    code = f"from test_cdc_sync import _child; _child({_spec(cdc, **more)!r})"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, timeout=300)


BACKLOG_CHUNK = 1_000  # changes per commit in the backlog test
BACKLOG_BOUND_MB = 4  # what 10x the backlog may add to the peak memory a drain holds


def test_a_backlog_drains_in_memory_that_follows_the_chunk_not_the_backlog(cdc):
    """N and then 10N new rows with a 1,000-character note, each backlog drained by its own process:
    the peak of what the bigger drain holds is no more than BACKLOG_BOUND_MB above the smaller's. Held
    whole, the 10N backlog's row images alone would be over 40 MB (its keys are all distinct: the fold
    per key saves nothing)."""
    note = "x" * 1000
    cdc.sql(
        "CREATE TABLE warm (id INT PRIMARY KEY, status VARCHAR(20))", "INSERT INTO warm VALUES (1, 'new')"
    )
    cdc.run(chunk_changes=BACKLOG_CHUNK)
    cdc.run("warm")
    peaks, first = {}, 1
    for n in (4_000, 40_000):  # in transactions of 500 rows
        for lo in range(first, first + n, 500):
            cdc.sql(
                "INSERT INTO orders VALUES "
                + ", ".join(f"({i}, 'new', '{note}')" for i in range(lo, lo + 500))
            )
        first += n
        cdc.sql(f"UPDATE warm SET status = 'w{n}'")  # the measuring process's first run reads it
        child = _in_child(cdc, measure=True, chunk_changes=BACKLOG_CHUNK)
        assert child.returncode == 0, child.stderr.decode()[-2000:]
        drained = json.loads(child.stdout.decode().strip().splitlines()[-1])
        commits = n // BACKLOG_CHUNK
        assert drained["changes"] == n and drained["chunks"] in (commits, commits + 1)
        peaks[n] = drained["peak_mb"]
    assert peaks[40_000] - peaks[4_000] < BACKLOG_BOUND_MB, f"peak memory held (MB) per backlog: {peaks}"
    assert len(cdc.live()) == 44_000


@pytest.mark.parametrize("point", ["read", "commit"])
def test_kill_9_between_reading_and_committing_and_before_confirming(cdc, point):
    cdc.sql("INSERT INTO orders VALUES (1, 'new', 'a'), (2, 'new', 'b')")
    cdc.run()
    before = cdc.position()
    cdc.sql(
        "INSERT INTO orders VALUES (3, 'new', 'c')",
        "UPDATE orders SET status = 'paid' WHERE id = 1",
        "DELETE FROM orders WHERE id = 2",
    )
    child = _in_child(cdc, point)
    assert child.returncode == -9, child.stderr.decode()[-2000:]
    if point == "read":  # killed before its commit: nothing of it is in the warehouse
        assert cdc.position() == before and cdc.live() == [(1, "new"), (2, "new")]
    else:  # killed after its commit (and, on PostgreSQL, before confirming the slot)
        assert cdc.position() != before and cdc.live() == [(1, "paid"), (3, "new")]
    again = cdc.run()
    assert again.changes == (3 if point == "read" else 0)
    assert cdc.live() == [(1, "paid"), (3, "new")]
    assert [r["id"] for r in cdc.rows()] == [1, 2, 3], "no row lost or duplicated"
    if cdc.engine == "postgres":  # the slot is confirmed up to the stored position now
        from nightshift_core.sync.cdc.postgres_logical import LogicalReader

        with LogicalReader(cdc.endpoint(), cdc.table().slot, ["orders"]) as reader:
            assert reader.slot_position() == cdc.position()["lsn"]


def _copy_rows(cdc: Harness, table: str, offset: int) -> None:
    """Insert a copy of every row with ``offset`` added to its id: through the log, values the query
    path has read from the originals."""
    schema = "DATABASE()" if cdc.engine == "mysql" else "current_schema()"
    cdc.cur.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = "  # noqa: S608
        f"{schema} AND table_name = '{table}' ORDER BY ordinal_position"
    )
    names = [n for (n,) in cdc.cur.fetchall() if n != "id"]
    listed = ", ".join(names)
    cdc.sql(f"INSERT INTO {table} (id, {listed}) SELECT id + {offset}, {listed} FROM {table}")  # noqa: S608


def _same_as_originals(cdc: Harness, table: str, offset: int) -> None:
    rows = {r["id"]: r for r in cdc.rows(table)}
    originals = [i for i in rows if i < offset]
    assert originals and all(i + offset in rows for i in originals)
    for i in originals:
        snapshot = {k: v for k, v in rows[i].items() if k != "id"}
        logged = {k: v for k, v in rows[i + offset].items() if k != "id"}
        assert logged == snapshot, f"row {i}: the log path's values differ from the query path's"


def test_every_type_from_the_log_equals_the_query_path(cdc):
    """The type tests' tables: rows read by the query path (the snapshot) and the same values inserted
    again (read from the log) land identical in the warehouse."""
    if cdc.engine == "mysql":
        from test_sync_types import MYSQL_DDL, MYSQL_ROW

        cdc.sql("SET time_zone = '+00:00'", MYSQL_DDL)
        cdc.sql("ALTER TABLE typed ADD COLUMN bits BIT(5), ADD COLUMN f FLOAT, ADD COLUMN bin BINARY(4), "
                "ADD COLUMN place POINT, ADD COLUMN neg_clock TIME(3)")  # fmt: skip
        cdc.cur.execute(f"INSERT INTO typed VALUES ({', '.join(['%s'] * len(MYSQL_ROW))}, b'10101', 0.1, "
                        "x'0102', ST_GeomFromText('POINT(151.2093 -33.868820001234567)', 4326), '23:59:59.999')",
                        MYSQL_ROW)  # fmt: skip
        cdc.sql("INSERT INTO typed (id) VALUES (2)")
        table = "typed"
    else:
        from test_sync_postgres_types import DDL

        cdc.sql(DDL)
        table = "film"
    assert cdc.run(table).mode == "snapshot"
    _copy_rows(cdc, table, 1000)
    result = cdc.run(table)
    assert result.mode == "log" and result.changes == len(cdc.rows(table)) // 2
    _same_as_originals(cdc, table, 1000)


def test_the_query_path_and_the_log_path_end_equal(cdc, monkeypatch):
    from types import SimpleNamespace

    from nightshift.operators.sql_to_warehouse import SqlToWarehouseOperator

    cdc.airflow_connections(monkeypatch)
    values = ", ".join(f"({i}, 's{i % 7}', 'n{i}')" for i in range(1, 301))
    cdc.sql(f"INSERT INTO orders VALUES {values}")
    cdc.run()
    cdc.sql(
        "UPDATE orders SET status = 'paid' WHERE id % 10 = 0",
        "DELETE FROM orders WHERE id % 25 = 0",
        "UPDATE orders SET id = id + 1000 WHERE id BETWEEN 100 AND 104",
        "INSERT INTO orders VALUES (5000, 'new', NULL)",
    )
    cdc.run()
    op = SqlToWarehouseOperator(task_id="load_orders", source_conn_id="cdc_source", table="orders",
                                dataset="query", primary_key=["id"], mode="full", reader="dbapi")  # fmt: skip
    op.execute({"ti": SimpleNamespace(dag_id="q", task_id="load_orders", run_id="r", map_index=-1)})
    by_query = [tuple(r.values()) for r in cdc.rows_of("query.orders")]
    by_log = [(r["id"], r["status"], r["note"]) for r in cdc.rows() if r["_nightshift_deleted_at"] is None]
    assert by_log == by_query and len(by_query) == 300 - 12 + 1


def test_apply_changes_and_the_position_commit_together_on_both_warehouses(contract_warehouse):  # noqa: F811
    import datetime as dt

    import pyarrow as pa

    from nightshift_core.warehouse import JobKey, SyncState, TableRef
    from nightshift_core.warehouse.base import CHANGE_OP, CHANGE_UNCHANGED, LOG_CURSOR

    wh, target = contract_warehouse, TableRef("contract", "orders")
    ts = pa.timestamp("us", tz="UTC")
    gone = dt.datetime(2026, 12, 1, 8, 30, tzinfo=dt.UTC)

    def apply(rows: list[tuple], position: str, columns=("id", "status", "note"), n=[0]) -> None:  # noqa: B006
        n[0] += 1
        types = {"id": pa.int64(), "status": pa.string(), "note": pa.string()}
        fields = [pa.field(c, types[c]) for c in columns] + [
            pa.field("_nightshift_deleted_at", ts), pa.field(CHANGE_OP, pa.string()),
            pa.field(CHANGE_UNCHANGED, pa.list_(pa.string())),
        ]  # fmt: skip
        schema = pa.schema(fields)
        batch = pa.RecordBatch.from_pylist(
            [dict(zip(schema.names, r, strict=True)) for r in rows], schema=schema
        )
        staged = wh.stage(JobKey("cdc", f"t{n[0]}", run_id=f"r{n[0]}"), target, [batch], schema)
        wh.apply_changes(staged, ["id"], state=SyncState(LOG_CURSOR, position=position))

    def table() -> list[tuple]:
        rows = wh.query("SELECT * FROM contract.orders ORDER BY id").to_pylist()
        return [(r["id"], r["status"], r["note"], r["_nightshift_deleted_at"]) for r in rows]

    assert wh.log_position(target) is None
    apply([(1, "new", "a", None, "upsert", []), (2, "new", "b", None, "upsert", []),
           (3, "new", "c", None, "upsert", [])], '{"lsn": 1}')  # fmt: skip
    assert wh.log_position(target) == '{"lsn": 1}'
    changes = [
        (1, "paid", None, None, "upsert", ["note"]),  # e.g. an unchanged TOAST value: the warehouse's stays
        (2, None, None, gone, "upsert", ["status", "note"]),  # a soft delete with a key-only image
        (3, None, None, None, "delete", ["status", "note"]),  # a hard delete
        (4, "new", "d", None, "upsert", []),
        (5, None, None, gone, "upsert", ["status", "note"]),  # inserted and deleted since the last read
    ]
    for _ in range(2):  # a replay (the same changes again, as after a crash) leaves the same rows
        apply(changes, '{"lsn": 2}')
        assert table() == [(1, "paid", "a", None), (2, "new", "b", gone), (4, "new", "d", None)]
    assert wh.log_position(target) == '{"lsn": 2}'
    apply(
        [(1, "late", None, "upsert", [])], '{"lsn": 3}', columns=("id", "status")
    )  # the source dropped note
    assert table()[0] == (1, "late", "a", None)
    assert wh.log_position(target) == '{"lsn": 3}'
    before = table()
    # a read that moved past none of the table's changes: the position alone, the rows untouched
    wh.record_position(
        target, JobKey("cdc", "moved", run_id="r"), SyncState(LOG_CURSOR, position='{"lsn": 4}')
    )
    assert wh.log_position(target) == '{"lsn": 4}'
    assert table() == before


def test_snapshot_and_log_into_bigquery(cdc, bq_emulator, tmp_path):
    from nightshift_core.warehouse.bigquery_engine import BigQueryWarehouse

    bq = BigQueryWarehouse(bq_emulator.client(), use_storage_api=False, spool_dir=str(tmp_path))
    bq.client.delete_dataset(f"{bq_emulator.project}.cdc", delete_contents=True, not_found_ok=True)
    cdc.sql("INSERT INTO orders VALUES (1, 'new', 'a'), (2, 'new', 'b'), (3, 'new', 'c')")
    assert cdc.run(warehouse=bq).mode == "snapshot"
    cdc.sql(
        "UPDATE orders SET status = 'paid' WHERE id = 1",
        "DELETE FROM orders WHERE id = 2",
        "UPDATE orders SET id = 30 WHERE id = 3",
        "INSERT INTO orders VALUES (4, 'new', 'd')",
    )
    assert cdc.run(warehouse=bq).changes == 4
    rows = bq.query("SELECT id, status, note, _nightshift_deleted_at AS gone FROM cdc.orders ORDER BY id")
    got = [(r["id"], r["status"], r["note"], r["gone"] is not None) for r in rows.to_pylist()]
    assert got == [(1, "paid", "a", False), (2, "new", "b", True), (3, "new", "c", True),
                   (4, "new", "d", False), (30, "new", "c", False)]  # fmt: skip
    assert cdc.run(warehouse=bq).changes == 0


@pytest.mark.parametrize("cdc", ["postgres"], indirect=True)  # per-table scan counters: pg_stat_user_tables
def test_the_log_path_scans_no_table_after_the_snapshot(cdc):
    """PostgreSQL's own counters of the table: no sequential or index scan by a log run (the writes
    themselves are done and counted before it). MariaDB's Handler_read_* are server-wide: the bench
    reads them."""
    values = ", ".join(f"({i}, 'new', 'n{i}')" for i in range(1, 501))
    cdc.sql(f"INSERT INTO orders VALUES {values}")
    cdc.run()
    cdc.sql("UPDATE orders SET status = 'paid' WHERE id <= 50", "DELETE FROM orders WHERE id > 450")

    def scans() -> tuple:
        cdc.sql("SELECT pg_stat_force_next_flush()")
        time.sleep(1.2)  # the other sessions' counters reach shared memory within a second
        cdc.sql("SELECT pg_stat_clear_snapshot()")
        cdc.cur.execute(
            "SELECT seq_scan, coalesce(idx_scan, 0) FROM pg_stat_user_tables WHERE relname = 'orders'"
        )
        return cdc.cur.fetchone()

    before = scans()
    assert cdc.run().changes == 100
    assert scans() == before


# only a slot is confirmed, so only a slot can be ahead of the warehouse
@pytest.mark.parametrize("cdc", ["postgres"], indirect=True)
def test_a_slot_ahead_of_the_warehouse_fails_naming_full_refresh(cdc):
    """A warehouse restored to an older position than its slot confirmed: the changes between are gone."""
    from nightshift_core.sync.cdc.guards import LogLostError
    from nightshift_core.warehouse.duckdb_engine import DuckDBWarehouse

    cdc.run()
    cdc.sql("INSERT INTO orders VALUES (1, 'new', 'a')")
    cdc.run()
    cdc.sql("INSERT INTO orders VALUES (2, 'new', 'b')")
    cdc.run()
    with DuckDBWarehouse(cdc.warehouse_path).connect() as con:  # as if restored from before the last run
        con.execute(
            "DELETE FROM _nightshift.sync_state WHERE published_at = (SELECT MAX(published_at) FROM "
            "_nightshift.sync_state)"
        )
    with pytest.raises(LogLostError, match="full_refresh"):
        cdc.run()
    assert cdc.run(full_refresh=True).mode == "snapshot" and cdc.live() == [(1, "new"), (2, "new")]


def test_a_row_inserted_and_deleted_between_runs_leaves_no_trace(cdc):
    """Its net change is a delete of a key the warehouse never had: nothing to mark (and a tombstone of
    NULLs would break the source's NOT NULL columns)."""
    cdc.sql("ALTER TABLE orders ADD COLUMN qty INT NOT NULL DEFAULT 1")
    cdc.sql("INSERT INTO orders VALUES (1, 'new', 'a', 5)")
    cdc.run()
    cdc.sql("INSERT INTO orders VALUES (2, 'brief', 'b', 6)", "DELETE FROM orders WHERE id = 2")
    cdc.sql("DELETE FROM orders WHERE id = 1")
    result = cdc.run()
    assert result.changes == 3
    assert [(r["id"], r["qty"], r["_nightshift_deleted_at"] is not None) for r in cdc.rows()] == [
        (1, 5, True)
    ]


# GTIDs are MariaDB's and MySQL's; this server is MariaDB (no MySQL server runs these tests)
@pytest.mark.parametrize("cdc", ["mysql"], indirect=True)
def test_mariadb_stores_the_gtid_with_the_file_and_offset(cdc):
    """Every position committed on MariaDB carries the server's GTID state at its file and offset
    (the snapshot's and a log run's alike), and it moves with the log."""
    cdc.sql("INSERT INTO orders VALUES (1, 'new', 'a')")
    cdc.run()
    snapshot = cdc.position()
    cdc.sql("UPDATE orders SET status = 'paid' WHERE id = 1")
    assert cdc.run().changes == 1
    logged = cdc.position()
    for stored in (snapshot, logged):
        cdc.cur.execute("SELECT BINLOG_GTID_POS(%s, %s)", (stored["file"], stored["pos"]))
        assert stored["gtid"] and stored["gtid"] == cdc.cur.fetchone()[0], stored
    assert logged["gtid"] != snapshot["gtid"]
