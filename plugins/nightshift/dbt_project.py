"""What the Cosmos tasks need around dbt: the profile from ``nightshift_warehouse``, the DuckDB file
lock, and failures that name the audit and its failing rows.

Nothing here runs at DAG-parse time: the connection is read when a task renders its profile.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException
from cosmos.profiles.base import BaseProfileMapping

from nightshift_core import dbt as core

ROOT = Path(__file__).resolve().parents[2]
PROFILE_NAME = "nightshift"
TARGET_NAME = "nightshift"
# Fallback dataset for models without +schema (every shipped one has one).
DEFAULT_SCHEMA = "nightshift_dbt"
# What dbt gets of its worker's environment, besides the DBT_* variables: the programs and home it
# runs with, locale and time zone, temp folder, proxies and CA bundles, and Google's application
# default credentials (a key file's path, for BigQuery's oauth method). Cosmos's default
# (append_env=True) would hand dbt all of it, connections and Airflow's keys included, for any
# model to read with env_var(). The profile's own secrets come from the profile mapping.
DBT_ENV_NAMES = frozenset(
    {
        "PATH", "HOME", "USER", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR",
        "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
        "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE",
        "GOOGLE_APPLICATION_CREDENTIALS", "CLOUDSDK_CONFIG",
    }
)  # fmt: skip


def dbt_executable() -> str:
    """dbt of its own virtualenv: NIGHTSHIFT_DBT, else .venv-dbt beside the project (scripts/bootstrap.sh)."""
    return os.environ.get("NIGHTSHIFT_DBT") or str(ROOT / ".venv-dbt" / "bin" / "dbt")


def dbt_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a dbt invocation gets (Cosmos ``env`` with ``append_env=False``): the names
    of DBT_ENV_NAMES and every DBT_* variable of ``environ`` (this process's), nothing else."""
    environ = os.environ if environ is None else environ
    return {
        name: value for name, value in environ.items() if name in DBT_ENV_NAMES or name.startswith("DBT_")
    }


def dbt_isolation() -> dict[str, Any]:
    """Operator arguments of every dbt task: an explicit environment, not the worker's."""
    return {"env": dbt_env(), "append_env": False}


