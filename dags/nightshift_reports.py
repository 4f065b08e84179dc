"""Airflow report DAGs, one per include/config/reports/*.yaml (built by nightshift.report_dags).

The words "airflow" and "dag" must appear in this file: the dag-processor's safe mode skips
files without them.
"""

from __future__ import annotations

from nightshift.report_dags import build_all

for _dag in build_all():
    globals()[_dag.dag_id] = _dag
