"""The ``nightshift`` command: ``nightshift sync init SOURCE`` writes a sync definition for a live database.

SOURCE is an Airflow connection id (looked up as Airflow does: ``AIRFLOW_CONN_<ID>``, a secrets
backend, the metadata database of ``AIRFLOW_HOME``) or a URL (``mysql://user:pass@host:3306/db``,
``postgresql://user@host:5432/db``). The catalog reading and the choices are pure logic
(:mod:`nightshift_core.sync.discover`); this module only resolves the connection, opens it through
the provider's hook and writes the file.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

_URL_SCHEMES = {"mysql": "mysql", "mariadb": "mysql", "postgres": "postgres", "postgresql": "postgres"}
_URL_CONN_ID = "nightshift_sync_init_url"  # the URL is handed to Airflow under this id, in this process only


class CliError(Exception):
    """A problem the user fixes: the message names it and the fix (and never holds a password)."""


def masked(url: str) -> str:
    """``url`` with its password replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))


def _scrub(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret else text


def _identifier(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_").lower()
    return ("db_" + name if name[:1].isdigit() else name)[:100]


def resolve(source: str, conn_id: str | None) -> tuple[str, str, str, str | None]:
    """(conn id to look up, conn id the definition names, how to name the source in messages, password)."""
    if "://" not in source:
        return source, conn_id or source, f"connection {source!r}", None
    parts = urlsplit(source)
    scheme = parts.scheme.lower()
    if scheme not in _URL_SCHEMES:
        raise CliError(
            f"URL {masked(source)}: scheme {parts.scheme!r} is not a database `sync init` reads; use "
            "mysql://user:password@host:3306/database or postgresql://user:password@host:5432/database"
        )
    if not parts.hostname or not parts.path.strip("/"):
        raise CliError(
            f"URL {masked(source)}: needs a host and a database, e.g. {scheme}://user@127.0.0.1/shop"
        )
    airflow_scheme = "postgres" if _URL_SCHEMES[scheme] == "postgres" else "mysql"
    os.environ[f"AIRFLOW_CONN_{_URL_CONN_ID.upper()}"] = urlunsplit(parts._replace(scheme=airflow_scheme))
    return _URL_CONN_ID, conn_id or "", f"URL {masked(source)}", parts.password


def open_source(lookup: str, shown: str, password: str | None):
    """(DB-API connection, dialect, database name) through the provider's hook for the connection."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    from nightshift_core.sync import dialects

    try:
        connection = BaseHook.get_connection(lookup)
    except AirflowNotFoundException:
        raise CliError(
            f"{shown} is not defined here: define it (AIRFLOW_CONN_{lookup.upper()} as a URI or JSON, "
            "a secrets backend, or the metadata database of AIRFLOW_HOME), or pass the database's URL "
            "instead, e.g. postgresql://user@host:5432/database"
        ) from None
    password = password or connection.password
    try:
        dialect = dialects.for_connection(connection.conn_type).name
    except ValueError as exc:
        raise CliError(f"{shown}: {exc}") from None
    try:
        conn = BaseHook.get_hook(lookup).get_conn()
    except Exception as exc:  # noqa: BLE001 - any driver's refusal, reported with the fix
        detail = (
            _scrub(str(exc).strip(), password).splitlines()[0] if str(exc).strip() else type(exc).__name__
        )
        raise CliError(
            f"{shown}: cannot connect to {connection.conn_type} at {connection.host}:{connection.port or ''} "
            f"(database {connection.schema!r}, login {connection.login!r}): {detail}. Check the host, port, "
            "login, password and database"
        ) from None
    return conn, dialect, connection.schema or ""


def sync_init(args: argparse.Namespace) -> int:
    from nightshift_core.sync.config import SYNC_DIR
    from nightshift_core.sync.discover import DiscoverError, Options, discover, write

    if not re.fullmatch(r"\d+[smhd]", args.lag):
        raise CliError(f"--lag {args.lag!r}: write a duration like 10m, 2h or 1d")
    if args.name is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,99}", args.name):
        raise CliError(
            f"--name {args.name!r}: use letters, digits and '_' (it names the dataset and the DAG)"
        )
    lookup, conn_id, shown, password = resolve(args.source, args.conn_id)
    conn, dialect, database = open_source(lookup, shown, password)
    name = args.name or _identifier(database)
    if not name:
        raise CliError(f"{shown} names no database: pass --name for the definition")
    options = Options(
        name=name, conn_id=conn_id or f"{name}_source", include=tuple(args.include or ("*",)),
        exclude=tuple(args.exclude or ()), views=args.views, append_only=tuple(args.append_only or ()),
        lag=args.lag, start_date=dt.datetime.now(dt.UTC).date(), cdc=args.cdc,
    )  # fmt: skip
    try:
        text, plan = discover(conn, dialect, options)
    except DiscoverError as exc:
        raise CliError(str(exc)) from None
    finally:
        conn.close()
    output = args.output or str(SYNC_DIR / f"{name}.yaml")
    try:
        if output == "-":
            from nightshift_core.sync.discover import validate

            validate(text, name)
            sys.stdout.write(text)
        else:
            write(text, Path(output), name, force=args.force)
    except DiscoverError as exc:
        raise CliError(str(exc)) from None
    listed = [t for t in plan.tables if not t.skipped]
    cdc = sum(t.mode == "cdc" for t in listed)
    incremental = sum(t.mode == "incremental" for t in listed)
    excluded = sum(len(t.exclude) for t in listed)
    print(
        f"{'definition' if output == '-' else output}: {len(listed)} table(s) from {shown} ("
        + (f"{cdc} cdc, " if args.cdc else "")
        + f"{incremental} incremental, {len(listed) - incremental - cdc} full, {excluded} column(s) excluded"
        + (f", {len(plan.tables) - len(listed)} commented out" if len(listed) < len(plan.tables) else "")
        + (f", source.timezone {plan.timezone} to confirm" if plan.timezone else "")
        + f"); the DAG will be sync_{name}",
        file=sys.stderr,
    )
    if plan.log_problems:
        print(
            f"warning: change capture cannot run on {shown} yet (the file's header lists why); until then, "
            "its cdc tables' runs fail, naming it:\n" + "\n".join(f"  - {p}" for p in plan.log_problems),
            file=sys.stderr,
        )
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="nightshift", description="Nightshift's command line.")
    commands = top.add_subparsers(dest="command", required=True)
    sync = commands.add_parser("sync", help="sync definitions").add_subparsers(
        dest="sync_command", required=True
    )
    init = sync.add_parser(
        "init",
        help="read a live database and write its sync definition",
        description="Read a MySQL/MariaDB or PostgreSQL database's catalog and write a commented sync "
        "definition (include/config/syncs/<name>.yaml unless --output) that syncs every table in one round.",
    )
    init.add_argument("source", help="an Airflow connection id, or a URL: mysql://user:pass@host:3306/db, "
                      "postgresql://user@host:5432/db")  # fmt: skip
    init.add_argument("--name", help="the definition's name: file <name>.yaml, DAG sync_<name>, dataset "
                      "<name> (default: the database's name)")  # fmt: skip
    init.add_argument("--conn-id", help="the connection id the definition names (default: SOURCE when it is "
                      "one, else <name>_source)")  # fmt: skip
    init.add_argument("-o", "--output", help="file to write ('-': standard output); default "
                      "include/config/syncs/<name>.yaml")  # fmt: skip
    init.add_argument("--include", action="append", metavar="GLOB", help="only tables matching (repeatable)")
    init.add_argument(
        "--exclude", action="append", metavar="GLOB", help="leave tables matching out (repeatable)"
    )
    init.add_argument("--views", action="store_true", help="list views too (skipped by default)")
    init.add_argument("--append-only", action="append", metavar="GLOB",
                      help="tables whose rows are only ever added: their integer key becomes the cursor")  # fmt: skip
    init.add_argument("--lag", default="10m", help="lag of timestamp cursors (default 10m)")
    init.add_argument("--cdc", action="store_true", help="tables with a key read the server's binlog / logical "
                      "WAL (mode: cdc) instead of querying; the server's settings are checked")  # fmt: skip
    init.add_argument("--force", action="store_true", help="replace an existing output file")
    init.set_defaults(run=sync_init)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
