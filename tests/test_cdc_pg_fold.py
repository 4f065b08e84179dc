"""The PostgreSQL log run's array fold (pgoutput_fold) against the per-message fold it replaced, on real
pgoutput messages from the private PostgreSQL with wal_level=logical (scripts/cdc_services.sh): every
kind of row message and image, in one chunk and cut in parts, and the fallback to the per-message fold."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from nightshift_core.sync.cdc import postgres_logical
from nightshift_core.sync.cdc.changes import Folded, Folder
from nightshift_core.sync.cdc.endpoint import Endpoint
from nightshift_core.sync.cdc.pgoutput_fold import BlockFolder, ColumnarFold, _Irregular, fold_blocks

KEY = ("order_id", "line")


@pytest.fixture
def logged(postgres_logical_service) -> Iterator[tuple[Any, Any]]:
    from support.services import scratch_database

    service = postgres_logical_service
    with scratch_database(service, "ns_cdc_fold") as db:
        cur = db.conn.cursor()
        cur.execute(
            "CREATE TABLE items (order_id INT, line INT, qty INT, note TEXT, PRIMARY KEY (order_id, line))"
        )
        reader = postgres_logical.LogicalReader(
            Endpoint(service.host, service.port, "postgres", db.name), f"f{uuid.uuid4().hex[:10]}", ["items"]
        )
        try:
            reader.ensure_slot()
            yield cur, reader
        finally:
            reader.drop()
            reader.close()


@pytest.fixture
def postgres_logical_service(request):
    return request.getfixturevalue("postgres_logical")


def messages(reader: Any) -> list[tuple[str, bytes]]:
    return list(reader._messages(0, reader.current_position()))


def by_message(msgs: list, split_after: int = 0) -> list[Folded]:
    folder = Folder({}, default=KEY)
    for change in postgres_logical._decode(iter(msgs), 0, text=True, split_after=split_after):
        folder.add(change)
    return folder.take()


def by_arrays(msgs: list, split_after: int = 0) -> ColumnarFold | list[Folded]:
    folder = BlockFolder(KEY)
    held = sum(
        folder.add(block) for block in postgres_logical._blocks(iter(msgs), 0, split_after=split_after)
    )
    assert held == folder.changes == sum(m[1][0] in b"IUD" for m in msgs)
    return folder.take()


def as_rows(fold: ColumnarFold) -> list[tuple]:
    """(key, op, row, commit time) per net row, as Folded has them."""
    out = []
    for i in range(fold.rows):
        key = tuple(fold.texts[k][i].as_py() for k in KEY)
        op = "delete" if fold.deletes[i] else "upsert"
        row = (
            None
            if op == "delete"
            else {n: t[i].as_py() for n, t in fold.texts.items() if not fold.absent[n][i]}
        )
        out.append((key, op, row, fold.commit_times[i].as_py()))
    return out


def expected(folded: list[Folded]) -> list[tuple]:
    return [(f.key, f.op, None if f.op == "delete" else dict(f.row), f.commit_time) for f in folded]


def test_every_row_message_folds_as_the_per_message_fold(logged):
    cur, reader = logged
    big = uuid.uuid4().hex * 400  # stored out of line: an update of another column sends it as unchanged
    cur.execute("ALTER TABLE items ALTER COLUMN note SET STORAGE EXTERNAL")  # (out of line, uncompressed)
    cur.execute(
        "INSERT INTO items SELECT o, l, o * l, 'n' || o FROM generate_series(1, 30) o, generate_series(1, 3) l"
    )
    cur.execute(f"INSERT INTO items VALUES (99, 1, NULL, '{big}'), (98, 1, 5, 'ünïcødé ✓ \U0001f600')")
    cur.execute("UPDATE items SET qty = qty + 1 WHERE order_id % 3 = 0")
    cur.execute("UPDATE items SET qty = 7 WHERE order_id = 99")  # note: unchanged TOAST
    cur.execute("UPDATE items SET order_id = order_id + 100 WHERE order_id IN (4, 5)")  # key changes: 'K'
    cur.execute("UPDATE items SET line = 9 WHERE order_id = 6 AND line = 1")
    cur.execute("DELETE FROM items WHERE order_id IN (7, 104)")
    cur.execute("INSERT INTO items VALUES (7, 1, 70, NULL)")  # deleted, then back
    cur.execute("INSERT INTO items VALUES (200, 1, 1, 'x')")
    cur.execute("DELETE FROM items WHERE order_id = 200")  # inserted and deleted in one read
    cur.execute("ALTER TABLE items ADD COLUMN extra TEXT")  # a new Relation mid-read
    cur.execute("UPDATE items SET extra = 'e' || line WHERE order_id IN (8, 9)")
    cur.execute("ALTER TABLE items REPLICA IDENTITY FULL")  # old rows: 'O' images
    cur.execute("UPDATE items SET qty = 0 WHERE order_id = 10")
    cur.execute("UPDATE items SET order_id = 110 WHERE order_id = 11")
    cur.execute("DELETE FROM items WHERE order_id = 12")
    msgs = messages(reader)
    want = expected(by_message(msgs))
    got = by_arrays(msgs)
    assert isinstance(got, ColumnarFold), "the chunk was read with arrays, not handed to the fallback"
    assert as_rows(got) == want
    assert {("4", "1"), ("104", "1"), ("200", "1")} <= {k for k, op, _, _ in want if op == "delete"}
    assert [r for k, _, r, _ in want if k == ("99", "1")][0] == {"order_id": "99", "line": "1", "qty": "7"}
    assert not got.absent["extra"][[i for i, r in enumerate(want) if r[0] == ("8", "1")][0]]
    # cut in parts as a transaction bigger than a chunk is (the same rows, the same fold)
    assert as_rows(by_arrays(msgs, split_after=7)) == expected(by_message(msgs, split_after=7)) == want


def test_commit_times_and_order_follow_the_transactions(logged):
    cur, reader = logged
    cur.connection.autocommit = False
    for n in range(3):
        cur.execute("INSERT INTO items VALUES (%s, 1, %s, NULL)", [n, n])
        if n == 1:
            cur.execute("UPDATE items SET qty = qty + 10 WHERE order_id = 0")
        cur.connection.commit()
    msgs = messages(reader)
    got = by_arrays(msgs)
    want = by_message(msgs)
    assert as_rows(got) == expected(want)
    # the order in which the keys last changed: key 1 inserted, then key 0 updated, in the second
    # transaction; key 2 in the third
    assert [f.key[0] for f in want] == ["1", "0", "2"]
    assert want[0].commit_time == want[1].commit_time < want[2].commit_time


def test_a_chunk_the_arrays_cannot_read_goes_through_the_per_message_fold(logged, monkeypatch):
    cur, reader = logged
    cur.execute("INSERT INTO items VALUES (1, 1, 1, 'a'), (2, 1, 2, 'b')")
    cur.execute("DELETE FROM items WHERE order_id = 1")
    msgs = messages(reader)
    # a TupleData of another width than its Relation: refused by the arrays
    blocks = list(postgres_logical._blocks(iter(msgs), 0))
    relation, rows = blocks[0].segments[0]
    wide = [d[:6] + bytes([d[6], d[7] + 1]) + d[8:] if d[0] == ord("I") else d for d in rows]
    blocks[0].segments[0] = (relation, wide)
    with pytest.raises(_Irregular):
        fold_blocks(blocks, KEY)

    def irregular(*args):
        raise _Irregular

    monkeypatch.setattr("nightshift_core.sync.cdc.pgoutput_fold.fold_blocks", irregular)
    got = by_arrays(msgs)
    assert isinstance(got, list) and got == by_message(msgs)
    assert [(f.key, f.op) for f in got] == [(("2", "1"), "upsert"), (("1", "1"), "delete")]


def test_a_null_key_value_is_left_to_the_per_message_fold(logged):
    cur, reader = logged
    cur.execute("INSERT INTO items VALUES (1, 1, 1, 'a'), (2, 1, 2, 'b')")
    blocks = list(postgres_logical._blocks(iter(messages(reader)), 0))
    relation, rows = blocks[0].segments[0]
    # the key's first column sent as NULL ('n'), which PostgreSQL never sends for a key: the arrays
    # refuse the chunk, and the per-message fold's result is the folder's
    at = 8  # 'I', oid, 'N', the column count: the first column's kind
    length = int.from_bytes(rows[0][at + 1 : at + 5], "big")
    blocks[0].segments[0] = (relation, [rows[0][:at] + b"n" + rows[0][at + 5 + length :], rows[1]])
    with pytest.raises(_Irregular):
        fold_blocks(blocks, KEY)
    folder = BlockFolder(KEY)
    for block in blocks:
        folder.add(block)
    want = Folder({}, default=KEY)
    for change in postgres_logical.block_changes(blocks, text=True):
        want.add(change)
    got = folder.take()
    assert got == want.take() and [f.key for f in got] == [(None, "1"), ("2", "1")]


def test_rows_of_two_tables_in_one_chunk_go_through_the_per_message_fold(postgres_logical_service):
    from support.services import scratch_database

    service = postgres_logical_service
    with scratch_database(service, "ns_cdc_fold") as db:
        cur = db.conn.cursor()
        for name in ("items", "lines"):  # the same key columns: only the table tells their rows apart
            cur.execute(
                f"CREATE TABLE {name} (order_id INT, line INT, qty INT, PRIMARY KEY (order_id, line))"
            )
        reader = postgres_logical.LogicalReader(
            Endpoint(service.host, service.port, "postgres", db.name),
            f"f{uuid.uuid4().hex[:10]}",
            ["items", "lines"],
        )
        try:
            reader.ensure_slot()
            cur.execute("INSERT INTO items VALUES (1, 1, 1)")
            cur.execute("INSERT INTO lines VALUES (1, 1, 2)")
            msgs = messages(reader)
        finally:
            reader.drop()
            reader.close()
    got = by_arrays(msgs)
    assert isinstance(got, list) and got == by_message(msgs)
    assert [(f.table, f.key, f.row["qty"]) for f in got] == [
        ("public.items", ("1", "1"), "1"),
        ("public.lines", ("1", "1"), "2"),
    ]
