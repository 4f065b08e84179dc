"""Choose each table's sync settings from its catalog entry and write them as a commented definition.

Pure: no database, no clock. The choices, in order:

- key: the primary key, else the narrowest unique index over NOT NULL columns, else none (the table
  is replaced whole on every run: ``mode: full, primary_key: []``);
- cursor (tables with a key): a TIMESTAMP/DATETIME column the database itself sets on insert and on
  every update (MySQL ``DEFAULT``/``ON UPDATE CURRENT_TIMESTAMP``, a PostgreSQL trigger), NOT NULL and
  leading an index; else, for tables named as append-only, a single integer key; a DATETIME cursor on
  a server not in UTC needs the server's zone as an IANA name (``source.timezone``);
- a table with a cursor: ``incremental`` with ``lag`` (timestamps) and ``detect_deletes``; else ``full``;
- with ``cdc``, every table with a key: ``cdc`` (the binlog / logical WAL), unless the log path refuses
  it (:func:`keep_on_query_path`: the caller checks the live source and says why);
- columns the sync's type mapping refuses: excluded, each with its type and the mapping's reason.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import pyarrow as pa
import yaml

from nightshift_core.sync.clock import ServerZone, zone
from nightshift_core.sync.discover.base import Catalog, CatalogTable, ColumnTypes

DEFAULT_LAG = "10m"
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_OFFSET = re.compile(r"^([+-])(\d{1,2}):00$")


@dataclass(frozen=True)
class Options:
    name: str  # the definition's name: dag_id sync_<name>, dataset <name>
    conn_id: str
    include: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = ()
    views: bool = False
    append_only: tuple[str, ...] = ()
    lag: str = DEFAULT_LAG
    start_date: dt.date = dt.date(2026, 1, 1)  # the DAG's start_date; the day it was written
    cdc: bool = False  # tables with a key read the source's log (mode: cdc)


@dataclass
class TablePlan:
    name: str
    kind: str
    mode: str = "full"
    primary_key: tuple[str, ...] = ()
    key_from: str = ""
    cursor: str | None = None
    cursor_note: str = ""
    naive_cursor: bool = False
    exclude: list[tuple[str, str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: str = ""  # why it is listed as a comment only
    query_mode: str = ""  # with Options.cdc: what the query path would have chosen (incremental or full)
    query_notes: list[str] = field(default_factory=list)  # and what it said about the cursor


@dataclass
class Plan:
    options: Options
    catalog: Catalog
    server: ServerZone
    tables: list[TablePlan]
    timezone: str | None = None
    timezone_note: str = ""
    left_out: list[str] = field(default_factory=list)  # header lines: what was not listed at all
    log_problems: list[str] = field(default_factory=list)  # with Options.cdc: server settings to change


def iana_zone(server: ServerZone) -> str | None:
    """The server's zone as an IANA name the loader accepts (a fixed offset '+09:00' as Etc/GMT-9);
    None for an abbreviation such as 'CET', which names no zone exactly."""
    name = server.name.strip()
    match = _OFFSET.match(name)
    if match:
        hours = int(match.group(2))
        name = "UTC" if hours == 0 else f"Etc/GMT{'-' if match.group(1) == '+' else '+'}{hours}"
    if "/" not in name and name.upper() != "UTC":
        return None
    try:
        zone(name)
    except ValueError:
        return None
    return name


def _matches(name: str, globs: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, g) for g in globs)


def is_plain(name: str) -> bool:
    """Whether ``name`` passes the sync's identifier rule (warehouse names are such identifiers)."""
    return bool(_IDENT.fullmatch(name))


def listed(catalog: Catalog, options: Options) -> list[CatalogTable]:
    """The tables (and, with ``views``, views) the definition lists, by the include/exclude globs."""
    return [
        t for t in catalog.tables
        if _matches(t.name, options.include) and not _matches(t.name, options.exclude)
        and (t.kind == "table" or (t.kind == "view" and options.views))
    ]  # fmt: skip


