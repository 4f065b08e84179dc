"""PostgreSQL catalog: pg_catalog of the connection's current schema.

Partitions are left out (``relispartition``): a partitioned table is read as one table holding every
partition's rows. A timestamp column counts as kept current on update when a row-level BEFORE UPDATE
trigger (enabled, not limited to some columns) runs a function that assigns it the current time
(``NEW.col := now()`` and its spellings); that is what the function's source says, not a guess from
the column's name.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

from nightshift_core.sync.discover.base import Catalog, CatalogColumn, CatalogTable, SourceCatalog

_TABLES = (
    "SELECT c.relname, c.relkind, (SELECT count(*) FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhrelid "
    "WHERE i.inhparent = c.oid AND p.relispartition) FROM pg_class c "
    "WHERE c.relnamespace = current_schema()::regnamespace AND NOT c.relispartition AND c.relkind IN ('r', 'p', 'v', 'm', 'f') ORDER BY c.relname"
)
_PARTITIONS = (
    "SELECT count(*) FROM pg_class c WHERE c.relnamespace = current_schema()::regnamespace AND c.relispartition "
    "AND c.relkind IN ('r', 'p')"
)
_COLUMNS = (
    "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull, "
    "a.attidentity <> '' OR coalesce(pg_get_expr(d.adbin, d.adrelid), '') LIKE 'nextval(%%', "
    "coalesce(pg_get_expr(d.adbin, d.adrelid), '') FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
    "LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
    "WHERE c.relnamespace = current_schema()::regnamespace AND NOT c.relispartition AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND a.attnum > 0 AND NOT a.attisdropped "
    "ORDER BY c.relname, a.attnum"
)
_INDEXES = (  # key columns only (not INCLUDE ones); an expression key part has attnum 0 and no name
    "SELECT c.relname, i.indisprimary, i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL, "
    "ARRAY(SELECT a.attname FROM unnest((i.indkey::int2[])[0:i.indnkeyatts - 1]) WITH ORDINALITY k(n, o) "
    "LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n ORDER BY k.o) "
    "FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid WHERE c.relnamespace = current_schema()::regnamespace AND NOT c.relispartition ORDER BY c.relname, i.indexrelid"
)
_TRIGGERS = (
    "SELECT c.relname, t.tgname, t.tgtype, p.prosrc FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
    "JOIN pg_proc p ON p.oid = t.tgfoid "
    "WHERE c.relnamespace = current_schema()::regnamespace AND NOT c.relispartition AND NOT t.tgisinternal AND t.tgenabled <> 'D' AND cardinality(t.tgattr::int2[]) = 0"
)
_ROW, _BEFORE, _INSERT, _UPDATE = 1, 2, 4, 16  # pg_trigger.tgtype bits
_NOW = r"(now\s*\(\s*\)|current_timestamp|clock_timestamp\s*\(\s*\)|statement_timestamp\s*\(\s*\)|" \
       r"transaction_timestamp\s*\(\s*\)|localtimestamp)"  # fmt: skip
_ASSIGN = re.compile(
    r"\bNEW\s*\.\s*(?:\"((?:[^\"]|\"\")+)\"|([A-Za-z_][A-Za-z0-9_$]*))\s*:?=\s*" + _NOW, re.I
)
_DEFAULT_NOW = re.compile(r"^\(?" + _NOW + r"\)?(::timestamp(\(\d\))?( with(out)? time zone)?)?$", re.I)
_KINDS = {"r": ("table", "table"), "p": ("table", "partitioned table"), "v": ("view", "view"),
          "m": ("view", "materialized view"), "f": ("other", "foreign table")}  # fmt: skip


def stamped_columns(function_source: str) -> set[str]:
    """Columns a trigger function sets to the current time (``NEW.updated_at := now()``, ``NEW."At" = ...``)."""
    out = set()
    for match in _ASSIGN.finditer(function_source):
        quoted, bare = match.group(1), match.group(2)
        out.add(quoted.replace('""', '"') if quoted else bare.lower())
    return out


class PostgresCatalog(SourceCatalog):
    dialect = "postgres"

    def read(self, conn: Any) -> Catalog:
        cur = conn.cursor()
        try:
            cur.execute("SELECT current_database(), current_schema()")
            database, schema = cur.fetchone()
            cur.execute(_TABLES)
            tables = list(cur.fetchall())
            cur.execute(_PARTITIONS)
            (partitions,) = cur.fetchone()
            cur.execute(_COLUMNS)
            raw_columns = defaultdict(list)
            for row in cur.fetchall():
                raw_columns[row[0]].append(row[1:])
            cur.execute(_INDEXES)
            indexes = defaultdict(list)
            for table, primary, unique, parts in cur.fetchall():
                indexes[table].append((primary, unique, list(parts)))
            cur.execute(_TRIGGERS)
            stamps: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
            for table, trigger, kind, body in cur.fetchall():
                if kind & _ROW and kind & _BEFORE:
                    for column in stamped_columns(body or ""):
                        if kind & _UPDATE:
                            stamps[table][column].add(f"UPDATE:{trigger}")
                        if kind & _INSERT:
                            stamps[table][column].add(f"INSERT:{trigger}")
        finally:
            cur.close()
        out = []
        for name, relkind, parts in tables:
            kind, shown = _KINDS[relkind]
            columns = []
            for column, shown_type, nullable, serial, default in raw_columns.get(name, ()):
                by = stamps.get(name, {}).get(column, set())
                on_insert = bool(_DEFAULT_NOW.match(default.strip())) or any(
                    s.startswith("INSERT:") for s in by
                )
                on_update = any(s.startswith("UPDATE:") for s in by)
                triggers = sorted({s.split(":", 1)[1] for s in by})
                how = ", ".join(
                    ([f"DEFAULT {default}"] if _DEFAULT_NOW.match(default.strip()) else [])
                    + ([f"set by trigger {', '.join(triggers)}"] if triggers else [])
                )
                columns.append(CatalogColumn(column, shown_type, nullable, serial, on_insert, on_update, how))
            not_null = {c.name for c in columns if not c.nullable}
            primary, unique, leading = (), [], set()
            for is_primary, is_unique, key in indexes.get(name, ()):
                if key and key[0] is not None:
                    leading.add(key[0])
                if None in key or not key:
                    continue
                if is_primary:
                    primary = tuple(key)
                elif is_unique and set(key) <= not_null:
                    unique.append(tuple(key))
            out.append(
                CatalogTable(
                    name,
                    kind,
                    shown,
                    tuple(columns),
                    primary,
                    tuple(sorted(unique, key=len)),
                    frozenset(leading),
                    int(parts),
                )  # fmt: skip
            )
        return Catalog(tuple(out), int(partitions), where=f"database {database}, schema {schema}")
