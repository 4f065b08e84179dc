"""The fold of log changes per primary key (pure: no database): last change wins, deletes are
tombstones with their commit time, a key-changing update is a delete plus an insert."""

from __future__ import annotations

import datetime as dt

import pytest

from nightshift_core.sync.cdc import Change, Folded, fold
from nightshift_core.sync.cdc.changes import Folder

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
KEYS = {"s.orders": ["id"], "s.lines": ["order_id", "line"]}


def changes(*specs: tuple) -> list[Change]:
    """(table, op, before, after) per change, one transaction each, one second apart."""
    return [
        Change(table, op, before, after, T0 + dt.timedelta(seconds=n), n, n)
        for n, (table, op, before, after) in enumerate(specs, start=1)
    ]


def net(folded: list[Folded]) -> list[tuple]:
    return [(f.table, f.key, f.op, f.row, f.position) for f in folded]


@pytest.mark.parametrize(
    ("specs", "expected"),
    [
        pytest.param(
            [("s.orders", "insert", None, {"id": 1, "v": "a"})],
            [("s.orders", (1,), "upsert", {"id": 1, "v": "a"}, 1)],
            id="insert",
        ),
        pytest.param(
            [
                ("s.orders", "insert", None, {"id": 1, "v": "a"}),
                ("s.orders", "update", {"id": 1, "v": "a"}, {"id": 1, "v": "b"}),
                ("s.orders", "update", {"id": 1, "v": "b"}, {"id": 1, "v": "c"}),
            ],
            [("s.orders", (1,), "upsert", {"id": 1, "v": "c"}, 3)],
            id="last-update-wins",
        ),
        pytest.param(
            [
                ("s.orders", "insert", None, {"id": 1, "v": "a"}),
                ("s.orders", "delete", {"id": 1, "v": "a"}, None),
            ],
            [("s.orders", (1,), "delete", None, 2)],
            id="insert-then-delete-is-a-tombstone",
        ),
        pytest.param(
            [
                ("s.orders", "delete", {"id": 1}, None),
                ("s.orders", "insert", None, {"id": 1, "v": "again"}),
            ],
            [("s.orders", (1,), "upsert", {"id": 1, "v": "again"}, 2)],
            id="delete-then-reinsert",
        ),
        pytest.param(
            [("s.orders", "update", {"id": 1, "v": "a"}, {"id": 2, "v": "a"})],
            [("s.orders", (1,), "delete", None, 1), ("s.orders", (2,), "upsert", {"id": 2, "v": "a"}, 1)],
            id="key-change-is-delete-plus-insert",
        ),
        pytest.param(
            [
                ("s.orders", "update", {"id": 1, "v": "a"}, {"id": 2, "v": "a"}),
                ("s.orders", "update", {"id": 2, "v": "a"}, {"id": 1, "v": "back"}),
            ],
            [("s.orders", (2,), "delete", None, 2), ("s.orders", (1,), "upsert", {"id": 1, "v": "back"}, 2)],
            id="key-changed-and-back",
        ),
        pytest.param(
            # PostgreSQL with REPLICA IDENTITY DEFAULT: no old image unless the key changed.
            [("s.orders", "update", None, {"id": 1, "v": "b"})],
            [("s.orders", (1,), "upsert", {"id": 1, "v": "b"}, 1)],
            id="update-without-before-image",
        ),
        pytest.param(
            [
                ("s.lines", "insert", None, {"order_id": 1, "line": 1, "q": 5}),
                ("s.orders", "insert", None, {"id": 1, "v": "a"}),
                ("s.lines", "update", {"order_id": 1, "line": 1, "q": 5}, {"order_id": 1, "line": 2, "q": 5}),
            ],
            [
                ("s.orders", (1,), "upsert", {"id": 1, "v": "a"}, 2),
                ("s.lines", (1, 1), "delete", None, 3),
                ("s.lines", (1, 2), "upsert", {"order_id": 1, "line": 2, "q": 5}, 3),
            ],
            id="composite-keys-and-two-tables",
        ),
    ],
)
def test_fold(specs, expected):
    assert net(fold(changes(*specs), KEYS)) == expected


