"""One warehouse interface, two engines: BigQuery (production) and DuckDB (embedded default)."""

from nightshift_core.warehouse.base import (
    DuplicateKeyError,
    JobKey,
    PartitionFilter,
    PublishResult,
    StagedTable,
    SyncState,
    Warehouse,
)
from nightshift_core.warehouse.types import (
    Column,
    SchemaChangeError,
    TableRef,
    UnsupportedTypeError,
    WarehouseError,
    WriteMode,
)

__all__ = [
    "Column", "DuplicateKeyError", "JobKey", "PartitionFilter", "PublishResult", "SchemaChangeError",
    "StagedTable", "SyncState", "TableRef", "UnsupportedTypeError", "Warehouse", "WarehouseError", "WriteMode",
]  # fmt: skip