def plan(catalog: Catalog, types: dict[str, ColumnTypes], server: ServerZone, options: Options) -> Plan:
    """The definition for ``catalog``; ``types`` holds the sync's mapping of each listed table."""
    out = Plan(options, catalog, server, [])
    wanted = [
        t
        for t in catalog.tables
        if _matches(t.name, options.include) and not _matches(t.name, options.exclude)
    ]
    views = [t for t in wanted if t.kind == "view"]
    others = [t for t in wanted if t.kind == "other"]
    if views and not options.views:
        out.left_out.append(
            f"{len(views)} view(s) not listed (--views lists them): {_few(t.name for t in views)}"
        )
    if others:
        out.left_out.append(
            f"{len(others)} relation(s) of another kind not listed: "
            + _few(f"{t.name} ({t.shown_kind})" for t in others)
        )
    if catalog.partitions_skipped:
        out.left_out.append(
            f"{catalog.partitions_skipped} partition(s) not listed: each partitioned table is synced once, "
            "with every partition's rows"
        )
    skipped = len(catalog.tables) - len(wanted)
    if skipped:
        out.left_out.append(f"{skipped} relation(s) left out by --include/--exclude")
    zone_name = None if server.is_utc else iana_zone(server)
    seen: dict[str, str] = {}
    for table in listed(catalog, options):
        entry = _table(table, types.get(table.name), server, zone_name, options)
        if not entry.skipped:
            clash = seen.get(table.name.lower())
            if clash:
                entry.skipped = (
                    f"its warehouse table would be {clash!r}'s (warehouse names ignore case): copy this entry "
                    f"with a target_table of its own"
                )
            seen.setdefault(table.name.lower(), table.name)
        out.tables.append(entry)
    if any(t.naive_cursor and not t.skipped for t in out.tables) and zone_name:
        out.timezone = zone_name
        out.timezone_note = (
            f"the server's zone (it reports {server.name!r}): DATETIME cursors hold its wall clock. Confirm "
            "it is the zone the applications write in"
        )
    return out


def _few(names, limit: int = 8) -> str:
    names = list(names)
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _table(
    table: CatalogTable,
    types: ColumnTypes | None,
    server: ServerZone,
    zone_name: str | None,
    options: Options,
) -> TablePlan:
    entry = TablePlan(table.name, table.shown_kind)
    if not is_plain(table.name):
        entry.skipped = (
            "its name is not a plain identifier (letters, digits, '_'), which every warehouse name is"
        )
        return entry
    bad = [c.name for c in table.columns if not is_plain(c.name)]
    if bad:
        entry.skipped = (
            f"column(s) {bad} are not plain identifiers (letters, digits, '_'), which warehouse columns are: "
            "sync a view that renames them"
        )
        return entry
    if types is None:
        entry.skipped = "its columns could not be read"
        return entry
    entry.exclude = list(types.unsupported)
    refused = {c for c, _, _ in entry.exclude}
    if not types.supported:
        entry.skipped = "the sync reads none of its columns"
        return entry
    keys = [("primary key", table.primary_key)] if table.primary_key else []
    keys += [
        (f"unique index on NOT NULL column(s) {', '.join(k)} (no primary key)", k) for k in table.unique_keys
    ]
    usable = [(how, k) for how, k in keys if not set(k) & refused]
    if keys and not usable:
        entry.notes.append(f"its key column(s) {list(keys[0][1])} have types the sync does not read")
    if not usable:
        entry.primary_key, entry.key_from = (), "none"
        entry.notes.append(
            "no primary key and no unique index over NOT NULL columns: replaced whole on every run. Add a "
            "primary key in the source to merge it and read only what changed"
            + (" (change capture needs one too)" if options.cdc else "")
        )
        return entry
    entry.key_from, entry.primary_key = usable[0]
    before = len(entry.notes)
    _choose_cursor(entry, table, types, server, zone_name, options)
    if entry.cursor:
        entry.mode = "incremental"
    if options.cdc:  # the log needs no cursor: what was said about one matters if the table stays off it
        entry.query_mode, entry.mode = entry.mode, "cdc"
        entry.query_notes, entry.notes = entry.notes[before:], entry.notes[:before]
    return entry


def keep_on_query_path(entry: TablePlan, why: str) -> None:
    """A table the log path refuses (``why``: the check's message, with its fix) stays on the query path's
    choice, saying so."""
    entry.mode = entry.query_mode or entry.mode
    entry.notes += [
        f"kept on mode {entry.mode}, not cdc: {why} Once fixed, set mode: cdc",
        *entry.query_notes,
    ]


