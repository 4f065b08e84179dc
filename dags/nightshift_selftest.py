"""Self-test: proves the deployment can reach its connections and deliver e-mail."""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, task

from nightshift.dag_defaults import default_args

REQUIRED_CONNECTIONS = ("nightshift_smtp", "nightshift_warehouse")

DOC = """
### Nightshift self-test

Run it after deploying or changing connections. It

1. checks that the connections every Nightshift DAG relies on exist
   (`nightshift_smtp`, `nightshift_warehouse`);
2. writes one heartbeat row per run to `nightshift_ops.selftest_heartbeat` in the
   warehouse (merge on the run id, so re-running a run changes nothing) and reads it back;
3. sends a test message through the failure notifier and `nightshift_smtp`
   (with `make run` it lands as an `.eml` file in `.nightshift/mail/`);
4. fails on purpose when triggered with `fail=true`, so you can see a real
   failure alert arrive (the task fails without retries).
"""


@dag(
    dag_id="nightshift_selftest",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["nightshift", "ops"],
    doc_md=DOC,
    default_args=default_args(),
    params={
        "fail": Param(
            False,
            type="boolean",
            title="Fail on purpose",
            description="Make the last task fail (no retries) to test the failure alert.",
        ),
    },
)
def nightshift_selftest():
    @task
    def check_connections() -> dict[str, str]:
        from airflow.sdk import BaseHook
        from airflow.sdk.exceptions import AirflowNotFoundException

        found, missing = {}, []
        for conn_id in REQUIRED_CONNECTIONS:
            try:
                found[conn_id] = BaseHook.get_connection(conn_id).conn_type
            except AirflowNotFoundException:
                missing.append(conn_id)
        if missing:
            raise RuntimeError(
                f"missing Airflow connection(s) {missing}: define them in airflow_settings.yaml "
                "(local), as AIRFLOW_CONN_<ID> environment variables, or in your secrets backend; "
                "see docs/configuration.md 'Connections'"
            )
        return found

    @task
    def check_warehouse(connections: dict[str, str]) -> dict[str, object]:
        import pyarrow as pa
        from airflow.sdk import get_current_context

        from nightshift.hooks.warehouse import WarehouseHook, job_key
        from nightshift_core.warehouse import TableRef
        from nightshift_core.warehouse.sql import render

        context = get_current_context()
        table = TableRef("nightshift_ops", "selftest_heartbeat")
        schema = pa.schema(
            [pa.field("run_id", pa.string(), nullable=False), ("run_after", pa.timestamp("us", "UTC"))]
        )
        row = {"run_id": context["run_id"], "run_after": context["dag_run"].run_after}
        with WarehouseHook().get_conn() as warehouse:
            staged = warehouse.stage(
                job_key(context), table, [pa.RecordBatch.from_pylist([row], schema)], schema
            )
            result = warehouse.publish(staged, "merge", key=["run_id"])
            found = warehouse.query(render("selftest_heartbeat_count.sql"), {"run_id": row["run_id"]})
        if found.to_pylist() != [{"n": 1}]:
            raise RuntimeError(
                f"heartbeat for {row['run_id']} not readable from {table}: {found.to_pylist()}"
            )
        return {"engine": warehouse.engine, "table": str(table), "reattached": result.reattached}

    @task
    def send_test_email(connections: dict[str, str]) -> list[str]:
        from airflow.sdk import get_current_context

        from nightshift.notifiers.email import FailureEmailNotifier, alert_from_context

        context = get_current_context()
        alert = alert_from_context(
            {**context, "exception": "none: this is a self-test message, not a failure"}
        )
        return FailureEmailNotifier().send(alert, subject=f"[nightshift] self-test OK: {alert.run_id}")

    @task
    def maybe_fail(recipients: list[str], params: dict | None = None) -> str:
        from airflow.sdk.exceptions import AirflowFailException

        if params and params.get("fail"):
            # AirflowFailException skips the remaining retries: one alert, right away.
            raise AirflowFailException("self-test failure requested with Param fail=true")
        return f"self-test passed; test message sent to {', '.join(recipients)}"

    connections = check_connections()
    check_warehouse(connections) >> maybe_fail(send_test_email(connections))


nightshift_selftest()
