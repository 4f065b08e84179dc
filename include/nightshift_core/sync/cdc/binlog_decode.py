"""Row images of binlog row events, decoded by a plan compiled once per table map.

mysql-replication decodes a row event's images column by column through a generic dispatch (a chain
of type tests, a packet read and a struct call per value, a bitmap lookup per column), which is most
of a log run's time. Here the table map's columns are compiled once into one Python function per
table that reads an image straight from the event's bytes: fixed-width runs of integers and floats in
one ``struct.unpack_from`` when the row has no NULL, a precomputed reader per other column, the
column names bound as constants. The values are exactly the library's (the same Python types and
values, NULLs as None), so everything downstream (values.py's conversion to the query path's values)
is unchanged; tests/test_cdc_binlog_decode.py compares the two on every column type. One difference,
deliberate: an empty value of a column with no Python codec (BINARY, VARBINARY, BLOB) is b'' here,
where the library gives '' (its decode of empty bytes never looks the codec up, so never falls back
to bytes); b'' is what the query path reads. Likewise an empty SET value is an empty set here (the
query path's ''), where the library gives None, as for NULL. Text in ucs2, utf16, utf16le and utf32 is
read in MySQL's byte order (the library has no codec for ucs2 and utf16le, and reads utf16 and utf32
as little-endian), and ENUM/SET member names in the column's own character set (the library decodes
them as UTF-8): :func:`fix_columns` corrects the library's columns, so its decoding reads them too.

A table with a column type this module does not read (:func:`compile_plan` returns None) or an event
whose images leave columns out (``binlog_row_image`` other than FULL): the reader (mysql_binlog)
decodes it through the library. A compiled image reader that does not end exactly where the event's
rows end fails loudly rather than hand on shifted values.
"""

from __future__ import annotations

import codecs
import datetime as dt
import struct
from collections.abc import Callable
from encodings import cp1252
from typing import Any

from pymysqlreplication.constants import FIELD_TYPE as T
from pymysqlreplication.json_binary import parse_json
from pymysqlreplication.row_event import RowsEvent

_EPOCH = dt.datetime(1970, 1, 1)
_STRUCT = {T.TINY: ("b", "B", 1), T.SHORT: ("h", "H", 2), T.LONG: ("i", "I", 4), T.LONGLONG: ("q", "Q", 8),
           T.FLOAT: ("f", "f", 4), T.DOUBLE: ("d", "d", 8)}  # fmt: skip
_DECIMAL_BYTES = [0, 1, 1, 2, 2, 3, 3, 4, 4, 4]  # bytes of a group of 0-9 leftover digits


class DecodeError(RuntimeError):
    """A compiled image reader disagreed with the event's own length: a decoder bug, never data."""


ImageReader = Callable[[bytes, int], tuple[dict[str, Any], int]]


class Plan:
    """One table map's image reader, and how many columns it expects."""

    __slots__ = ("columns", "read", "source")

    def __init__(self, columns: int, read: ImageReader, source: str) -> None:
        self.columns = columns
        self.read = read
        self.source = source  # the generated function's text (for a failure's message)

    def images(self, data: bytes, p: int, end: int, table: str) -> list[dict[str, Any]]:
        """The row images in ``data[p:end]``, in order (an update's before and after images alternate)."""
        read = self.read
        out = []
        append = out.append
        while p < end:
            image, p = read(data, p)
            append(image)
        if p != end:
            raise DecodeError(
                f"binlog row event of {table}: the compiled image reader ended at byte {p}, the event's rows "
                f"at {end}; column plan:\n{self.source}"
            )
        return out


# MySQL character sets Python knows under another name (or, for utf16 and utf32, knows as the
# byte-order-guessing codec, which reads a big-endian value as little-endian): MySQL's are big-endian
# without a byte-order mark, utf16le little-endian.
_PYTHON_CODECS = {"ucs2": "utf-16-be", "utf16": "utf-16-be", "utf16le": "utf-16-le", "utf32": "utf-32-be"}
_ENUM_VALUES, _SET_VALUES = 6, 5  # optional metadata fields of a table map
# MySQL's latin1 is Windows-1252 with the five bytes that code page leaves undefined read as the C1
# controls of the same number (Python's cp1252 fails on them; the query path gets U+0081 and so on).
_LATIN1 = "".join(chr(b) if c == "\ufffe" else c for b, c in enumerate(cp1252.decoding_table))


