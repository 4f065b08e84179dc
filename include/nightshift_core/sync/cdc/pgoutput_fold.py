"""pgoutput's row messages folded per primary key with array operations, not one Python object each.

A log run's chunk arrives as :class:`~.postgres_logical.Block` s: the undecoded Insert, Update and
Delete messages of its transactions. :class:`BlockFolder` keeps them as they are and, when the chunk
is taken, decodes them all at once: the messages are laid end to end in one byte buffer, and each
TupleData is walked column by column for every message together (numpy: a column's kind byte, its
length, where the next column starts), so the Python work is per column, not per value. The fold (the
last change of each key wins; a delete is a tombstone; an update that changes the key also deletes the
old one) then runs on the keys' bytes (Arrow's dictionary encoding), and each column's text comes out
as one Arrow string array gathered from the buffer, for :func:`.values.postgres_columns`.

It gives exactly :class:`.changes.Folder`'s result over :func:`.postgres_logical._decode`'s changes
(tests/test_cdc_pg_fold.py compares the two); a chunk it cannot read that way (a value in binary form,
a TupleData of another width than its Relation, a key column missing or NULL, text that is not UTF-8)
goes through those instead, which decode it one message at a time and raise what they raise.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from nightshift_core.sync.cdc.changes import Folded, Folder

_INSERT, _UPDATE, _DELETE = 73, 85, 68  # 'I', 'U', 'D'
_NEW, _KEY, _OLD = 78, 75, 79  # 'N', 'K', 'O': the tuple that follows
_TEXT, _NULL, _UNCHANGED = 116, 110, 117  # 't', 'n', 'u': a column's kind in a TupleData
_ABSENT = 0  # (ours) a column the message's Relation does not have
_PAD = b"\0" * 16  # lets a length, or a value's first 12 bytes, be read past the last message unchecked
_FIRST_12 = np.arange(12, dtype=np.int64)


class _Irregular(Exception):
    """A chunk this module does not read with arrays: the per-message decoding takes it."""


class ColumnarFold:
    """A chunk's net rows, column by column, in the order their keys last changed.

    ``texts`` maps each source column to its pgoutput text (a string array of ``rows``: a delete holds
    its key alone), ``absent`` to the mask of the rows whose image lacks it (deletes' other columns, a
    TOASTed value pgoutput did not resend, a column the logged Relation did not have); ``deletes`` is the
    mask of tombstones and ``commit_times`` each row's commit time (timestamps, UTC).
    """

    __slots__ = ("absent", "commit_times", "deletes", "rows", "texts")

    def __init__(
        self, rows: int, texts: dict, absent: dict, deletes: np.ndarray, commit_times: pa.Array
    ) -> None:
        self.rows, self.texts, self.absent = rows, texts, absent
        self.deletes, self.commit_times = deletes, commit_times

    def __len__(self) -> int:
        return self.rows


class BlockFolder:
    """:class:`.changes.Folder`'s role for blocks of pgoutput messages (``key``: the table's key)."""

    def __init__(self, key: Sequence[str]) -> None:
        self.key = tuple(key)
        self.changes = 0  # row messages added since the last take
        self._blocks: list[Any] = []

    def add(self, block: Any) -> int:
        """Hold ``block`` (a :class:`~.postgres_logical.Block`); returns its number of row changes."""
        if block.count:
            self._blocks.append(block)
            self.changes += block.count
        return block.count

    def take(self) -> ColumnarFold | list[Folded]:
        """The net rows of what was added (then empty): a :class:`ColumnarFold`, or the per-message
        fold's list where the chunk is not one this module reads."""
        blocks, self._blocks, self.changes = self._blocks, [], 0
        try:
            return fold_blocks(blocks, self.key)
        except _Irregular:
            return _fold_slowly(blocks, self.key)


def _fold_slowly(blocks: list[Any], key: tuple[str, ...]) -> list[Folded]:
    from nightshift_core.sync.cdc.postgres_logical import block_changes

    folder = Folder({}, default=key)
    for change in block_changes(blocks, text=True):
        folder.add(change)
    return folder.take()


