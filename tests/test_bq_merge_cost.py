"""BigQuery apply cost, against the emulator: a merge target is created clustered on its key (and
day-partitioned on the definition's partition_by), and each MERGE the engine sends is bounded to the
key range (and partitions) of the staged rows; the bounded statement ends exactly as the unbounded
MERGE would."""

from __future__ import annotations

import datetime as dt
import re

import pyarrow as pa
import pytest

from nightshift_core.warehouse import JobKey, SyncState, TableRef, WarehouseError

SCHEMA = pa.schema([("id", pa.int64()), ("day", pa.date32()), ("v", pa.string()), ("n", pa.int64())])
D = dt.date(2026, 11, 1)


@pytest.fixture
def wh(bq_emulator, tmp_path, request):
    from nightshift_core.warehouse.bigquery_engine import BigQueryWarehouse

    warehouse = BigQueryWarehouse(bq_emulator.client(), use_storage_api=False, spool_dir=str(tmp_path))
    warehouse.client.delete_dataset(f"{bq_emulator.project}.cost", delete_contents=True, not_found_ok=True)
    warehouse.run = request.node.name  # job ids outlive tables: each test its own
    warehouse.sent = []  # (statement, its parameters) as the engine hands them to the client
    query = warehouse.client.query

    def spy(sql, *args, job_config=None, **kwargs):
        params = {p.name: p.value for p in (job_config.query_parameters if job_config else [])}
        warehouse.sent.append((sql, params))
        return query(sql, *args, job_config=job_config, **kwargs)

    warehouse.client.query = spy
    yield warehouse
    warehouse.close()


def rows(n: int, start: int = 1, v: str = "a") -> list[dict]:
    return [{"id": i, "day": D + dt.timedelta(days=i // 10), "v": v, "n": i} for i in range(start, start + n)]


def publish(wh, table: TableRef, data: list[dict], step: str, **kwargs):
    job = JobKey(f"cost_{wh.run}", "load", step, step)
    staged = wh.stage(job, table, [pa.RecordBatch.from_pylist(data, schema=SCHEMA)], SCHEMA)
    result = wh.publish(staged, "merge", key=["id"], **kwargs)
    merge = [(sql, params) for sql, params in wh.sent if "MERGE" in sql]
    assert wh.client.get_job(result.job_id, location=wh.location).query == merge[-1][0]
    return merge[-1]


def content(wh, table: TableRef) -> list[tuple]:
    return [tuple(r.values()) for r in wh.query(f"SELECT id, day, v, n FROM {table} ORDER BY id").to_pylist()]


CHANGES = [
    {"id": 35, "day": D + dt.timedelta(days=3), "v": "updated", "n": -35},  # an update
    {"id": 45, "day": D + dt.timedelta(days=4), "v": "updated", "n": -45},  # an update
    {"id": 58, "day": D + dt.timedelta(days=5), "v": "new", "n": 58},  # a gap filled
]


def test_merge_target_is_clustered_and_partitioned_and_each_merge_is_bounded(wh):
    table = TableRef("cost", "orders")
    initial = rows(50) + rows(40, start=60)
    publish(wh, table, initial, "initial", partition_by="day")
    created = wh.client.get_table(f"{wh.project}.cost.orders")
    assert created.clustering_fields == ["id"]
    assert created.time_partitioning.field == "day" and created.time_partitioning.type_ == "DAY"

    sql, bound = publish(wh, table, CHANGES, "changes")
    assert re.search(
        r"MERGE `[^`]+`\.`cost`\.`orders` T USING `[^`]+` S ON T\.`id` = S\.`id` "
        r"AND T\.`id` BETWEEN @k_lo AND @k_hi AND T\.`day` BETWEEN @p_lo AND @p_hi WHEN MATCHED",
        sql,
    ), sql
    assert bound == {
        "k_lo": 35,
        "k_hi": 58,
        "p_lo": D + dt.timedelta(days=3),
        "p_hi": D + dt.timedelta(days=5),
    }

    # The same changes through the unbounded MERGE, on a twin table: the same end state.
    twin = TableRef("cost", "twin")
    publish(wh, twin, initial, "twin_initial")
    job_id = f"unbounded_{wh.run}"
    staged = wh.stage(JobKey(job_id, "t", "s", "e"), twin, [pa.RecordBatch.from_pylist(CHANGES, schema=SCHEMA)],
                      SCHEMA)  # fmt: skip
    stage_ref = "`" + staged.name.rpartition("#")[0] + "`"
    wh.client.query(
        f"MERGE `{wh.project}`.`cost`.`twin` T USING {stage_ref} S ON T.id = S.id "
        "WHEN MATCHED THEN UPDATE SET day = S.day, v = S.v, n = S.n "
        "WHEN NOT MATCHED THEN INSERT (id, day, v, n) VALUES (S.id, S.day, S.v, S.n)"
    ).result()
    assert content(wh, table) == content(wh, twin)
    assert len(content(wh, table)) == 91 and (35, D + dt.timedelta(days=3), "updated", -35) in content(
        wh, table
    )


def test_a_merge_with_its_state_inlines_the_bounds_in_the_transaction(wh):
    table = TableRef("cost", "with_state")
    publish(wh, table, rows(30), "initial", state=SyncState("n", full_load=True))
    sql, _ = publish(wh, table, rows(3, start=7, v="b"), "next", state=SyncState("n"))
    assert "BEGIN TRANSACTION" in sql and "T.`id` BETWEEN 7 AND 9" in sql, sql
    assert "@k_lo" not in sql and "T.`day`" not in sql, "unpartitioned: no partition bound"
    assert [r[2] for r in content(wh, table)] == ["a"] * 6 + ["b"] * 3 + ["a"] * 21
    states = wh.query("SELECT last_value FROM cost._nightshift_sync_state ORDER BY published_at").to_pylist()
    assert [r["last_value"] for r in states] == [30, 9], "the state committed with the bounded rows"


def test_a_staged_row_without_its_partition_value_drops_only_the_partition_bound(wh):
    table = TableRef("cost", "tombstones")
    publish(wh, table, rows(20), "initial", partition_by="day")
    tombstone = {"id": 4, "day": None, "v": None, "n": None}  # a delete image with only its key
    sql, bound = publish(wh, table, [tombstone, *rows(1, start=15, v="b")], "next")
    assert (
        "T.`id` BETWEEN @k_lo AND @k_hi WHEN" in sql
        and "@p_lo" not in sql
        and bound == {"k_lo": 4, "k_hi": 15}
    )
    assert content(wh, table)[3] == (4, None, None, None) and content(wh, table)[14][2] == "b"


def test_nothing_staged_reads_nothing_and_changes_nothing(wh):
    table = TableRef("cost", "empty")
    publish(wh, table, rows(5), "initial")
    sql, _ = publish(wh, table, [], "nothing")
    assert "S.`id` AND FALSE WHEN" in sql
    assert len(content(wh, table)) == 5


def test_partition_by_must_name_a_date_or_time_column(wh):
    with pytest.raises(
        WarehouseError, match=r"partition_by column 'v' is STRING.*DATE, DATETIME or TIMESTAMP"
    ):
        publish(wh, TableRef("cost", "bad"), rows(2), "initial", partition_by="v")
