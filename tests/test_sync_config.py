"""Sync definitions: strict validation with errors naming file, key and fix."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from nightshift_core.sync.config import SyncConfigError, load, load_all

ROOT = Path(__file__).resolve().parents[1]
GOOD = """
source: {conn_id: src}
target: {dataset: sales}
tables:
  - {name: orders, mode: incremental, primary_key: [id], cursor: updated_at, lag: 10m}
  - {name: currencies, primary_key: code}
"""


def write(tmp_path: Path, text: str, name: str = "shop.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_good_file_with_defaults(tmp_path):
    config = load(write(tmp_path, GOOD))
    assert config.dag_id == "sync_shop" and config.source.pool == "src_pool" and config.schedule == "@daily"
    orders, currencies = config.tables
    assert orders.lag.total_seconds() == 600 and orders.cursor == "updated_at"
    assert currencies.mode == "full" and currencies.primary_key == ("code",)


def test_source_timezone_is_read(tmp_path):
    config = load(
        write(
            tmp_path, GOOD.replace("source: {conn_id: src}", "source: {conn_id: src, timezone: Asia/Tokyo}")
        )
    )
    assert config.source.timezone == "Asia/Tokyo"
    assert load(write(tmp_path, GOOD, "plain.yaml")).source.timezone is None


def test_shipped_classicmodels_definition():
    config = load(ROOT / "include/config/syncs/classicmodels.yaml")
    assert {t.name for t in config.tables} == {
        "offices", "employees", "productlines", "products", "customers", "orders", "orderdetails", "payments",
    }  # fmt: skip
    assert not config.post_load, "the aggregates are dbt models now (include/dbt)"


@pytest.mark.parametrize(
    ("replace", "by", "message"),
    [
        (
            "target: {dataset: sales}",
            "target: {dataset: sales, region: eu}",
            "unknown key(s) ['region'] in target",
        ),
        ("primary_key: code", "primary_kee: code", "unknown key(s) ['primary_kee'] in tables[1]"),
        (
            "{name: currencies, primary_key: code}",
            "{name: currencies}",
            "tables[1] (currencies).primary_key is missing",
        ),
        ("name: orders,", "name: 'orders; DROP TABLE x',", "invalid table name 'orders; DROP TABLE x'"),
        ("cursor: updated_at, ", "", "tables[0] (orders).cursor is missing"),
        ("lag: 10m", "lag: soon", "lag is 'soon'; write a duration like 10m"),
        ("mode: incremental", "mode: sometimes", "mode is 'sometimes'; use 'full', 'incremental' or 'cdc'"),
        ("mode: incremental", "mode: cdc", "tables[0] (orders).cursor is only used with mode: incremental"),
        (
            "{name: currencies, primary_key: code}",
            "{name: currencies, mode: cdc}",
            "tables[1] (currencies).primary_key is missing",
        ),
        (
            "{name: currencies, primary_key: code}",
            "{name: currencies, mode: cdc, primary_key: code, deletes: never}",
            "tables[1] (currencies).deletes is 'never'; use soft",
        ),
        (
            "{name: currencies, primary_key: code}",
            "{name: currencies, primary_key: code, deletes: hard}",
            "tables[1] (currencies).deletes only applies to mode: cdc",
        ),
        ("source: {conn_id: src}", "source: {conn_id: src, mode: log}", "source.mode is 'log'; use full"),
        (
            "primary_key: [id]",
            "primary_key: [id], exclude: [id]",
            "exclude removes key/cursor column(s) ['id']",
        ),
        (
            "source: {conn_id: src}",
            "source: {conn_id: src, timezone: Mars/Olympus}",
            "source.timezone: unknown time zone 'Mars/Olympus': use an IANA name",
        ),
    ],
)
def test_bad_definitions_name_file_key_and_fix(tmp_path, replace, by, message):
    assert replace in GOOD
    path = write(tmp_path, GOOD.replace(replace, by))
    with pytest.raises(SyncConfigError) as info:
        load(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_post_load_sql_must_exist(tmp_path):
    path = write(tmp_path, GOOD + "post_load: [{name: agg, sql: nope/missing.sql, target: sales_agg.x}]\n")
    with pytest.raises(
        SyncConfigError, match=r"post_load\[0\]\.sql: include/sql/nope/missing.sql does not exist"
    ):
        load(path)


@pytest.mark.parametrize(
    "sql", ["{outside}", "{sql_dir}/daily.sql", "../outside.sql", "link.sql", "linked/x.sql"]
)
def test_post_load_sql_must_stay_under_include_sql(tmp_path, monkeypatch, sql):
    import nightshift_core.sync.config as sync_config

    sql_dir, outside = tmp_path / "sql", tmp_path / "outside.sql"
    sql_dir.mkdir()
    (sql_dir / "daily.sql").write_text("SELECT 1")
    outside.write_text("SELECT 2")
    (sql_dir / "link.sql").symlink_to(outside)
    (sql_dir / "linked").symlink_to(tmp_path)
    (tmp_path / "x.sql").write_text("SELECT 3")
    monkeypatch.setattr(sync_config, "SQL_DIR", sql_dir)
    post_load = "post_load: [{{name: agg, sql: '{sql}', target: sales_agg.x}}]\n"
    good = load(write(tmp_path, GOOD + post_load.format(sql="daily.sql")))
    assert [p.sql for p in good.post_load] == ["daily.sql"]

    sql = sql.format(outside=outside, sql_dir=sql_dir)
    path = write(tmp_path, GOOD + post_load.format(sql=sql))
    with pytest.raises(SyncConfigError) as info:
        load(path)
    assert str(info.value) == (
        f"{path}: post_load[0].sql is {sql!r}, which leads out of include/sql: give a path relative to "
        "include/sql without '..' (e.g. reporting/daily_sales.sql) and no symlink leading out"
    )


def test_duplicate_dag_ids_across_files(tmp_path):
    write(tmp_path, GOOD, "a.yaml")
    write(tmp_path, GOOD.replace("source:", "dag_id: sync_a\nsource:"), "b.yaml")
    with pytest.raises(SyncConfigError, match="dag_id 'sync_a' is also used by"):
        load_all(tmp_path)


def test_a_bad_file_is_a_dag_import_error_naming_file_and_key(tmp_path, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    syncs = tmp_path / "syncs"
    syncs.mkdir()
    write(syncs, GOOD.replace(", primary_key: code", ""), "broken.yaml")
    dags = tmp_path / "dags"
    dags.mkdir()
    shutil.copy(ROOT / "dags/nightshift_syncs.py", dags)
    monkeypatch.setenv("NIGHTSHIFT_SYNC_DIR", str(syncs))
    bag = DagBag(dag_folder=str(dags))
    assert bag.dag_ids == []
    (error,) = bag.import_errors.values()
    assert "broken.yaml" in error and "primary_key is missing" in error


def test_a_keyless_table_is_full_with_an_explicit_empty_key(tmp_path):
    config = load(write(tmp_path, GOOD.replace("primary_key: code", "primary_key: []")))
    assert config.tables[1].mode == "full" and config.tables[1].primary_key == ()
    keyless_incremental = GOOD.replace("primary_key: [id], cursor", "primary_key: [], cursor")
    with pytest.raises(SyncConfigError, match=r"tables\[0\] \(orders\)\.primary_key is missing"):
        load(write(tmp_path, keyless_incremental))


def test_cdc_tables_per_table_or_for_the_whole_source(tmp_path):
    text = """
