"""Test session set-up: an isolated AIRFLOW_HOME, set before anything imports Airflow."""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "test-output"
OUTPUT.mkdir(exist_ok=True)

_home = Path(tempfile.mkdtemp(prefix="nightshift-airflow-home-"))
atexit.register(shutil.rmtree, _home, ignore_errors=True)
os.environ.update(
    {
        "AIRFLOW_HOME": str(_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_home / 'airflow.db'}",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
    }
)
for path in (ROOT / "include", ROOT / "plugins", ROOT / "tests"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

pytest_plugins = ["support.services", "support.bq_emulator", "support.fake_sheets"]
