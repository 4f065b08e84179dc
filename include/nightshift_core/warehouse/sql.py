"""SQL written once in BigQuery Standard SQL, rendered for the engine that runs it.

Files live in ``include/sql/``. Jinja may shape the statement (optional clauses, lists of
validated identifiers); *values* always go in as bound parameters (``@name``), never
through Jinja.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import jinja2
import sqlglot
from sqlglot import exp

from nightshift_core.warehouse.types import NUMERIC_PRECISION, NUMERIC_SCALE

Dialect = Literal["bigquery", "duckdb"]
SQL_DIR = Path(__file__).resolve().parents[2] / "sql"

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(SQL_DIR)),
    undefined=jinja2.StrictUndefined,
    autoescape=False,  # noqa: S701 - SQL, not HTML; values are bound parameters
    keep_trailing_newline=True,
)


def render(name: str, dialect: Dialect = "bigquery", **shape: Any) -> str:
    """Render ``include/sql/<name>`` with Jinja ``shape`` arguments, then for ``dialect``."""
    try:
        template = _env.get_template(name)
    except jinja2.TemplateNotFound:
        raise FileNotFoundError(f"SQL file include/sql/{name} not found") from None
    return transpile(template.render(**shape), dialect)


@functools.lru_cache(maxsize=256)
def transpile(sql: str, dialect: Dialect) -> str:
    """BigQuery SQL -> ``dialect``; NUMERIC keeps BigQuery's (38, 9) instead of DuckDB's default."""
    if dialect == "bigquery":
        return sql
    statements = sqlglot.parse(sql, read="bigquery")
    out = []
    for statement in statements:
        if statement is None:
            continue
        out.append(statement.transform(_exact_decimals).sql(dialect=dialect))
    return ";\n".join(out)


def _exact_decimals(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.DataType):
        if node.this == exp.DataType.Type.DECIMAL and not node.expressions:
            return exp.DataType.build(f"DECIMAL({NUMERIC_PRECISION}, {NUMERIC_SCALE})")
        if node.this == exp.DataType.Type.BIGDECIMAL:
            # DuckDB decimals stop at 38 digits; BIGNUMERIC is stored as exact text there.
            return exp.DataType.build("VARCHAR")
    return node


def bind_names(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validate parameter names (they become @name / $name placeholders)."""
    from nightshift_core.warehouse.types import check_identifier

    return {check_identifier(k, "query parameter name"): v for k, v in (params or {}).items()}
