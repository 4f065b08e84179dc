"""Files holding secrets or data are private to their owner and never at a predictable shared path."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.fixture
def open_umask():
    """Files created with default permissions come out world-readable and writable."""
    previous = os.umask(0)
    yield
    os.umask(previous)


@pytest.mark.parametrize("before", ["none", "world-readable file", "symlink"])
def test_local_stack_passwords_file_is_readable_by_its_owner_only(tmp_path, monkeypatch, open_umask, before):
    import local_stack

    home, elsewhere = tmp_path / "airflow", tmp_path / "elsewhere.json"
    home.mkdir()
    elsewhere.write_text("{}\n")
    path = home / "passwords.json"
    if before == "world-readable file":  # as an earlier version left it
        path.write_text('{"admin": "old"}\n')
        path.chmod(0o644)
    elif before == "symlink":  # planted: writing through it would put the password elsewhere
        path.symlink_to(elsewhere)
    monkeypatch.setenv("NIGHTSHIFT_RUNTIME", str(tmp_path))
    monkeypatch.setenv("NIGHTSHIFT_ADMIN_PASSWORD", "pw-under-test")
    # The metadata database and the settings are not what this test is about.
    monkeypatch.setattr(local_stack, "_airflow", lambda args, env: None)
    monkeypatch.setattr(local_stack, "load_settings", lambda settings, env: None)

    local_stack.init({"AIRFLOW_HOME": str(home)}, sample_source=False)

    assert not path.is_symlink() and mode(path) == 0o600, oct(mode(path))
    assert json.loads(path.read_text()) == {"admin": "pw-under-test"}
    assert elsewhere.read_text() == "{}\n"
    assert sorted(p.name for p in home.iterdir()) == ["passwords.json"], "no temporary file left behind"


def test_bigquery_spool_files_are_private_and_not_at_a_predictable_path(bq_emulator, tmp_path, monkeypatch):
    import pyarrow as pa

    from nightshift_core.warehouse import JobKey, TableRef, bigquery_engine

    shared = tmp_path / "tmp"  # like /tmp: everybody may create files there
    shared.mkdir()
    shared.chmod(0o1777)
    spooled: list[tuple[Path, int]] = []
    spool_parquet = bigquery_engine.spool_parquet

    def watch(batches, schema, path, **kwargs):
        result = spool_parquet(batches, schema, path, **kwargs)
        spooled.append((path, mode(path.parent)))
        return result

    monkeypatch.setattr(bigquery_engine, "spool_parquet", watch)
    wh = bigquery_engine.BigQueryWarehouse(bq_emulator.client(), use_storage_api=False, spool_dir=str(shared))
    schema = pa.schema([pa.field("id", pa.int64(), nullable=False)])
    batch = pa.RecordBatch.from_pylist([{"id": 1}], schema=schema)
    for _ in range(2):  # a retried task stages the same job again
        wh.stage(JobKey("d", "t", "s", "e"), TableRef("spool", "items"), [batch], schema)

    (first, first_mode), (second, second_mode) = spooled
    assert first.parent != second.parent, "the same job must not spool to the same path twice"
    for path, folder_mode in spooled:
        assert path.parent.parent == shared and path.parent.name.startswith("nightshift-spool-"), path
        assert folder_mode == 0o700, f"{path.parent} is {oct(folder_mode)}"
    assert list(shared.iterdir()) == [], "spool folders are removed"
    wh.drop_staging()
