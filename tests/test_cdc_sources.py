"""Which change log a dialect's ``mode: cdc`` reads: picked by change capture (sync/cdc/sources.py), never
by the dialect, which imports nothing of sync/cdc."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from nightshift_core.errors import PermanentError, SourceDefinitionError
from nightshift_core.sync import dialects
from nightshift_core.sync.cdc import run, table
from nightshift_core.sync.cdc.mysql_source import BinlogSource
from nightshift_core.sync.cdc.postgres_source import LogicalSource
from nightshift_core.sync.cdc.sources import log_source

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("name", "kind"), [("mysql", BinlogSource), ("postgres", LogicalSource)])
def test_a_dialect_with_a_log_gets_its_source_by_name_or_instance(name, kind):
    for dialect in (name, dialects.get(name)):
        logs = log_source(dialect, "orders")
        assert type(logs) is kind and logs.dialect is dialects.get(name)


def test_a_dialect_subclass_reads_its_parents_log():
    class Managed(dialects.PostgresDialect):
        name = "managed_pg"

    logs = log_source(Managed(), "orders")
    assert type(logs) is LogicalSource and type(logs.dialect) is Managed


def test_a_dialect_without_a_log_fails_naming_the_modes_that_read_it():
    expected = (
        "table 'orders': mode: cdc reads MySQL/MariaDB or PostgreSQL logs, not sqlite; use mode: incremental "
        "or full"
    )
    with pytest.raises(SourceDefinitionError) as refused:
        log_source("sqlite", "orders")
    assert str(refused.value) == expected and isinstance(refused.value, PermanentError)
    # the run asks the registry before it touches the source or the warehouse
    cdc = run.CdcTable("orders", ("id",), "shop_sync")
    with pytest.raises(SourceDefinitionError, match="not sqlite; use mode: incremental or full"):
        run.sync_table(None, "sqlite", None, cdc, None, None, None)


def test_cdc_table_keeps_its_import_path_and_its_slot_names():
    assert run.CdcTable is table.CdcTable, "from nightshift_core.sync.cdc.run import CdcTable still works"
    # existing deployments keep their slots: the names must not change
    assert table.CdcTable("orders", ("id",), "shop_sync").slot == "shop_sync_orders"
    long = table.CdcTable("Order Items", ("id",), "2026-Shop.sync_daily_with_a_rather_long_dag_identifier")
    assert long.slot == "t2026_shop_sync_daily_with_a_rather_long__df392a29"


def test_the_dialects_load_no_change_capture_and_the_registry_no_log_reader():
    probe = (
        "import sys; import nightshift_core.sync.dialects; "
        "print(sorted(m for m in sys.modules if m.startswith('nightshift_core.sync.cdc'))); "
        "import nightshift_core.sync.cdc.sources; "
        "print(sorted(m for m in sys.modules if m.endswith(('_source', '_binlog', '_logical'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT / "include")},
    ).stdout.splitlines()  # fmt: skip
    assert out == ["[]", "[]"], out
