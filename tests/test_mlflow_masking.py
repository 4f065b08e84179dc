"""The MLflow tracking store's password, inside the ``tracking_uri`` extra, never reaches a task log.

Airflow masks a connection's password and the extras with a sensitive name; ``tracking_uri`` is
neither, so the hook registers the password in the URI with the secrets masker when it reads the
connection. The log line is written by the task supervisor's own log-file writer (the one that
writes every task's log, with Airflow's masking processors), to a real file.
"""

from __future__ import annotations

import json
from urllib.parse import quote

PASSWORD = "mlflow-Pw/with@odd:chars"
TRACKING_URI = f"postgresql://mlflow:{quote(PASSWORD, safe='')}@127.0.0.1:5432/mlflow"
REGISTRY_PASSWORD = "registry-pw-91"


def test_a_task_log_line_with_the_tracking_uri_shows_stars_for_its_password(monkeypatch, tmp_path):
    from airflow.sdk.execution_time.supervisor import _configure_logging

    from nightshift.hooks.mlflow import MlflowRegistryHook

    extra = {
        "tracking_uri": TRACKING_URI,
        "registry_uri": f"postgresql://registry:{REGISTRY_PASSWORD}@127.0.0.1:5432/registry",
        "artifact_location": str(tmp_path / "artifacts"),
    }
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_MASKED", json.dumps({"conn_type": "generic", "extra": extra}))
    log_path = tmp_path / "attempt=1.log"
    task_log, handle = _configure_logging(str(log_path), client=None)
    try:
        hook = MlflowRegistryHook("mlflow_masked")
        task_log.info(f"tracking store {hook.tracking_uri}")
        task_log.info(f"registry {hook.extra['registry_uri']}")
    finally:
        handle.close()

    events = [json.loads(line)["event"] for line in log_path.read_text().splitlines()]
    assert events == [
        "tracking store postgresql://mlflow:***@127.0.0.1:5432/mlflow",
        "registry postgresql://registry:***@127.0.0.1:5432/registry",
    ], events
    text = log_path.read_text()
    for secret in (PASSWORD, quote(PASSWORD, safe=""), REGISTRY_PASSWORD):
        assert secret not in text, f"{secret!r} is in the task log"
