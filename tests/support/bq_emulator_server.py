"""A local, offline BigQuery emulator that the real google-cloud-bigquery client can talk to.

Wraps the `bqemulator` package (DuckDB-backed) with four fixes, applied by monkeypatching at
import time so nothing in site-packages is edited:

* DuckDB extensions are never downloaded: `INSTALL spatial` / `INSTALL avro` are replaced by
  `SET autoinstall_known_extensions=false` and `SET autoload_known_extensions=false`. GEOGRAPHY
  works only if the spatial extension is already installed locally.
* `*/*` is accepted as an upload media type: google-cloud-bigquery sends it on load jobs.
* `@name` inside a comment or a string literal is not a query parameter (as in BigQuery):
  bqemulator bound those too, and the query then failed with a parameter count mismatch.
* numpy must be importable next to bqemulator (checked up front, with a clear message).

With ``--faults`` it also takes test-only fault injections over HTTP (see :class:`Fault`): a test
makes the next query job(s) whose SQL matches a pattern fail as BigQuery reports a failed job
(``status.errorResult``), optionally after the statement has run, its changes rolled back, as a
DML statement that fails part-way does in BigQuery; a statement of a multi-statement script is
matched on its own, and the script's open transaction is rolled back. The client library is never
patched.

    PYTHONPATH=tests python -m support.bq_emulator_server --host 127.0.0.1 --port 9050 --project local-project
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import logging
import os
import re
import signal
import sys
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# Read by bqemulator's Settings; the explicit Settings argument below wins anyway.
os.environ["BQEMU_ENABLE_FORMAT_EXTENSIONS"] = "false"

if importlib.util.find_spec("numpy") is None:  # pragma: no cover - environment problem
    raise SystemExit("bq_emulator: numpy is required next to bqemulator (pip install numpy)")

import structlog  # noqa: E402
from fastapi import APIRouter, Request  # noqa: E402  (bqemulator's own web framework)

# Until the server configures logging: drop the debug lines bqemulator logs while importing.
structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))

import duckdb  # noqa: E402
from bqemulator import server as _server  # noqa: E402
from bqemulator.api.routes import upload as _upload  # noqa: E402
from bqemulator.config import LogFormat, LogLevel, PersistenceMode, Settings  # noqa: E402
from bqemulator.domain.errors import InvalidQueryError  # noqa: E402
from bqemulator.jobs import executor as _executor  # noqa: E402
from bqemulator.scripting.interpreter import ScriptInterpreter  # noqa: E402
from bqemulator.server import EmulatorServer  # noqa: E402
from bqemulator.sql import parameters as _parameters  # noqa: E402
from bqemulator.storage import engine as _engine  # noqa: E402
from bqemulator.types import geography as _geography  # noqa: E402

OFFLINE_SETTINGS = (
    "SET autoinstall_known_extensions = false",
    "SET autoload_known_extensions = false",
)
ANY_MEDIA_TYPE = "*/*"


def make_offline(conn: duckdb.DuckDBPyConnection) -> bool:
    """Forbid extension downloads on `conn`; load spatial only if it is already on disk.

    Returns whether the spatial extension is loaded.
    """
    for statement in OFFLINE_SETTINGS:
        conn.execute(statement)
    try:
        conn.execute("LOAD spatial")  # reads a local file only: autoinstall is off
    except duckdb.Error:
        return False
    return True


def _engine_load_spatial(self: Any) -> None:
    """Replacement for DuckDBEngine._load_spatial: no INSTALL, no failure when absent."""
    if not make_offline(self._connection):
        _engine._log.warning("duckdb.offline", spatial_loaded=False, effect="GEOGRAPHY unavailable")


def _engine_load_format_extensions(self: Any) -> None:
    """Replacement for DuckDBEngine._load_format_extensions: never `INSTALL avro` (Avro loads fail)."""


def _geography_conv_conn() -> duckdb.DuckDBPyConnection:
    """Replacement for geography._ensure_conv_conn: same singleton, without INSTALL spatial."""
    with _geography._CONV_LOCK:
        if _geography._CONV_CONN is None:
            conn = duckdb.connect(":memory:")
            if not make_offline(conn):
                conn.close()
                raise RuntimeError("GEOGRAPHY needs the DuckDB spatial extension, which is not installed")
            _geography._CONV_CONN = conn
        return _geography._CONV_CONN


#: Comments and quoted text in the (DuckDB-translated) SQL: no parameter lives there.
_NOT_CODE = re.compile(r"--[^\n]*|/\*.*?\*/|'(?:[^'\\]|\\.|'')*'|\"(?:[^\"]|\"\")*\"|`[^`]*`", re.DOTALL)
_bind_named_everywhere = _parameters._bind_named


def _bind_named_in_code(sql: str, params: list[dict[str, Any]]) -> tuple[str, list[Any]]:
    """Replacement for parameters._bind_named: bind ``@name``/``$name`` outside comments and strings."""
    out: list[str] = []
    values: list[Any] = []
    start = 0
    for match in _NOT_CODE.finditer(sql):
        code, bound = _bind_named_everywhere(sql[start : match.start()], params)
        out += [code, match.group(0)]
        values += bound
        start = match.end()
    code, bound = _bind_named_everywhere(sql[start:], params)
    return "".join([*out, code]), values + bound


def apply_patches() -> None:
    """Patch bqemulator for offline use (idempotent)."""
    _engine.DuckDBEngine._load_spatial = _engine_load_spatial
    _engine.DuckDBEngine._load_format_extensions = _engine_load_format_extensions
    _geography._ensure_conv_conn = _geography_conv_conn
    _parameters._bind_named = _bind_named_in_code
    if ANY_MEDIA_TYPE not in _upload._PERMITTED_MEDIA_CONTENT_TYPES:
        _upload._PERMITTED_MEDIA_CONTENT_TYPES = (*_upload._PERMITTED_MEDIA_CONTENT_TYPES, ANY_MEDIA_TYPE)


apply_patches()


# -- fault injection (``--faults``; tests only) --------------------------------------------------
FAULTS_PATH = "/_nightshift/faults"


@dataclass
class Fault:
    """The next ``times`` query jobs whose SQL matches ``match`` (``re.search``) fail.

    The job ends DONE with ``status.errorResult = {reason, message}``, as a failed BigQuery job does.
    ``after_execute``: the statement runs first and its changes are then rolled back (a statement
    that fails part-way); otherwise it fails before it runs. ``fired`` counts the jobs it failed.
    """

    match: str
    reason: str = "invalidQuery"
    message: str = "injected fault"
    times: int = 1
    after_execute: bool = True
    fired: int = 0


_faults: list[Fault] = []
_faults_lock = threading.Lock()
_run_single_sql = _executor._run_single_sql


class InjectedJobError(InvalidQueryError):
    """A failed job whose ``reason`` is the fault's (a route error the jobs API reports in the job)."""

    def __init__(self, fault: Fault) -> None:
        super().__init__(fault.message)
        self.bq_reason = fault.reason  # type: ignore[misc] - per instance: the reason the test chose