class WarehouseProfileMapping(BaseProfileMapping):
    """dbt profile from the ``nightshift_warehouse`` connection (extras as for ``WarehouseHook``).

    ``engine: duckdb`` → dbt-duckdb on the same file (``path``); ``engine: bigquery`` → dbt-bigquery with
    the project and location of the connection and the service account of ``gcp_conn_id``
    (``google_cloud_default``): its ``key_path`` or ``keyfile_dict``, else application-default
    credentials. ``anonymous: true`` with ``api_endpoint`` (a local emulator) sends a dummy token.
    """

    airflow_connection_type = "generic"
    secret_fields = ["private_key"]

    @property
    def dbt_profile_type(self) -> str:  # type: ignore[override]
        return self._engine()

    def _engine(self) -> str:
        from nightshift.hooks.warehouse import WarehouseHook

        return WarehouseHook(self.conn_id).engine

    @property
    def profile(self) -> dict[str, Any]:
        from nightshift.hooks.warehouse import WarehouseHook

        hook = WarehouseHook(self.conn_id)
        if hook.engine == "duckdb":
            path = hook.require("path", '"/data/warehouse.duckdb"')
            return {
                "type": "duckdb",
                "path": str(path),
                "schema": DEFAULT_SCHEMA,
                "threads": 1,
                **self.profile_args,
            }
        extra = hook.extra
        profile: dict[str, Any] = {
            "type": "bigquery",
            "schema": DEFAULT_SCHEMA,
            "location": extra.get("location") or "US",
            "threads": 4,
            "job_retries": 2,
        }
        if extra.get("api_endpoint"):
            profile["api_endpoint"] = extra["api_endpoint"]
        if extra.get("anonymous"):
            profile.update(
                method="oauth-secrets", token="anonymous", project=hook.require("project", '"my-project"')
            )
            return {**profile, **self.profile_args}
        google = WarehouseHook.get_connection(extra.get("gcp_conn_id") or "google_cloud_default").extra_dejson
        project = (
            extra.get("project")
            or google.get("project")
            or google.get("extra__google_cloud_platform__project")
        )
        if not project:
            raise core.DbtProjectError(
                f"connection {self.conn_id!r}: no BigQuery project; set extra 'project' or the Google connection's"
            )
        profile["project"] = project
        key_path = google.get("key_path") or google.get("extra__google_cloud_platform__key_path")
        keyfile = google.get("keyfile_dict") or google.get("extra__google_cloud_platform__keyfile_dict")
        if key_path:
            profile.update(method="service-account", keyfile=key_path)
        elif keyfile:
            import json

            key = json.loads(keyfile) if isinstance(keyfile, str) else dict(keyfile)
            # The private key travels as an environment variable, not in the profiles.yml on disk.
            self._private_key = key.pop("private_key", None)
            key["private_key"] = self.get_env_var_format("private_key")
            profile.update(method="service-account-json", keyfile_json=key)
        else:
            profile["method"] = "oauth"  # application-default credentials (workload identity, gcloud)
        return {**profile, **self.profile_args}

    @property
    def mock_profile(self) -> dict[str, Any]:
        return {"type": "duckdb", "path": ":memory:", "schema": DEFAULT_SCHEMA}

    @property
    def env_vars(self) -> dict[str, str]:
        key = getattr(self, "_private_key", None)
        env = {"DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "DO_NOT_TRACK": "1"}
        if key:
            env[self.get_env_var_name("private_key")] = key
        return env

    def can_claim_connection(self) -> bool:
        return True


_HELD: contextlib.ExitStack | None = None


def hold_warehouse_lock(context: Any, timeout: float = 600) -> None:
    """``pre_execute`` of every dbt task: hold the warehouse as every Nightshift writer does.

    DuckDB lets one process write a file at a time and dbt runs DuckDB itself, so the task holds the
    warehouse's lock (``WarehouseHook.lock``) for dbt's whole invocation, waiting up to ``timeout``
    seconds for it. It is released by ``release_warehouse_lock`` (after dbt, and by the failure and
    retry callbacks), at the latest when the task's process ends. BigQuery: nothing to hold.
    """
    global _HELD
    from nightshift.hooks.warehouse import WarehouseHook

    if _HELD is not None:
        return
    held = contextlib.ExitStack()
    held.enter_context(WarehouseHook().lock(timeout))
    _HELD = held


def release_warehouse_lock(context: Any = None, result: Any = None) -> None:
    """``post_execute`` and failure/retry callback: let the next writer in."""
    global _HELD
    held, _HELD = _HELD, None
    if held is not None:
        with contextlib.suppress(OSError):
            held.close()


# dbt/engine messages that a retry cannot change: the SQL or the project must be fixed.
PERMANENT = (
    "Compilation Error",
    "Parser Error",
    "Parsing Error",
    "Binder Error",
    "Catalog Error",
    "Syntax error",
)


def raise_on_problems(project_dir: str, **kwargs: Any) -> None:
    """Cosmos ``callback``: runs after dbt, before Cosmos checks its exit code.

    A failed audit (test) fails the task at once, without retries (the data will not change by
    retrying), naming each test, its failing-row count and the audit table holding the rows; the
    failure notifier e-mails this message. Errors name the node and its file; SQL and compile errors
    fail at once too, others (a warehouse hiccup) are retried.
    """
    found = core.problems(Path(project_dir) / "target")
    if not found:
        return
    message = core.summary(found)
    if all(p.kind == "test" and p.status == "fail" for p in found) or any(
        marker in p.message for p in found for marker in PERMANENT
    ):
        raise AirflowFailException(message)
    raise AirflowException(message)