def python_codec(character_set: str | None) -> str | None:
    """The Python codec of a column's character set as mysql-replication names it (None: no character
    set recorded, UTF-8 as the library assumes), or None where Python has none (binary columns: bytes)."""
    if character_set is None:
        return "utf-8"
    encoding = _PYTHON_CODECS.get(character_set) or RowsEvent.charset_to_encoding(character_set)
    try:
        codecs.lookup(encoding)
    except LookupError:
        return None
    return encoding


def fix_columns(columns: list[Any], data: bytes, p: int, end: int) -> None:
    """Correct what mysql-replication reads wrongly from a table map (``data[p:end]``: its optional
    metadata) on its Column objects, so the compiled plan and the library's own decoding both read
    the right values: the character set of UCS-2/UTF-16/UTF-32 columns as the Python codec that reads
    them, and ENUM/SET member names decoded in the column's own character set (the library decodes
    them as UTF-8, giving '' or garbled names in any other)."""
    for column in columns:
        if (
            column.type in (T.VARCHAR, T.STRING, T.BLOB, T.ENUM, T.SET)
            and column.character_set_name in _PYTHON_CODECS
        ):
            column.character_set_name = _PYTHON_CODECS[column.character_set_name]
    names: dict[int, list[list[bytes]]] = {_ENUM_VALUES: [], _SET_VALUES: []}
    while p < end:
        kind = data[p]
        length, p = length_coded(data, p + 1)
        if kind in names:
            q, stop = p, p + length
            while q < stop:
                count, q = length_coded(data, q)
                members = []
                for _ in range(count):
                    size, q = length_coded(data, q)
                    members.append(data[q : q + size])
                    q += size
                names[kind].append(members)
        p += length
    enums, sets = iter(names[_ENUM_VALUES]), iter(names[_SET_VALUES])
    for column in columns:
        if column.type not in (T.ENUM, T.SET):
            continue
        members = next(enums if column.type == T.ENUM else sets, None)
        encoding = python_codec(column.character_set_name)
        if members is None or encoding is None:
            continue
        decoded = [m.decode(encoding) for m in members]
        if column.type == T.ENUM:
            column.enum_values = ["", *decoded]
        else:
            column.set_values = decoded


def length_coded(data: bytes, p: int) -> tuple[int, int]:
    """A length-coded integer at ``p`` and the offset after it."""
    first = data[p]
    if first < 251:
        return first, p + 1
    size = {252: 2, 253: 3, 254: 8}[first]
    return int.from_bytes(data[p + 1 : p + 1 + size], "little"), p + 1 + size


def compile_plan(columns: list[Any], *, ignore_errors: bool = False) -> Plan | None:
    """An image reader for a table map's ``columns`` (mysql-replication Column objects), or None when
    a column's type or name is one this module leaves to the library."""
    if not columns or any(not c.name for c in columns):
        return None
    env: dict[str, Any] = {"_int": int.from_bytes, "_parse_json": parse_json}
    readers = []
    for i, column in enumerate(columns):
        reader = _column(i, column, env, "ignore" if ignore_errors else "strict")
        if reader is None:
            return None
        readers.append(reader)
    n = len(columns)
    null_bytes = (n + 7) // 8
    lines = ["def read(data, p):"]
    if null_bytes == 1:
        lines.append("    nulls = data[p]")
    else:
        lines.append(f"    nulls = _int(data[p:p + {null_bytes}], 'little')")
    lines.append(f"    p += {null_bytes}")
    # no NULL in the row: straight-line code, runs of fixed-width numbers in one unpack
    lines.append("    if not nulls:")
    i = 0
    while i < n:
        run = i
        while run < n and readers[run].fmt:
            run += 1
        if run - i >= 2:
            fmt = "<" + "".join(r.fmt for r in readers[i:run])
            env[f"_run{i}"] = struct.Struct(fmt).unpack_from
            names = ", ".join(f"v{k}" for k in range(i, run))
            lines.append(f"        {names} = _run{i}(data, p)")
            lines.append(f"        p += {struct.calcsize(fmt)}")
            i = run
            continue
        lines += ["        " + line for line in readers[i].code]
        i += 1
    lines.append("    else:")
    for k, reader in enumerate(readers):
        lines.append(f"        if nulls & {1 << k}:")
        lines.append(f"            v{k} = None")
        lines.append("        else:")
        lines += ["            " + line for line in reader.code]
    image = ", ".join(f"{c.name!r}: v{k}" for k, c in enumerate(columns))
    lines.append(f"    return {{{image}}}, p")
    source = "\n".join(lines)
    exec(compile(source, "<binlog image reader>", "exec"), env)  # noqa: S102 - generated from the table map's types
    return Plan(n, env["read"], source)


