"""What the sync knows of a source column once a dialect has read the catalog: its exact Arrow type
and how to read it. Shared by the dialects, both readers and the engine; names no database."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from nightshift_core.errors import SourceDefinitionError
from nightshift_core.warehouse.types import UnsupportedTypeError

EXACT_JSON_SUFFIX = "__json"  # the companion of an array column: the values its ARRAY cannot hold


@dataclass(frozen=True)
class SourceColumn:
    name: str  # the warehouse column
    source_type: str
    arrow_type: pa.DataType
    nullable: bool
    convert: Callable[[Any], Any] | None = None  # driver value -> Arrow-ready value
    text_cast: bool = False  # driver returns raw text; Arrow parses it (much faster than Python)
    select: str | None = None  # SQL expression read instead of the bare column ({column}: quoted name)
    reads: str | None = None  # the source column ``select`` reads, when it is not ``name``


class UnsupportedColumnError(UnsupportedTypeError):
    """Source columns whose types have no exact mapping (all of the table's at once); carries what the
    fix needs: ``problems`` is [(column, source type, detail)], the first also as column/source_type."""

    def __init__(self, table: str, problems: Sequence[tuple[str, str, str]]) -> None:
        shown = "; ".join(f"column {c!r}: source type {t!r} is not supported ({d})" for c, t, d in problems)
        super().__init__(f"table {table!r}, {shown}")
        self.table, self.problems = table, list(problems)
        self.column, self.source_type, self.detail = self.problems[0]
        self.columns = [c for c, _, _ in self.problems]


def arrow_schema(columns: Sequence[SourceColumn]) -> pa.Schema:
    return pa.schema([pa.field(c.name, c.arrow_type, nullable=c.nullable) for c in columns])


def not_found(table: str) -> SourceDefinitionError:
    return SourceDefinitionError(
        f"source table {table!r} not found (or has no columns visible to this connection): check the "
        "table name in the sync definition and the connection's database/schema and grants"
    )
