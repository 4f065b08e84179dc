"""The Arrow reader (connectorx) against real MariaDB: the Airflow connection's credentials (a password
that needs URL quoting, never shown in errors), parallel key-range reads within the pool, fallbacks."""

from __future__ import annotations

import json
import threading
import time
import uuid
from types import SimpleNamespace
from urllib.parse import quote

import pytest

PASSWORD = "p@ss:w/rd%?#&= x"  # every character a URL gives a meaning to


@pytest.fixture
def maria(mariadb, monkeypatch, tmp_path):
    """A scratch database, a login with PASSWORD on it, and connection ``arrow_src`` as that login."""
    from support.services import scratch_database

    monkeypatch.setenv(
        "AIRFLOW_CONN_NIGHTSHIFT_WAREHOUSE",
        json.dumps(
            {"conn_type": "generic", "extra": {"engine": "duckdb", "path": str(tmp_path / "w.duckdb")}}
        ),
    )
    with scratch_database(mariadb, "ns_arrow") as db:
        user = f"ns_cx_{uuid.uuid4().hex[:6]}"
        cur = db.conn.cursor()
        cur.execute(f"CREATE USER '{user}'@'%%' IDENTIFIED BY %s", (PASSWORD,))
        cur.execute(f"GRANT ALL ON `{db.name}`.* TO '{user}'@'%'")
        conn = {"conn_type": "mysql", "host": mariadb.host, "port": mariadb.port, "login": user,
                "password": PASSWORD, "schema": db.name}  # fmt: skip
        monkeypatch.setenv("AIRFLOW_CONN_ARROW_SRC", json.dumps(conn))
        try:
            yield SimpleNamespace(cur=cur, user=user, conn=conn, name=db.name)
        finally:
            cur.execute(f"DROP USER IF EXISTS '{user}'@'%'")


def sync(table: str = "big", **options) -> dict:
    from nightshift.operators.sql_to_warehouse import SqlToWarehouseOperator

    op = SqlToWarehouseOperator(task_id=f"load_{table}", source_conn_id="arrow_src", table=table, dataset="ax",
                                primary_key=["id"], **options)  # fmt: skip
    ti = SimpleNamespace(dag_id="ax", task_id=op.task_id, run_id="r", map_index=-1)
    return op.execute({"ti": ti})


def fill(cur, rows: int) -> None:
    cur.execute("CREATE TABLE big (id BIGINT PRIMARY KEY, v DECIMAL(12, 2), note VARCHAR(40))")
    cur.execute(
        f"INSERT INTO big SELECT seq, seq / 100, CONCAT('row ', seq) FROM seq_1_to_{int(rows)}"  # noqa: S608
    )


def test_a_password_that_needs_quoting_connects_and_never_shows_in_an_error(
    maria, monkeypatch, capfd, caplog
):
    from nightshift.hooks.warehouse import WarehouseHook

    fill(maria.cur, 1000)
    result = sync()
    assert result["reader"] == "arrow" and result["staged_rows"] == result["source_rows"] == 1000
    with WarehouseHook().get_conn() as wh:
        got = wh.query("SELECT COUNT(*) AS n, SUM(v) AS s FROM ax.big").to_pylist()[0]
    maria.cur.execute("SELECT COUNT(*), SUM(v) FROM big")
    assert (got["n"], got["s"]) == maria.cur.fetchone()

    # The task's own connection works; only the reader's is refused, by a server error that quotes the reader's
    # whole URL, credentials and all (a database named after it: MariaDB echoes the name it rejects).
    import connectorx

    from nightshift_core.sync import arrow_reader

    real_url, real_read = arrow_reader.connection_url, connectorx.read_sql
    raw: list[str] = []

    def wrong_database(dialect, conn):
        url, password = real_url(dialect, conn)
        return url.rsplit("/", 1)[0] + "/" + quote(url, safe=""), password

    def read_sql(url, *args, **kwargs):
        try:
            return real_read(url, *args, **kwargs)
        except BaseException as exc:
            raw.append(str(exc))  # what connectorx said, before the reader scrubbed it
            raise

    monkeypatch.setattr(arrow_reader, "connection_url", wrong_database)
    monkeypatch.setattr(connectorx, "read_sql", read_sql)
    capfd.readouterr()
    caplog.clear()
    with pytest.raises(arrow_reader.ArrowReadError) as failure:
        sync()
    url = real_url("mysql", SimpleNamespace(**maria.conn, extra_dejson={}))[0]
    assert len(raw) == 1 and f"Incorrect database name '{url}'" in raw[0], raw
    assert quote(PASSWORD, safe="") in raw[0], "the raw error holds the URL-quoted password"
    text = str(failure.value)
    assert "the Arrow reader failed" in text and "source.reader: dbapi" in text
    assert "Incorrect database name 'mysql://***@" in text, text
    logged = capfd.readouterr()
    # the connection pool's own lines (native code, straight to stderr) are in the task log, scrubbed
    assert "Incorrect database name 'mysql://***@" in logged.err, logged.err
    task_log = "\n".join([text, logged.out, logged.err, caplog.text])
    for secret in (PASSWORD, quote(PASSWORD, safe=""), "p@ss", "p%40ss"):
        assert secret not in task_log


def test_scrub_removes_the_password_raw_quoted_and_any_url_credentials():
    from nightshift_core.sync.arrow_reader import scrub

    text = f"failed mysql://u:{quote(PASSWORD, safe='')}@h:3306/db; auth {PASSWORD} refused"
    out = scrub(text, PASSWORD)
    assert PASSWORD not in out and quote(PASSWORD, safe="") not in out and "mysql://***@h:3306/db" in out


