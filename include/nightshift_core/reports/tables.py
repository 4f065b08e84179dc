"""An engine-neutral report section: named columns, plain Python rows, display hints.

Queries return Arrow tables; writers (Excel, Sheets, e-mail) want rows of plain values plus a
little meaning (which columns are money, which get totals, what to chart). ``ReportTable``
carries both and checks the hints against the columns up front, so a typo in a report
definition fails with the section's name instead of producing a half-built workbook.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, overload

from nightshift_core.reports.formats import FORMATS

if TYPE_CHECKING:
    import pyarrow as pa

#: Excel's own limits on sheet names; the same names are used as section ids elsewhere.
SHEET_NAME_LIMIT = 31
_SHEET_NAME_FORBIDDEN = re.compile(r"[\[\]:*?/\\]")

#: Rows converted from Arrow to Python at a time when a table is iterated.
ARROW_CHUNK_ROWS = 16_384
#: Arrow schema metadata key of a pivoted table: {"by": the pivot's columns column, "spread": [names]}.
PIVOT_METADATA = b"nightshift.pivot"

Aggregation = Literal["sum", "count", "min", "max", "mean"]


@dataclass(frozen=True)
class ChartSpec:
    """A bar chart: one bar group per value of ``category``, one series per ``values`` column."""

    category: str
    values: tuple[str, ...]

    def __post_init__(self) -> None:
        if isinstance(self.values, str):
            object.__setattr__(self, "values", (self.values,))
        object.__setattr__(self, "values", tuple(self.values))
        if not self.values:
            raise ValueError(f"ChartSpec for category {self.category!r} needs at least one value column")


@dataclass(frozen=True)
class ReportTable:
    """One report section: a sheet in a workbook, a block in an e-mail, a tab in Sheets."""

    name: str
    title: str
    columns: tuple[str, ...]
    rows: Sequence[tuple] = field(repr=False)
    money: tuple[str, ...] = ()
    counts: tuple[str, ...] = ()
    totals: tuple[str, ...] = ()
    chart: ChartSpec | None = None
    #: Column -> format name (nightshift_core.reports.formats); money and counts are folded in.
    formats: Mapping[str, str] = field(default_factory=dict)
    currency: str = ""
    #: A pivot's spread columns, one per value of the column ``spread_by`` (named after the value), so a
    #: workbook split by that column keeps each part's own column.
    spread_by: str | None = None
    spread: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for attr in ("columns", "money", "counts", "totals", "spread"):
            value = getattr(self, attr)
            object.__setattr__(self, attr, (value,) if isinstance(value, str) else tuple(value))
        check_sheet_name(self.name)
        if not self.columns:
            raise ValueError(f"report section {self.name!r} has no columns")
        duplicates = sorted({c for c in self.columns if self.columns.count(c) > 1})
        if duplicates:
            raise ValueError(
                f"report section {self.name!r} has duplicate column names {duplicates}; "
                "alias them in the query so each column has its own name"
            )
        for attr in ("money", "counts", "totals", "formats", "spread"):
            for column in getattr(self, attr):
                self._require_column(column, attr)
        both = sorted(set(self.money) & set(self.counts))
        if both:
            raise ValueError(
                f"report section {self.name!r}: columns {both} are listed as both money and counts; "
                "keep each in one of them"
            )
        formats = {**dict.fromkeys(self.money, "money"), **dict.fromkeys(self.counts, "count")}
        for column, fmt in self.formats.items():
            if fmt not in FORMATS or formats.get(column, fmt) != fmt:
                raise ValueError(
                    f"report section {self.name!r}: column {column!r} has format {fmt!r}"
                    + (f" and is listed as {formats[column]}" if column in formats else "")
                    + f"; give it one format of {', '.join(FORMATS)}"
                )
            formats[column] = fmt
        object.__setattr__(self, "formats", formats)
        object.__setattr__(self, "money", tuple(c for c in self.columns if formats.get(c) == "money"))
        object.__setattr__(self, "counts", tuple(c for c in self.columns if formats.get(c) == "count"))
        if self.columns[0] in self.totals:
            raise ValueError(
                f"report section {self.name!r}: the first column {self.columns[0]!r} holds the "
                "'Total' label and cannot be in totals; put a label column first"
            )
        if self.chart is not None:
            self._require_column(self.chart.category, "chart.category")
            for column in self.chart.values:
                self._require_column(column, "chart.values")

    def _require_column(self, column: str, role: str) -> None:
        if column not in self.columns:
            raise ValueError(
                f"report section {self.name!r}: {role} column {column!r} is not in the result; "
                f"available columns: {', '.join(self.columns)}"
            )

    def format_of(self, column: str) -> str | None:
        """The declared format of ``column``, or None when its values decide how it is shown."""
        return self.formats.get(column)

    def index(self, column: str) -> int:
        """Position of ``column`` (0-based), with the section's error when it is missing."""
        self._require_column(column, "requested")
        return self.columns.index(column)

    @classmethod
    def from_arrow(cls, name: str, title: str, table: pa.Table, **kw: Any) -> ReportTable:
        """A section over an Arrow table; rows are converted to Python a chunk at a time.

        A table made by :func:`pivot` says which column its spread columns came from.
        """
        pivoted = json.loads((table.schema.metadata or {}).get(PIVOT_METADATA, b"{}"))
        if pivoted and "spread_by" not in kw:
            kw = {**kw, "spread_by": pivoted["by"], "spread": tuple(pivoted["spread"])}
        return cls(name=name, title=title, columns=tuple(table.column_names), rows=ArrowRows(table), **kw)


