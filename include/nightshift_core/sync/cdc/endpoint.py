"""Where a change reader connects: host, port, login and database of one source server."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Self


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    user: str
    database: str
    password: str = field(default="", repr=False)

    def __str__(self) -> str:
        return f"{self.host}:{self.port}/{self.database}"


class ServerReader:
    """A change reader holding one control connection to its server; closes it as a context manager."""

    _conn: Any

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