def connections(cur, user: str) -> int:
    cur.execute("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = %s", (user,))
    return int(cur.fetchone()[0])


@pytest.mark.parametrize("partitions", [1, 3])
def test_parallel_key_range_reads_use_at_most_the_connections_asked_for(mariadb, maria, partitions):
    """Sampled from MariaDB's processlist while the task runs: the task's own connection plus one per
    key range, never more (the DAG gives the task as many pool slots)."""
    import MySQLdb

    fill(maria.cur, 300_000)
    watcher = MySQLdb.connect(host=mariadb.host, port=mariadb.port, user="root", autocommit=True)
    peak, done = [0], threading.Event()

    def sample():
        cur = watcher.cursor()
        while not done.is_set():
            peak[0] = max(peak[0], connections(cur, maria.user))
            time.sleep(0.005)

    thread = threading.Thread(target=sample)
    thread.start()
    try:
        result = sync(read_partitions=partitions, batch_rows=10_000)
    finally:
        done.set()
        thread.join()
        watcher.close()
    assert result["reader"] == "arrow" and result["staged_rows"] == result["source_rows"] == 300_000
    assert 1 <= peak[0] <= 1 + partitions, peak
    if partitions > 1:
        assert peak[0] > 1, "the key ranges were read over connections of their own"


def test_the_sync_definition_sets_the_reader_and_the_pool_slots_follow(tmp_path):
    from nightshift.sync_dags import build
    from nightshift_core.sync.config import SyncConfigError, load

    base = """
source: {{conn_id: src, max_connections: {mc}{more}}}
target: {{dataset: d}}
tables: [{{name: t, primary_key: [id]}}]
"""

    def dag(mc: int, more: str = ""):
        path = tmp_path / "s.yaml"
        path.write_text(base.format(mc=mc, more=more))
        return build(load(path))

    assert dag(4).get_task("load_t").pool_slots == 2  # auto: the task's connection and the reader's
    assert dag(4, ", read_partitions: 3").get_task("load_t").pool_slots == 4
    assert dag(4, ", reader: dbapi").get_task("load_t").pool_slots == 1
    one = dag(1).get_task("load_t")
    assert (one.pool_slots, one.reader) == (1, "dbapi")  # a one-connection pool reads on the task's own
    with pytest.raises(SyncConfigError, match="read_partitions 3 needs 4 connections"):
        dag(2, ", read_partitions: 3")
    with pytest.raises(SyncConfigError, match="source.reader must be auto, arrow or dbapi"):
        dag(4, ", reader: fast")


def test_on_mariadb_the_gate_count_comes_from_the_read_itself(maria, monkeypatch):
    """MariaDB cannot share a snapshot between sessions: the Arrow read counts its rows in its own
    statement, so a row deleted after the task began still leaves the load and the count in agreement."""
    from nightshift_core.sync import arrow_reader

    fill(maria.cur, 1000)
    real = arrow_reader.extract

    def delete_then_extract(*args, **kwargs):
        maria.cur.execute("DELETE FROM big WHERE id = 7")  # the task's own snapshot is already open
        yield from real(*args, **kwargs)

    monkeypatch.setattr(arrow_reader, "extract", delete_then_extract)
    result = sync()
    assert result["reader"] == "arrow" and result["staged_rows"] == result["source_rows"] == 999


@pytest.mark.parametrize("numbered", [True, False], ids=["numbered-by-the-server", "count-subquery"])
def test_both_in_read_counts_give_the_servers_count_of_what_the_read_selected(maria, numbered):
    """MariaDB numbers the rows it sends; MySQL (no such guarantee there) counts them in a subquery of
    the same statement. Both give the count of the rows the WHERE selected, batch after batch."""
    from airflow.sdk import BaseHook

    from nightshift_core.sync import arrow_reader, dialects, source

    fill(maria.cur, 25_000)
    columns = source.describe(maria.cur.connection, "mysql", "big")
    url, password = arrow_reader.connection_url("mysql", BaseHook.get_connection("arrow_src"))
    counted: dict = {}
    batches = list(arrow_reader.extract(url, "mysql", "big", columns, where="`id` > 5000", batch_rows=4_000,
                                        password=password, counted=counted, numbered=numbered))  # fmt: skip
    assert counted == {"rows": 20_000} and sum(b.num_rows for b in batches) == 20_000
    assert batches[0].schema.names == ["id", "v", "note"], "the count column never reaches the stage"
    counted = {}
    assert not list(arrow_reader.extract(url, "mysql", "big", columns, where="`id` < 0", password=password,
                                         counted=counted, numbered=numbered))  # fmt: skip
    assert counted == {"rows": 0}
    assert dialects.get("mysql").is_mariadb(maria.cur.connection)


@pytest.mark.parametrize(
    ("numbers", "before", "at"),
    [([1, 2, 3], 0, None), ([4, 5], 3, None), ([2, 3], 0, 1), ([1, 2, 4, 5], 0, 3), ([1, 1, 2], 0, 2),
     ([6, 7], 4, 5)],
)  # fmt: skip
def test_a_row_number_missing_or_repeated_on_arrival_fails_the_read(numbers, before, at):
    import pyarrow as pa

    from nightshift_core.sync.arrow_reader import ArrowReadError, _check_numbers

    if at is None:
        _check_numbers(pa.array(numbers, pa.int64()), before, "big")
        return
    with pytest.raises(ArrowReadError, match=rf"table 'big': .* row {at} arrived out of sequence"):
        _check_numbers(pa.array(numbers, pa.int64()), before, "big")