def check_sheet_name(name: str) -> None:
    """Raise ValueError unless ``name`` is a valid Excel sheet name."""
    problem = None
    if not isinstance(name, str) or not name.strip():
        problem = "is empty"
    elif len(name) > SHEET_NAME_LIMIT:
        problem = f"is {len(name)} characters long (Excel allows {SHEET_NAME_LIMIT})"
    elif _SHEET_NAME_FORBIDDEN.search(name):
        problem = "contains one of [ ] : * ? / \\"
    elif name.startswith("'") or name.endswith("'"):
        problem = "starts or ends with an apostrophe"
    elif name.casefold() == "history":
        problem = "is reserved by Excel"
    if problem:
        raise ValueError(
            f"report section name {name!r} {problem}; rename the section in the report definition"
        )


class ArrowRows(Sequence[tuple]):
    """A read-only row view of an Arrow table that converts to Python lazily.

    Holding a million rows as Python tuples costs several times the Arrow memory; iterating
    converts ``ARROW_CHUNK_ROWS`` rows at a time so a writer streaming them out stays flat.
    """

    def __init__(self, table: pa.Table) -> None:
        self.table = table

    def __len__(self) -> int:
        return self.table.num_rows

    @overload
    def __getitem__(self, index: int) -> tuple: ...

    @overload
    def __getitem__(self, index: slice) -> list[tuple]: ...

    def __getitem__(self, index: int | slice) -> tuple | list[tuple]:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                return [self[i] for i in range(start, stop, step)]
            return _to_tuples(self.table.slice(start, max(0, stop - start)))
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"row {index} out of range for a table of {len(self)} rows")
        return _to_tuples(self.table.slice(index, 1))[0]

    def __iter__(self) -> Iterator[tuple]:
        for start in range(0, len(self), ARROW_CHUNK_ROWS):
            yield from _to_tuples(self.table.slice(start, ARROW_CHUNK_ROWS))


def _to_tuples(table: pa.Table) -> list[tuple]:
    return list(zip(*(column.to_pylist() for column in table.columns), strict=True))


def pivot(
    table: pa.Table,
    *,
    index: str | list[str],
    columns: str,
    values: str,
    agg: Aggregation = "sum",
) -> pa.Table:
    """Spread ``values`` over one column per distinct value of ``columns``, one row per ``index``.

    Rows and pivoted columns are sorted (nulls last; a null category becomes the column
    ``"(blank)"``). Missing cells are 0 for ``sum``/``count`` and null otherwise. Arrow's
    group-by keeps decimals exact, so money sums to the cent. The schema metadata names ``columns``
    and the spread columns (:data:`PIVOT_METADATA`).
    """
    import pyarrow as pa

    keys = [index] if isinstance(index, str) else list(index)
    if not keys:
        raise ValueError("pivot: index needs at least one column")
    for role, column in [*(("index", k) for k in keys), ("columns", columns), ("values", values)]:
        if column not in table.column_names:
            raise ValueError(
                f"pivot: {role} column {column!r} is not in the table; "
                f"available columns: {', '.join(table.column_names)}"
            )
    if agg not in ("sum", "count", "min", "max", "mean"):
        raise ValueError(f"pivot: agg {agg!r} is not one of sum, count, min, max, mean")

    grouped = table.group_by([*keys, columns], use_threads=False).aggregate([(values, agg)])
    out_type = grouped.schema.field(f"{values}_{agg}").type
    cells: dict[tuple, dict[Any, Any]] = {}
    for row in grouped.to_pylist():
        cells.setdefault(tuple(row[k] for k in keys), {})[row[columns]] = row[f"{values}_{agg}"]
    categories = sorted({c for by_cat in cells.values() for c in by_cat}, key=_null_last)
    names = [_category_name(c) for c in categories]
    clash = sorted(set(names) & set(keys)) or sorted({n for n in names if names.count(n) > 1})
    if clash:
        raise ValueError(
            f"pivot: pivoted column names {clash} collide with the index or with each other; "
            f"rename the values of {columns!r} in the query"
        )

    zero: Any = None
    if agg == "count":
        zero = 0
    elif agg == "sum":
        zero = Decimal(0) if pa.types.is_decimal(out_type) else 0
    index_keys = sorted(cells, key=lambda key: tuple(_null_last(k) for k in key))
    arrays = [
        pa.array([key[i] for key in index_keys], type=table.schema.field(k).type) for i, k in enumerate(keys)
    ]
    for category in categories:
        arrays.append(pa.array([cells[key].get(category, zero) for key in index_keys], type=out_type))
    meta = json.dumps({"by": columns, "spread": names})
    return pa.Table.from_arrays(arrays, names=[*keys, *names]).replace_schema_metadata({PIVOT_METADATA: meta})


def _null_last(value: Any) -> tuple[bool, Any]:
    return (value is None, value if value is not None else 0)


def _category_name(value: Any) -> str:
    if value is None:
        return "(blank)"
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)
