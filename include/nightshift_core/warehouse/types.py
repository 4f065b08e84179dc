"""Warehouse column types, identifiers and the Arrow <-> warehouse type mapping.

Types are named as in BigQuery (the production engine); other engines map them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import pyarrow as pa

from nightshift_core.errors import IdentifierError, PermanentError

LogicalType = Literal[
    "INT64", "FLOAT64", "NUMERIC", "BIGNUMERIC", "BOOL", "STRING", "BYTES",
    "DATE", "DATETIME", "TIME", "TIMESTAMP", "JSON",
]  # fmt: skip
WriteMode = Literal["merge", "replace", "append"]

DELETED_COLUMN = "_nightshift_deleted_at"  # soft-delete marker set by mark_missing_deleted
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
# NUMERIC holds 38 digits with 9 after the point; wider decimals need BIGNUMERIC.
NUMERIC_PRECISION, NUMERIC_SCALE = 38, 9


class WarehouseError(RuntimeError):
    """Base class: every message names the table/column and what to do."""


class SchemaChangeError(WarehouseError, PermanentError):
    """Incoming data would drop or retype existing columns."""


class UnsupportedTypeError(WarehouseError, PermanentError):
    """An Arrow type with no exact warehouse type."""


def check_identifier(name: str, what: str = "identifier") -> str:
    """Return ``name`` if it is a plain identifier, else raise naming it and the rule."""
    if not isinstance(name, str) or not _IDENT.fullmatch(name):
        raise IdentifierError(
            f"invalid {what} {name!r}: use letters, digits and '_' (not starting with a digit, max 128)"
        )
    return name


@dataclass(frozen=True)
class TableRef:
    dataset: str
    table: str

    def __post_init__(self) -> None:
        check_identifier(self.dataset, "dataset name")
        check_identifier(self.table, "table name")

    def __str__(self) -> str:
        return f"{self.dataset}.{self.table}"

    @classmethod
    def parse(cls, value: str) -> TableRef:
        dataset, sep, table = value.partition(".")
        if not sep:
            raise ValueError(f"invalid table {value!r}: expected 'dataset.table'")
        return cls(dataset, table)


@dataclass(frozen=True)
class Column:
    name: str
    type: LogicalType
    nullable: bool = True
    repeated: bool = False  # an ARRAY of ``type`` (BigQuery REPEATED, DuckDB LIST); never NULL itself

    def __post_init__(self) -> None:
        check_identifier(self.name, "column name")


def logical_type(arrow_type: pa.DataType, *, column: str = "?") -> LogicalType:
    """Exact warehouse type for an Arrow type; never widens to FLOAT, never narrows."""
    t = arrow_type
    if isinstance(t, pa.BaseExtensionType) and t.extension_name == "arrow.json":
        return "JSON"
    if pa.types.is_boolean(t):
        return "BOOL"
    if pa.types.is_signed_integer(t) or t in (pa.uint8(), pa.uint16(), pa.uint32()):
        return "INT64"
    if pa.types.is_uint64(t):
        return "NUMERIC"  # values up to 2**64-1 do not fit INT64
    if pa.types.is_floating(t):
        return "FLOAT64"
    if pa.types.is_decimal(t):
        fits = t.scale <= NUMERIC_SCALE and (t.precision - t.scale) <= (NUMERIC_PRECISION - NUMERIC_SCALE)
        return "NUMERIC" if fits else "BIGNUMERIC"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "STRING"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return "BYTES"
    if pa.types.is_date(t):
        return "DATE"
    if pa.types.is_timestamp(t):
        return "TIMESTAMP" if t.tz else "DATETIME"
    if pa.types.is_time(t):
        return "TIME"
    raise UnsupportedTypeError(
        f"column {column!r}: Arrow type {t} has no exact warehouse type; cast it in the extract "
        "(e.g. to string or decimal) or exclude the column"
    )


def column_from_arrow(f: pa.Field) -> Column:
    """The warehouse column for an Arrow field; a list of a scalar type is a REPEATED column."""
    if pa.types.is_list(f.type) or pa.types.is_large_list(f.type):
        element = f.type.value_type
        if pa.types.is_list(element) or pa.types.is_large_list(element):
            raise UnsupportedTypeError(
                f"column {f.name!r}: Arrow type {f.type} is a list of lists, which a BigQuery ARRAY cannot hold; "
                "keep it as JSON text or exclude the column"
            )
        return Column(f.name, logical_type(element, column=f.name), True, repeated=True)
    return Column(f.name, logical_type(f.type, column=f.name), f.nullable)


def columns_from_arrow(schema: pa.Schema) -> list[Column]:
    return [column_from_arrow(f) for f in schema]


# Which changes of a column's type keep every existing value exactly.
_WIDENING = {("INT64", "NUMERIC"), ("INT64", "BIGNUMERIC"), ("NUMERIC", "BIGNUMERIC")}


def plan_schema_change(existing: list[Column], incoming: list[Column], *, table: str) -> list[Column]:
    """Columns to add (as NULLABLE) so ``incoming`` fits; raise if data would be lost or retyped."""
    current = {c.name.lower(): c for c in existing}
    problems = []
    incoming_names = {c.name.lower() for c in incoming}
    dropped = [c.name for c in existing if c.name.lower() not in incoming_names and not c.nullable]
    if dropped:
        problems.append(f"required column(s) {dropped} missing from the new data")
    to_add = []
    for col in incoming:
        old = current.get(col.name.lower())
        if old is None:
            to_add.append(Column(col.name, col.type, nullable=True, repeated=col.repeated))
        elif old.repeated != col.repeated or (old.type != col.type and (col.type, old.type) not in _WIDENING):
            problems.append(
                f"column {col.name!r} is {_shown(old)} in the warehouse but {_shown(col)} in the new data"
            )
    if problems:
        raise SchemaChangeError(
            f"{table}: " + "; ".join(problems) + ". Nothing was written. Migrate the table by hand "
            "(or run a full refresh into a new table) if the change is intended."
        )
    return to_add


def _shown(column: Column) -> str:
    return f"ARRAY<{column.type}>" if column.repeated else column.type