def fold_blocks(blocks: list[Any], key: tuple[str, ...]) -> ColumnarFold:
    """Decode and fold ``blocks`` (raises :class:`_Irregular` for a chunk to decode per message)."""
    segments = [(relation, rows, block.commit_time) for block in blocks for relation, rows in block.segments]
    if len({relation.table for relation, _, _ in segments}) > 1:
        raise _Irregular  # (a read of one table: the per-message fold keys each table apart)
    messages = [data for _, rows, _ in segments for data in rows]
    count = len(messages)
    lengths = np.fromiter(map(len, messages), np.int64, count)
    starts = np.zeros(count, np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    buf = np.frombuffer(b"".join(messages) + _PAD, np.uint8)
    del messages
    if len(buf) >= 2**31:
        raise _Irregular  # (a view's offset is 32 bits: a chunk of 2 GB of messages is read per message)
    micros = np.empty(count, np.int64)
    kinds = buf[starts]
    # Per message: the new image's columns by name (kind, start, length), and the key's, from the new
    # image (inserts, updates) or the old one (deletes); an update's old key where it carries one.
    new_cols: dict[str, list[np.ndarray]] = {}
    key_at = [(np.zeros(count, np.int64), np.zeros(count, np.int64)) for _ in key]
    old_at = [(np.zeros(count, np.int64), np.zeros(count, np.int64)) for _ in key]
    has_old_key = np.zeros(count, bool)
    at = 0
    for relation, rows, commit_time in segments:
        n = len(rows)
        part = slice(at, at + n)
        micros[part] = _micros(commit_time)
        positions, op, image = starts[part], kinds[part], buf[starts[part] + 5]
        inserts, deletes = op == _INSERT, op == _DELETE
        if not (((image == _NEW) | (image == _KEY) | (image == _OLD)) & ~(inserts & (image != _NEW)) &
                ~(deletes & (image == _NEW))).all():  # fmt: skip
            raise _Irregular
        columns = [c[0] for c in relation.columns]
        where = {name: i for i, name in enumerate(columns)}
        if any(k not in where for k in key):
            raise _Irregular  # (the per-message fold names the missing key column)
        first = _tuples(buf, positions + 6, len(columns))
        old = (op == _UPDATE) & (image != _NEW)  # an update with its old key (or old row) first
        new_kind, new_start, new_length = (first[0].copy(), first[1].copy(), first[2].copy())
        if old.any():
            after = first[3][old]
            if (buf[after] != _NEW).any():
                raise _Irregular
            second = _tuples(buf, after + 1, len(columns))
            new_kind[:, old], new_start[:, old], new_length[:, old] = second[:3]
        for i, name in enumerate(columns):
            kind, start, length = new_cols.setdefault(
                name, [np.zeros(count, np.uint8), np.zeros(count, np.int64), np.zeros(count, np.int64)]
            )
            kind[part] = np.where(deletes, _ABSENT, new_kind[i])  # a delete's other columns: absent
            start[part], length[part] = new_start[i], new_length[i]
        for k, name in enumerate(key):
            i = where[name]
            if not (np.where(deletes, first[0][i], new_kind[i]) == _TEXT).all():
                raise _Irregular  # a NULL or unchanged key: the per-message fold says which
            key_at[k][0][part] = np.where(deletes, first[1][i], new_start[i])
            key_at[k][1][part] = np.where(deletes, first[2][i], new_length[i])
            if old.any():
                if not (first[0][i][old] == _TEXT).all():
                    raise _Irregular
                old_at[k][0][part] = np.where(old, first[1][i], 0)
                old_at[k][1][part] = np.where(old, first[2][i], 0)
        has_old_key[part] = old
        at += n
    deleted = kinds == _DELETE
    keys = [_strings(buf, s, length).cast(pa.large_binary()) for s, length in key_at]
    # Entries in commit order: an update that moved its key deletes the old key just before (order 2i).
    order = np.arange(count, dtype=np.int64) * 2 + 1
    entry_msg = np.arange(count, dtype=np.int64)
    entry_delete = deleted
    if has_old_key.any():
        moved_rows = np.flatnonzero(has_old_key)
        olds = [
            _strings(buf, s[moved_rows], length[moved_rows]).cast(pa.large_binary()) for s, length in old_at
        ]
        news = [k.take(pa.array(moved_rows)) for k in keys]
        same = np.ones(len(moved_rows), bool)
        for o, n_ in zip(olds, news, strict=True):
            same &= pc.equal(o, n_).to_numpy(zero_copy_only=False)
        moved = moved_rows[~same]
        if len(moved):
            picked = np.flatnonzero(~same)
            keys = [pa.concat_arrays([k, o.take(pa.array(picked))]) for k, o in zip(keys, olds, strict=True)]
            order = np.concatenate([order, moved * 2])
            entry_msg = np.concatenate([entry_msg, moved])
            entry_delete = np.concatenate([entry_delete, np.ones(len(moved), bool)])
    if len(order) > count:  # (otherwise already in order)
        sequence = np.argsort(order, kind="stable")
        keys = [k.take(pa.array(sequence)) for k in keys]
        entry_msg, entry_delete = entry_msg[sequence], entry_delete[sequence]
    # The last entry of each key: the first of each in the reversed sequence.
    joined = (
        keys[0] if len(keys) == 1 else pc.binary_join_element_wise(*keys, pa.scalar(b"\0", pa.large_binary()))
    )
    codes = joined.dictionary_encode().indices.to_numpy()
    _, first_reversed = np.unique(codes[::-1], return_index=True)
    last = np.sort(len(codes) - 1 - first_reversed)
    chosen, tombstones = entry_msg[last], entry_delete[last]
    rows = len(last)
    texts: dict[str, pa.Array] = {}
    absent: dict[str, np.ndarray] = {}
    taken = pa.array(last)
    for name, k in zip(key, keys, strict=True):
        texts[name] = _text(k.take(taken))
        absent[name] = np.zeros(rows, bool)
    for name, (kind, start, length) in new_cols.items():
        if name in texts:
            continue
        kind, start, length = kind[chosen], start[chosen], length[chosen]
        texts[name] = _text(_strings(buf, start, np.where(kind == _TEXT, length, 0), valid=kind == _TEXT))
        absent[name] = tombstones | (kind == _UNCHANGED) | (kind == _ABSENT)
    times = pa.array(micros[chosen], pa.int64()).cast(pa.timestamp("us", tz="UTC"))
    return ColumnarFold(rows, texts, absent, tombstones, times)


def _micros(commit_time: dt.datetime) -> int:
    return (commit_time - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)


def _tuples(
    buf: np.ndarray, at: np.ndarray, width: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """TupleData at ``at`` (one per message), ``width`` columns each: per column its kind byte, its text's
    start and length (rows: columns), and where each TupleData ends."""
    declared = (buf[at].astype(np.int64) << 8) | buf[at + 1]
    if (declared != width).any():
        raise _Irregular
    at = at + 2
    kinds = np.empty((width, len(at)), np.uint8)
    starts = np.empty((width, len(at)), np.int64)
    lengths = np.zeros((width, len(at)), np.int64)
    for i in range(width):
        kind = buf[at]
        text = kind == _TEXT
        if not (text | (kind == _NULL) | (kind == _UNCHANGED)).all():
            raise _Irregular  # 'b': a binary value (never asked for)
        length = (
            (buf[at + 1].astype(np.int64) << 24) | (buf[at + 2].astype(np.int64) << 16)
            | (buf[at + 3].astype(np.int64) << 8) | buf[at + 4]
        )  # fmt: skip
        kinds[i], starts[i] = kind, at + 5
        lengths[i] = np.where(text, length, 0)
        at = at + np.where(text, 5 + length, 1)
    return kinds, starts, lengths, at


def _strings(
    buf: np.ndarray, starts: np.ndarray, lengths: np.ndarray, valid: np.ndarray | None = None
) -> pa.Array:
    """The byte ranges ``starts``/``lengths`` of ``buf`` as one binary view array (``valid``: not NULL):
    16 bytes per value pointing into ``buf`` (Arrow's view layout: the length, then up to 12 bytes
    inline, or a 4-byte prefix and the offset), so no value is copied on the way."""
    count = len(starts)
    views = np.zeros((count, 16), np.uint8)
    words = views.view(np.int32)  # per value: length, then 3 words of inline bytes or prefix/buffer/offset
    words[:, 0] = lengths
    # each value's first 12 bytes, through a zero-copy window on the buffer (padded: a value near its
    # end reads past it); an inline value's bytes past its length are zeros
    head = np.lib.stride_tricks.sliding_window_view(buf, 12)[starts]
    head *= _FIRST_12 < lengths[:, None]
    views[:, 4:] = head
    long = lengths > 12  # the first 4 bytes stay as the prefix; then buffer 0 and the offset
    if long.any():
        words[long, 2] = 0
        words[long, 3] = starts[long]
    bitmap = None if valid is None else pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.Array.from_buffers(pa.binary_view(), count, [bitmap, pa.py_buffer(views), pa.py_buffer(buf)])


def _text(values: pa.Array) -> pa.Array:
    """Binary values as UTF-8 strings (refused, for the per-message decoding, when they are not)."""
    try:
        return values.cast(pa.string())
    except pa.ArrowInvalid:
        raise _Irregular from None