class _Reader:
    """One column's code: statements that set ``v{i}`` from ``data`` at ``p`` and move ``p`` past it;
    ``fmt``: its struct code when it is a plain fixed-width number."""

    __slots__ = ("code", "fmt")

    def __init__(self, code: list[str], fmt: str = "") -> None:
        self.code = code
        self.fmt = fmt


def _column(i: int, column: Any, env: dict[str, Any], errors: str) -> _Reader | None:  # noqa: C901, PLR0911, PLR0912
    kind = column.type
    v = f"v{i}"
    if kind in _STRUCT:
        signed, unsigned, size = _STRUCT[kind]
        fmt = unsigned if column.unsigned else signed
        env[f"_s{i}"] = struct.Struct("<" + fmt).unpack_from
        return _Reader([f"{v}, = _s{i}(data, p)", f"p += {size}"], fmt)
    if kind == T.INT24:
        return _Reader([f"{v} = _int(data[p:p + 3], 'little', signed={not column.unsigned})", "p += 3"])
    if kind == T.YEAR:
        return _Reader([f"{v} = data[p] + 1900", "p += 1"])
    if kind in (T.VARCHAR, T.STRING):
        return _text(i, column, 2 if column.max_length > 255 else 1, env, errors)
    if kind == T.BLOB:
        return _text(i, column, column.length_size, env, errors)
    if kind == T.GEOMETRY:
        return _Reader([*_length(column.length_size), f"{v} = data[p:p + n]", "p += n"])
    if kind == T.JSON:
        return _Reader([*_length(column.length_size), f"{v} = _parse_json(data[p], data[p + 1:p + n]) if n else None",
                        "p += n"])  # fmt: skip
    if kind == T.NEWDECIMAL:
        return _decimal_code(i, column.precision, column.decimals, env)
    if kind == T.DATETIME2:
        return _datetime2_code(i, column.fsp, env)
    fixed: tuple[Callable[[bytes, int], Any], int] | None = None
    if kind == T.TIMESTAMP2:
        fixed = _timestamp2(column.fsp)
    elif kind == T.TIME2:
        fixed = _time2(column.fsp)
    elif kind == T.DATE:
        fixed = _date, 3
    elif kind == T.DATETIME:
        fixed = _datetime, 8
    elif kind == T.TIME:
        fixed = _time, 3
    elif kind == T.TIMESTAMP:
        fixed = (lambda data, p: _EPOCH + dt.timedelta(seconds=int.from_bytes(data[p : p + 4], "little"))), 4
    elif kind == T.ENUM:
        fixed = _enum(column.enum_values, column.size), column.size
    elif kind == T.SET:
        fixed = _set(column.set_values, column.size), column.size
    elif kind == T.BIT:
        fixed = _bit(column.bits, column.bytes), column.bytes
    if fixed is None:
        return None
    env[f"_f{i}"] = fixed[0]
    return _Reader([f"{v} = _f{i}(data, p)", f"p += {fixed[1]}"])


def _length(size: int) -> list[str]:
    if size == 1:
        return ["n = data[p]", "p += 1"]
    return [f"n = _int(data[p:p + {size}], 'little')", f"p += {size}"]


