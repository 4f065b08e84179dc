"""Source time zones and DST: DATETIME cursors never lose or delay rows (unit + real MariaDB)."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from types import SimpleNamespace

import pytest

from nightshift_core.sync import clock

UTC = dt.UTC
NY_FALL_BACK = dt.datetime(2026, 11, 1, 6, 0, tzinfo=UTC)  # 02:00 EDT -> 01:00 EST
NY_SPRING_FORWARD = dt.datetime(2026, 3, 8, 7, 0, tzinfo=UTC)  # 02:00 EST -> 03:00 EDT
SYDNEY_FALL_BACK = dt.datetime(2026, 4, 4, 16, 0, tzinfo=UTC)  # 03:00 AEDT -> 02:00 AEST
SYDNEY_SPRING_FORWARD = dt.datetime(2026, 10, 3, 16, 0, tzinfo=UTC)  # 02:00 AEST -> 03:00 AEDT
HOUR = dt.timedelta(hours=1)
MINUTE = dt.timedelta(minutes=1)


# -- pure logic ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "change"),
    [("America/New_York", NY_FALL_BACK), ("America/New_York", NY_SPRING_FORWARD),
     ("Australia/Sydney", SYDNEY_FALL_BACK), ("Australia/Sydney", SYDNEY_SPRING_FORWARD)],
)  # fmt: skip
def test_transitions_are_found_to_the_microsecond(name, change):
    tz = clock.zone(name)
    assert clock.transitions(tz, change - 3 * HOUR, change + 3 * HOUR) == [change]
    assert clock.transitions(tz, change + HOUR, change + 30 * HOUR) == []


@pytest.mark.parametrize(
    ("name", "change"), [("America/New_York", NY_FALL_BACK), ("Australia/Sydney", SYDNEY_FALL_BACK)]
)
def test_a_window_over_a_fall_back_holds_both_passes_of_the_repeated_hour(name, change):
    tz = clock.zone(name)
    repeated = (change - HOUR).astimezone(tz).replace(tzinfo=None)  # start of the repeated hour
    # lower bound in the first pass, 10 minutes before the change
    assert clock.wall_window(change - dt.timedelta(minutes=10), change + HOUR, tz) == (
        repeated,
        repeated + HOUR,
    )
    # a window that ends at the change still reaches the end of the first pass
    assert clock.wall_window(change - HOUR, change, tz) == (repeated, repeated + HOUR)
    # a wall value of the repeated hour means its first pass, the earlier instant
    assert clock.earliest_instant(repeated + dt.timedelta(minutes=50), tz) == change - dt.timedelta(
        minutes=10
    )


def test_a_window_over_a_spring_forward_is_the_plain_conversion():
    tz = clock.zone("America/New_York")
    lo, hi = clock.wall_window(NY_SPRING_FORWARD - HOUR, NY_SPRING_FORWARD + HOUR, tz)
    assert (lo, hi) == (dt.datetime(2026, 3, 8, 1, 0), dt.datetime(2026, 3, 8, 4, 0))


def test_a_zone_ahead_of_utc_shifts_the_window_forward():
    tz = clock.zone("Asia/Tokyo")
    start = dt.datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
    assert clock.wall_window(start, start + HOUR, tz) == (
        dt.datetime(2026, 6, 1, 18),
        dt.datetime(2026, 6, 1, 19),
    )


def test_an_undeclared_non_utc_server_zone_fails_naming_the_zone_and_the_key():
    server = clock.ServerZone("+09:00", dt.timedelta(hours=9))
    with pytest.raises(clock.SourceClockError) as err:
        clock.check_zone(server, None, where="sync definition s.yaml, table 'orders'")
    message = str(err.value)
    assert message.startswith(
        "sync definition s.yaml, table 'orders': the source server's time zone is '+09:00'"
    )
    assert "Set `source.timezone`" in message and "e.g. `timezone: America/New_York`" in message
    assert clock.check_zone(clock.ServerZone("UTC", dt.timedelta(0)), None, where="x") is None
    assert clock.check_zone(server, "Asia/Tokyo", where="x") == "Asia/Tokyo"


def test_a_declared_zone_that_contradicts_the_server_is_reported():
    june = dt.datetime(2026, 6, 1, tzinfo=UTC)
    tokyo = clock.ServerZone("+09:00", dt.timedelta(hours=9))
    assert clock.contradiction(tokyo, "Asia/Tokyo", now=june) is None
    assert "UTC+09:00" in clock.contradiction(tokyo, "America/New_York", now=june)
    assert clock.contradiction(clock.ServerZone("America/New_York", -4 * HOUR), "America/New_York") is None
    assert clock.contradiction(clock.ServerZone("SYSTEM", dt.timedelta(0)), "Europe/Paris", now=june)
    assert clock.contradiction(clock.ServerZone("UTC", dt.timedelta(0)), "Etc/UTC") is None


# -- real MariaDB -------------------------------------------------------------------------------


@pytest.fixture
def source(maria_zone, tmp_path, monkeypatch):
    """Table ``ev`` (DATETIME cursor) in a scratch database; ``run(start, zone)`` syncs one interval."""
    from support.services import scratch_database

    with scratch_database(maria_zone.service, "ns_clock") as db:
        cur = db.conn.cursor()
        cur.execute("CREATE TABLE ev (id INT PRIMARY KEY, v VARCHAR(20), updatedAt DATETIME(6) NOT NULL)")
        monkeypatch.setenv("AIRFLOW_CONN_CLOCK_SOURCE", db.airflow_conn)
        monkeypatch.setenv(
            "AIRFLOW_CONN_NIGHTSHIFT_WAREHOUSE",
            json.dumps(
                {"conn_type": "generic", "extra": {"engine": "duckdb", "path": str(tmp_path / "w.duckdb")}}
            ),
        )
        yield SimpleNamespace(cur=cur, run=_runner(), rows=_rows)


def _runner():
    from nightshift.operators.sql_to_warehouse import SqlToWarehouseOperator

    def run(start: dt.datetime, timezone: str | None) -> dict:
        op = SqlToWarehouseOperator(
            task_id="load_ev", source_conn_id="clock_source", table="ev", dataset="clock", primary_key=["id"],
            mode="incremental", cursor="updatedAt", lag=dt.timedelta(minutes=10), source_timezone=timezone,
            definition="include/config/syncs/clock.yaml",
            reconcile_every=dt.timedelta(0),  # the windows alone must be right (reconciliation would hide it)
        )  # fmt: skip
        ti = SimpleNamespace(
            dag_id="clock", task_id="load_ev", run_id=f"scheduled__{start.isoformat()}", map_index=-1
        )
        return op.execute({"ti": ti, "data_interval_start": start, "data_interval_end": start + HOUR})

    return run


def _rows() -> dict[int, tuple[str, dt.datetime]]:
    from nightshift.hooks.warehouse import WarehouseHook
    from nightshift_core.warehouse import TableRef

    with WarehouseHook().get_conn() as wh:
        if not wh.table_exists(TableRef("clock", "ev")):
            return {}
        return {r["id"]: (r["v"], r["updatedAt"]) for r in wh.query("SELECT * FROM clock.ev").to_pylist()}


def _wall(instant: dt.datetime, name: str) -> dt.datetime:
    return instant.astimezone(clock.zone(name)).replace(tzinfo=None)


@pytest.mark.integration
def test_an_undeclared_zone_fails_at_once(source, maria_zone):
    from airflow.sdk.exceptions import AirflowFailException

    maria_zone.set("+09:00")
    with pytest.raises(
        AirflowFailException, match=r"time zone is '\+09:00' \(UTC offset now \+09:00\), not UTC"
    ):
        source.run(dt.datetime(2026, 6, 1, 9, tzinfo=UTC), None)


@pytest.mark.integration
def test_rows_of_a_zone_ahead_of_utc_arrive_in_the_run_whose_interval_holds_their_instant(source, maria_zone):
    maria_zone.set("Asia/Tokyo")
    nine = dt.datetime(2026, 6, 1, 9, tzinfo=UTC)
    source.cur.execute("INSERT INTO ev VALUES (1, 'a', %s)", (_wall(nine - 150 * MINUTE, "Asia/Tokyo"),))
    source.run(nine - 3 * HOUR, "Asia/Tokyo")  # the first run reads everything so far
    assert set(source.rows()) == {1}
    row_at = nine + dt.timedelta(minutes=30)  # 18:30 in Tokyo
    source.cur.execute("INSERT INTO ev VALUES (2, 'b', %s)", (_wall(row_at, "Asia/Tokyo"),))
    source.run(nine - HOUR, "Asia/Tokyo")  # [08:00Z, 09:00Z): before the row's instant
    assert set(source.rows()) == {1}
    result = source.run(nine, "Asia/Tokyo")  # [09:00Z, 10:00Z) holds 09:30Z
    assert set(source.rows()) == {1, 2}
    assert result["window"]["to"] == "2026-06-01 19:00:00"


@pytest.mark.integration
@pytest.mark.parametrize(
    ("name", "change"), [("America/New_York", NY_FALL_BACK), ("Australia/Sydney", SYDNEY_FALL_BACK)]
)
def test_the_fall_back_night_loses_no_row_and_no_update(source, maria_zone, name, change):
    maria_zone.set(name)
    minutes = dt.timedelta(minutes=1)
    # before the night: one row, synced
    source.cur.execute("INSERT INTO ev VALUES (0, 'old', %s)", (_wall(change - 90 * minutes, name),))
    source.run(change - 2 * HOUR, name)
    # first pass of the repeated hour
    source.cur.execute("INSERT INTO ev VALUES (1, 'first', %s)", (_wall(change - 10 * minutes, name),))
    source.run(change - HOUR, name)
    assert set(source.rows()) == {0, 1}
    # second pass: new rows and an update with wall-clock values below the first pass's highest
    for key, offset in ((2, 10), (3, 30)):
        source.cur.execute(
            "INSERT INTO ev VALUES (%s, 'second', %s)", (key, _wall(change + offset * minutes, name))
        )
    source.cur.execute(
        "UPDATE ev SET v = 'updated', updatedAt = %s WHERE id = 0", (_wall(change + 25 * minutes, name),)
    )
    source.run(change, name)
    rows = source.rows()
    assert {k: v for k, (v, _) in rows.items()} == {0: "updated", 1: "first", 2: "second", 3: "second"}
    for later in range(1, 4):
        source.run(change + later * HOUR, name)
    assert source.rows() == rows, "later runs change nothing"


@pytest.mark.integration
@pytest.mark.parametrize(
    ("name", "change"), [("America/New_York", NY_SPRING_FORWARD), ("Australia/Sydney", SYDNEY_SPRING_FORWARD)]
)
def test_the_spring_forward_night_loses_nothing(source, maria_zone, name, change):
    maria_zone.set(name)
    minutes = dt.timedelta(minutes=1)
    source.cur.execute("INSERT INTO ev VALUES (0, 'old', %s)", (_wall(change - 3 * HOUR, name),))
    source.run(change - 4 * HOUR, name)
    source.cur.execute("INSERT INTO ev VALUES (1, 'before', %s)", (_wall(change - 30 * minutes, name),))
    source.run(change - HOUR, name)
    assert set(source.rows()) == {0, 1}, "arrives in the run whose interval holds its instant"
    source.cur.execute("INSERT INTO ev VALUES (2, 'after', %s)", (_wall(change + 5 * minutes, name),))
    source.cur.execute(
        "UPDATE ev SET v = 'updated', updatedAt = %s WHERE id = 1", (_wall(change + 7 * minutes, name),)
    )
    source.run(change, name)
    assert {k: v for k, (v, _) in source.rows().items()} == {0: "old", 1: "updated", 2: "after"}


@pytest.fixture
def maria_zone(mariadb):
    """Set MariaDB's global time zone for a test (time-zone tables loaded once); always restored."""
    import MySQLdb

    admin = MySQLdb.connect(host=mariadb.host, port=mariadb.port, user="root", autocommit=True)
    cur = admin.cursor()
    cur.execute("SELECT COUNT(*) FROM mysql.time_zone_name")
    if cur.fetchone()[0] == 0:
        sql = subprocess.run(
            ["mariadb-tzinfo-to-sql", "/usr/share/zoneinfo"], capture_output=True, timeout=120
        )
        assert sql.returncode == 0, sql.stderr[-2000:]
        loaded = subprocess.run(
            ["mariadb", "-h", mariadb.host, "-P", str(mariadb.port), "-u", "root", "mysql"], input=sql.stdout,
            capture_output=True, timeout=300,
        )  # fmt: skip
        assert loaded.returncode == 0, loaded.stderr[-2000:]
    cur.execute("SELECT @@global.time_zone")
    before = cur.fetchone()[0]

    def set_zone(name: str) -> None:
        cur.execute("SET GLOBAL time_zone = %s", (name,))

    try:
        yield SimpleNamespace(service=mariadb, set=set_zone)
    finally:
        cur.execute("SET GLOBAL time_zone = %s", (before,))
        admin.close()
