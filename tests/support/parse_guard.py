"""Make DAG parsing fail on any I/O: network, database, Variables, Connections.

Used by the integrity tests instead of mocking lookups away: a DAG file that calls
``Variable.get`` or opens a socket at parse time gets an import error naming the call.
:func:`files_opened` shows which files a parse reads.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from unittest import mock


class ParseTimeIOError(RuntimeError):
    """Raised when DAG-file top-level code does I/O."""


def _refuse(what: str):
    def refuse(*args, **kwargs):
        raise ParseTimeIOError(
            f"{what} during DAG parsing: move it into a task (or a template like "
            "{{ var.value.x }} / {{ conn.x }}) so parsing stays fast and offline"
        )

    return refuse


@contextlib.contextmanager
def no_io_while_parsing() -> Iterator[None]:
    from airflow.sdk.execution_time import context as sdk_context

    patches = [
        mock.patch.object(socket.socket, "connect", _refuse("network connection")),
        mock.patch.object(socket.socket, "connect_ex", _refuse("network connection")),
        mock.patch.object(socket, "getaddrinfo", _refuse("DNS lookup")),
        mock.patch.object(sqlite3, "connect", _refuse("database connection (sqlite)")),
        mock.patch.object(sdk_context, "_get_variable", _refuse("Variable.get")),
        mock.patch.object(sdk_context, "_get_variable_keys", _refuse("Variable.keys")),
        mock.patch.object(sdk_context, "_get_connection", _refuse("connection lookup")),
        mock.patch.object(sdk_context, "_async_get_connection", _refuse("connection lookup")),
    ]
    import sqlalchemy.engine

    patches += [
        mock.patch.object(sqlalchemy.engine.Engine, "connect", _refuse("database connection (SQLAlchemy)")),
        mock.patch.object(
            sqlalchemy.engine.Engine, "raw_connection", _refuse("database connection (SQLAlchemy)")
        ),
    ]
    for module, attr, what in (("psycopg2", "connect", "PostgreSQL"), ("MySQLdb", "connect", "MySQL")):
        with contextlib.suppress(ImportError):
            patches.append(
                mock.patch.object(__import__(module), attr, _refuse(f"database connection ({what})"))
            )
    with contextlib.ExitStack() as stack:
        for patch in patches:
            stack.enter_context(patch)
        yield


# (thread id, paths) of the open files_opened() blocks; the audit hook cannot be removed once added.
_recording: list[tuple[int, list[str]]] = []


def _record_open(event: str, args: tuple) -> None:
    if event != "open" or not _recording:
        return
    thread, paths = _recording[-1]
    path = args[0]
    if threading.get_ident() != thread or not isinstance(path, str | bytes | os.PathLike):
        return  # another thread, or os.fdopen of a descriptor
    if sys._getframe(1).f_code.co_filename.startswith("<frozen importlib"):
        return  # the import system reading a module's code
    paths.append(os.fsdecode(path))


@contextlib.contextmanager
def files_opened() -> Iterator[set[Path]]:
    """The files this thread opens inside the block (resolved), other than Python modules being imported.

    Recorded by an audit hook ("open" events), so every way in counts: ``open``, ``io.open``,
    ``os.open``, pathlib, fsspec. The set is filled when the block ends.
    """
    if not getattr(_record_open, "installed", False):
        sys.addaudithook(_record_open)
        _record_open.installed = True  # type: ignore[attr-defined]
    paths: list[str] = []
    opened: set[Path] = set()
    _recording.append((threading.get_ident(), paths))
    try:
        yield opened
    finally:
        _recording.pop()
        opened.update(Path(p).resolve() for p in paths)