def _text(i: int, column: Any, size: int, env: dict[str, Any], errors: str) -> _Reader:
    """A length-prefixed string: text in the column's character set, bytes where Python has no codec
    for it (binary columns), as the library does."""
    v = f"v{i}"
    encoding = python_codec(column.character_set_name)
    if encoding is None:
        return _Reader([*_length(size), f"{v} = data[p:p + n]", "p += n"])  # b'' too (see above)
    if codecs.lookup(encoding).name in ("utf-8", "iso8859-1", "ascii"):  # (bytes.decode's fast paths)
        env[f"_enc{i}"] = encoding
        return _Reader([*_length(size), f"{v} = data[p:p + n].decode(_enc{i}, {errors!r})", "p += n"])
    if codecs.lookup(encoding).name == "cp1252":  # MySQL's latin1, through its own table (see _LATIN1)
        env["_charmap"], env["_latin1"] = codecs.charmap_decode, _LATIN1
        return _Reader([*_length(size), f"{v} = _charmap(data[p:p + n], {errors!r}, _latin1)[0]", "p += n"])
    # others through their decoder, bound once (bytes.decode looks the codec up by name each time)
    env[f"_dec{i}"] = codecs.lookup(encoding).decode
    return _Reader([*_length(size), f"{v} = _dec{i}(data[p:p + n], {errors!r})[0]", "p += n"])


def _fsp(fsp: int) -> int:
    """Bytes of a temporal value's fractional seconds."""
    return (fsp + 1) // 2


def _micro(data: bytes, p: int, fsp: int, size: int) -> int:
    """The fractional seconds as microseconds, read as the library reads them (signed, big-endian)."""
    us = int.from_bytes(data[p : p + size], "big", signed=True)
    if fsp % 2:
        us = int(us / 10)
    return us * 10 ** (6 - fsp)


def _fraction(data: bytes, p: int, fsp: int, size: int) -> int:
    """A DATETIME's or TIMESTAMP's microseconds: the library adds them only when positive (and fails
    on more than a second's worth, which only damaged data holds)."""
    us = _micro(data, p, fsp, size) if size else 0
    if us > 999_999:
        raise ValueError(f"fractional seconds {us} out of range")
    return us if us > 0 else 0


def _datetime2_code(i: int, fsp: int, env: dict[str, Any]) -> _Reader:
    """DATETIME(fsp) inline (the most common temporal type): five big-endian bytes of packed date and
    time, then the fractional seconds, read in one integer; fractional seconds out of 0-999999 (which
    includes any negative, its sign bit read unsigned) go through :func:`_fraction`, the library's
    reading. A zero date is None, as the library's."""
    size = _fsp(fsp)
    env["_datetime"], env["_fraction"] = dt.datetime, _fraction
    if size:
        micro = [
            f"t = _int(data[p:p + {5 + size}], 'big')",
            f"us = t & {(1 << (8 * size)) - 1:#x}",
            f"t >>= {8 * size}",
        ]
        if fsp % 2:
            micro.append("us = int(us / 10)")
        micro += [f"us *= {10 ** (6 - fsp)}", f"if us > 999999: us = _fraction(data, p + 5, {fsp}, {size})"]
    else:
        micro = ["t = _int(data[p:p + 5], 'big')", "us = 0"]
    return _Reader([
        *micro, "ym = (t >> 22) & 0x1FFFF", "try:",
        f"    v{i} = _datetime(ym // 13, ym % 13, (t >> 17) & 31, (t >> 12) & 31, (t >> 6) & 63, t & 63, us)",
        "except ValueError:", f"    v{i} = None", f"p += {5 + size}",
    ])  # fmt: skip


def _timestamp2(fsp: int) -> tuple[Callable[[bytes, int], Any], int]:
    size = _fsp(fsp)

    def read(data: bytes, p: int) -> dt.datetime:
        seconds = int.from_bytes(data[p : p + 4], "big", signed=True)
        return _EPOCH + dt.timedelta(seconds=seconds, microseconds=_fraction(data, p + 4, fsp, size))

    return read, 4 + size


def _time2(fsp: int) -> tuple[Callable[[bytes, int], Any], int]:
    size = _fsp(fsp)

    def read(data: bytes, p: int) -> dt.timedelta:
        v = int.from_bytes(data[p : p + 3], "big", signed=True)
        sign = 1 if (v >> 23) & 1 else -1
        if sign == -1:  # two's complement, taken again as the library does
            v = ~v + 1
        us = _micro(data, p + 3, fsp, size) if size else 0
        return (
            dt.timedelta(hours=(v >> 12) & 0x3FF, minutes=(v >> 6) & 63, seconds=v & 63, microseconds=us)
            * sign
        )

    return read, 3 + size


