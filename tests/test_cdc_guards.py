"""The change-capture guards on the private log-enabled servers: a run fails before the log it needs is
lost (binlog purged or about to be, a slot lost or holding too much WAL), naming the table, the
position and the fix; slots of removed definitions are reported, never dropped."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from nightshift_core.errors import PermanentError
from nightshift_core.sync.cdc.endpoint import Endpoint
from nightshift_core.sync.cdc.guards import (
    GuardLimits,
    LogAtRiskError,
    LogLostError,
    SlotDatabaseError,
    SlotState,
    binlog_retention,
    check_binlog_position,
    check_slot,
    check_slot_database,
    judge_slot,
    judge_slot_database,
    main,
    orphan_slots,
)

NOW = dt.datetime.now(dt.UTC)


@pytest.fixture
def mysql(mariadb_binlog):
    import pymysql

    conn = pymysql.connect(host=mariadb_binlog.host, port=mariadb_binlog.port, user="root", autocommit=True)
    settings = {"host": mariadb_binlog.host, "port": mariadb_binlog.port, "user": "root", "passwd": ""}
    yield conn, settings
    conn.close()


def _current(conn) -> dict:
    with conn.cursor() as cur:
        cur.execute("SHOW MASTER STATUS")
        file, pos = cur.fetchone()[:2]
    return {"file": file, "pos": int(pos), "gtid": None}


def test_a_purged_binlog_file_fails_naming_table_position_and_fix(mysql):
    conn, settings = mysql
    with pytest.raises(LogLostError) as lost:
        check_binlog_position(
            conn, {"file": "binlog.000000", "pos": 1234}, tables=["shop.orders"], connection_settings=settings
        )
    message = str(lost.value)
    assert "shop.orders" in message and "binlog.000000:1234" in message and "full_refresh" in message
    assert isinstance(lost.value, PermanentError), "a retry cannot bring a purged file back"


def test_a_binlog_file_about_to_expire_fails_or_warns_per_the_setting(mysql):
    conn, settings = mysql
    stored = _current(conn)
    # The file the position is in is still written: its expiry has not started, whatever the clock says.
    assert check_binlog_position(conn, stored, tables=["shop.orders"], connection_settings=settings,
                                 now=NOW + dt.timedelta(days=365)) == []  # fmt: skip
    flushed = dt.datetime.now(dt.UTC)  # not NOW: in a long suite this test may run long after import
    with conn.cursor() as cur:
        cur.execute("FLUSH BINARY LOGS")  # the server rotates: the stored file is closed now
    retention = binlog_retention(conn, settings, stored["file"])
    closed, expire = retention.closed_at[stored["file"]], retention.expire
    assert expire is not None and abs(closed - flushed) < dt.timedelta(minutes=1)
    limits = GuardLimits(purge_margin=dt.timedelta(hours=6))
    soon = closed + expire - dt.timedelta(hours=2)  # purged in 2 h, within the 6 h margin
    with pytest.raises(LogAtRiskError) as risk:
        check_binlog_position(conn, stored, tables=["shop.orders"], limits=limits, connection_settings=settings,
                              now=soon)  # fmt: skip
    assert "shop.orders" in str(risk.value) and f"{stored['file']}:{stored['pos']}" in str(risk.value)
    assert "2.0 h from now" in str(risk.value)
    warn = GuardLimits(purge_margin=dt.timedelta(hours=6), on_purge_risk="warn")
    endpoint = Endpoint(settings["host"], settings["port"], "root", "")  # dated through the reader's login
    warnings = check_binlog_position(conn, stored, tables=["shop.orders"], limits=warn, endpoint=endpoint,
                                     now=soon)  # fmt: skip
    assert len(warnings) == 1 and "shop.orders" in warnings[0]
    later = closed + expire - dt.timedelta(hours=7)  # outside the margin: nothing to say
    assert check_binlog_position(conn, stored, tables=["shop.orders"], limits=limits, connection_settings=settings,
                                 now=later) == []  # fmt: skip


@pytest.fixture
def pg(postgres_logical):
    import psycopg2
    from support.services import scratch_database

    from nightshift_core.sync.cdc.postgres_logical import LogicalReader

    with scratch_database(postgres_logical, "ns_guard") as db:
        db.conn.cursor().execute("CREATE TABLE orders (id INT PRIMARY KEY, status TEXT)")
        endpoint = Endpoint(postgres_logical.host, postgres_logical.port, "postgres", db.name)
        readers = []

        def reader(definition: str) -> LogicalReader:
            readers.append(LogicalReader(endpoint, definition, ["orders"]))
            readers[-1].ensure_slot()
            return readers[-1]

        admin = psycopg2.connect(host=endpoint.host, port=endpoint.port, user="postgres", dbname=db.name)
        admin.autocommit = True
        try:
            yield db, admin, reader
        finally:
            admin.close()
            for r in readers:
                r.drop()
                r.close()


def test_a_slot_holding_more_wal_than_the_limit_fails_naming_slot_table_position_and_bytes(pg):
    db, admin, reader = pg
    r = reader(f"g{uuid.uuid4().hex[:10]}")
    stored = r.slot_position()
    db.conn.cursor().execute("INSERT INTO orders SELECT g, 'x' FROM generate_series(1, 2000) g")
    state = check_slot(admin, r.slot, tables=["public.orders"], position=str(stored))
    assert state is not None and state.retained_bytes and state.retained_bytes > 50_000
    with pytest.raises(LogAtRiskError) as risk:
        check_slot(admin, r.slot, tables=["public.orders"], position=str(stored),
                   limits=GuardLimits(max_slot_wal_bytes=50_000))  # fmt: skip
    message = str(risk.value)
    assert r.slot in message and "public.orders" in message and str(stored) in message
    assert f"{state.retained_bytes:,} bytes" in message or "bytes)" in message
    assert "full_refresh" in message and isinstance(risk.value, PermanentError)


def test_a_dropped_slot_with_a_stored_position_is_lost_and_a_first_run_is_not(pg):
    _db, admin, _reader = pg
    slot = f"nightshift_g{uuid.uuid4().hex[:10]}"
    assert check_slot(admin, slot, tables=["public.orders"], position=None) is None
    with pytest.raises(LogLostError, match=rf"public.orders.*{slot}.*0/16B3748.*full_refresh"):
        check_slot(admin, slot, tables=["public.orders"], position="0/16B3748")


@pytest.mark.parametrize(
    ("wal_status", "restart_lsn", "error"),
    [("lost", None, LogLostError), ("lost", "0/1000", LogLostError), ("unreserved", "0/1000", LogAtRiskError),
     ("reserved", "0/1000", None), ("extended", "0/1000", None)],
)  # fmt: skip
def test_slot_states_the_server_reports(wal_status, restart_lsn, error):
    state = SlotState("nightshift_shop", "shop", False, wal_status, restart_lsn, "0/2000", 4096)
    kwargs = {
        "slot": "nightshift_shop",
        "tables": ["public.orders"],
        "position": "0/2000",
        "limits": GuardLimits(),
    }
    if error is None:
        judge_slot(state, **kwargs)
    else:
        with pytest.raises(error, match="public.orders.*nightshift_shop.*0/2000"):
            judge_slot(state, **kwargs)


def test_a_slot_of_another_database_fails_naming_both_databases_and_the_fix():
    state = SlotState("nightshift_shop_orders", "shop_staging", False, "reserved", "0/1000", "0/2000", 4096)
    kwargs = {"slot": "nightshift_shop_orders", "tables": ["public.orders"], "limits": GuardLimits()}
    for position in ("0/2000", None):  # a slot of another database is never this sync's, first run or not
        with pytest.raises(SlotDatabaseError) as other:
            judge_slot(state, position=position, database="shop", **kwargs)
        message = str(other.value)
        assert "public.orders" in message and "nightshift_shop_orders" in message
        assert "belongs to database 'shop_staging'" in message and "reads database 'shop'" in message
        assert "another DAG id" in message and "full_refresh" in message
        assert "SELECT pg_drop_replication_slot('nightshift_shop_orders');" in message
        assert isinstance(other.value, PermanentError), "a retry finds the same slot in the same database"
    judge_slot(state, position="0/2000", database="shop_staging", **kwargs)  # its own database: fine
    judge_slot(state, position="0/2000", **kwargs)  # no database given: not checked (as before)
    # before a snapshot re-creates the slot only the database is judged: a lost slot is what it replaces
    lost = SlotState("nightshift_shop_orders", "shop", False, "lost", None, None, None)
    judge_slot_database(lost, slot="nightshift_shop_orders", tables=["public.orders"], database="shop")
    with pytest.raises(SlotDatabaseError, match="belongs to database 'shop'.*reads database 'shop_staging'"):
        judge_slot_database(
            lost, slot="nightshift_shop_orders", tables=["public.orders"], database="shop_staging"
        )


def test_a_slot_created_in_one_database_is_refused_from_another_of_the_same_server(postgres_logical):
    import psycopg2
    from support.services import scratch_database

    from nightshift_core.sync.cdc.postgres_logical import LogicalReader

    definition = f"g{uuid.uuid4().hex[:10]}"  # the same definition id on two databases of one server
    with (
        scratch_database(postgres_logical, "slotguard") as staging,
        scratch_database(postgres_logical, "slotguard") as production,
    ):
        staging.conn.cursor().execute("CREATE TABLE orders (id INT PRIMARY KEY)")
        endpoint = Endpoint(postgres_logical.host, postgres_logical.port, "postgres", staging.name)
        reader = LogicalReader(endpoint, definition, ["orders"])
        try:
            stored = str(reader.ensure_slot())
            staging.conn.autocommit = False  # as the run holds it: the guard reads in the run's session
            state = check_slot(staging.conn, reader.slot, tables=["public.orders"], position=stored)
            assert state is not None and state.database == staging.name
            staging.conn.rollback()
            with pytest.raises(SlotDatabaseError) as other:
                check_slot(production.conn, reader.slot, tables=["public.orders"], position=stored)
            message = str(other.value)
            assert f"belongs to database '{staging.name}'" in message
            assert f"reads database '{production.name}'" in message
            assert f"pg_drop_replication_slot('{reader.slot}')" in message and "another DAG id" in message
            # the snapshot's check, before it would drop the slot of that name to re-create it
            with pytest.raises(SlotDatabaseError, match=f"belongs to database '{staging.name}'"):
                check_slot_database(production.conn, reader.slot, tables=["public.orders"])
            own = check_slot_database(staging.conn, reader.slot, tables=["public.orders"])
            assert own is not None and (own.name, own.database) == (reader.slot, staging.name)
            staging.conn.rollback()
            admin = psycopg2.connect(
                host=endpoint.host, port=endpoint.port, user="postgres", dbname="postgres"
            )
            try:  # the orphan report, connected to a third database, still sees every slot of the server
                assert reader.slot in {s.name for s in orphan_slots(admin, [])}
            finally:
                admin.close()
        finally:
            staging.conn.autocommit = True
            reader.drop()
            reader.close()


def test_a_first_run_never_drops_the_slot_of_another_database(postgres_logical):
    """A snapshot re-creates its slot (dropping one of that name first): with the name taken by a slot
    of another database it fails before touching it."""
    from support.services import scratch_database

    from nightshift_core.sync.cdc.postgres_logical import LogicalReader
    from nightshift_core.sync.cdc.sources import log_source
    from nightshift_core.sync.cdc.table import CdcTable
    from nightshift_core.sync.dialects import PostgresDialect

    table = CdcTable("public.orders", ("id",), f"g{uuid.uuid4().hex[:10]}")
    with (
        scratch_database(postgres_logical, "slotguard") as staging,
        scratch_database(postgres_logical, "slotguard") as production,
    ):
        for db in (staging, production):
            db.conn.cursor().execute("CREATE TABLE orders (id INT PRIMARY KEY)")
        ours = Endpoint(postgres_logical.host, postgres_logical.port, "postgres", staging.name)
        theirs = Endpoint(postgres_logical.host, postgres_logical.port, "postgres", production.name)
        reader = LogicalReader(ours, table.slot, [table.name])
        try:
            created = reader.ensure_slot()
            production.conn.autocommit = False
            with pytest.raises(SlotDatabaseError, match=f"belongs to database '{staging.name}'"):
                log_source(PostgresDialect(), table.name).snapshot(production.conn, theirs, table)
            production.conn.rollback()
            assert reader.slot_position() == created  # the staging slot is still there, unmoved
        finally:
            production.conn.autocommit = True
            reader.drop()
            reader.close()


def test_orphaned_slots_are_reported_never_dropped(pg, capsys):
    _db, admin, reader = pg
    kept, removed = f"g{uuid.uuid4().hex[:10]}", f"g{uuid.uuid4().hex[:10]}"
    reader(kept), reader(removed)
    names = {s.name for s in orphan_slots(admin, [kept])}
    assert f"nightshift_{removed}" in names and f"nightshift_{kept}" not in names
    assert {s.name for s in orphan_slots(admin, [f"nightshift_{kept}"])} == names, "full slot names too"
    info = admin.get_dsn_parameters()
    code = main(["orphan-slots", "--host", info["host"], "--port", info["port"], "--live", kept])
    out = capsys.readouterr().out
    assert code == 1 and f"nightshift_{removed}" in out and f"nightshift_{kept} " not in out
    assert f"pg_drop_replication_slot('nightshift_{removed}')" in out
    assert {s.name for s in orphan_slots(admin, [])} >= {f"nightshift_{kept}", f"nightshift_{removed}"}, (
        "reporting dropped nothing"
    )
