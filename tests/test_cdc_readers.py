"""The change-capture readers on real log-enabled servers (the private MariaDB with the row-based
binlog and PostgreSQL with wal_level=logical that scripts/cdc_services.sh starts), and the preflight
checks against the shared servers, which have neither (read-only there)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from nightshift_core.sync.cdc import Change, PreflightError, fold
from nightshift_core.sync.cdc.endpoint import Endpoint

TABLES = ("orders", "items")


@dataclass
class Capture:
    """A scratch database on a log-enabled server, a reader of its two tables, and its start position."""

    cur: Any
    schema: str  # how changes name the tables' schema
    start: Any
    read: Callable[[Any], Any]
    reader: Any

    def sql(self, *statements: str) -> None:
        for statement in statements:
            self.cur.execute(statement)

    def changes(self, start: Any) -> tuple[list[Change], Any]:
        read = self.read(start)
        return list(read), read.end

    def table(self, name: str) -> str:
        return f"{self.schema}.{name}"


def _create_tables(cur: Any) -> None:
    cur.execute("CREATE TABLE orders (id INT PRIMARY KEY, status VARCHAR(20))")
    cur.execute("CREATE TABLE items (order_id INT, line INT, qty INT, PRIMARY KEY (order_id, line))")


@pytest.fixture(params=["mariadb", "postgres"])
def capture(request) -> Iterator[Capture]:
    from support.services import scratch_database

    if request.param == "mariadb":
        from nightshift_core.sync.cdc.mysql_binlog import BinlogReader

        service = request.getfixturevalue("mariadb_binlog")
        with scratch_database(service, "ns_cdc") as db:
            _create_tables(db.conn.cursor())
            with BinlogReader(Endpoint(service.host, service.port, "root", db.name), TABLES) as reader:
                yield Capture(db.conn.cursor(), db.name, reader.current_position(), reader.read, reader)
    else:
        from nightshift_core.sync.cdc.postgres_logical import LogicalReader

        service = request.getfixturevalue("postgres_logical")
        with scratch_database(service, "ns_cdc") as db:
            _create_tables(db.conn.cursor())
            reader = LogicalReader(
                Endpoint(service.host, service.port, "postgres", db.name), f"t{uuid.uuid4().hex[:10]}", TABLES
            )
            try:
                yield Capture(db.conn.cursor(), "public", reader.ensure_slot(), reader.read, reader)
            finally:
                reader.drop()  # a slot left behind would keep WAL (and block dropping the database)
                reader.close()


def ops(changes: list[Change]) -> list[tuple]:
    return [(c.table.split(".")[1], c.op, c.before, c.after) for c in changes]


def test_insert_update_delete_and_key_change(capture):
    capture.sql(
        "INSERT INTO orders VALUES (1, 'new'), (2, 'new')",
        "UPDATE orders SET status = 'paid' WHERE id = 1",
        "DELETE FROM orders WHERE id = 1",
        "UPDATE orders SET id = 3 WHERE id = 2",
    )
    changes, _ = capture.changes(capture.start)
    got = ops(changes)
    if capture.schema == "public":
        # REPLICA IDENTITY DEFAULT: the old image is the key, and only when the key changed or on delete.
        before_paid, before_delete, before_key_change = None, {"id": 1}, {"id": 2}
    else:
        before_paid = {"id": 1, "status": "new"}
        before_delete = {"id": 1, "status": "paid"}
        before_key_change = {"id": 2, "status": "new"}
    assert got == [
        ("orders", "insert", None, {"id": 1, "status": "new"}),
        ("orders", "insert", None, {"id": 2, "status": "new"}),
        ("orders", "update", before_paid, {"id": 1, "status": "paid"}),
        ("orders", "delete", before_delete, None),
        ("orders", "update", before_key_change, {"id": 3, "status": "new"}),
    ]
    assert [c.seq for c in changes] == [1, 2, 3, 4, 5]
    # Four autocommitted statements: four transactions, the first with both inserted rows.
    assert len({c.position for c in changes}) == 4
    assert changes[0].position == changes[1].position
    folded = {
        (f.key, f.op, f.row and f.row["status"]) for f in fold(changes, {capture.table("orders"): ["id"]})
    }
    assert folded == {((1,), "delete", None), ((2,), "delete", None), ((3,), "upsert", "new")}
    tombstone = next(f for f in fold(changes, {capture.table("orders"): ["id"]}) if f.key == (1,))
    assert tombstone.commit_time == changes[3].commit_time


def test_a_rolled_back_transaction_is_never_seen(capture):
    capture.sql(
        "BEGIN", "INSERT INTO orders VALUES (10, 'ghost')", "UPDATE orders SET status = 'x'", "ROLLBACK"
    )
    capture.sql("INSERT INTO orders VALUES (11, 'real')")
    changes, _ = capture.changes(capture.start)
    assert ops(changes) == [("orders", "insert", None, {"id": 11, "status": "real"})]


def test_one_transaction_over_two_tables(capture):
    capture.sql(
        "BEGIN",
        "INSERT INTO orders VALUES (20, 'new')",
        "INSERT INTO items VALUES (20, 1, 5), (20, 2, 7)",
        "UPDATE orders SET status = 'placed' WHERE id = 20",
        "COMMIT",
    )
    changes, _ = capture.changes(capture.start)
    assert [(t, op) for t, op, _, _ in ops(changes)] == [
        ("orders", "insert"),
        ("items", "insert"),
        ("items", "insert"),
        ("orders", "update"),
    ]
    assert len({(c.position, c.commit_time) for c in changes}) == 1, "one commit: one position, one time"
    assert {c.table for c in changes} == {capture.table("orders"), capture.table("items")}


def test_a_read_ends_where_it_started_and_the_next_read_takes_the_rest(capture):
    capture.sql("INSERT INTO orders VALUES (30, 'before')")
    read = capture.read(capture.start)
    capture.sql("INSERT INTO orders VALUES (31, 'after')", "DELETE FROM orders WHERE id = 30")
    first = list(read)
    assert ops(first) == [("orders", "insert", None, {"id": 30, "status": "before"})]
    second, end = capture.changes(read.end)
    assert [(op, (a or b)["id"]) for _, op, b, a in ops(second)] == [("insert", 31), ("delete", 30)]
    assert capture.changes(end)[0] == [], "a read from the end of the last one: nothing changed, nothing read"


def test_reading_again_from_a_stored_position_gives_the_same_changes(capture):
    capture.sql("INSERT INTO orders VALUES (40, 'a')", "UPDATE orders SET status = 'b' WHERE id = 40")
    stored = capture.start
    first, end = capture.changes(stored)
    capture.sql("INSERT INTO orders VALUES (41, 'later')")
    again, _ = capture.changes(stored)
    assert again[: len(first)] == first, "a replay from the stored position repeats the same changes exactly"
    assert ops(again[len(first) :]) == [("orders", "insert", None, {"id": 41, "status": "later"})]
    # Starting at the first transaction's own position replays only what committed after it.
    after_first, _ = capture.changes(first[0].position)
    assert after_first[: len(first) - 1] == [
        Change(c.table, c.op, c.before, c.after, c.commit_time, c.position, c.seq - 1, c.closes)
        for c in first[1:]
    ]


def test_mariadb_reads_from_a_gtid_position_like_from_file_and_offset(mariadb_binlog):
    """MariaDB always has GTIDs: a position holding only its GTID state reads the same changes."""
    from support.services import scratch_database

    from nightshift_core.sync.cdc.mysql_binlog import BinlogPosition, BinlogReader

    with scratch_database(mariadb_binlog, "ns_cdc") as db:
        _create_tables(db.conn.cursor())
        endpoint = Endpoint(mariadb_binlog.host, mariadb_binlog.port, "root", db.name)
        with BinlogReader(endpoint, TABLES) as reader:
            start = reader.current_position()
            assert start.gtid, "MariaDB reports the GTID state at the position"
            db.conn.cursor().execute("INSERT INTO orders VALUES (50, 'g'), (51, 'g')")
            by_file = list(reader.read(start))
            by_gtid = list(reader.read(BinlogPosition("", 0, start.gtid)))
    assert (
        [c.after for c in by_gtid]
        == [c.after for c in by_file]
        == [
            {"id": 50, "status": "g"},
            {"id": 51, "status": "g"},
        ]
    )
    assert by_gtid[-1].position.gtid == by_file[-1].position.gtid != start.gtid


def test_postgres_slot_moves_only_when_confirmed(postgres_logical):
    """Reading never consumes: the slot stays until confirm; a stored position ahead of the slot
    (data committed, confirm not done) skips what it covers."""
    from support.services import scratch_database

    from nightshift_core.sync.cdc.postgres_logical import LogicalReader

    with scratch_database(postgres_logical, "ns_cdc") as db:
        _create_tables(db.conn.cursor())
        endpoint = Endpoint(postgres_logical.host, postgres_logical.port, "postgres", db.name)
        reader = LogicalReader(endpoint, f"t{uuid.uuid4().hex[:10]}", TABLES)
        try:
            slot = reader.ensure_slot()
            db.conn.cursor().execute("INSERT INTO orders VALUES (60, 'a')")
            db.conn.cursor().execute("INSERT INTO orders VALUES (61, 'b')")
            read = reader.read(slot)
            first = list(read)
            assert reader.slot_position() == slot, "a read does not move the slot"
            # Committed downstream up to the first transaction, not confirmed: only the second comes back.
            assert [c.after["id"] for c in reader.read(first[0].position)] == [61]
            reader.confirm(read.end)
            assert reader.slot_position() == read.end
            assert list(reader.read(reader.slot_position())) == []
            reader.confirm(slot)  # never moves back
            assert reader.slot_position() == read.end
        finally:
            reader.drop()
            reader.close()


def test_preflight_names_each_binlog_setting_on_the_shared_mariadb(mariadb):
    """The shared MariaDB (3306) runs without the binlog: only its variables are read."""
    import MySQLdb

    from nightshift_core.sync.cdc.preflight import check_mysql

    conn = MySQLdb.connect(host=mariadb.host, port=mariadb.port, user="root")
    try:
        with pytest.raises(PreflightError) as failure:
            check_mysql(conn, "MariaDB 127.0.0.1:3306")
    finally:
        conn.close()
    problems = {p.setting: p for p in failure.value.problems}
    assert problems["log_bin"].current == "OFF"
    message = str(failure.value)
    assert message.startswith("MariaDB 127.0.0.1:3306 cannot serve change capture:\n  - log_bin is 'OFF', ")
    assert (
        "log_bin is 'OFF', change capture needs 'ON': on Cloud SQL, enable point-in-time recovery, which "
        "turns the binary log on (gcloud sql instances patch INSTANCE --enable-bin-log)"
    ) in message
    for setting, problem in problems.items():
        assert f"{setting} is {problem.current!r}, change capture needs {problem.required!r}" in message
    if "binlog_row_metadata" in problems:  # MariaDB's default is NO_LOG
        assert "on Cloud SQL, database flag binlog_row_metadata=FULL" in message


def test_preflight_passes_on_the_binlog_server(mariadb_binlog):
    import MySQLdb

    from nightshift_core.sync.cdc.preflight import BinlogSettings, check_mysql

    conn = MySQLdb.connect(host=mariadb_binlog.host, port=mariadb_binlog.port, user="root")
    try:
        assert check_mysql(conn, "private") == BinlogSettings(mariadb=True, gtid=True)
    finally:
        conn.close()


def test_preflight_names_wal_level_on_the_shared_postgres(postgres):
    """The shared PostgreSQL (5432) runs with wal_level below logical: only the setting is read."""
    import psycopg2

    from nightshift_core.sync.cdc.preflight import check_postgres

    conn = psycopg2.connect(host=postgres.host, port=postgres.port, user="postgres", dbname="postgres")
    try:
        with pytest.raises(PreflightError) as failure:
            check_postgres(conn, "PostgreSQL 127.0.0.1:5432")
        conn.rollback()
    finally:
        conn.close()
    (problem,) = failure.value.problems
    assert str(failure.value) == (
        "PostgreSQL 127.0.0.1:5432 cannot serve change capture:\n"
        f"  - wal_level is {problem.current!r}, change capture needs 'logical': on Cloud SQL, database flag "
        "cloudsql.logical_decoding=on (it sets wal_level=logical); on your own server, set wal_level in its "
        "configuration and restart it"
    )
    assert problem.current in ("replica", "minimal")


def test_a_truncate_fails_the_read_naming_the_table_and_the_fix(capture):
    """TRUNCATE writes no row images: the read fails (the table needs a full reload) instead of
    silently keeping rows the source no longer has. A TRUNCATE of another table is no concern."""
    from nightshift_core.sync.cdc import TruncatedError

    capture.sql("INSERT INTO orders VALUES (70, 'a')", "CREATE TABLE other (id INT PRIMARY KEY)")
    capture.sql("TRUNCATE TABLE other")
    assert [c.after["id"] for c in capture.changes(capture.start)[0]] == [70]
    capture.sql("TRUNCATE TABLE orders")
    with pytest.raises(TruncatedError) as failure:
        capture.changes(capture.start)
    assert failure.value.table == capture.table("orders")
    assert str(failure.value).startswith(f"{capture.table('orders')} was truncated at log position ")
    assert str(failure.value).endswith(
        "change capture cannot follow a TRUNCATE; reload the table with a full_refresh run"
    )


def _tuple_data(values: list) -> bytes:
    """A pgoutput TupleData: a str as a text value, None a null, ... an unchanged TOASTed value."""
    import struct

    out = struct.pack("!h", len(values))
    for v in values:
        if v is None:
            out += b"n"
        elif v is ...:
            out += b"u"
        else:
            text = v.encode()
            out += b"t" + struct.pack("!i", len(text)) + text
    return out


@pytest.mark.parametrize("key_only", [False, True])
def test_pgoutput_text_images_compiled_per_relation_read_as_the_generic_reader(key_only):
    """The text-mode TupleData reader compiled per Relation gives exactly the generic one's rows and
    end offsets: ASCII and UTF-8 values (a multi-byte one ends in bytes latin-1 would misread), empty
    text, nulls (kept in an old key's image for its key columns only), unchanged TOASTed values,
    column names that need quoting, and a TupleData with fewer columns."""
    from nightshift_core.sync.cdc.postgres_logical import _compile, _tuple

    columns = [
        ("id", 23, True),
        ('it\'s "q"', 25, False),
        ("ünï", 25, True),
        ("big", 25, False),
        ("n", 25, False),
    ]
    compiled = _compile(columns, key_only=key_only)
    images = [
        ["1", "plain", "ünïcode ✓ 𝄞", "x" * 70_000, None],
        ["2", None, None, ..., ""],
        [None, "\x00ÿ ascii-looking bytes: ÿ", "é", ..., "€"],
        ["3", "fewer columns"],
    ]
    for values in images:
        data = b"pad" + _tuple_data(values) + b"rest"
        assert compiled(data, 3) == _tuple(data, 3, columns, key_only=key_only, raw=True)
        row, end = compiled(data, 3)
        assert data[end:] == b"rest"
        expected = {}
        for (name, _, is_key), v in zip(columns, values, strict=False):
            if v is not ... and not (v is None and key_only and not is_key):
                expected[name] = v
        assert row == expected


def test_a_postgres_log_run_freezes_the_heap_for_its_duration_only():
    """frozen_heap: the objects alive before the run are out of the collector's scans while it runs,
    handed back after (an error included); left alone when frozen already or when gc is off."""
    import gc

    from nightshift_core.sync.cdc.log_source import frozen_heap

    def scanned(obj: object) -> bool:
        return any(o is obj for o in gc.get_objects())

    assert gc.get_freeze_count() == 0
    before = [[]]  # a container alive before the run
    with frozen_heap():
        assert gc.get_freeze_count() > 0 and not scanned(before)
        during = [[]]
        assert scanned(during), "what the run makes is collected as usual"
    assert gc.get_freeze_count() == 0 and scanned(before)
    with pytest.raises(RuntimeError, match="boom"), frozen_heap():
        raise RuntimeError("boom")
    assert gc.get_freeze_count() == 0
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with frozen_heap():
            pass
        assert gc.get_freeze_count() == frozen, "someone else's freeze is theirs to undo"
    finally:
        gc.unfreeze()
    gc.disable()
    try:
        with frozen_heap():
            assert gc.get_freeze_count() == 0
    finally:
        gc.enable()