def _date(data: bytes, p: int) -> dt.date | None:
    v = int.from_bytes(data[p : p + 3], "little")
    year, month, day = (v >> 9) & 0x7FFF, (v >> 5) & 15, v & 31
    if not (year and month and day):  # a zero date (or a zero in it): None, as the library
        return None
    return dt.date(year, month, day)


def _datetime(data: bytes, p: int) -> dt.datetime | None:
    """The pre-5.6 DATETIME (a decimal yyyymmddhhmmss in 8 bytes), with the library's arithmetic."""
    value = int.from_bytes(data[p : p + 8], "little")
    if value == 0:
        return None
    date = value / 1000000
    time = int(value % 1000000)
    year, month, day = int(date / 10000), int((date % 10000) / 100), int(date % 100)
    if year == 0 or month == 0 or day == 0:
        return None
    return dt.datetime(year, month, day, int(time / 10000), int((time % 10000) / 100), int(time % 100))


def _time(data: bytes, p: int) -> dt.timedelta:
    """The pre-5.6 TIME (a decimal hhmmss in 3 bytes), with the library's arithmetic."""
    t = int.from_bytes(data[p : p + 3], "little")
    return dt.timedelta(hours=int(t / 10000), minutes=int((t % 10000) / 100), seconds=int(t % 100))


def _enum(values: list[str] | None, size: int) -> Callable[[bytes, int], Any]:
    if not values:
        return lambda data, p: None
    return lambda data, p: values[int.from_bytes(data[p : p + size], "little")]


def _set(values: list[str] | None, size: int) -> Callable[[bytes, int], Any]:
    if not values:
        return lambda data, p: None
    bits = [(1 << k, value) for k, value in enumerate(values)]

    def read(data: bytes, p: int) -> set[str]:
        mask = int.from_bytes(data[p : p + size], "little")
        return {value for bit, value in bits if mask & bit}  # an empty set, not NULL (see above)

    return read


def _bit(bits: int, size: int) -> Callable[[bytes, int], str]:
    """BIT(n) as the library gives it: its n bits as a string of 0s and 1s, most significant first."""
    mask, form = (1 << bits) - 1, f"0{bits}b"
    return lambda data, p: format(int.from_bytes(data[p : p + size], "big") & mask, form)


def _decimal_code(i: int, precision: int, decimals: int, env: dict[str, Any]) -> _Reader:
    """DECIMAL(precision, decimals) inline, in MySQL's binary form: groups of nine digits in four
    big-endian bytes, the leftover digits of each side in fewer, the sign in the first bit (a negative
    value is stored complemented). Its digits as one integer, scaled by the decimals: the same Decimal,
    digits and exponent, as the library's, which it parses from their text."""
    from decimal import Context, Decimal

    integral = precision - decimals
    whole_int, whole_frac = integral // 9, decimals // 9
    lead, trail = _DECIMAL_BYTES[integral - whole_int * 9], _DECIMAL_BYTES[decimals - whole_frac * 9]
    size = lead + 4 * (whole_int + whole_frac) + trail
    top, ones = 1 << (8 * size - 1), (1 << (8 * size)) - 1
    # (shift, mask, scale) of each group, most significant first
    groups = ([((size - lead) * 8, (1 << (8 * lead)) - 1, 1)] if lead else []) + [
        ((size - lead - 4 * (k + 1)) * 8, 0xFFFFFFFF, 10**9) for k in range(whole_int + whole_frac)
    ]
    if trail:
        groups.append((0, (1 << (8 * trail)) - 1, 10 ** (decimals - whole_frac * 9)))
    digits = "0"
    for shift, mask, scale in groups:
        group = f"((raw >> {shift}) & {mask:#x})" if shift else f"(raw & {mask:#x})"
        digits = group if digits == "0" else f"({digits}) * {scale} + {group}"
    env["_decimal"], env["_exact"] = Decimal, Context(prec=65)  # (exact: MySQL's most digits)
    value = f"_decimal({digits})" + (f".scaleb({-decimals}, _exact)" if decimals else "")
    return _Reader([
        f"raw = _int(data[p:p + {size}], 'big')",
        f"if raw & {top:#x}:", f"    raw ^= {top:#x}", f"    v{i} = {value}",
        "else:", f"    raw ^= {top ^ ones:#x}", f"    v{i} = {value}.copy_negate()",
        f"p += {size}",
    ])  # fmt: skip