source: {conn_id: src, mode: cdc}
target: {dataset: sales}
tables:
  - {name: orders, primary_key: [id], deletes: hard}
  - {name: currencies, primary_key: code}
  - {name: rates, mode: full, primary_key: code}
"""
    orders, currencies, rates = load(write(tmp_path, text)).tables
    assert (orders.mode, orders.deletes) == ("cdc", "hard")
    assert (currencies.mode, currencies.deletes) == ("cdc", "soft")
    assert rates.mode == "full"


def test_partition_by_names_a_column_of_the_table(tmp_path):
    text = GOOD.replace(
        "cursor: updated_at, lag: 10m}", "cursor: updated_at, lag: 10m, partition_by: created_on}"
    )
    orders, currencies = load(write(tmp_path, text)).tables
    assert orders.partition_by == "created_on" and currencies.partition_by is None
    with pytest.raises(SyncConfigError, match=r"tables\[0\] \(orders\)\.partition_by"):
        load(write(tmp_path, GOOD.replace("lag: 10m}", "lag: 10m, partition_by: 'day; DROP'}"), "bad.yaml"))
    excluded = GOOD.replace("lag: 10m}", "lag: 10m, partition_by: created_on, exclude: [created_on]}")
    with pytest.raises(SyncConfigError, match="partition_by column 'created_on' is excluded"):
        load(write(tmp_path, excluded, "excluded.yaml"))
