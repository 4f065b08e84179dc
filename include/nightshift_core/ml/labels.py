"""Human sentiment labels: the file formats we read, the gold rule, and the frozen split.

Two formats, chosen by file name:

* ``*.csv`` -- header ``text,label`` plus optional ``id`` and ``rating``: ``label`` is
  ``positive``/``negative``/``neutral``; ``rating`` is an intensity in [-1, 1] (optional). A row
  with a rating and no label gets the gold rule's label.
* ``*.txt`` / ``*.tsv`` -- the VADER ground-truth layout ``ID<TAB>MEAN_RATING<TAB>TEXT``, mean
  rating on a -4..+4 scale (divided by 4 here); the label is the gold rule's.
* ``*.tsv`` whose first line is the header ``id<TAB>label<TAB>text`` -- categorical labels with
  no rating (TweetEval's layout); ``rating`` stays empty, so only the class enters the loss and
  Pearson r skips the row.

Files are UTF-8 (a leading byte-order mark, as spreadsheet programs write, is fine). An example's
id is ``<file stem>:<id>``, so two files in one folder may not share a stem.

Gold rule (the benchmarks' protocol): rating >= 0.05 positive, <= -0.05 negative, else neutral.

The split is by a hash of the *normalised text* and a seed: a text is in the evaluation set or
not, forever, whatever else is added -- so the evaluation set never leaks into training, even
when the same sentence arrives twice from two files.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import math
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from nightshift_core.errors import PermanentError
from nightshift_core.sentiment.rules import LABELS, Label

GOLD_THRESHOLD = 0.05
CSV_COLUMNS = frozenset({"id", "text", "label", "rating"})
CATEGORICAL_HEADER = "id\tlabel\ttext"
SUFFIXES = (".csv", ".tsv", ".txt")
MAX_TEXT = 10_000


class LabelFileError(ValueError, PermanentError):
    """A label file that cannot be read as-is; the message names file, line and fix."""


@dataclasses.dataclass(frozen=True)
class LabelRow:
    example_id: str  # "<file stem>:<id>": stable across reloads of the same file
    text: str
    label: Label
    rating: float | None
    source: str  # the file's name


def gold_label(rating: float) -> Label:
    """The benchmarks' rule on a [-1, 1] rating."""
    if rating >= GOLD_THRESHOLD:
        return "positive"
    if rating <= -GOLD_THRESHOLD:
        return "negative"
    return "neutral"


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def text_key(text: str) -> str:
    """The id of a text's content, used for the split and for de-duplication."""
    return hashlib.sha256(normalise(text).encode("utf-8", "surrogatepass")).hexdigest()


