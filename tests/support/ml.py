"""The retraining job's stand-ins: an MLflow registry in a temporary SQLite file, and a fake
task context whose ``xcom_pull`` returns what earlier ``execute`` calls returned."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any


def use_mlflow(monkeypatch, folder: Path, conn_id: str = "mlflow_default") -> dict[str, str]:
    extra = {
        "tracking_uri": f"sqlite:///{folder / 'mlflow.db'}",
        "artifact_location": str(folder / "artifacts"),
    }
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "generic", "extra": extra})
    )
    return extra


class Run:
    """One DAG run: ``run(op)`` executes an operator with this run's context and keeps its XCom."""

    def __init__(
        self, dag_id: str, end: dt.datetime, params: dict[str, Any] | None = None, run_id: str = ""
    ) -> None:
        self.dag_id = dag_id
        self.end = end
        self.params = params or {}
        self.run_id = run_id or f"scheduled__{end.isoformat()}"
        self.xcom: dict[str, Any] = {}

    def context(self, task_id: str) -> dict[str, Any]:
        ti = SimpleNamespace(
            dag_id=self.dag_id, task_id=task_id, run_id=self.run_id, map_index=-1, try_number=1,
            xcom_pull=lambda task_ids: self.xcom.get(task_ids),
        )  # fmt: skip
        return {
            "ti": ti,
            "dag_run": SimpleNamespace(dag_id=self.dag_id, run_id=self.run_id, run_after=self.end),
            "params": self.params,
            "data_interval_start": self.end - dt.timedelta(days=1),
            "data_interval_end": self.end,
        }

    def run(self, operator) -> Any:
        result = operator.execute(self.context(operator.task_id))
        self.xcom[operator.task_id] = result
        return result
