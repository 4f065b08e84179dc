"""pytest fixture: a local BigQuery emulator in a subprocess, for the real google-cloud-bigquery client.

Enable it in a conftest with `pytest_plugins = ["support.bq_emulator"]`; the emulator itself is
`support.bq_emulator_server` (offline, in memory; a test tool, so it lives with the tests). A test
can make chosen statements fail there (:meth:`BqEmulator.inject_fault`); the client stays unpatched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from support.net import free_port

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "nightshift-local"
START_TIMEOUT_S = 60.0
FAULTS_PATH = "/_nightshift/faults"  # as in support.bq_emulator_server (not imported: it patches bqemulator)


@dataclass(frozen=True)
class BqEmulator:
    """A running emulator: where it listens, its default project and its log file."""

    endpoint: str
    grpc_endpoint: str
    project: str
    log_path: Path
    process: subprocess.Popen[bytes]

    def client(self):  # -> google.cloud.bigquery.Client (imported lazily: it is slow to import)
        """A real BigQuery client pointed at the emulator, with anonymous credentials."""
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import bigquery

        return bigquery.Client(
            project=self.project,
            credentials=AnonymousCredentials(),
            client_options=ClientOptions(api_endpoint=self.endpoint),
        )

    def bqstorage_client(self):  # -> google.cloud.bigquery_storage.BigQueryReadClient
        """A BigQuery Storage Read API client on the emulator's gRPC port (plain-text channel)."""
        import grpc
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import bigquery_storage
        from google.cloud.bigquery_storage_v1.services.big_query_read.transports import (
            BigQueryReadGrpcTransport,
        )

        channel = grpc.insecure_channel(self.grpc_endpoint)
        transport = BigQueryReadGrpcTransport(channel=channel, credentials=AnonymousCredentials())
        return bigquery_storage.BigQueryReadClient(transport=transport)

    def log(self) -> str:
        """Everything the emulator has written to stdout/stderr so far."""
        return self.log_path.read_text(errors="replace")

    def inject_fault(
        self,
        match: str,
        *,
        reason: str = "invalidQuery",
        message: str = "injected fault",
        times: int = 1,
        after_execute: bool = True,
    ) -> None:
        """Fail the next ``times`` query jobs (or statements of a script) whose SQL matches the regex
        ``match`` with ``reason``;
        ``after_execute``: the statement runs, then its changes are rolled back (it fails part-way)."""
        fault = {
            "match": match,
            "reason": reason,
            "message": message,
            "times": times,
            "after_execute": after_execute,
        }
        self._faults("POST", fault)

    def faults(self) -> list[dict[str, Any]]:
        """The injected faults, each with ``fired``: how many jobs it failed."""
        return self._faults("GET")

    def clear_faults(self) -> list[dict[str, Any]]:
        """Remove every injected fault; returns them as they were."""
        return self._faults("DELETE")

    def _faults(self, method: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.endpoint}{FAULTS_PATH}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())


def _answers(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint}/healthz", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def start_emulator(workdir: Path, project: str = PROJECT) -> BqEmulator:
    """Start the emulator and wait until it answers; on failure stop it and fail with its log."""
    port, grpc_port = free_port(), free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log_path = workdir / "bq-emulator.log"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(ROOT / "tests"), str(ROOT / "include"), os.environ.get("PYTHONPATH")])
        ),
        "BQEMU_ENABLE_FORMAT_EXTENSIONS": "false",
        "PYTHONUNBUFFERED": "1",
    }
    command = [sys.executable, "-m", "support.bq_emulator_server"]
    command += [
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--grpc-port",
        str(grpc_port),
        "--project",
        project,
        "--faults",
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
    emulator = BqEmulator(
        endpoint=endpoint,
        grpc_endpoint=f"127.0.0.1:{grpc_port}",
        project=project,
        log_path=log_path,
        process=process,
    )
    deadline = time.monotonic() + START_TIMEOUT_S
    while not _answers(endpoint):
        exited = process.poll() is not None
        if exited or time.monotonic() > deadline:
            stop_emulator(emulator)
            why = f"exited with status {process.returncode}" if exited else "did not answer in time"
            pytest.fail(f"BigQuery emulator {why} ({endpoint}); its log:\n{emulator.log()}", pytrace=False)
        time.sleep(0.1)
    return emulator


def stop_emulator(emulator: BqEmulator) -> None:
    """SIGTERM, then SIGKILL if it has not exited after 10 s."""
    if emulator.process.poll() is None:
        emulator.process.terminate()
        try:
            emulator.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            emulator.process.kill()
            emulator.process.wait()


@pytest.fixture(scope="session")
def bq_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BqEmulator]:
    """A BigQuery emulator shared by the whole session (state persists between tests)."""
    emulator = start_emulator(tmp_path_factory.mktemp("bq-emulator"))
    try:
        yield emulator
    finally:
        stop_emulator(emulator)
