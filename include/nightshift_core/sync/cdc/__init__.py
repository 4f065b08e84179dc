"""Change capture from the source database's own log (issue 30, foundation only).

What exists: the source-setting checks (`preflight`), a bounded MariaDB/MySQL binlog reader
(`mysql_binlog`), a bounded PostgreSQL logical-decoding reader (`postgres_logical`) and the pure
`fold` of changes per primary key. Nothing here is wired into the sync operator yet: `mode: cdc`
does not exist as a sync mode.
"""

from __future__ import annotations

from nightshift_core.sync.cdc.changes import Change, Folded, TruncatedError, fold
from nightshift_core.sync.cdc.preflight import PreflightError, Problem

__all__ = ["Change", "Folded", "PreflightError", "Problem", "TruncatedError", "fold"]
