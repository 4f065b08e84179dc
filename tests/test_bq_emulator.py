"""What the local BigQuery emulator supports, checked through the real google-cloud-bigquery client.

Uses the session fixture `bq_emulator` (tests/support/bq_emulator.py, enabled in tests/conftest.py).
Each feature is its own test. Gaps are `known_gap(reason=...)`: `xfail(strict=True)` that accepts only
`EmulatorGap`, which a test raises when it observes the gap's own symptom (`gap(...)`, `gap_on(...)`), so
they start failing (and can be turned into plain tests) when the emulator gains the feature, and any other
failure in them is a failure.

Never call `to_arrow()` / `to_dataframe()` without `create_bqstorage_client=False` (or the emulator's
`bqstorage_client()`): by default the client opens a Storage API client on bigquerystorage.googleapis.com.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import io
import uuid
from collections.abc import Iterator
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from google.api_core.exceptions import BadRequest, Conflict, InternalServerError, NotFound
from google.cloud import bigquery

BIG = Decimal("12345678901234567890.123456789")  # 29 digits, scale 9: the edges of NUMERIC
NEG_BIG = BIG.copy_negate()  # not -BIG: unary minus rounds to the 28-digit default context
LEGACY_TYPE_NAMES = {"INTEGER": "INT64", "FLOAT": "FLOAT64", "BOOLEAN": "BOOL"}  # tables.get may use these
ALL_TYPES = [
    ("i", "INT64"),
    ("s", "STRING"),
    ("n", "NUMERIC"),
    ("j", "JSON"),
    ("dt", "DATETIME"),
    ("ts", "TIMESTAMP"),
    ("d", "DATE"),
    ("b", "BYTES"),
    ("f", "BOOL"),
    ("x", "FLOAT64"),
]
LOAD_JOB_ID = "fixed_id_1"


class EmulatorGap(Exception):
    """A known emulator gap showed its own symptom (the only failure a `known_gap` test expects)."""


known_gap = functools.partial(pytest.mark.xfail, strict=True, raises=EmulatorGap)


def gap(observed: bool, symptom: str) -> None:
    """Raise EmulatorGap(symptom) when the test observed exactly that symptom."""
    if observed:
        raise EmulatorGap(symptom)


@contextlib.contextmanager
def gap_on(error: type[Exception], message: str, emulator=None) -> Iterator[None]:
    """An ``error`` whose text contains the gap's own ``message`` becomes EmulatorGap; others pass through.
    With ``emulator``: the message is looked for in what its log gained meanwhile (a 500 names no cause)."""
    start = len(emulator.log()) if emulator else 0
    try:
        yield
    except error as exc:
        if message in (emulator.log()[start:] if emulator else str(exc)):
            raise EmulatorGap(f"{type(exc).__name__}: {exc}") from exc
        raise


def standard_type(field: bigquery.SchemaField) -> str:
    return LEGACY_TYPE_NAMES.get(field.field_type, field.field_type)


def schema_of(client: bigquery.Client, table_id: str) -> list[tuple[str, str]]:
    return [(f.name, standard_type(f)) for f in client.get_table(table_id).schema]


def rows(client: bigquery.Client, sql: str) -> list[tuple]:
    return [tuple(row.values()) for row in client.query(sql).result()]


def run(client: bigquery.Client, sql: str) -> bigquery.QueryJob:
    job = client.query(sql)
    job.result()
    return job


def parquet_bytes(table: pa.Table) -> io.BytesIO:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    buffer.seek(0)
    return buffer


def load_parquet(client: bigquery.Client, data: io.BytesIO, table_id: str, **kwargs) -> bigquery.LoadJob:
    config = bigquery.LoadJobConfig(source_format=bigquery.SourceFormat.PARQUET)
    job = client.load_table_from_file(data, table_id, job_config=config, **kwargs)
    job.result()
    return job


PARQUET_ROWS = pa.table(
    {
        "id": pa.array([1, 2], pa.int64()),
        "name": ["a", "b"],
        "amount": pa.array([BIG, Decimal("-0.000000001")], pa.decimal128(38, 9)),
    }
)
PARQUET_SCHEMA = [
    bigquery.SchemaField("id", "INT64"),
    bigquery.SchemaField("name", "STRING"),
    bigquery.SchemaField("amount", "NUMERIC"),
]


@pytest.fixture(scope="module")
def client(bq_emulator) -> bigquery.Client:
    return bq_emulator.client()


@pytest.fixture
def ds(client: bigquery.Client) -> str:
    """A fresh dataset per test: `project.dataset`."""
    dataset = client.create_dataset(f"t_{uuid.uuid4().hex[:10]}")
    return f"{dataset.project}.{dataset.dataset_id}"


@pytest.fixture(scope="module")
def parquet_load(client: bigquery.Client) -> tuple[bigquery.LoadJob, str]:
    """One Parquet load with a fixed job id into a pre-created table: (job, table id)."""
    dataset = client.create_dataset(f"load_{uuid.uuid4().hex[:10]}")
    table_id = f"{dataset.project}.{dataset.dataset_id}.loaded"
    client.create_table(bigquery.Table(table_id, schema=PARQUET_SCHEMA))
    job = load_parquet(client, parquet_bytes(PARQUET_ROWS), table_id, job_id=LOAD_JOB_ID)
    return job, table_id


# -- datasets and tables ------------------------------------------------------------------------------------


def test_create_dataset(client: bigquery.Client) -> None:
    name = f"c_{uuid.uuid4().hex[:10]}"
    client.create_dataset(name)
    assert client.get_dataset(name).dataset_id == name
    assert name in {d.dataset_id for d in client.list_datasets()}
    with pytest.raises(Conflict):
        client.create_dataset(name)


def test_create_table_with_schema_and_types_round_trip(client: bigquery.Client, ds: str) -> None:
    schema = [bigquery.SchemaField(name, kind) for name, kind in ALL_TYPES]
    client.create_table(bigquery.Table(f"{ds}.all_types", schema=schema))
    assert schema_of(client, f"{ds}.all_types") == ALL_TYPES


def test_values_of_every_type_round_trip(client: bigquery.Client, ds: str) -> None:
    schema = [bigquery.SchemaField(name, kind) for name, kind in ALL_TYPES]
    client.create_table(bigquery.Table(f"{ds}.v", schema=schema))
    run(
        client,
        f"INSERT INTO `{ds}.v` VALUES (7, 'ü', NUMERIC '{BIG}', JSON '{{\"a\": [1, 2]}}',"
        " DATETIME '2024-02-29 23:59:58.123456', TIMESTAMP '2024-02-29 23:59:58.123456+02:00',"
        " DATE '2024-02-29', b'ab\\x01', TRUE, 1.25)",
    )
    expected = (
        7,
        "ü",
        BIG,
        {"a": [1, 2]},
        dt.datetime(2024, 2, 29, 23, 59, 58, 123456),
        dt.datetime(2024, 2, 29, 21, 59, 58, 123456, tzinfo=dt.UTC),
        dt.date(2024, 2, 29),
        b"ab\x01",
        True,
        1.25,
    )
    assert rows(client, f"SELECT * FROM `{ds}.v`") == [expected]
    assert [tuple(r.values()) for r in client.list_rows(f"{ds}.v")] == [expected]


@known_gap(
    reason="emulator: BIGNUMERIC column -> DuckDB DECIMAL(76, 38): 500, its log 'DECIMAL type width must be"
    " between 1 and 38'",
)
def test_create_table_with_bignumeric_column(client: bigquery.Client, ds: str, bq_emulator) -> None:
    table = bigquery.Table(f"{ds}.big", schema=[bigquery.SchemaField("b", "BIGNUMERIC")])
    with gap_on(InternalServerError, "DECIMAL type width must be between 1 and 38", bq_emulator):
        client.create_table(table, retry=None, timeout=30)  # no retry: the client retries 500s for minutes
    assert schema_of(client, f"{ds}.big") == [("b", "BIGNUMERIC")]


def test_bignumeric_in_queries(client: bigquery.Client) -> None:
    value = Decimal("12345678901234567890.123456789012")
    config = bigquery.QueryJobConfig(
        query_parameters=[bigquery.ScalarQueryParameter("v", "BIGNUMERIC", value)]
    )
    assert rows(client, f"SELECT BIGNUMERIC '{value}'") == [(value,)]
    assert [tuple(r.values()) for r in client.query("SELECT @v", job_config=config).result()] == [(value,)]


def test_numeric_precision_round_trips(client: bigquery.Client, ds: str) -> None:
    client.create_table(bigquery.Table(f"{ds}.n", schema=[bigquery.SchemaField("n", "NUMERIC")]))
    run(client, f"INSERT INTO `{ds}.n` VALUES (NUMERIC '{BIG}'), (NUMERIC '-{BIG}'), (NUMERIC '0.000000001')")
    expected = [NEG_BIG, Decimal("0.000000001"), BIG]
    assert [n for (n,) in rows(client, f"SELECT n FROM `{ds}.n` ORDER BY n")] == expected
    config = bigquery.QueryJobConfig(query_parameters=[bigquery.ScalarQueryParameter("v", "NUMERIC", BIG)])
    assert [r.n for r in client.query(f"SELECT n FROM `{ds}.n` WHERE n = @v", job_config=config)] == [BIG]
    arrow = client.query(f"SELECT n FROM `{ds}.n` ORDER BY n").to_arrow(create_bqstorage_client=False)
    assert arrow.column("n").to_pylist() == expected


@known_gap(
    reason="emulator: NUMERIC in SQL DDL -> DuckDB DECIMAL(18, 3): 1.123456789 is silently stored as 1.123"
    " (and 20 integer digits -> 400 'out of range'); declare NUMERIC(38, 9) instead",
)
def test_numeric_column_from_sql_ddl_keeps_nine_decimals(client: bigquery.Client, ds: str) -> None:
    run(client, f"CREATE TABLE `{ds}.n` (n NUMERIC)")
    run(client, f"INSERT INTO `{ds}.n` VALUES (NUMERIC '1.123456789')")
    got = rows(client, f"SELECT n FROM `{ds}.n`")
    gap(got == [(Decimal("1.123"),)], "1.123456789 stored as 1.123")
    assert got == [(Decimal("1.123456789"),)]


def test_numeric_38_9_column_from_sql_ddl_round_trips(client: bigquery.Client, ds: str) -> None:
    run(client, f"CREATE TABLE `{ds}.n` (n NUMERIC(38, 9))")
    run(client, f"INSERT INTO `{ds}.n` VALUES (NUMERIC '{BIG}'), (NUMERIC '1.123456789')")
    assert rows(client, f"SELECT n FROM `{ds}.n` ORDER BY n") == [(Decimal("1.123456789"),), (BIG,)]
    assert schema_of(client, f"{ds}.n") == [("n", "NUMERIC")]


@known_gap(reason="emulator: BIGNUMERIC in SQL DDL is reported by tables.get as NUMERIC")
def test_bignumeric_column_from_sql_ddl(client: bigquery.Client, ds: str) -> None:
    run(client, f"CREATE TABLE `{ds}.b` (b BIGNUMERIC)")
    schema = schema_of(client, f"{ds}.b")
    gap(schema == [("b", "NUMERIC")], "the BIGNUMERIC column reported as NUMERIC")
    assert schema == [("b", "BIGNUMERIC")]


def test_bytes_from_query_parameter_and_insert_rows(client: bigquery.Client, ds: str) -> None:
    client.create_table(bigquery.Table(f"{ds}.b", schema=[bigquery.SchemaField("b", "BYTES")]))
    assert client.insert_rows_json(f"{ds}.b", [{"b": "AP8="}]) == []  # base64 of b"\x00\xff"
    assert rows(client, f"SELECT b FROM `{ds}.b`") == [(b"\x00\xff",)]


@known_gap(reason="emulator: a BYTES query parameter comes back as its base64 text ('AP8='), not bytes")
def test_bytes_query_parameter_round_trips(client: bigquery.Client) -> None:
    config = bigquery.QueryJobConfig(
        query_parameters=[bigquery.ScalarQueryParameter("b", "BYTES", b"\x00\xff")]
    )
    got = [r.b for r in client.query("SELECT @b AS b", job_config=config)]
    gap(got == ["AP8="], "the BYTES parameter came back as its base64 text")
    assert got == [b"\x00\xff"]


@known_gap(
    reason="emulator (sqlglot 30.11; passes with 30.30): bytes literal with \\x00 -> 400 'Null character not permitted in escape string literal'",
)
def test_bytes_literal_with_nul(client: bigquery.Client) -> None:
    with gap_on(BadRequest, "Null character not permitted in escape string literal"):
        got = rows(client, "SELECT b'\\x00'")
    assert got == [(b"\x00",)]


@known_gap(
    reason="emulator (sqlglot 30.11; passes with 30.30): non-UTF-8 bytes literal (\\xff) -> 400 'Invalid UTF-8 in escape string literal'",
)
def test_bytes_literal_not_utf8(client: bigquery.Client) -> None:
    with gap_on(BadRequest, "Invalid UTF-8 in escape string literal"):
        got = rows(client, "SELECT b'\\xff'")
    assert got == [(b"\xff",)]


def test_drop_table_and_exists_check(client: bigquery.Client, ds: str) -> None:
    run(client, f"CREATE TABLE `{ds}.gone` (x INT64)")
    assert client.get_table(f"{ds}.gone").table_id == "gone"
    run(client, f"DROP TABLE `{ds}.gone`")
    with pytest.raises(NotFound):
        client.get_table(f"{ds}.gone")
    run(client, f"DROP TABLE IF EXISTS `{ds}.gone`")


def test_drop_missing_table_raises_not_found(client: bigquery.Client, ds: str) -> None:
    # Depends on sqlglot: passes with 30.11 (the lock); with 30.30 the DROP silently succeeds.
    with pytest.raises(NotFound):
        client.query(f"DROP TABLE `{ds}.never_created`").result()


def test_delete_table_api(client: bigquery.Client, ds: str) -> None:
    run(client, f"CREATE TABLE `{ds}.gone` (x INT64)")
    client.delete_table(f"{ds}.gone")
    with pytest.raises(NotFound):
        client.get_table(f"{ds}.gone")
    client.delete_table(f"{ds}.gone", not_found_ok=True)


# -- loads and job ids --------------------------------------------------------------------------------------


def test_load_parquet_and_read_back(client: bigquery.Client, parquet_load) -> None:
    job, table_id = parquet_load
    assert (job.state, job.error_result, job.output_rows) == ("DONE", None, 2)
    assert [tuple(r.values()) for r in client.list_rows(table_id)] == [
        (1, "a", BIG),
        (2, "b", Decimal("-0.000000001")),
    ]
    assert schema_of(client, table_id) == [("id", "INT64"), ("name", "STRING"), ("amount", "NUMERIC")]


@known_gap(reason="emulator: upload endpoints ignore jobReference.jobId and mint their own 'bqemu_…' id")
def test_load_job_keeps_requested_job_id(parquet_load) -> None:
    job, _ = parquet_load
    gap(job.job_id.startswith("bqemu_"), f"the load job's id is the emulator's own: {job.job_id}")
    assert job.job_id == LOAD_JOB_ID


@known_gap(reason="emulator: get_job(<requested load job id>) -> 404")
def test_get_job_reattaches_to_load_job(client: bigquery.Client, parquet_load) -> None:
    with gap_on(NotFound, LOAD_JOB_ID):
        job = client.get_job(LOAD_JOB_ID)
    assert (job.job_type, job.state, job.output_rows) == ("load", "DONE", 2)


def test_get_job_with_emulator_minted_load_job_id(client: bigquery.Client, parquet_load) -> None:
    job, _ = parquet_load
    again = client.get_job(job.job_id)
    assert (again.job_type, again.state, again.output_rows) == ("load", "DONE", 2)


@known_gap(reason="emulator: a second load with the same job_id runs again (rows appended twice), no 409")
def test_second_load_with_same_job_id_conflicts(client: bigquery.Client, ds: str) -> None:
    table_id = f"{ds}.twice"
    client.create_table(bigquery.Table(table_id, schema=PARQUET_SCHEMA))
    job_id = f"dup_{uuid.uuid4().hex[:10]}"
    load_parquet(client, parquet_bytes(PARQUET_ROWS), table_id, job_id=job_id)
    with pytest.raises(Conflict):
        load_parquet(client, parquet_bytes(PARQUET_ROWS), table_id, job_id=job_id)
        gap(rows(client, f"SELECT COUNT(*) FROM `{table_id}`") == [(4,)], "no 409: the rows appended twice")


@known_gap(
    reason="emulator: load into a missing table -> 400 'Catalog Error: Table with name … does not exist'"
    " (BigQuery creates it: CREATE_IF_NEEDED)",
)
def test_load_parquet_creates_missing_table(client: bigquery.Client, ds: str) -> None:
    with gap_on(BadRequest, "Catalog Error: Table with name autocreated does not exist"):
        load_parquet(client, parquet_bytes(PARQUET_ROWS), f"{ds}.autocreated")
    assert client.get_table(f"{ds}.autocreated").num_rows == 2


def test_query_job_id_reattaches(client: bigquery.Client) -> None:
    job_id = f"q_{uuid.uuid4().hex[:10]}"
    client.query("SELECT 41 + 1 AS answer", job_id=job_id, job_retry=None).result()
    job = client.get_job(job_id)
    assert (job.job_type, job.state, job.query) == ("query", "DONE", "SELECT 41 + 1 AS answer")
    assert [r.answer for r in job.result()] == [42]


@known_gap(reason="emulator: jobs.insert with an existing job id overwrites the job, no 409")
def test_second_query_with_same_job_id_conflicts(client: bigquery.Client) -> None:
    job_id = f"q_{uuid.uuid4().hex[:10]}"
    client.query("SELECT 1", job_id=job_id, job_retry=None).result()
    with pytest.raises(Conflict):
        client.query("SELECT 2", job_id=job_id, job_retry=None).result()
        gap(client.get_job(job_id).query == "SELECT 2", "no 409: the job was overwritten by the second query")


# -- queries ------------------------------------------------------------------------------------------------


def test_query_with_named_parameters_to_arrow(client: bigquery.Client, parquet_load) -> None:
    _, table_id = parquet_load
    config = bigquery.QueryJobConfig(
        query_parameters=[
            bigquery.ScalarQueryParameter("min_id", "INT64", 1),
            bigquery.ScalarQueryParameter("name", "STRING", "a"),
        ]
    )
    sql = f"SELECT id, name, amount FROM `{table_id}` WHERE id > @min_id OR name = @name ORDER BY id"
    table = client.query(sql, job_config=config).to_arrow(create_bqstorage_client=False)
    assert table.to_pylist() == [
        {"id": 1, "name": "a", "amount": BIG},
        {"id": 2, "name": "b", "amount": Decimal("-0.000000001")},
    ]
    assert table.schema.field("id").type == pa.int64()
    assert pa.types.is_decimal(table.schema.field("amount").type)
    config.query_parameters = [
        bigquery.ScalarQueryParameter("min_id", "INT64", 1),
        bigquery.ScalarQueryParameter("name", "STRING", "zzz"),
    ]
    table = client.query(sql, job_config=config).to_arrow(create_bqstorage_client=False)
    assert table.column("id").to_pylist() == [2]


def test_list_rows_to_arrow_via_storage_read_api(client: bigquery.Client, bq_emulator, parquet_load) -> None:
    _, table_id = parquet_load
    table = client.list_rows(table_id).to_arrow(bqstorage_client=bq_emulator.bqstorage_client())
    assert sorted(table.column("id").to_pylist()) == [1, 2]


@known_gap(
    reason="emulator: Storage Read API on a query result -> 404 'schema \"<project>___bqemu_anonymous\" does not exist'",
)
def test_query_to_arrow_via_storage_read_api(client: bigquery.Client, bq_emulator) -> None:
    job = client.query("SELECT x FROM UNNEST([1, 2, 3]) AS x")
    with gap_on(NotFound, f'schema "{client.project}___bqemu_anonymous" does not exist'):
        table = job.to_arrow(bqstorage_client=bq_emulator.bqstorage_client())
    assert sorted(table.column("x").to_pylist()) == [1, 2, 3]


def test_invalid_sql_raises_bad_request(client: bigquery.Client) -> None:
    with pytest.raises(BadRequest, match="SELEC"):
        client.query("SELEC 1").result()


# -- DML and DDL --------------------------------------------------------------------------------------------


@pytest.fixture
def kv(client: bigquery.Client, ds: str) -> str:
    """A table `(k INT64, v STRING)` holding (1, 'a'), (2, 'b'), (3, 'c')."""
    run(client, f"CREATE TABLE `{ds}.kv` (k INT64, v STRING)")
    run(client, f"INSERT INTO `{ds}.kv` (k, v) VALUES (1, 'a'), (2, 'b'), (3, 'c')")
    return f"{ds}.kv"


def test_merge_upsert_on_key(client: bigquery.Client, kv: str) -> None:
    run(
        client,
        f"MERGE `{kv}` T USING (SELECT 2 AS k, 'B' AS v UNION ALL SELECT 4, 'd') S ON T.k = S.k"
        " WHEN MATCHED THEN UPDATE SET v = S.v"
        " WHEN NOT MATCHED THEN INSERT (k, v) VALUES (S.k, S.v)",
    )
    assert rows(client, f"SELECT k, v FROM `{kv}` ORDER BY k") == [(1, "a"), (2, "B"), (3, "c"), (4, "d")]


def test_merge_not_matched_by_source_delete(client: bigquery.Client, kv: str) -> None:
    run(
        client,
        f"MERGE `{kv}` T USING (SELECT 2 AS k) S ON T.k = S.k"
        " WHEN NOT MATCHED BY SOURCE AND T.k > 1 THEN DELETE",
    )
    assert rows(client, f"SELECT k FROM `{kv}` ORDER BY k") == [(1,), (2,)]


def test_create_or_replace_table_as_select(client: bigquery.Client, ds: str, kv: str) -> None:
    run(client, f"CREATE OR REPLACE TABLE `{ds}.c` AS SELECT k, v FROM `{kv}` WHERE k < 3")
    assert rows(client, f"SELECT k, v FROM `{ds}.c` ORDER BY k") == [(1, "a"), (2, "b")]
    run(
        client,
        f"CREATE OR REPLACE TABLE `{ds}.c` AS SELECT v AS name, NUMERIC '1.5' AS n FROM `{kv}` WHERE k = 3",
    )
    assert schema_of(client, f"{ds}.c") == [("name", "STRING"), ("n", "NUMERIC")]
    assert rows(client, f"SELECT name, n FROM `{ds}.c`") == [("c", Decimal("1.5"))]


def test_insert_into_select(client: bigquery.Client, kv: str) -> None:
    run(client, f"INSERT INTO `{kv}` (k, v) SELECT k + 10, UPPER(v) FROM `{kv}` WHERE k >= 2")
    assert rows(client, f"SELECT k, v FROM `{kv}` WHERE k > 3 ORDER BY k") == [(12, "B"), (13, "C")]


def test_transaction_commit(client: bigquery.Client, kv: str) -> None:
    run(
        client,
        f"BEGIN TRANSACTION; INSERT INTO `{kv}` (k, v) VALUES (9, 'z'); DELETE FROM `{kv}` WHERE k = 1;"
        " COMMIT TRANSACTION;",
    )
    assert rows(client, f"SELECT k FROM `{kv}` ORDER BY k") == [(2,), (3,), (9,)]


def test_transaction_rolled_back_on_error(client: bigquery.Client, kv: str) -> None:
    with pytest.raises(BadRequest, match="boom"):
        run(
            client,
            f"BEGIN TRANSACTION; INSERT INTO `{kv}` (k, v) VALUES (9, 'z'); SELECT ERROR('boom');"
            " COMMIT TRANSACTION;",
        )
    assert rows(client, f"SELECT k FROM `{kv}` ORDER BY k") == [(1,), (2,), (3,)]


def test_transaction_rollback_statement(client: bigquery.Client, kv: str) -> None:
    run(client, f"BEGIN TRANSACTION; DELETE FROM `{kv}` WHERE TRUE; ROLLBACK TRANSACTION;")
    assert rows(client, f"SELECT COUNT(*) FROM `{kv}`") == [(3,)]


def test_alter_table_add_column_is_queryable(client: bigquery.Client, kv: str) -> None:
    run(client, f"ALTER TABLE `{kv}` ADD COLUMN note STRING")
    run(client, f"UPDATE `{kv}` SET note = 'n' WHERE k = 1")
    assert rows(client, f"SELECT k, note FROM `{kv}` ORDER BY k") == [(1, "n"), (2, None), (3, None)]


@known_gap(
    reason="emulator: ALTER TABLE ADD COLUMN changes storage but not the catalog: get_table().schema lacks it",
)
def test_alter_table_add_column_shows_in_schema(client: bigquery.Client, kv: str) -> None:
    run(client, f"ALTER TABLE `{kv}` ADD COLUMN note STRING")
    schema = schema_of(client, kv)
    gap(schema == [("k", "INT64"), ("v", "STRING")], "the catalog's schema lacks the added column")
    assert schema == [("k", "INT64"), ("v", "STRING"), ("note", "STRING")]


def test_update_table_adds_nullable_field_to_schema(client: bigquery.Client, kv: str) -> None:
    table = client.get_table(kv)
    table.schema = [*table.schema, bigquery.SchemaField("note", "STRING", mode="NULLABLE")]
    client.update_table(table, ["schema"])
    assert schema_of(client, kv) == [("k", "INT64"), ("v", "STRING"), ("note", "STRING")]
    assert client.get_table(kv).schema[-1].mode == "NULLABLE"


@known_gap(
    reason="emulator: update_table adds the field to the catalog only: SQL on it -> 400 'Binder Error:"
    " Referenced update column note not found in table!'",
)
def test_update_table_new_field_is_writable_by_sql(client: bigquery.Client, kv: str) -> None:
    table = client.get_table(kv)
    table.schema = [*table.schema, bigquery.SchemaField("note", "STRING", mode="NULLABLE")]
    client.update_table(table, ["schema"])
    with gap_on(BadRequest, "Binder Error: Referenced update column note not found in table"):
        run(client, f"UPDATE `{kv}` SET note = 'n' WHERE k = 1")
    assert rows(client, f"SELECT k, note FROM `{kv}` ORDER BY k") == [(1, "n"), (2, None), (3, None)]


def test_named_parameter_in_a_comment_or_a_string_is_not_bound(client: bigquery.Client) -> None:
    # As in BigQuery; bqemulator bound these too (patched in tests/support/bq_emulator_server.py).
    config = bigquery.QueryJobConfig(query_parameters=[bigquery.ScalarQueryParameter("p", "INT64", 3)])
    sql = "-- rows where x = @p\nSELECT 'a@p' AS s, @p + @p AS x /* @p */"
    assert [tuple(r.values()) for r in client.query(sql, job_config=config).result()] == [("a@p", 6)]
