"""MySQL/MariaDB catalog: information_schema of the connection's database."""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

from nightshift_core.sync.discover.base import Catalog, CatalogColumn, CatalogTable, SourceCatalog

_NOW = re.compile(r"^(current_timestamp|now|localtimestamp)(\(\d*\))?$", re.IGNORECASE)
_ON_UPDATE = re.compile(r"on update (current_timestamp|now|localtimestamp)", re.IGNORECASE)
_KINDS = {"BASE TABLE": "table", "SYSTEM VERSIONED": "table", "VIEW": "view"}

_TABLES = (
    "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
    "ORDER BY TABLE_NAME"
)
_COLUMNS = (
    "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, EXTRA "
    "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME, ORDINAL_POSITION"
)
_INDEXES = (  # COLUMN_NAME is NULL for a MySQL 8 functional key part: such an index neither keys nor leads
    "SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE, COLUMN_NAME FROM information_schema.STATISTICS "
    "WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX"
)


class MySqlCatalog(SourceCatalog):
    dialect = "mysql"

    def read(self, conn: Any) -> Catalog:
        cur = conn.cursor()
        try:
            cur.execute("SELECT DATABASE()")
            (database,) = cur.fetchone()
            cur.execute(_TABLES)
            tables = list(cur.fetchall())
            cur.execute(_COLUMNS)
            columns = defaultdict(list)
            for table, name, shown, nullable, default, extra in cur.fetchall():
                default, extra = str(default or ""), str(extra or "")
                on_insert, on_update = bool(_NOW.match(default.strip())), bool(_ON_UPDATE.search(extra))
                how = " ".join(
                    part for part, on in (("DEFAULT CURRENT_TIMESTAMP", on_insert),
                                          ("ON UPDATE CURRENT_TIMESTAMP", on_update)) if on
                )  # fmt: skip
                columns[table].append(
                    CatalogColumn(
                        name,
                        str(shown),
                        nullable == "YES",
                        "auto_increment" in extra.lower(),
                        on_insert,
                        on_update,
                        how,
                    )  # fmt: skip
                )
            cur.execute(_INDEXES)
            indexes: dict[str, dict[str, tuple[bool, list[str | None]]]] = defaultdict(dict)
            for table, index, non_unique, column in cur.fetchall():
                indexes[table].setdefault(index, (not int(non_unique), []))[1].append(column)
        finally:
            cur.close()
        out = []
        for name, shown_kind in tables:
            cols = tuple(columns.get(name, ()))
            not_null = {c.name for c in cols if not c.nullable}
            primary, unique, leading = (), [], set()
            for index, (is_unique, parts) in sorted(indexes.get(name, {}).items()):
                if parts[0] is not None:
                    leading.add(parts[0])
                if None in parts or not is_unique:
                    continue
                if index == "PRIMARY":
                    primary = tuple(parts)
                elif set(parts) <= not_null:
                    unique.append(tuple(parts))
            out.append(
                CatalogTable(
                    name,
                    _KINDS.get(str(shown_kind), "other"),
                    str(shown_kind),
                    cols,
                    primary,
                    tuple(sorted(unique, key=len)),
                    frozenset(leading),
                )  # fmt: skip
            )
        return Catalog(tuple(out), where=f"database {database}")
