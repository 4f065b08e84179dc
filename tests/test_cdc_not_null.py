"""Change capture of a table with a NOT NULL column (every real table has some): a source delete reaches
the warehouse. Found by bench/cdc_sync.py on classicmodels' orderdetails, where every log run with a
delete failed before writing anything, until the apply staged a delete's missing columns as nullable."""

from __future__ import annotations

import uuid

import pytest

from nightshift_core.sync.cdc.endpoint import Endpoint


@pytest.mark.parametrize("engine", ["mysql", "postgres"])
def test_a_delete_from_a_table_with_a_not_null_column_is_applied(engine, request, tmp_path):
    from support.services import scratch_database

    from nightshift_core.sync.cdc.run import CdcTable, sync_table
    from nightshift_core.warehouse import JobKey, TableRef
    from nightshift_core.warehouse.duckdb_engine import DuckDBWarehouse

    service = request.getfixturevalue("mariadb_binlog" if engine == "mysql" else "postgres_logical")
    user = "root" if engine == "mysql" else "postgres"
    with scratch_database(service, "ns_cdcnn") as db:
        db.conn.cursor().execute("CREATE TABLE t (id INT PRIMARY KEY, q INT NOT NULL)")
        db.conn.cursor().execute("INSERT INTO t VALUES (1, 10), (2, 20)")
        if engine == "mysql":
            import MySQLdb

            def connect():
                return MySQLdb.connect(host=service.host, port=service.port, user=user, database=db.name)
        else:
            import psycopg2

            def connect():
                return psycopg2.connect(host=service.host, port=service.port, user=user, dbname=db.name)

        table = CdcTable("t", ("id",), definition=f"nn{uuid.uuid4().hex[:8]}")
        warehouse = DuckDBWarehouse(tmp_path / "w.duckdb")
        endpoint = Endpoint(service.host, service.port, user, db.name)

        def step(run: str):
            conn = connect()
            try:
                return sync_table(conn, engine, endpoint, table, warehouse, TableRef("cdc", "t"),
                                  JobKey("cdc", "t", run_id=run))  # fmt: skip
            finally:
                conn.close()

        try:
            step("snapshot")
            db.conn.cursor().execute("DELETE FROM t WHERE id = 1")
            assert step("log").deleted == 1
            rows = warehouse.query(
                "SELECT id, q, _nightshift_deleted_at IS NOT NULL AS gone FROM cdc.t ORDER BY id"
            )
            assert [(r["id"], r["gone"]) for r in rows.to_pylist()] == [(1, True), (2, False)]
        finally:
            if engine == "postgres":  # a slot keeps its database from being dropped
                from nightshift_core.sync.cdc.postgres_logical import LogicalReader

                with LogicalReader(endpoint, table.slot, ["t"]) as reader:
                    reader.drop()
