"""The classicmodels sample generator: shape, integrity, determinism and mutation in all three dialects."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from nightshift_core.sample import classicmodels as cm

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT.parent / "shared" / "data" / "classicmodels" / "mysqlsampledatabase.sql"
# Row counts of the reference file, as documented by its publisher; test_reference_file_parses checks them.
REFERENCE_COUNTS = {"customers": 122, "employees": 23, "offices": 7, "orderdetails": 2996, "orders": 326,
                    "payments": 273, "productlines": 7, "products": 110}  # fmt: skip
NOW = datetime(2024, 5, 1, 12, 30, 15, 123456)


# ------------------------------------------------------------------------------------ reference file


def reference_text() -> str:
    if not REFERENCE.is_file():
        pytest.fail(
            f"reference schema {REFERENCE} is missing; the shared data folder next to the repository must "
            "hold classicmodels/mysqlsampledatabase.sql (MySQL sample database v3.1)",
            pytrace=False,
        )
    return REFERENCE.read_bytes().decode("utf-8")  # keeps its CR/CRLF line ends as they are


def reference_columns() -> dict[str, list[str]]:
    """Column names per table, from the CREATE TABLE blocks of the reference file."""
    blocks = re.findall(r"CREATE TABLE `(\w+)` \((.*?)\n\) ENGINE", reference_text(), re.S)
    return {table: re.findall(r"^\s+`(\w+)` ", body, re.M) for table, body in blocks}


def reference_counts() -> dict[str, int]:
    """Rows per table, counted from the reference file's INSERT blocks (one row per line)."""
    counts: dict[str, int] = {}
    table = None
    for line in reference_text().split("\n"):
        if match := re.match(r"insert\s+into\s+`(\w+)`", line, re.I):
            table = match.group(1)
            counts[table] = 0
        elif table and line.startswith("("):
            counts[table] += 1
        elif not line.strip():
            table = None
    return counts


def test_reference_file_parses():
    columns = reference_columns()
    assert set(columns) == set(cm.TABLES)
    assert reference_counts() == REFERENCE_COUNTS
    assert columns["customers"][:2] == ["customerNumber", "customerName"]


# ------------------------------------------------------------------------------------------ helpers


def select_all(conn: Any, dialect: cm.Dialect, table: str) -> dict[tuple, tuple]:
    """Primary key -> row (values normalised across drivers), audit column last."""
    q = cm.quote
    spec = cm.TABLES[table]
    cur = conn.cursor()
    cur.execute(f"SELECT * FROM {q(dialect, table)}")
    names = [d[0] for d in cur.description]
    key_at = [names.index(k) for k in spec.primary_key]
    rows = {tuple(norm(row[i]) for i in key_at): tuple(norm(v) for v in row) for row in cur.fetchall()}
    cur.close()
    return rows