def _choose_cursor(
    entry: TablePlan, table: CatalogTable, types: ColumnTypes, server: ServerZone, zone_name: str | None,
    options: Options,
) -> None:  # fmt: skip
    stamped = []
    for c in table.columns:
        arrow = types.supported.get(c.name)
        if arrow is None or not pa.types.is_timestamp(arrow) or not c.stamped_on_update:
            continue
        stamped.append((c, arrow))
    problems = []
    for c, arrow in sorted(stamped, key=lambda ca: (ca[0].name not in table.indexed, ca[1].tz is None)):
        why = []
        if not c.stamped_on_insert:
            why.append("a new row does not get the current time (no DEFAULT CURRENT_TIMESTAMP)")
        if c.nullable:
            why.append("it is nullable (a NULL row would never be read)")
        if c.name not in table.indexed:
            why.append("no index starts with it (each run would scan the table): add one")
        naive = arrow.tz is None
        if naive and not server.is_utc and zone_name is None:
            why.append(
                f"it is a DATETIME and the server's zone {server.name!r} names no IANA zone; set source.timezone "
                "to the zone the applications write in"
            )
        if why:
            problems.append(f"{c.name} ({c.how}) is kept current by the database but " + "; ".join(why))
            continue
        entry.cursor, entry.naive_cursor = c.name, naive
        kind = "DATETIME (wall clock)" if naive else "TIMESTAMP"
        entry.cursor_note = f"{c.type}, {kind}, {c.how}; indexed"
        break
    if entry.cursor is None:
        entry.notes.extend(problems)
        _append_only(entry, table, types, options)


def _append_only(entry: TablePlan, table: CatalogTable, types: ColumnTypes, options: Options) -> None:
    key = entry.primary_key
    single_int = len(key) == 1 and pa.types.is_integer(types.supported.get(key[0], pa.null()))
    if _matches(table.name, options.append_only):
        if single_int:
            entry.cursor = key[0]
            entry.cursor_note = (
                "integer key of an append-only table (--append-only): reads past the highest id read"
            )
        else:
            entry.notes.append("named append-only, but its key is not a single integer column: no cursor")
        return
    if single_int and table.column(key[0]).auto_increment:
        entry.notes.append(
            f"{key[0]} is an auto-increment key: if rows are only ever added, never updated, `cursor: {key[0]}` "
            "with mode: incremental reads only new rows (`--append-only` writes that)"
        )


# -- rendering ------------------------------------------------------------------------------------

HEADER = """\
# yaml-language-server: $schema=../schemas/sync.schema.json
# Sync definition for {where} ({dialect}), written by `nightshift sync init` on {today}.
# Review it, create the connection {conn_id!r} and the pool {pool!r} ({slots} slots)
# if they do not exist, then put this file in include/config/syncs/: each table below becomes a task
# of DAG {dag_id}. How each choice was made (docs/syncs.md): the key is the primary key, else a
# unique index over NOT NULL columns, else none (mode: full, replaced whole on every run); the cursor
# is a timestamp the database sets on every insert and update and that leads an index (or the
# integer key of a table named --append-only); columns the sync cannot read exactly are excluded,
# each with its type and why.
"""
CDC_HEADER = """\
# --cdc: every table with a key reads the server's log (mode: cdc: the binlog, or PostgreSQL's logical
# WAL through a slot and a publication per table) after a first snapshot: every insert, update and
# delete, no cursor, no table scan. A table the log path refuses stays on the query path, saying why.
# Deletes are soft (the row stays, with _nightshift_deleted_at set); `deletes: hard` removes the row.
"""