def in_eval(text: str, seed: int, eval_share: float) -> bool:
    """Whether ``text`` belongs to the frozen evaluation set for ``seed``/``eval_share``."""
    digest = hashlib.sha256(f"{seed}:{text_key(text)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < eval_share


def _rating(raw: str, where: str, scale: float) -> float:
    try:
        value = float(raw) / scale
    except ValueError:
        raise LabelFileError(f"{where}: rating {raw!r} is not a number") from None
    if not math.isfinite(value) or not -1.0 <= value <= 1.0:
        raise LabelFileError(f"{where}: rating {raw!r} is outside [{-scale:g}, {scale:g}]")
    return value


def _text(raw: str | None, where: str) -> str:
    text = (raw or "").strip()
    if not text:
        raise LabelFileError(f"{where}: the text is empty; remove the row or fill it in")
    if len(text) > MAX_TEXT:
        raise LabelFileError(
            f"{where}: the text has {len(text)} characters (at most {MAX_TEXT}); shorten or drop it"
        )
    return text


def _decode(path: Path) -> str:
    """The file's text; a non-UTF-8 byte is an error naming its line and its offset in the file."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise LabelFileError(
            f"{path}, line {line}: not UTF-8 ({exc.reason} at byte {exc.start}); re-save it as UTF-8"
        ) from None
    return text.removeprefix("\ufeff")


def _read_csv(path: Path) -> Iterator[tuple[int, LabelRow]]:
    with io.StringIO(_decode(path), newline="") as fh:
        reader = csv.DictReader(fh)
        columns = set(reader.fieldnames or ())
        if not {"text"} <= columns or not columns & {"label", "rating"}:
            raise LabelFileError(
                f"{path}: the header is {sorted(columns) or 'missing'}; it needs 'text' and 'label' "
                "(optional: 'id', 'rating' in [-1, 1])"
            )
        if columns - CSV_COLUMNS:
            raise LabelFileError(
                f"{path}: unknown column(s) {sorted(columns - CSV_COLUMNS)}; allowed: {sorted(CSV_COLUMNS)}"
            )
        for row in reader:
            where = f"{path}, line {reader.line_num}"
            if None in row:
                raise LabelFileError(
                    f"{where}: more fields than the header has; quote text containing commas"
                )
            text = _text(row["text"], where)
            raw_rating = (row.get("rating") or "").strip()
            rating = _rating(raw_rating, where, 1.0) if raw_rating else None
            label = (row.get("label") or "").strip().lower()
            if not label and rating is not None:
                label = gold_label(rating)
            if label not in LABELS:
                raise LabelFileError(f"{where}: label {row.get('label')!r} is not one of {', '.join(LABELS)}")
            if rating is not None and label != gold_label(rating):
                raise LabelFileError(
                    f"{where}: label {label!r} contradicts rating {rating:g} (>= 0.05 positive, <= -0.05 "
                    "negative, else neutral); fix one of them"
                )
            row_id = (row.get("id") or "").strip() or text_key(text)[:16]
            label_row = LabelRow(f"{path.stem}:{row_id}", text, label, rating, path.name)  # type: ignore[arg-type]
            yield reader.line_num, label_row


def _tab_rows(path: Path, text: str, layout: str, first: int) -> Iterator[tuple[int, str, str, str, str]]:
    """``(line number, where, id, second field, text)`` of each non-blank line from line ``first``
    of a 3-column tab-separated file; a short line or an empty id names the ``layout``."""
    with io.StringIO(text) as fh:
        for number, line in enumerate(fh, start=1):
            if number < first or not line.strip():
                continue
            where = f"{path}, line {number}"
            parts = line.rstrip("\r\n").split("\t", 2)
            if len(parts) != 3:
                raise LabelFileError(f"{where}: expected {layout} (3 tab-separated fields)")
            if not parts[0].strip():
                raise LabelFileError(f"{where}: the ID (first field) is empty; give every row an id")
            yield number, where, parts[0].strip(), parts[1], _text(parts[2], where)


def _read_ground_truth(path: Path, text: str) -> Iterator[tuple[int, LabelRow]]:
    for number, where, row_id, raw_rating, body in _tab_rows(path, text, "ID<TAB>MEAN_RATING<TAB>TEXT", 1):
        rating = _rating(raw_rating, where, 4.0)
        yield number, LabelRow(f"{path.stem}:{row_id}", body, gold_label(rating), rating, path.name)


def _read_categorical(path: Path, text: str) -> Iterator[tuple[int, LabelRow]]:
    for number, where, row_id, raw_label, body in _tab_rows(path, text, "id<TAB>label<TAB>text", 2):
        label = raw_label.strip().lower()
        if label not in LABELS:
            raise LabelFileError(f"{where}: label {raw_label!r} is not one of {', '.join(LABELS)}")
        yield number, LabelRow(f"{path.stem}:{row_id}", body, label, None, path.name)  # type: ignore[arg-type]


def _rows(path: Path) -> Iterator[tuple[int, LabelRow]]:
    if path.suffix == ".csv":
        return _read_csv(path)
    text = _decode(path)
    if text.split("\n", 1)[0].rstrip("\r").strip().lower() == CATEGORICAL_HEADER:
        return _read_categorical(path, text)
    return _read_ground_truth(path, text)


def read_file(path: Path) -> list[LabelRow]:
    """Every row of one label file, validated; duplicate ids in one file are an error."""
    rows = []
    seen: dict[str, int] = {}
    for line, row in _rows(path):
        if row.example_id in seen:
            raise LabelFileError(
                f"{path}, line {line}: id {row.example_id.split(':', 1)[1]!r} appears twice; ids must be "
                f"unique (first on line {seen[row.example_id]})"
            )
        seen[row.example_id] = line
        rows.append(row)
    return rows


def label_files(location: Path) -> list[Path]:
    """The label files at ``location``: the file itself, or a folder's files in name order."""
    if location.is_file():
        return [location]
    if location.is_dir():
        files = sorted(p for p in location.iterdir() if p.is_file() and p.suffix in SUFFIXES)
        if files:
            return files
        raise LabelFileError(f"{location}: no label files ({', '.join(SUFFIXES)}) in this folder")
    raise LabelFileError(
        f"{location}: no such file or folder; point labels.path (or NIGHTSHIFT_LABELS_DIR) at one"
    )


def read_labels(locations: Iterable[Path]) -> list[LabelRow]:
    """All rows of all label files under ``locations``, in a stable order."""
    rows: list[LabelRow] = []
    stems: dict[str, Path] = {}
    for location in locations:
        for path in label_files(location):
            other = stems.setdefault(path.stem, path)
            if other != path:
                raise LabelFileError(
                    f"{path}: ids are '<file stem>:<id>', and {other} has the same stem "
                    f"{path.stem!r}; rename one of them"
                )
            rows.extend(read_file(path))
    return rows