def norm(value: Any) -> Any:
    """One spelling per value across sqlite3, MySQLdb and psycopg2."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat(timespec="microseconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, memoryview):
        return bytes(value)
    return value


def snapshot(conn: Any, dialect: cm.Dialect) -> dict[str, dict[tuple, tuple]]:
    return {table: select_all(conn, dialect, table) for table in cm.TABLES}


def digest(tables: dict[str, dict[tuple, tuple]]) -> dict[str, str]:
    return {t: hashlib.sha256(repr(sorted(rows.items())).encode()).hexdigest() for t, rows in tables.items()}


def scalar(conn: Any, sql: str, params: tuple = ()) -> Any:
    cur = conn.cursor()
    cur.execute(sql, params)
    (value,) = cur.fetchone()
    cur.close()
    return value


def count(conn: Any, dialect: cm.Dialect, table: str) -> int:
    return scalar(conn, f"SELECT COUNT(*) FROM {cm.quote(dialect, table)}")


def orphans(conn: Any, dialect: cm.Dialect) -> dict[str, int]:
    """Rows whose foreign key points nowhere, per foreign key, plus orders without any line."""
    q = cm.quote
    found = {}
    for table in cm.TABLES.values():
        for fk in table.foreign_keys:
            found[fk.name] = scalar(
                conn,
                f"SELECT COUNT(*) FROM {q(dialect, table.name)} c LEFT JOIN {q(dialect, fk.ref_table)} p "
                f"ON p.{q(dialect, fk.ref_column)} = c.{q(dialect, fk.column)} "
                f"WHERE c.{q(dialect, fk.column)} IS NOT NULL AND p.{q(dialect, fk.ref_column)} IS NULL",
            )
    found["orders_without_lines"] = scalar(
        conn,
        f"SELECT COUNT(*) FROM {q(dialect, 'orders')} o WHERE NOT EXISTS (SELECT 1 FROM "
        f"{q(dialect, 'orderdetails')} d WHERE d.{q(dialect, 'orderNumber')} = o.{q(dialect, 'orderNumber')})",
    )
    return found


def assert_integrity(conn: Any, dialect: cm.Dialect) -> None:
    bad = {name: n for name, n in orphans(conn, dialect).items() if n}
    assert not bad, f"dangling references in {dialect}: {bad}"


def assert_mutation_matches(
    before: dict[str, dict[tuple, tuple]],
    after: dict[str, dict[tuple, tuple]],
    report: dict[str, int],
    stamp: str,
) -> None:
    """Reported counts equal the observed inserts/updates/deletes; updatedAt moved on exactly those rows."""
    for table in cm.TABLES:
        old, new = before[table], after[table]
        inserted = new.keys() - old.keys()
        deleted = old.keys() - new.keys()
        changed = {k for k in old.keys() & new.keys() if old[k][:-1] != new[k][:-1]}
        unchanged = (old.keys() & new.keys()) - changed
        assert len(inserted) == report.get(f"{table}_inserted", 0), table
        assert len(deleted) == report.get(f"{table}_deleted", 0), table
        assert len(changed) == report.get(f"{table}_updated", 0), table
        assert all(new[k][-1] == stamp for k in inserted | changed), f"{table}: updatedAt not moved"
        assert all(new[k][-1] == old[k][-1] for k in unchanged), (
            f"{table}: updatedAt moved on an unchanged row"
        )
    for action in ("orders_inserted", "orderdetails_inserted", "orders_updated", "orderdetails_updated",
                   "customers_updated", "payments_updated", "orderdetails_deleted", "payments_deleted"):  # fmt: skip
        assert report[action] > 0, f"{action}: nothing happened, the check above proves nothing"


def sqlite_db(path: Path, **kwargs: Any) -> tuple[sqlite3.Connection, dict[str, int]]:
    conn, dialect = cm.connect(f"sqlite:///{path}")
    return conn, cm.generate(conn, dialect, **kwargs)


# ------------------------------------------------------------------------------------------- SQLite


def test_sqlite_scale_1_has_about_the_reference_sizes(tmp_path):
    conn, counts = sqlite_db(tmp_path / "a.db")
    with closing(conn):
        assert counts == {t: count(conn, "sqlite", t) for t in cm.TABLES}
        for table, expected in reference_counts().items():
            tolerance = 0.15 if table in ("orderdetails", "payments") else 0
            assert abs(counts[table] - expected) <= tolerance * expected, (table, counts[table], expected)


@pytest.mark.parametrize("audit_column", [True, False])
def test_sqlite_columns_are_the_reference_columns(tmp_path, audit_column):
    conn, _ = sqlite_db(tmp_path / "a.db", scale=0.1, audit_column=audit_column)
    with closing(conn):
        for table, expected in reference_columns().items():
            names = [row[1] for row in conn.execute(f'PRAGMA table_info("{table}")')]
            assert names == expected + (["updatedAt"] if audit_column else []), table
            not_null = {row[1] for row in conn.execute(f'PRAGMA table_info("{table}")') if row[3]}
            assert ("updatedAt" in not_null) == audit_column


def test_sqlite_foreign_keys_hold(tmp_path):
    conn, _ = sqlite_db(tmp_path / "a.db", scale=3)
    with closing(conn):
        assert_integrity(conn, "sqlite")
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        assert conn.execute("PRAGMA foreign_keys").fetchone() == (1,)


def test_sqlite_values_are_realistic_and_include_hostile_strings(tmp_path):
    conn, _ = sqlite_db(tmp_path / "a.db")
    with closing(conn):
        statuses = {s for (s,) in conn.execute('SELECT DISTINCT "status" FROM orders')}
        assert statuses <= set(cm.STATUSES) and len(statuses) >= 5
        low, high = conn.execute('SELECT MIN("orderDate"), MAX("orderDate") FROM orders').fetchone()
        assert "2003-01-01" <= low and high <= "2005-12-31"
        assert conn.execute(
            'SELECT COUNT(*) FROM orders WHERE "requiredDate" <= "orderDate" OR "shippedDate" < "orderDate"'
        ).fetchone() == (0,)
        for table, column in [("customers", "addressLine2"), ("customers", "state"), ("customers", "creditLimit"),
                              ("customers", "salesRepEmployeeNumber"), ("orders", "shippedDate"),
                              ("orders", "comments"), ("productlines", "image"), ("offices", "addressLine2")]:  # fmt: skip
            nulls = conn.execute(f'SELECT COUNT(*) FROM "{table}" WHERE "{column}" IS NULL').fetchone()[0]
            assert 0 < nulls < count(conn, "sqlite", table), f"{table}.{column}: want some NULLs, not all"
        for table, column in [("orderdetails", "priceEach"), ("payments", "amount"), ("products", "buyPrice"),
                              ("products", "MSRP"), ("customers", "creditLimit")]:  # fmt: skip
            values = [
                v for (v,) in conn.execute(f'SELECT "{column}" FROM "{table}" WHERE "{column}" IS NOT NULL')
            ]
            assert all(isinstance(v, str) and re.fullmatch(r"\d+\.\d\d", v) for v in values), (
                f"{table}.{column}"
            )
        assert conn.execute(
            'SELECT COUNT(*) FROM orderdetails d JOIN products p USING ("productCode") '
            'WHERE CAST(d."priceEach" AS REAL) > CAST(p."MSRP" AS REAL) OR CAST(d."priceEach" AS REAL) <= 0'
        ).fetchone() == (0,)
        names = [n for (n,) in conn.execute('SELECT "customerName" FROM customers')]
        assert any(n.startswith("=HYPERLINK(") for n in names)
        assert any("<script>" in n for n in names)
        assert any(ord(ch) > 0xFFFF for n in names for ch in n), "an emoji (outside the BMP)"
        assert any("O'Brien" in n for n in names)
        titles = conn.execute(
            'SELECT "jobTitle", "reportsTo" FROM employees WHERE "reportsTo" IS NULL'
        ).fetchall()
        assert titles == [("President", None)]
        assert conn.execute(
            'SELECT COUNT(*) FROM customers c JOIN employees e ON e."employeeNumber" = c."salesRepEmployeeNumber" '
            "WHERE e.\"jobTitle\" <> 'Sales Rep'"
        ).fetchone() == (0,)


def test_sqlite_generation_is_deterministic(tmp_path):
    first, _ = sqlite_db(tmp_path / "a.db", seed=7)
    same, _ = sqlite_db(tmp_path / "b.db", seed=7, batch_rows=97)
    other, _ = sqlite_db(tmp_path / "c.db", seed=8)
    with closing(first), closing(same), closing(other):
        a, b, c = (digest(snapshot(conn, "sqlite")) for conn in (first, same, other))
    assert a == b, "same seed, different batch size: content must not change"
    changed = {t for t in cm.TABLES if a[t] != c[t]}
    assert changed >= {"customers", "orders", "orderdetails", "payments", "products", "employees"}


def test_sqlite_mutate_reports_what_it_did(tmp_path):
    conn, _ = sqlite_db(tmp_path / "a.db", scale=2)
    with closing(conn):
        before = snapshot(conn, "sqlite")
        report = cm.mutate(conn, "sqlite", fraction=0.1, seed=3, now=NOW)
        after = snapshot(conn, "sqlite")
        assert_mutation_matches(before, after, report, NOW.isoformat(timespec="microseconds"))
        assert_integrity(conn, "sqlite")
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []

    again, _ = sqlite_db(tmp_path / "b.db", scale=2)
    with closing(again):
        assert cm.mutate(again, "sqlite", fraction=0.1, seed=3, now=NOW) == report
        assert digest(snapshot(again, "sqlite")) == digest(after), "mutate is not deterministic"
        cm.mutate(again, "sqlite", fraction=0.1, seed=4, now=NOW)
        assert digest(snapshot(again, "sqlite")) != digest(after)


def test_sqlite_updates_that_skip_the_audit_column_still_move_it(tmp_path):
    conn, _ = sqlite_db(tmp_path / "a.db", scale=0.1)
    with closing(conn):
        (old,) = conn.execute('SELECT "updatedAt" FROM customers WHERE "customerNumber" = 103').fetchone()
        conn.execute("UPDATE customers SET phone = '555' WHERE \"customerNumber\" = 103")
        (new,) = conn.execute('SELECT "updatedAt" FROM customers WHERE "customerNumber" = 103').fetchone()
        assert new > old and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}", new)


def test_mutate_refuses_bad_input(tmp_path):
    conn, dialect = cm.connect(f"sqlite:///{tmp_path / 'empty.db'}")
    with closing(conn):
        with pytest.raises(ValueError, match="run generate"):
            cm.mutate(conn, dialect, fraction=0.1, seed=1, now=NOW)
        with pytest.raises(ValueError, match="fraction must be in"):
            cm.mutate(conn, dialect, fraction=0, seed=1, now=NOW)
        with pytest.raises(ValueError, match="scale must be > 0"):
            cm.generate(conn, dialect, scale=0)
        with pytest.raises(ValueError, match="use one of sqlite, mysql, postgresql"):
            cm.generate(conn, "oracle")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------- pure logic


@pytest.mark.parametrize(
    ("scale", "offices", "employees", "products", "customers", "orders"),
    [(0.01, 7, 23, 110, 1, 3), (1, 7, 23, 110, 122, 326), (4, 14, 46, 220, 488, 1304),
     (700, 185, 609, 2910, 85_400, 228_200)],
)  # fmt: skip
def test_plan_grows_linearly_for_facts_and_slowly_for_dimensions(
    scale, offices, employees, products, customers, orders
):
    plan = cm.Plan.for_scale(scale)
    assert (plan.offices, plan.employees, plan.products, plan.customers, plan.orders) == (
        offices, employees, products, customers, orders,
    )  # fmt: skip


def test_batches_are_bounded_and_do_not_change_the_content():
    def rows(batch_rows: int) -> tuple[dict[str, list], int]:
        out: dict[str, list] = {}
        biggest = 0
        for table, batch in cm.iter_batches(scale=4, seed=5, batch_rows=batch_rows):
            out.setdefault(table, []).extend(batch)
            if table in ("customers", "payments", "orderdetails"):
                biggest = max(biggest, len(batch))
        return out, biggest

    small, biggest = rows(300)
    large, _ = rows(100_000)
    assert small == large
    assert biggest <= 300 + 16, "an orderdetails batch may overshoot by one order's lines, no more"
    assert len(small["orderdetails"]) > 10_000


@pytest.mark.parametrize(
    ("url", "dialect", "kwargs"),
    [
        ("sqlite:///relative/x.db", "sqlite", {"database": "relative/x.db"}),
        ("sqlite:////tmp/x.db", "sqlite", {"database": "/tmp/x.db"}),
        ("mysql://u:p%40ss@db.example:3307/shop", "mysql",
         {"host": "db.example", "port": 3307, "user": "u", "password": "p@ss", "database": "shop",
          "charset": "utf8mb4"}),
        ("mariadb://root@127.0.0.1/shop", "mysql",
         {"host": "127.0.0.1", "port": 3306, "user": "root", "database": "shop", "charset": "utf8mb4"}),
        ("postgresql+psycopg2://postgres@localhost/app", "postgresql",
         {"host": "localhost", "port": 5432, "user": "postgres", "dbname": "app"}),
    ],
)  # fmt: skip
def test_parse_url(url, dialect, kwargs):
    assert cm.parse_url(url) == (dialect, kwargs)


@pytest.mark.parametrize(
    ("url", "message"),
    [("oracle://x/y", "scheme 'oracle' is not supported"), ("mysql://root@host", "names no database")],
)
def test_parse_url_rejects(url, message):
    with pytest.raises(ValueError, match=message):
        cm.parse_url(url)


def run_cli(*args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "include")}
    done = subprocess.run(
        [sys.executable, "-m", "nightshift_core.sample.classicmodels", *args],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_cli_generates_and_mutates(tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    out = run_cli("generate", "--url", url, "--scale", "0.3", "--seed", "9")
    printed = dict(re.findall(r"^(\w+)\s+([\d,]+)$", out, re.M))
    assert re.search(r"took \d+\.\d s", out)
    with closing(sqlite3.connect(tmp_path / "cli.db")) as conn:
        assert {t: int(printed[t].replace(",", "")) for t in cm.TABLES} == {
            t: count(conn, "sqlite", t) for t in cm.TABLES
        }
        orders_before = count(conn, "sqlite", "orders")
    out = run_cli("mutate", "--url", url, "--fraction", "0.1", "--now", "2024-05-01T00:00:00")
    inserted = int(re.search(r"^orders_inserted\s+(\d+)$", out, re.M).group(1))
    with closing(sqlite3.connect(tmp_path / "cli.db")) as conn:
        assert count(conn, "sqlite", "orders") == orders_before + inserted > orders_before
    run_cli("generate", "--url", url, "--scale", "0.1", "--no-audit-column")
    with closing(sqlite3.connect(tmp_path / "cli.db")) as conn:
        assert "updatedAt" not in [row[1] for row in conn.execute("PRAGMA table_info(orders)")]


# ------------------------------------------------------------------------------------------ MariaDB


@pytest.fixture
def mariadb_databases(mariadb) -> Iterator[Callable[[], str]]:
    """Make uniquely named, empty databases; all are dropped at the end, whatever happened."""
    import MySQLdb

    admin = MySQLdb.connect(host=mariadb.host, port=mariadb.port, user="root", autocommit=True)
    made: list[str] = []

    def make() -> str:
        name = f"ns_test_{uuid.uuid4().hex[:12]}"
        admin.cursor().execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        made.append(name)
        return name

    try:
        yield make
    finally:
        cur = admin.cursor()
        cur.execute("SET SESSION lock_wait_timeout = 30")
        for name in made:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()


def mariadb_url(service: Any, database: str) -> str:
    return f"mysql://root@{service.host}:{service.port}/{database}"


@pytest.mark.integration
def test_mariadb_scale_2_exact_decimals_and_mutation(mariadb, mariadb_databases, tmp_path):
    conn, dialect = cm.connect(mariadb_url(mariadb, mariadb_databases()))
    with closing(conn):
        counts = cm.generate(conn, dialect, scale=2, seed=11, batch_rows=1000)
        assert counts == {t: count(conn, dialect, t) for t in cm.TABLES}
        assert counts["orders"] == 652 and 2 * 2600 < counts["orderdetails"] < 2 * 3400

        prices = [p for (p,) in _rows(conn, "SELECT `priceEach` FROM `orderdetails`")]
        assert all(isinstance(p, Decimal) and p.as_tuple().exponent == -2 for p in prices)
        # The same seed in SQLite (decimals kept as text) gives the same content, to the cent and microsecond.
        local, _ = sqlite_db(tmp_path / "same.db", scale=2, seed=11)
        with closing(local):
            reference = snapshot(local, "sqlite")
            expected_total = sum(
                Decimal(price) * quantity
                for (price, quantity) in local.execute(
                    'SELECT "priceEach", "quantityOrdered" FROM orderdetails'
                )
            )
        assert (
            scalar(conn, "SELECT SUM(`priceEach` * `quantityOrdered`) FROM `orderdetails`") == expected_total
        )
        assert snapshot(conn, dialect) == reference
        assert_integrity(conn, dialect)

        before = snapshot(conn, dialect)
        report = cm.mutate(conn, dialect, fraction=0.05, seed=2, now=NOW)
        assert_mutation_matches(
            before, snapshot(conn, dialect), report, NOW.isoformat(timespec="microseconds")
        )
        assert_integrity(conn, dialect)


def _rows(conn: Any, sql: str) -> list[tuple]:
    cur = conn.cursor()
    cur.execute(sql)
    rows = list(cur.fetchall())
    cur.close()
    return rows


def _information_schema(conn: Any, database: str) -> dict[str, list[tuple]]:
    queries = {
        "columns": "SELECT TABLE_NAME, ORDINAL_POSITION, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE "
        "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s ORDER BY 1, 2",
        "keys": "SELECT TABLE_NAME, CONSTRAINT_NAME, COLUMN_NAME, ORDINAL_POSITION, REFERENCED_TABLE_NAME, "
        "REFERENCED_COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = %s ORDER BY 1, 2, 4",
        "indexes": "SELECT TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX, COLUMN_NAME, NON_UNIQUE "
        "FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s ORDER BY 1, 2, 3",
    }
    out = {}
    cur = conn.cursor()
    for name, sql in queries.items():
        cur.execute(sql, (database,))
        out[name] = list(cur.fetchall())
    cur.close()
    return out


@pytest.mark.integration
def test_mariadb_reference_file_loads_and_matches_the_generated_shape(mariadb, mariadb_databases):
    if shutil.which("mysql") is None:
        pytest.fail("the mysql command-line client is missing; install mariadb-client", pytrace=False)
    loaded = mariadb_databases()
    sql, created = re.subn(
        r"^(CREATE DATABASE .*?)`classicmodels`", rf"\1`{loaded}`", reference_text(), flags=re.M
    )
    sql, used = re.subn(r"^USE `classicmodels`;", f"USE `{loaded}`;", sql, flags=re.M)
    assert (created, used) == (1, 1), "the reference file's CREATE DATABASE / USE lines changed"
    done = subprocess.run(
        ["mysql", "-h", mariadb.host, "-P", str(mariadb.port), "-u", "root"],
        input=sql.encode(), capture_output=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode(errors="replace")

    generated = mariadb_databases()
    conn, dialect = cm.connect(mariadb_url(mariadb, loaded))
    with closing(conn):
        tables = {t for (t,) in _rows(conn, "SHOW TABLES")}
        assert tables == set(cm.TABLES)
        assert {t: count(conn, dialect, t) for t in cm.TABLES} == reference_counts() == REFERENCE_COUNTS
        gen_conn, _ = cm.connect(mariadb_url(mariadb, generated))
        with closing(gen_conn):
            cm.generate(gen_conn, dialect, scale=0.5, audit_column=False)
        expected = _information_schema(conn, loaded)
        assert expected["columns"] and _information_schema(conn, generated) == expected

        # mutate() also runs on the untouched reference data (no audit column there).
        report = cm.mutate(conn, dialect, fraction=0.05, seed=1, now=NOW)
        assert count(conn, dialect, "orders") == REFERENCE_COUNTS["orders"] + report["orders_inserted"]
        assert count(conn, dialect, "payments") == REFERENCE_COUNTS["payments"] - report["payments_deleted"]
        assert_integrity(conn, dialect)


# --------------------------------------------------------------------------------------- PostgreSQL


@pytest.fixture
def postgres_database(postgres) -> Iterator[str]:
    import psycopg2

    admin = psycopg2.connect(host=postgres.host, port=postgres.port, user="postgres", dbname="postgres")
    admin.autocommit = True
    name = f"ns_test_{uuid.uuid4().hex[:12]}"
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.mark.integration
def test_postgres_scale_1_camel_case_columns_and_mutation(postgres, postgres_database, tmp_path):
    conn, dialect = cm.connect(f"postgresql://postgres@{postgres.host}:{postgres.port}/{postgres_database}")
    with closing(conn):
        counts = cm.generate(conn, dialect, scale=1, seed=42)
        assert counts == {t: count(conn, dialect, t) for t in cm.TABLES}

        columns = _rows(
            conn,
            "SELECT table_name, column_name, data_type, numeric_precision, numeric_scale "
            "FROM information_schema.columns WHERE table_schema = 'public' ORDER BY table_name, ordinal_position",
        )
        for table, expected in reference_columns().items():
            assert [c[1] for c in columns if c[0] == table] == expected + ["updatedAt"], table
        types = {(c[0], c[1]): c[2:] for c in columns}
        assert types["orderdetails", "priceEach"] == ("numeric", 10, 2)
        assert types["productlines", "image"][0] == "bytea"
        assert types["orders", "updatedAt"][0] == "timestamp without time zone"

        local, _ = sqlite_db(tmp_path / "same.db", scale=1, seed=42)
        with closing(local):
            assert snapshot(conn, dialect) == snapshot(local, "sqlite")
        assert_integrity(conn, dialect)

        before = snapshot(conn, dialect)
        report = cm.mutate(conn, dialect, fraction=0.05, seed=2, now=NOW)
        assert_mutation_matches(
            before, snapshot(conn, dialect), report, NOW.isoformat(timespec="microseconds")
        )
        assert_integrity(conn, dialect)

        # A writer that does not set updatedAt still moves it (trigger), so the sync cursor sees the change.
        cur = conn.cursor()
        cur.execute(
            'UPDATE customers SET phone = %s WHERE "customerNumber" = 103 RETURNING "updatedAt"', ("555",)
        )
        (moved,) = cur.fetchone()
        conn.commit()
        assert moved.isoformat(timespec="microseconds") != before["customers"][(103,)][-1]


# ------------------------------------------------------------------------------- placed in time

ANCHOR = date(2026, 12, 2)


def _dates(conn, sql: str) -> list[Any]:
    return [r[0] for r in conn.execute(sql)]


def test_an_anchored_sample_ends_yesterday_with_the_same_daily_volume(tmp_path):
    conn, counts = sqlite_db(tmp_path / "a.db", anchor=ANCHOR)
    reference, ref_counts = sqlite_db(tmp_path / "r.db")
    with closing(conn), closing(reference):
        assert counts == ref_counts, "same shape: only the dates move"
        yesterday = "2026-12-01"
        assert max(_dates(conn, 'SELECT "orderDate" FROM orders')) == yesterday
        assert max(_dates(conn, 'SELECT "paymentDate" FROM payments')) <= yesterday
        assert max(d for d in _dates(conn, 'SELECT "shippedDate" FROM orders') if d) <= yesterday
        for table in cm.TABLES:
            stamps = _dates(conn, f'SELECT "updatedAt" FROM "{table}"')  # noqa: S608
            assert max(stamps) < ANCHOR.isoformat(), f"{table}: an updatedAt in the future"
        last_week = conn.execute(
            "SELECT COUNT(*) FROM orders WHERE \"orderDate\" >= '2026-11-25'"
        ).fetchone()[0]
        first_week = reference.execute(
            "SELECT COUNT(*) FROM orders WHERE \"orderDate\" BETWEEN '2005-05-25' AND '2005-05-31'"
        ).fetchone()[0]
        assert last_week >= 1 and abs(last_week - first_week) <= 2, (last_week, first_week)


def test_an_anchored_sample_is_deterministic_for_its_anchor(tmp_path):
    one, _ = sqlite_db(tmp_path / "a.db", anchor=ANCHOR)
    two, _ = sqlite_db(tmp_path / "b.db", anchor=ANCHOR)
    later, _ = sqlite_db(tmp_path / "c.db", anchor=date(2027, 1, 5))
    with closing(one), closing(two), closing(later):
        a, b, c = (digest(snapshot(conn, "sqlite")) for conn in (one, two, later))
    assert a == b
    assert a["orders"] != c["orders"] and a["productlines"] != c["productlines"], "every date moves"


def test_each_customer_is_served_from_an_office_of_its_territory(tmp_path):
    conn, _ = sqlite_db(tmp_path / "a.db")
    with closing(conn):
        territory = {city.country: city.territory for city in cm.CITIES}
        rows = conn.execute(
            'SELECT c."country", o."territory" FROM customers c JOIN employees e '
            'ON c."salesRepEmployeeNumber" = e."employeeNumber" JOIN offices o ON e."officeCode" = o."officeCode"'
        ).fetchall()
    served = {o for _, o in rows}
    assert len(rows) > 50
    assert [(c, o) for c, o in rows if territory[c] != o and territory[c] in served] == []


def test_live_keeps_the_source_changing_until_stopped(tmp_path):
    import signal
    import time

    conn, counts = sqlite_db(tmp_path / "a.db", anchor=ANCHOR)
    conn.close()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "include")}
    live = subprocess.Popen(
        [sys.executable, "-m", "nightshift_core.sample.classicmodels", "live", "--url", f"sqlite:///{tmp_path / 'a.db'}",
         "--every", "0.3", "--fraction", "0.01"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        with closing(sqlite3.connect(tmp_path / "a.db")) as check:
            while time.monotonic() < deadline:
                if check.execute("SELECT COUNT(*) FROM orders").fetchone()[0] > counts["orders"]:
                    break
                time.sleep(0.2)
            newest = check.execute('SELECT MAX("orderDate") FROM orders').fetchone()[0]
    finally:
        live.send_signal(signal.SIGTERM)
        out, err = live.communicate(timeout=30)
    assert live.returncode == 0, err
    assert "orders_inserted" in out and "payments_inserted 1" in out, out + err
    assert newest == datetime.now(UTC).date().isoformat(), "new orders are dated now (UTC)"
