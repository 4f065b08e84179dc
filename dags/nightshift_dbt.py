"""Airflow DAG for the analysts' dbt project (include/dbt), built by nightshift.dbt_dags with Cosmos.

The words "airflow" and "dag" must appear in this file: the dag-processor's safe mode skips
files without them.
"""

from __future__ import annotations

from nightshift.dbt_dags import build_all

for _dag in build_all():
    globals()[_dag.dag_id] = _dag
