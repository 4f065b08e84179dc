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
from pathlib import Path
from typing import Any

# Read by bqemulator's Settings; the explicit Settings argument below wins anyway.
os.environ["BQEMU_ENABLE_FORMAT_EXTENSIONS"] = "false"

if importlib.util.find_spec("numpy") is None:  # pragma: no cover - environment problem
    raise SystemExit("bq_emulator: numpy is required next to bqemulator (pip install numpy)")

import structlog  # noqa: E402

# Until the server configures logging: drop the debug lines bqemulator logs while importing.
structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))

import duckdb  # noqa: E402
from bqemulator.api.routes import upload as _upload  # noqa: E402
from bqemulator.config import LogFormat, LogLevel, PersistenceMode, Settings  # noqa: E402
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
    args = parser.parse_args(argv)
    settings = build_settings(
        args.host, args.port, args.project, args.data_dir, args.log_level, args.grpc_port
    )
    try:
        asyncio.run(serve(settings))
    except KeyboardInterrupt:  # pragma: no cover
        sys.exit(130)


if __name__ == "__main__":
    main()
