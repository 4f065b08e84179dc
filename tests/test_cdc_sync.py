"""mode: cdc end to end: a snapshot, then the log into a DuckDB warehouse, on the private log-enabled
MariaDB (binlog) and PostgreSQL (wal_level=logical) that scripts/cdc_services.sh starts."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

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

    def table(self, name: str = "orders", **options: Any) -> Any:
        from nightshift_core.sync.cdc.run import CdcTable

        options.setdefault("primary_key", ("id",))
        return CdcTable(name=name, definition=self.definition, **options)

    def run(self, name: str = "orders", *, full_refresh: bool = False, **options: Any) -> Any:
        from nightshift_core.sync.cdc.run import sync_table
        from nightshift_core.warehouse import JobKey, TableRef
        from nightshift_core.warehouse.duckdb_engine import DuckDBWarehouse

        conn = self.connect()
        try:
            return sync_table(
                conn, self.engine, self.endpoint(), self.table(name, **options), DuckDBWarehouse(self.warehouse_path),
                TableRef("cdc", name), JobKey("cdc", name, run_id=uuid.uuid4().hex), full_refresh=full_refresh,
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


def test_the_operator_runs_mode_cdc_snapshot_then_log(cdc, monkeypatch):
    from types import SimpleNamespace

    from nightshift.operators.sql_to_warehouse import SqlToWarehouseOperator

    extra = {"engine": "duckdb", "path": str(cdc.warehouse_path)}
    monkeypatch.setenv(
        "AIRFLOW_CONN_NIGHTSHIFT_WAREHOUSE", json.dumps({"conn_type": "generic", "extra": extra})
    )
    kind, user = ("mysql", "root") if cdc.engine == "mysql" else ("postgres", "postgres")
    source = {"conn_type": kind, "host": cdc.service.host, "port": cdc.service.port, "login": user,
              "schema": cdc.database}  # fmt: skip
    monkeypatch.setenv("AIRFLOW_CONN_CDC_SOURCE", json.dumps(source))
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
