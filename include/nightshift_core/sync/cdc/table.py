"""What one table's change capture needs from its sync definition, and the slot it is read through.

Its own module so the log sources (``log_source.py``) and the guards can name it without importing
the run (``run.py`` imports both, and re-exports :class:`CdcTable`).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Literal

_SLOT_NAME_MAX = 50


@dataclass(frozen=True)
class CdcTable:
    """What one table's change capture needs from its sync definition."""

    name: str
    primary_key: tuple[str, ...]
    definition: str  # the sync definition's id (its DAG id): PostgreSQL slots are named after it
    exclude: tuple[str, ...] = ()
    deletes: Literal["soft", "hard"] = "soft"
    # fold and commit at the first transaction boundary past this many changes (a bigger transaction
    # is cut in parts of this size): a run holds at most about twice this many at once
    chunk_changes: int = 50_000
    batch_rows: int = 50_000  # the snapshot's read batches

    @property
    def slot(self) -> str:
        """The slot and publication suffix: one per table (a slot serves one reader at a time and the
        tables of a definition run as parallel tasks)."""
        name = re.sub(r"[^a-z0-9_]", "_", f"{self.definition}_{self.name}".lower())
        if not name[:1].isalpha():
            name = "t" + name
        if len(name) > _SLOT_NAME_MAX:
            name = (
                name[: _SLOT_NAME_MAX - 9] + "_" + hashlib.blake2b(name.encode(), digest_size=4).hexdigest()
            )
        return name


__all__ = ["CdcTable"]
