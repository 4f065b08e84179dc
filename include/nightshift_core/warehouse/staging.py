"""Spool Arrow batches to a local Parquet file: bounded memory, and a content fingerprint."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def spool_parquet(
    batches: Iterable[pa.RecordBatch],
    schema: pa.Schema,
    path: Path,
    *,
    convert: Callable[[pa.RecordBatch], pa.RecordBatch] | None = None,
    row_group_rows: int = 131072,
) -> tuple[int, str]:
    """Write ``batches`` to ``path`` (atomically); return (rows, blake2b of the file).

    Same batches in the same order give the same bytes, hence the same fingerprint.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    rows = 0
    out_schema = schema
    writer: pq.ParquetWriter | None = None
    try:
        for batch in batches:
            if not batch.schema.equals(schema, check_metadata=False):
                raise ValueError(f"batch schema {batch.schema} differs from the declared schema {schema}")
            if convert is not None:
                batch = convert(batch)
            if writer is None:
                out_schema = batch.schema
                writer = _writer(tmp, out_schema)
            writer.write_batch(batch, row_group_size=row_group_rows)
            rows += batch.num_rows
        if writer is None:
            if convert is not None:
                out_schema = convert(_empty(schema)).schema
            writer = _writer(tmp, out_schema)
        writer.close()
        writer = None
        os.replace(tmp, path)
    finally:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)
    return rows, file_digest(path)


def _empty(schema: pa.Schema) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist([], schema=schema)


def _writer(path: Path, schema: pa.Schema) -> pq.ParquetWriter:
    return pq.ParquetWriter(
        path,
        schema,
        compression="zstd",
        compression_level=1,
        write_statistics=True,
        store_decimal_as_integer=False,
        coerce_timestamps="us",
        allow_truncated_timestamps=False,
    )


def file_digest(path: Path) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
