"""Point at a database, get its sync definition: ``nightshift sync init``'s pure part.

:func:`discover` reads one source connection (a DB-API connection; the caller opens and closes it)
through the catalog class of its database (``CATALOGS``, one module per database) and the sync's own
type mapping, and returns the definition's YAML text; :func:`write` validates that text with the
sync's config loader before it writes the file.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from nightshift_core.sync import dialects
from nightshift_core.sync.discover.base import Catalog, ColumnTypes, SourceCatalog, column_types
from nightshift_core.sync.discover.mysql import MySqlCatalog
from nightshift_core.sync.discover.plan import (
    Options,
    Plan,
    is_plain,
    keep_on_query_path,
    listed,
    plan,
    render,
)
from nightshift_core.sync.discover.postgres import PostgresCatalog

CATALOGS: dict[str, type[SourceCatalog]] = {"mysql": MySqlCatalog, "postgres": PostgresCatalog}

__all__ = ["CATALOGS", "DiscoverError", "Options", "Plan", "discover", "write"]


class DiscoverError(ValueError):
    """The source or the output cannot be used; the message names it and the fix."""


def catalog_for(dialect: str) -> SourceCatalog:
    try:
        return CATALOGS[dialect]()
    except KeyError:
        raise DiscoverError(
            f"`sync init` reads MySQL/MariaDB and PostgreSQL catalogs, not {dialect!r}: write that definition by hand"
        ) from None


def discover(conn: Any, dialect: str, options: Options) -> tuple[str, Plan]:
    """The definition's text and the choices behind it, read from ``conn`` (left open)."""
    reader = catalog_for(dialect)
    server = dialects.get(dialect).server_zone(conn)  # the sync's own reading of the server's zone
    catalog: Catalog = reader.read(conn)
    types: dict[str, ColumnTypes] = {}
    for table in listed(catalog, options):
        if is_plain(table.name) and all(is_plain(c.name) for c in table.columns):
            types[table.name] = column_types(conn, dialect, table.name)
    result = plan(catalog, types, server, options)
    if options.cdc:
        _check_log(conn, dialect, result, types)
    return render(result, dialect=dialect), result


def _check_log(conn: Any, dialect: str, result: Plan, types: dict[str, ColumnTypes]) -> None:
    """With ``--cdc``: the server's log settings (header lines naming each to change) and, per table on
    ``cdc``, what the log path itself refuses before a first run (:meth:`LogSource.check_table`: columns
    the binlog cannot give back exactly, a PostgreSQL replica identity that does not hold the key): such a
    table stays on the query path, with the reason and its fix."""
    from nightshift_core.errors import PermanentError
    from nightshift_core.sync.cdc.preflight import PreflightError
    from nightshift_core.sync.cdc.sources import log_source

    server = f"the server of {result.catalog.where}"
    logs = log_source(dialect, "")  # (a dialect with a catalog here has a log: the name shows in no error)
    try:
        logs.check_server(conn, server)
    except PreflightError as exc:
        result.log_problems = [str(p) for p in exc.problems]
    for entry in result.tables:
        if entry.mode != "cdc" or entry.skipped:
            continue
        try:
            logs.check_table(conn, entry.name, entry.primary_key, types[entry.name].described, server=server)
        except PermanentError as exc:  # the checks' refusals: a definition error, a replica identity
            keep_on_query_path(entry, str(exc))
    captured = sum(entry.mode == "cdc" and not entry.skipped for entry in result.tables)
    full = logs.check_capacity(conn, captured, server) if captured else None
    if full:
        result.log_problems.append(full)


def validate(text: str, name: str) -> None:
    """Load ``text`` with the sync's config loader, as the DAG file will; raise DiscoverError if it fails."""
    from nightshift_core.sync.config import SyncConfigError, load

    with tempfile.TemporaryDirectory(prefix="nightshift-sync-init-") as folder:
        path = Path(folder) / f"{name}.yaml"
        path.write_text(text)
        try:
            load(path)
        except SyncConfigError as exc:
            raise DiscoverError(
                f"the generated definition does not load (a defect of sync init): {exc}"
            ) from None


def write(text: str, path: Path, name: str, *, force: bool = False) -> None:
    """Validate ``text``, then write it to ``path`` (never over an existing file without ``force``)."""
    validate(text, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(path, "w" if force else "x") as fh:  # "x": the refusal and the creation are one step
            fh.write(text)
    except FileExistsError:
        raise DiscoverError(
            f"{path} exists: choose another --output, or pass --force to replace it"
        ) from None