def _q(value: str) -> str:
    """A YAML scalar that reads back as the same string (``on``, ``null``, ``1e3`` quoted)."""
    try:
        plain = (
            yaml.safe_load(value) == value
            and value.strip() == value
            and not value.startswith(("#", "&", "*"))
        )
    except yaml.YAMLError:
        plain = False
    return (
        value if plain and ":" not in value else '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    )


def _comment(text: str, indent: str) -> list[str]:
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and len(indent) + 2 + len(line) + 1 + len(word) > 108:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    lines.append(line)
    return [f"{indent}# {x}" for x in lines]


def render(p: Plan, *, dialect: str) -> str:
    o = p.options
    dag_id, pool = f"sync_{o.name}", f"{o.conn_id}_pool"
    out = HEADER.format(
        where=p.catalog.where, dialect=dialect, today=o.start_date.isoformat(), conn_id=o.conn_id, pool=pool, slots=4,
        dag_id=dag_id,
    ).splitlines()  # fmt: skip
    listed = [t for t in p.tables if not t.skipped]
    counts = {m: sum(t.mode == m for t in listed) for m in ("cdc", "incremental", "full")}
    if o.cdc:
        out += CDC_HEADER.splitlines()
        if p.log_problems:
            out.append(
                "# Before change capture can run on this server (until then its runs fail, naming these):"
            )
            for problem in p.log_problems:
                out += _comment(f"- {problem}", "")
    out.append(
        f"# {len(listed)} table(s): "
        + (f"{counts['cdc']} cdc, " if o.cdc else "")
        + f"{counts['incremental']} incremental, {counts['full']} full"
        + (
            f"; {len(p.tables) - len(listed)} commented out (why is noted at each)"
            if len(listed) < len(p.tables)
            else ""
        )
    )
    for line in p.left_out:
        out += _comment(line, "")
    out += [
        f"dag_id: {_q(dag_id)}",
        f"description: {_q(f'Sync {o.conn_id} into the warehouse dataset {o.name}')}",
        *(
            [
                "# change capture reads what the log holds since the last run: run often (the log must still hold",
                "# the stored position at the next run; see the log-retention guards in docs/change-capture.md)",
                'schedule: "*/15 * * * *"',
            ]
            if counts["cdc"]
            else ['schedule: "@daily"']
        ),
        f"start_date: {o.start_date.isoformat()}",
        "catchup: false",
        "source:",
        f"  conn_id: {_q(o.conn_id)}",
        "  max_connections: 4  # the slots of the pool (the Arrow reader takes one per table besides the task's)",
    ]
    if p.timezone:
        out += _comment(p.timezone_note, "  ")
        out.append(f"  timezone: {_q(p.timezone)}")
    elif not p.server.is_utc:
        out += _comment(
            f"the server's zone is {p.server.name!r}, not UTC; no DATETIME column is a cursor, so no "
            "source.timezone is needed", "  ",
        )  # fmt: skip
    out += ["target:", f"  dataset: {_q(o.name)}", "tables:"]
    for t in p.tables:
        out += _render_table(t, o.lag)
    return "\n".join(out) + "\n"


def _render_table(t: TablePlan, lag: str) -> list[str]:
    lines = [f"  # {t.name}: {t.kind}"] if t.kind not in ("table", "BASE TABLE") else []
    for note in t.notes:
        lines += _comment(note, "  ")
    if t.skipped:
        return [*lines, *_comment(f"not synced: {t.skipped}", "  "), f"  # - name: {_q(t.name)}"]
    body = [f"- name: {_q(t.name)}", f"  mode: {t.mode}"]
    key = "[" + ", ".join(_q(k) for k in t.primary_key) + "]"
    if t.key_from == "none":
        body.append(f"  primary_key: {key}  # none: no primary key or unique NOT NULL index")
    elif t.key_from != "primary key":
        body.append(f"  primary_key: {key}  # {t.key_from}")
    else:
        body.append(f"  primary_key: {key}")
    if t.cursor and t.mode != "cdc":
        body.append(f"  cursor: {_q(t.cursor)}  # {t.cursor_note}")
        if not t.cursor_note.startswith("integer"):  # a lag is a duration: it does not apply to ids
            body.append(f"  lag: {lag}  # rows committed up to {lag} after their cursor time are still read")
        body.append(
            "  detect_deletes: true  # each run compares keys: rows gone from the source are soft-deleted"
        )
    if t.exclude:
        body.append("  exclude:")
        for column, shown, why in t.exclude:
            why = why if ":" in why else f"{why}: no exact warehouse type"  # the mapping's reason, made whole
            body.append(f"    - {_q(column)}  # {shown}: {why}")
    return lines + [f"  {line}" for line in body]