def _take_fault(sql: str) -> Fault | None:
    with _faults_lock:
        for fault in _faults:
            if fault.fired < fault.times and re.search(fault.match, sql):
                fault.fired += 1
                return fault
    return None


async def _run_single_sql_with_faults(project_id: str, bq_sql: str, query_params, ctx, **kwargs: Any):
    """Replacement for executor._run_single_sql: fail the statement when a fault matches it."""
    fault = _take_fault(bq_sql)
    if fault is None:
        return await _run_single_sql(project_id, bq_sql, query_params, ctx, **kwargs)
    if fault.after_execute:
        async with ctx.engine.write_lock():
            ctx.engine.execute("BEGIN TRANSACTION")
            try:
                await _run_single_sql(project_id, bq_sql, query_params, ctx, **kwargs)
            finally:
                ctx.engine.execute("ROLLBACK")
    raise InjectedJobError(fault)


_exec_script_sql = ScriptInterpreter._exec_sql


async def _exec_script_sql_with_faults(self: ScriptInterpreter, sql: str) -> None:
    """Replacement for ScriptInterpreter._exec_sql: a statement of a script fails as a single one does;
    the script's open transaction is then rolled back by the interpreter, as in BigQuery."""
    fault = _take_fault(sql)
    if fault is None:
        return await _exec_script_sql(self, sql)
    if fault.after_execute:
        await _exec_script_sql(self, sql)
    raise InjectedJobError(fault)


