"""The dbt marts the daily sales report reads, built by dbt itself (its own venv) on the test's warehouse.

``build_report_marts`` runs ``dbt run --full-refresh`` for the report's models and what they read,
against the ``nightshift_warehouse`` connection of the test (the profile Cosmos would render).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DBT = Path(os.environ.get("NIGHTSHIFT_DBT") or ROOT / ".venv-dbt/bin/dbt")
REPORT_MODELS = ("+daily_orders", "+top_employees_by_sales")


def dbt(folder: Path, *args: str, vars_: dict | None = None) -> subprocess.CompletedProcess:
    """One dbt command on the project with the profile from ``nightshift_warehouse``; logs under ``folder``."""
    from nightshift.dbt_project import PROFILE_NAME, TARGET_NAME, WarehouseProfileMapping
    from nightshift_core import dbt as core

    folder.mkdir(parents=True, exist_ok=True)
    mapping = WarehouseProfileMapping(conn_id="nightshift_warehouse")
    (folder / "profiles.yml").write_text(mapping.get_profile_file_contents(PROFILE_NAME, TARGET_NAME))
    command = [str(DBT), *args, "--project-dir", str(core.PROJECT_DIR), "--profiles-dir", str(folder),
               "--target-path", str(folder / "target"), "--log-path", str(folder / "logs")]  # fmt: skip
    if vars_:
        command += ["--vars", json.dumps(vars_)]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=300, env={**os.environ, "DO_NOT_TRACK": "1"}
    )


def build_report_marts(folder: Path, *, models: tuple[str, ...] = REPORT_MODELS, test: bool = False) -> None:
    """Build (``test``: and test) the marts the report reads; a failure shows dbt's output."""
    done = dbt(folder, "build" if test else "run", "--full-refresh", "--select", *models)
    assert done.returncode == 0, done.stdout[-4000:]


MART_TABLES = ("daily_orders",)
MART_INPUTS = ("orders", "orderdetails")  # what +daily_orders reads (models/staging), in classicmodels


def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache folder for the session: modules that sync the same sample share one dbt build."""
    folder = tmp_path_factory.getbasetemp() / "report-marts"
    folder.mkdir(exist_ok=True)
    return folder


def _fingerprint(con) -> str:
    """The marts' inputs in the attached warehouse ``w``: every column and row of MART_INPUTS."""
    seen = []
    for table in MART_INPUTS:
        seen.append(con.execute(f"DESCRIBE w.classicmodels.{table}").fetchall())
        seen.append(
            con.execute(f"SELECT COUNT(*), SUM(hash(t)) FROM w.classicmodels.{table} AS t").fetchone()
        )
    return hashlib.sha256(repr(seen).encode()).hexdigest()[:16]


def report_marts(folder: Path, warehouse: Path, cache: Path) -> None:
    """The report's per-day marts in the DuckDB file ``warehouse``: built by dbt the first time, then
    copied from the folder ``cache``, keyed by a hash of their inputs (the same synced orders and order
    lines give the same marts), so each test of the session on the same sample does not pay for a dbt run."""
    import duckdb

    with duckdb.connect() as con:
        con.execute(f"ATTACH '{warehouse}' AS w")
        cached = cache / f"marts-{_fingerprint(con)}.duckdb"
    if not cached.is_file():
        build_report_marts(folder, models=("+daily_orders",))
        with duckdb.connect(str(cached)) as con:
            con.execute(f"ATTACH '{warehouse}' AS w (READ_ONLY)")
            for table in MART_TABLES:
                con.execute(f"CREATE TABLE {table} AS SELECT * FROM w.classicmodels_agg.{table}")
        return
    with duckdb.connect(str(warehouse)) as con:
        con.execute(f"ATTACH '{cached}' AS cache (READ_ONLY)")
        con.execute("CREATE SCHEMA IF NOT EXISTS classicmodels_agg")
        for table in MART_TABLES:
            con.execute(f"CREATE OR REPLACE TABLE classicmodels_agg.{table} AS SELECT * FROM cache.{table}")
