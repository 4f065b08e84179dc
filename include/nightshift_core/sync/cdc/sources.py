"""Which change log ``mode: cdc`` reads for a source dialect: the one place change capture relates the two.

The dialects know nothing of change capture (``sync/dialects`` never imports ``sync/cdc``); this
registry maps a dialect class to the :class:`LogSource` that reads its database's log, imported only
when a run asks for it (a binlog run never loads the logical-decoding reader, nor its driver). A
dialect without an entry (SQLite) has no log: asking for one fails naming the modes that work.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from nightshift_core.errors import SourceDefinitionError
from nightshift_core.sync import dialects
from nightshift_core.sync.dialects import Dialect, MySqlDialect, PostgresDialect

if TYPE_CHECKING:
    from nightshift_core.sync.cdc.log_source import LogSource

# dialect class -> "module:class" of its log source (a subclass of a dialect reads its parent's log)
LOG_SOURCES: dict[type[Dialect], str] = {
    MySqlDialect: "nightshift_core.sync.cdc.mysql_source:BinlogSource",
    PostgresDialect: "nightshift_core.sync.cdc.postgres_source:LogicalSource",
}


def log_source(dialect: Dialect | str, table: str) -> LogSource:
    """The log ``dialect``'s database keeps (a dialect or its name), or the error naming the modes that
    read ``table`` without one."""
    dialect = dialects.get(dialect)
    path = next((LOG_SOURCES[k] for k in type(dialect).__mro__ if k in LOG_SOURCES), None)
    if path is None:
        raise SourceDefinitionError(
            f"table {table!r}: mode: cdc reads MySQL/MariaDB or PostgreSQL logs, not {dialect.name}; use "
            "mode: incremental or full"
        )
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)(dialect)


__all__ = ["LOG_SOURCES", "log_source"]