def _faults_router() -> APIRouter:
    router = APIRouter()

    @router.get(FAULTS_PATH)
    def list_faults() -> list[dict[str, Any]]:
        with _faults_lock:
            return [asdict(f) for f in _faults]

    @router.post(FAULTS_PATH)
    async def add_fault(request: Request) -> dict[str, Any]:
        fields = await request.json()
        fault = Fault(**{k: v for k, v in fields.items() if k != "fired"})
        re.compile(fault.match)
        with _faults_lock:
            _faults.append(fault)
        return asdict(fault)

    @router.delete(FAULTS_PATH)
    def clear_faults() -> list[dict[str, Any]]:
        with _faults_lock:
            cleared = [asdict(f) for f in _faults]
            _faults.clear()
        return cleared

    return router


def enable_faults() -> None:
    """Serve the fault endpoints and check every query job's statements (scripts' too) against them."""
    _executor._run_single_sql = _run_single_sql_with_faults
    ScriptInterpreter._exec_sql = _exec_script_sql_with_faults
    create_app = _server.create_app

    def create_app_with_faults(context):
        app = create_app(context)
        app.include_router(_faults_router())
        return app

    _server.create_app = create_app_with_faults


def build_settings(
    host: str,
    port: int,
    project: str,
    data_dir: Path | None = None,
    log_level: LogLevel = LogLevel.WARNING,
    grpc_port: int = 0,
) -> Settings:
    """Emulator settings: in memory unless `data_dir` is given."""
    return Settings(
        rest_host=host,
        rest_port=port,
        grpc_host=host,
        grpc_port=grpc_port,
        default_project_id=project,
        persistence_mode=PersistenceMode.PERSISTENT if data_dir else PersistenceMode.EPHEMERAL,
        data_dir=data_dir,
        enable_format_extensions=False,
        tracing_enabled=False,
        log_level=log_level,
        log_format=LogFormat.JSON,
    )


async def serve(settings: Settings) -> None:
    """Run the emulator until SIGINT/SIGTERM."""
    server = EmulatorServer(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    try:
        print(
            f"bq_emulator listening on {server.rest_url} (gRPC {server.grpc_endpoint},"
            f" project {settings.default_project_id})",
            flush=True,
        )
        await stop.wait()
    finally:
        await server.stop()


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9050, help="REST port (0: any free port)")
    parser.add_argument("--grpc-port", type=int, default=0, help="Storage Read/Write API port (0: any)")
    parser.add_argument("--project", default="local-project", help="default project id")
    parser.add_argument("--data-dir", type=Path, default=None, help="persist tables here (default: memory)")
    parser.add_argument("--log-level", type=LogLevel, default=LogLevel.WARNING, choices=list(LogLevel))
    parser.add_argument("--faults", action="store_true", help=f"accept fault injections at {FAULTS_PATH}")
    args = parser.parse_args(argv)
    if args.faults:
        enable_faults()
    settings = build_settings(
        args.host, args.port, args.project, args.data_dir, args.log_level, args.grpc_port
    )
    try:
        asyncio.run(serve(settings))
    except KeyboardInterrupt:  # pragma: no cover
        sys.exit(130)


if __name__ == "__main__":
    main()