def test_a_tombstone_carries_its_commit_time():
    (tombstone,) = fold(
        changes(("s.orders", "insert", None, {"id": 7}), ("s.orders", "delete", {"id": 7}, None)), KEYS
    )
    assert (tombstone.op, tombstone.row, tombstone.commit_time) == (
        "delete",
        None,
        T0 + dt.timedelta(seconds=2),
    )


def test_changes_out_of_commit_order_are_refused():
    first, second = changes(("s.orders", "insert", None, {"id": 1}), ("s.orders", "delete", {"id": 1}, None))
    with pytest.raises(ValueError, match="out of commit order: seq 1 after seq 2"):
        fold([second, first], KEYS)


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        ([("s.other", "insert", None, {"id": 1})], "no primary-key columns given for table 's.other'"),
        (
            [("s.orders", "insert", None, {"v": 1})],
            r"s.orders: primary-key column\(s\) \['id'\] are not in the insert change's row image",
        ),
    ],
)
def test_a_change_that_cannot_be_keyed_is_refused(specs, message):
    with pytest.raises(ValueError, match=message):
        fold(changes(*specs), KEYS)


def test_two_tables_with_the_same_key_values_stay_apart():
    keys = {"s.a": ["id"], "s.b": ["id"]}
    specs = [
        ("s.a", "insert", None, {"id": 1, "v": "a1"}),
        ("s.b", "insert", None, {"id": 1, "v": "b1"}),
        ("s.a", "update", {"id": 1, "v": "a1"}, {"id": 1, "v": "a2"}),
        ("s.b", "update", {"id": 1, "v": "b1"}, {"id": 2, "v": "b1"}),
        ("s.b", "delete", {"id": 2, "v": "b1"}, None),
    ]
    assert net(fold(changes(*specs), keys)) == [
        ("s.a", (1,), "upsert", {"id": 1, "v": "a2"}, 3),
        ("s.b", (1,), "delete", None, 4),
        ("s.b", (2,), "delete", None, 5),
    ]


def _rows(n: int, start: int = 0) -> list[dict]:
    return [{"order_id": i // 10, "line": i % 10, "q": i} for i in range(start, start + n)]


def test_a_folder_holds_nothing_of_a_chunk_after_take():
    """A drain folds and takes chunk after chunk: what the folder holds between chunks does not grow."""
    import tracemalloc

    folder = Folder({}, default=["order_id", "line"])
    seq, held = 0, []
    tracemalloc.start()
    try:
        for chunk in range(6):
            for row in _rows(5_000, start=chunk * 5_000):
                seq += 1
                folder.add(Change("s.lines", "update", row, row, T0, seq, seq, True))
            assert (folder.changes, len(folder)) == (5_000, 5_000)
            taken = folder.take()
            assert (folder.changes, len(folder), len(taken)) == (0, 0, 5_000)
            del taken
            held.append(tracemalloc.get_traced_memory()[0])
    finally:
        tracemalloc.stop()
    assert max(held[1:]) - held[1] < 16_384, f"bytes traced after each take: {held}"


def test_a_folder_entry_costs_little_beside_its_row_image():
    """One key held costs its net row (the reader's image, shared) plus under 208 bytes: the entry, its
    key tuple and the dict slot (about 180 on CPython 3.11; 237 while each entry was keyed by a
    (table, key) pair). A chunk of 50,000 keys holds about 10 MB beside its row images."""
    import tracemalloc

    rows = _rows(20_000)
    changes_ = [Change("s.lines", "insert", None, row, T0, n, n, True) for n, row in enumerate(rows, 1)]
    folder = Folder({}, default=["order_id", "line"])
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for change in changes_:
            folder.add(change)
        per_key = (tracemalloc.get_traced_memory()[0] - before) / len(folder)
    finally:
        tracemalloc.stop()
    assert len(folder) == 20_000
    assert per_key < 208, f"{per_key:.0f} bytes per key held"
