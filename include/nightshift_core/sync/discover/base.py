"""What a source's catalog says about its tables, and the interface each database's catalog implements.

A catalog class reads, in a few queries over the whole schema, what the sync definition needs to be
chosen: the tables (partitions left out: their rows reach the warehouse through the partitioned
parent), their columns, keys and indexes, and which timestamp columns the database itself keeps
current on every update. Column types are not mapped here: the sync's own mapping decides
(:func:`column_types`), so a definition never promises a column the sync would refuse.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from nightshift_core.sync import source
from nightshift_core.sync.columns import UnsupportedColumnError

Kind = Literal["table", "view", "other"]


@dataclass(frozen=True)
class CatalogColumn:
    name: str
    type: str  # as the catalog shows it, e.g. 'timestamp(6)', 'int4range'
    nullable: bool
    auto_increment: bool = False  # AUTO_INCREMENT, identity or serial
    stamped_on_insert: bool = False  # a new row gets the current time (DEFAULT CURRENT_TIMESTAMP, a trigger)
    stamped_on_update: bool = False  # every UPDATE sets it to the current time (ON UPDATE, a trigger)
    how: str = ""  # how the database keeps it current, for the comment


@dataclass(frozen=True)
class CatalogTable:
    name: str
    kind: Kind
    shown_kind: str  # as the database names it: 'BASE TABLE', 'partitioned table', 'VIEW', ...
    columns: tuple[CatalogColumn, ...]
    primary_key: tuple[str, ...] = ()
    unique_keys: tuple[tuple[str, ...], ...] = ()  # unique indexes over NOT NULL columns only
    indexed: frozenset[str] = frozenset()  # columns that lead an index (a window on them is a range scan)
    partitions: int = 0  # PostgreSQL: partitions of this partitioned table (synced through it)

    def column(self, name: str) -> CatalogColumn:
        return next(c for c in self.columns if c.name == name)


@dataclass(frozen=True)
class Catalog:
    """Every relation of the connection's database (MySQL) or current schema (PostgreSQL)."""

    tables: tuple[CatalogTable, ...]
    partitions_skipped: int = 0
    where: str = ""  # the database/schema read, for the header comment


class SourceCatalog:
    """The catalog queries of one source database; subclasses are the only code naming it."""

    dialect: str  # the name of its sync dialect (nightshift_core.sync.dialects)

    def read(self, conn: Any) -> Catalog:
        raise NotImplementedError


@dataclass(frozen=True)
class ColumnTypes:
    """A table's columns as the sync maps them: supported ones with their Arrow types, the rest with why."""

    supported: dict[str, Any] = field(default_factory=dict)  # name -> pyarrow type
    unsupported: tuple[tuple[str, str, str], ...] = ()  # (column, source type, why)
    described: tuple[source.SourceColumn, ...] = ()  # the supported ones as the sync describes them


def column_types(conn: Any, dialect: str, table: str) -> ColumnTypes:
    """The sync's own type mapping over ``table`` (``source.describe``): which columns it reads and as
    what, and which it refuses (those are to be excluded, with the reason it gives)."""
    problems: Sequence[tuple[str, str, str]] = ()
    try:
        described = source.describe(conn, dialect, table)
    except UnsupportedColumnError as exc:
        problems = exc.problems
        described = source.describe(conn, dialect, table, exclude=[c for c, _, _ in problems])
    supported: dict[str, Any] = {}
    for column in described:
        supported.setdefault(column.reads or column.name, column.arrow_type)
    return ColumnTypes(supported, tuple(problems), tuple(described))
