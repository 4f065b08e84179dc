"""WarehouseHook: the ``nightshift_warehouse`` connection -> a Warehouse engine.

Connection extras (read by name):

``engine``       ``duckdb`` (embedded default) or ``bigquery``
``path``         DuckDB only: the database file
``gcp_conn_id``  BigQuery: Google connection with the credentials (default ``google_cloud_default``)
``project``      BigQuery: project of the datasets and jobs (default: the Google connection's)
``location``     BigQuery: dataset/job location (default ``US``)
``api_endpoint`` BigQuery: override the API URL (a local emulator); with ``anonymous: true``
                 no credentials are sent
``use_storage_api`` BigQuery: read query results through the Storage Read API (default true;
                 false for an emulator without it)
"""

from __future__ import annotations

import contextlib
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

from nightshift_core.errors import PermanentError

if TYPE_CHECKING:
    from nightshift_core.warehouse import JobKey, Warehouse

ENGINES = ("duckdb", "bigquery")


class WarehouseConfigError(ValueError, PermanentError):
    """The warehouse connection is incomplete; the message names the key to set."""


class WarehouseHook(BaseHook):
    conn_name_attr = "warehouse_conn_id"
    default_conn_name = "nightshift_warehouse"
    conn_type = "generic"
    hook_name = "Nightshift warehouse"

    def __init__(self, warehouse_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.warehouse_conn_id = warehouse_conn_id

    @cached_property
    def extra(self) -> dict[str, Any]:
        return self.get_connection(self.warehouse_conn_id).extra_dejson

    def require(self, name: str, example: str) -> Any:
        """Extra ``name`` of the connection; missing, an error naming it with ``example`` as the fix."""
        value = self.extra.get(name)
        if value in (None, ""):
            raise WarehouseConfigError(
                f"connection {self.warehouse_conn_id!r}: set extra {name!r} (e.g. {example})"
            )
        return value

    @property
    def engine(self) -> str:
        engine = self.require("engine", '"duckdb" or "bigquery"')
        if engine not in ENGINES:
            raise WarehouseConfigError(
                f"connection {self.warehouse_conn_id!r}: extra 'engine' is {engine!r}; use one of {ENGINES}"
            )
        return engine

    def get_conn(self) -> Warehouse:
        if self.engine == "duckdb":
            from nightshift_core.warehouse.duckdb_engine import DuckDBWarehouse

            return DuckDBWarehouse(self.require("path", '"/data/warehouse.duckdb"'))
        return self._bigquery()

    def lock(self, timeout: float | None = None) -> contextlib.AbstractContextManager[None]:
        """Hold the warehouse against every other Nightshift writer while something outside the engine
        writes it (dbt): DuckDB's file lock, the one each of its operations takes; with ``timeout``
        seconds to get it. BigQuery takes concurrent writers: nothing to hold, and no client built."""
        if self.engine == "bigquery":
            return contextlib.nullcontext()
        return self.get_conn().lock(timeout)

    def _bigquery(self) -> Warehouse:
        from google.cloud import bigquery

        from nightshift_core.warehouse.bigquery_engine import BigQueryWarehouse

        endpoint = self.extra.get("api_endpoint")
        location = self.extra.get("location") or "US"
        if self.extra.get("anonymous"):
            from google.api_core.client_options import ClientOptions
            from google.auth.credentials import AnonymousCredentials

            project = self.require("project", '"my-project"')
            client = bigquery.Client(
                project=project,
                location=location,
                credentials=AnonymousCredentials(),
                client_options=ClientOptions(api_endpoint=endpoint) if endpoint else None,
            )
        else:
            from airflow.providers.google.cloud.hooks.bigquery import BigQueryHook

            google = BigQueryHook(gcp_conn_id=self.extra.get("gcp_conn_id") or "google_cloud_default")
            credentials, default_project = google.get_credentials_and_project_id()
            project = self.extra.get("project") or default_project
            if not project:
                raise WarehouseConfigError(
                    f"connection {self.warehouse_conn_id!r}: no BigQuery project; set extra 'project' "
                    "or the project of the Google connection"
                )
            client = bigquery.Client(
                project=project,
                location=location,
                credentials=credentials,
                client_options=google.get_client_options(api_endpoint_override=endpoint),
            )
        use_storage_api = self.extra.get("use_storage_api", True) not in (False, "false", "False")
        return BigQueryWarehouse(client, location=location, use_storage_api=use_storage_api)


def job_key(context: Any) -> JobKey:
    """The try-independent identity of this task's work: its data interval, else its run."""
    from nightshift_core.warehouse import JobKey

    ti = context["ti"]
    task = ti.task_id if getattr(ti, "map_index", -1) in (-1, None) else f"{ti.task_id}[{ti.map_index}]"
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    if start is not None and end is not None:
        return JobKey(ti.dag_id, task, start.isoformat(), end.isoformat())
    return JobKey(ti.dag_id, task, run_id=ti.run_id)
