"""Seeded generator and mutator for a database shaped like MySQL's "classicmodels" sample.

The eight tables and their columns match the reference schema (``mysqlsampledatabase.sql``, v3.1)
name for name, with types mapped per dialect. An optional ``updatedAt`` audit column (NOT NULL,
set on insert and on update) gives incremental syncs a cursor. Rows come from
``random.Random`` seeded per table and are written in bounded batches, so the same scale and seed
give the same content in every dialect and memory does not grow with the scale.

Command line (with ``include/`` on ``PYTHONPATH``)::

    python -m nightshift_core.sample.classicmodels generate --url sqlite:///sample.db --scale 2
    python -m nightshift_core.sample.classicmodels mutate --url mysql://root@127.0.0.1:3306/sample \\
        --fraction 0.01 --seed 7

URLs: ``sqlite:///relative.db``, ``sqlite:////absolute.db``, ``mysql://user:pass@host:port/db``
(also ``mariadb://``), ``postgresql://user:pass@host:port/db``. For MySQL/MariaDB and PostgreSQL
the database in the URL must already exist (``CREATE DATABASE sample``); ``generate`` replaces the
eight tables inside it and leaves everything else alone.
"""

from __future__ import annotations

import argparse
import itertools
import random
import re
import sys
import time as _time
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal, NamedTuple, get_args
from urllib.parse import unquote, urlsplit

Dialect = Literal["sqlite", "mysql", "postgresql"]
Connection = Any  # a DB-API 2.0 connection from sqlite3, MySQLdb or psycopg2
Row = tuple[Any, ...]

AUDIT_COLUMN = "updatedAt"
DIALECTS: tuple[str, ...] = get_args(Dialect)


# --------------------------------------------------------------------------------------------- schema

ColumnKind = Literal["int", "smallint", "varchar", "decimal", "date", "text", "mediumtext", "blob"]


@dataclass(frozen=True)
class Column:
    """One reference column: name, portable kind, VARCHAR length, nullability."""

    name: str
    kind: ColumnKind
    length: int | None = None
    nullable: bool = False


@dataclass(frozen=True)
class ForeignKey:
    """A single-column foreign key, named as in the reference."""

    name: str
    column: str
    ref_table: str
    ref_column: str


@dataclass(frozen=True)
class Table:
    """A reference table: columns in reference order, primary key, indexed columns, foreign keys."""

    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    indexes: tuple[str, ...] = ()
    foreign_keys: tuple[ForeignKey, ...] = ()

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)


def _col(name: str, kind: ColumnKind, length: int | None = None, *, null: bool = False) -> Column:
    return Column(name, kind, length, null)


# In creation order: every table comes after the tables its foreign keys point to.
TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        Table(
            "productlines",
            (
                _col("productLine", "varchar", 50),
                _col("textDescription", "varchar", 4000, null=True),
                _col("htmlDescription", "mediumtext", null=True),
                _col("image", "blob", null=True),
            ),
            ("productLine",),
        ),
        Table(
            "offices",
            (
                _col("officeCode", "varchar", 10),
                _col("city", "varchar", 50),
                _col("phone", "varchar", 50),
                _col("addressLine1", "varchar", 50),
                _col("addressLine2", "varchar", 50, null=True),
                _col("state", "varchar", 50, null=True),
                _col("country", "varchar", 50),
                _col("postalCode", "varchar", 15),
                _col("territory", "varchar", 10),
            ),
            ("officeCode",),
        ),
        Table(
            "employees",
            (
                _col("employeeNumber", "int"),
                _col("lastName", "varchar", 50),
                _col("firstName", "varchar", 50),
                _col("extension", "varchar", 10),
                _col("email", "varchar", 100),
                _col("officeCode", "varchar", 10),
                _col("reportsTo", "int", null=True),
                _col("jobTitle", "varchar", 50),
            ),
            ("employeeNumber",),
            ("reportsTo", "officeCode"),
            (
                ForeignKey("employees_ibfk_1", "reportsTo", "employees", "employeeNumber"),
                ForeignKey("employees_ibfk_2", "officeCode", "offices", "officeCode"),
            ),
        ),
        Table(
            "customers",
            (
                _col("customerNumber", "int"),
                _col("customerName", "varchar", 50),
                _col("contactLastName", "varchar", 50),
                _col("contactFirstName", "varchar", 50),
                _col("phone", "varchar", 50),
                _col("addressLine1", "varchar", 50),
                _col("addressLine2", "varchar", 50, null=True),
                _col("city", "varchar", 50),
                _col("state", "varchar", 50, null=True),
                _col("postalCode", "varchar", 15, null=True),
                _col("country", "varchar", 50),
                _col("salesRepEmployeeNumber", "int", null=True),
                _col("creditLimit", "decimal", null=True),
            ),
            ("customerNumber",),
            ("salesRepEmployeeNumber",),
            (ForeignKey("customers_ibfk_1", "salesRepEmployeeNumber", "employees", "employeeNumber"),),
        ),
        Table(
            "products",
            (
                _col("productCode", "varchar", 15),
                _col("productName", "varchar", 70),
                _col("productLine", "varchar", 50),
                _col("productScale", "varchar", 10),
                _col("productVendor", "varchar", 50),
                _col("productDescription", "text"),
                _col("quantityInStock", "smallint"),
                _col("buyPrice", "decimal"),
                _col("MSRP", "decimal"),
            ),
            ("productCode",),
            ("productLine",),
            (ForeignKey("products_ibfk_1", "productLine", "productlines", "productLine"),),
        ),
        Table(
            "orders",
            (
                _col("orderNumber", "int"),
                _col("orderDate", "date"),
                _col("requiredDate", "date"),
                _col("shippedDate", "date", null=True),
                _col("status", "varchar", 15),
                _col("comments", "text", null=True),
                _col("customerNumber", "int"),
            ),
            ("orderNumber",),
            ("customerNumber",),
            (ForeignKey("orders_ibfk_1", "customerNumber", "customers", "customerNumber"),),
        ),
        Table(
            "orderdetails",
            (
                _col("orderNumber", "int"),
                _col("productCode", "varchar", 15),
                _col("quantityOrdered", "int"),
                _col("priceEach", "decimal"),
                _col("orderLineNumber", "smallint"),
            ),
            ("orderNumber", "productCode"),
            ("productCode",),
            (
                ForeignKey("orderdetails_ibfk_1", "orderNumber", "orders", "orderNumber"),
                ForeignKey("orderdetails_ibfk_2", "productCode", "products", "productCode"),
            ),
        ),
        Table(
            "payments",
            (
                _col("customerNumber", "int"),
                _col("checkNumber", "varchar", 50),
                _col("paymentDate", "date"),
                _col("amount", "decimal"),
            ),
            ("customerNumber", "checkNumber"),
            (),
            (ForeignKey("payments_ibfk_1", "customerNumber", "customers", "customerNumber"),),
        ),
    )
}

_TYPES: dict[str, dict[str, str]] = {
    "mysql": {
        "int": "INT",
        "smallint": "SMALLINT",
        "varchar": "VARCHAR({n})",
        "decimal": "DECIMAL(10,2)",
        "date": "DATE",
        "text": "TEXT",
        "mediumtext": "MEDIUMTEXT",
        "blob": "MEDIUMBLOB",
    },
    "postgresql": {
        "int": "INTEGER",
        "smallint": "SMALLINT",
        "varchar": "VARCHAR({n})",
        "decimal": "NUMERIC(10,2)",
        "date": "DATE",
        "text": "TEXT",
        "mediumtext": "TEXT",
        "blob": "BYTEA",
    },
    # Decimals are stored as TEXT so '136.00' stays exact (a DECIMAL column has NUMERIC affinity
    # and would store 136): the declared name DECIMAL_TEXT(10,2) contains "TEXT", which gives TEXT
    # affinity, and still tells readers (the sync's type mapping) it is a decimal(10,2).
    # DATE keeps its name for readers, and ISO date strings stay TEXT under its affinity.
    "sqlite": {
        "int": "INTEGER",
        "smallint": "SMALLINT",
        "varchar": "VARCHAR({n})",
        "decimal": "DECIMAL_TEXT(10,2)",
        "date": "DATE",
        "text": "TEXT",
        "mediumtext": "TEXT",
        "blob": "BLOB",
    },
}

_SQLITE_NOW = "strftime('%Y-%m-%dT%H:%M:%f000', 'now')"  # ISO, microsecond digits like the generator's
# The database fills the audit column for writers that do not set it; this module always sets it.
_AUDIT_TYPES = {
    "mysql": "DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)",
    "postgresql": "TIMESTAMP(6) WITHOUT TIME ZONE NOT NULL DEFAULT LOCALTIMESTAMP(6)",
    "sqlite": f"DATETIME_TEXT NOT NULL DEFAULT ({_SQLITE_NOW})",  # TEXT affinity, read as a datetime
}
_PG_TOUCH_FUNCTION = "classicmodels_touch_updatedAt"


def _check_dialect(dialect: str) -> Dialect:
    if dialect not in DIALECTS:
        raise ValueError(f"dialect {dialect!r} is not supported; use one of {', '.join(DIALECTS)}")
    return dialect  # type: ignore[return-value]


def quote(dialect: Dialect, name: str) -> str:
    """Quote an identifier for ``dialect`` (PostgreSQL needs quotes to keep camelCase)."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"identifier {name!r} is not a plain name; use letters, digits and _ only")
    return f"`{name}`" if dialect == "mysql" else f'"{name}"'


def schema_sql(dialect: Dialect, *, audit_column: bool = True) -> list[str]:
    """The CREATE statements (tables, indexes, update triggers) for ``dialect``, in FK-safe order."""
    _check_dialect(dialect)

    def q(name: str) -> str:
        return quote(dialect, name)

    types = _TYPES[dialect]
    statements: list[str] = []
    if audit_column and dialect == "postgresql":
        statements.append(
            f"CREATE OR REPLACE FUNCTION {q(_PG_TOUCH_FUNCTION)}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
            f"BEGIN\n  IF NEW.{q(AUDIT_COLUMN)} IS NOT DISTINCT FROM OLD.{q(AUDIT_COLUMN)} THEN\n"
            f"    NEW.{q(AUDIT_COLUMN)} := LOCALTIMESTAMP(6);\n  END IF;\n  RETURN NEW;\nEND\n$$"
        )
    for table in TABLES.values():
        lines = []
        for c in table.columns:
            sql_type = types[c.kind].format(n=c.length)
            lines.append(f"  {q(c.name)} {sql_type}{'' if c.nullable else ' NOT NULL'}")
        if audit_column:
            lines.append(f"  {q(AUDIT_COLUMN)} {_AUDIT_TYPES[dialect]}")
        lines.append(f"  PRIMARY KEY ({', '.join(q(k) for k in table.primary_key)})")
        indexed = table.indexes + ((AUDIT_COLUMN,) if audit_column else ())
        if dialect == "mysql":
            lines.extend(f"  KEY {q(col)} ({q(col)})" for col in indexed)
        for fk in table.foreign_keys:
            lines.append(
                f"  CONSTRAINT {q(fk.name)} FOREIGN KEY ({q(fk.column)}) "
                f"REFERENCES {q(fk.ref_table)} ({q(fk.ref_column)})"
            )
        options = " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4" if dialect == "mysql" else ""
        statements.append(f"CREATE TABLE {q(table.name)} (\n" + ",\n".join(lines) + f"\n){options}")
        if dialect != "mysql":
            statements.extend(
                f"CREATE INDEX {q(f'{table.name}_{col}_idx')} ON {q(table.name)} ({q(col)})"
                for col in indexed
            )
        if audit_column and dialect == "postgresql":
            statements.append(
                f"CREATE TRIGGER {q(f'{table.name}_touch_{AUDIT_COLUMN}')} BEFORE UPDATE ON {q(table.name)} "
                f"FOR EACH ROW EXECUTE FUNCTION {q(_PG_TOUCH_FUNCTION)}()"
            )
        elif audit_column and dialect == "sqlite":
            touch = f"UPDATE {q(table.name)} SET {q(AUDIT_COLUMN)} = {_SQLITE_NOW} WHERE rowid = NEW.rowid"  # noqa: S608 - fixed identifiers, quoted
            statements.append(
                f"CREATE TRIGGER {q(f'{table.name}_touch_{AUDIT_COLUMN}')} AFTER UPDATE ON {q(table.name)} "
                f"FOR EACH ROW WHEN NEW.{q(AUDIT_COLUMN)} IS OLD.{q(AUDIT_COLUMN)} BEGIN {touch}; END"
            )
    return statements


def create_schema(conn: Connection, dialect: Dialect, *, audit_column: bool = True) -> None:
    """Create the eight tables (they must not exist yet) and commit."""
    cur = conn.cursor()
    for statement in schema_sql(dialect, audit_column=audit_column):
        cur.execute(statement)
    cur.close()
    conn.commit()


def drop_schema(conn: Connection, dialect: Dialect) -> None:
    """Drop the eight tables if they exist (children first) and commit."""
    _check_dialect(dialect)
    cur = conn.cursor()
    for name in reversed(TABLES):
        cur.execute(f"DROP TABLE IF EXISTS {quote(dialect, name)}")
    if dialect == "postgresql":
        cur.execute(f"DROP FUNCTION IF EXISTS {quote(dialect, _PG_TOUCH_FUNCTION)}()")
    cur.close()
    conn.commit()


# ------------------------------------------------------------------------------------------ sizes


@dataclass(frozen=True)
class Plan:
    """Row counts for a scale. Small reference tables grow with sqrt(scale) above 1, the rest linearly."""

    offices: int
    employees: int
    managers: int
    products: int
    customers: int
    orders: int

    @classmethod
    def for_scale(cls, scale: float) -> Plan:
        if not scale > 0:
            raise ValueError(f"scale must be > 0 (1.0 is the reference size), got {scale!r}")
        growth = max(1.0, scale) ** 0.5
        managers = max(1, round(3 * growth))
        return cls(
            offices=round(7 * growth),
            employees=max(round(23 * growth), managers + 4),
            managers=managers,
            products=round(110 * growth),
            customers=max(1, round(122 * scale)),
            orders=max(1, round(326 * scale)),
        )


# -------------------------------------------------------------------------------------- vocabulary


class City(NamedTuple):
    name: str
    state: str | None
    country: str
    postal: str | None  # '#' digit, '@' letter
    phone: str
    territory: str


CITIES: tuple[City, ...] = (
    City("New York", "NY", "USA", "100##", "212555####", "NA"),
    City("San Francisco", "CA", "USA", "941##", "415555####", "NA"),
    City("Boston", "MA", "USA", "021##", "617555####", "NA"),
    City("Las Vegas", "NV", "USA", "891##", "702555####", "NA"),
    City("Chicago", "IL", "USA", "606##", "312555####", "NA"),
    City("Montréal", "Québec", "Canada", "H#@ #@#", "(514) 555-####", "NA"),
    City("Vancouver", "BC", "Canada", "V#@ #@#", "(604) 555-####", "NA"),
    City("Paris", None, "France", "750##", "(1) 42.34.####", "EMEA"),
    City("Lyon", None, "France", "6900#", "78.32.####", "EMEA"),
    City("Berlin", None, "Germany", "10###", "030-0074###", "EMEA"),
    City("München", None, "Germany", "80###", "089-0877###", "EMEA"),
    City("Madrid", None, "Spain", "280##", "(91) 555 ## ##", "EMEA"),
    City("Barcelona", None, "Spain", "080##", "(93) 203 ####", "EMEA"),
    City("Torino", None, "Italy", "101##", "011-498####", "EMEA"),
    City("Oslo", None, "Norway", "0###", "+47 2267 ####", "EMEA"),
    City("Helsinki", None, "Finland", "00###", "90-224 ####", "EMEA"),
    City("Stockholm", None, "Sweden", "S-1## ##", "08-555 ## ##", "EMEA"),
    City("København", None, "Denmark", "1###", "31 12 ####", "EMEA"),
    City("Bruxelles", None, "Belgium", "1###", "(02) 201 ## ##", "EMEA"),
    City("Genève", None, "Switzerland", "12##", "022-555####", "EMEA"),
    City("Warszawa", None, "Poland", "00-###", "+48 22 555 ####", "EMEA"),
    City("London", None, "UK", "EC#@ #@@", "(171) 555-####", "EMEA"),
    City("Manchester", None, "UK", "M# #@@", "0161-555####", "EMEA"),
    City("Dublin", None, "Ireland", None, "2967 ####", "EMEA"),
    City("Tokyo", "Tokyo", "Japan", "1##-####", "+81 3 3584 ####", "Japan"),
    City("Osaka", "Osaka", "Japan", "530-####", "+81 6 6342 ####", "Japan"),
    City("Singapore", None, "Singapore", "0797##", "+65 221 ####", "APAC"),
    City("Sydney", "NSW", "Australia", "20##", "02 9936 ####", "APAC"),
    City("Melbourne", "Victoria", "Australia", "30##", "03 9520 ####", "APAC"),
    City("Auckland", None, "New Zealand", "10##", "+64 9 312 ####", "APAC"),
    City("Hong Kong", None, "Hong Kong", None, "+852 2251 ####", "APAC"),
)
_OFFICE_ORDER = ("New York", "Paris", "Tokyo", "San Francisco", "London", "Sydney", "Boston", "Berlin",
                 "Singapore", "Chicago", "Madrid", "Melbourne", "Montréal", "Stockholm", "Osaka", "Torino")  # fmt: skip
# Offices cycle through regions so that every territory has one early on (offices need a postal code).
OFFICE_CITIES: tuple[City, ...] = tuple(c for n in _OFFICE_ORDER for c in CITIES if c.name == n and c.postal)
FIRST_NAMES = (
    "Anna", "Carlos", "Diane", "Elena", "Frédéric", "Giulia", "Hiro", "Ingrid", "Jean", "Jonas",
    "Karin", "Liam", "María", "Mei", "Nikolai", "Olivia", "Pedro", "Quentin", "Rosa", "Sven",
    "Tomás", "Ulla", "Valentina", "Wei", "Yuki", "Zoë", "Peter", "Susan", "Julie", "Mark",
)  # fmt: skip
LAST_NAMES = (
    "Andersen", "Bauer", "Castillo", "Dubois", "Eriksson", "Fischer", "García", "Hansen", "Ito",
    "Jensen", "Kowalski", "Larsen", "Müller", "Nakamura", "O'Brien", "Petrov", "Quinn", "Rossi",
    "Schmidt", "Tanaka", "Ueda", "Valdés", "Wong", "Young", "Zimmermann", "Murphy", "Nelson",
    "Keller", "Moreau", "Lindqvist",
)  # fmt: skip
COMPANY_WORDS = (
    "Atlas", "Blue Ridge", "Corner", "Diecast", "Euro", "Golden Gate", "Harbor", "Imperial",
    "Junction", "Kings", "Lakeside", "Mini", "Nordic", "Oak", "Pacific", "Royal", "Silver", "Toy",
    "Vintage", "West Coast", "Zenith", "Alpine", "Canal", "Heritage",
)  # fmt: skip
COMPANY_NOUNS = ("Collectables", "Gifts", "Models", "Replicas", "Imports", "Traders", "Hobbies",
                 "Miniatures", "Toys", "Classics", "Auto Parts", "Souvenirs")  # fmt: skip
COMPANY_SUFFIXES = ("", "", "", " Co.", " Ltd.", " Inc.", " GmbH", " AB", " & Co.", ", Ltd", " S.A.")
STREETS = ("Market Street", "Strong St.", "rue Royale", "Hauptstraße", "Gran Vía", "Kings Road",
           "Harbour Drive", "Via Roma", "Storgatan", "Main Street", "Ocean Avenue", "Calle Mayor",
           "Rue du Commerce", "Karl Johans gate", "Lindenallee", "Baker Street")  # fmt: skip
ADDRESS_2 = ("Suite 101", "Level 3", "Floor #2", "apt. 5A", "Unit 12", "2nd Floor", "PO Box 77")
# Spreadsheet formulas, markup, emoji, quotes, control characters: for downstream exporters.
HOSTILE_CUSTOMER_NAMES = (
    '=HYPERLINK("http://example.com","Click me")',
    "<script>alert('x')</script> Toys",
    "Emoji Models 🚗🏍 Ltd.",
    "O'Brien & Sons Collectables",
    '+SUM(1,2) Diecast "Quoted"',
    "Back\\slash; DROP TABLE customers;--",
    "Línea Española Ñandú Modelle",
    "Tab\tand\nnewline Replicas",
)
STATUSES = ("Shipped", "Resolved", "Cancelled", "On Hold", "Disputed", "In Process")
ORDER_COMMENTS = (
    "Check on availability.",
    "Customer requested expedited shipping.",
    "Difficult to negotiate with customer. We need more marketing materials.",
    "Customer credit limit exceeded. Will ship when a payment is received.",
    "The shipment arrived damaged; customer disputes the charge.",
    'Customer says: "please call before delivery"',
    "Customer O'Neil asked for gift wrap.",
    "Deliver to the loading dock <b>only</b>.",
    "Multi-line note:\nsecond line\tand a tab.",
    "Kunde bittet um Rückruf — Lieferung prüfen.",
    "Paid with 💳, confirm receipt.",
)
MUTATION_COMMENTS = (
    "Customer asked for a copy of the invoice.",
    "Address corrected after a call with the customer.",
    "Carrier reported a delay; customer informed.",
    "Partial refund agreed for one damaged item.",
)
PRODUCT_LINES: dict[str, tuple[tuple[int, int], tuple[str, ...], int]] = {
    # line: ((first year, last year), subjects, weight)
    "Classic Cars": ((1948, 1975), ("Ford Mustang", "Chevrolet Corvette", "Jaguar E-Type", "Porsche 356",
                     "Ferrari Dino", "Mercedes-Benz 300SL", "Alfa Romeo Giulia", "Citroën DS"), 38),
    "Motorcycles": ((1936, 2003), ("Harley Davidson", "Ducati", "Vespa", "BMW R75", "Triumph Bonneville",
                    "Honda CB750", "Indian Chief"), 13),
    "Planes": ((1914, 1990), ("Spitfire", "P-51 Mustang", "Boeing 747", "Concorde", "DC-3",
               "Sopwith Camel"), 12),
    "Ships": ((1492, 1950), ("Mayflower", "HMS Bounty", "USS Constitution", "Cutty Sark",
              "Pirate Galleon"), 9),
    "Trains": ((1904, 1970), ("Flying Scotsman", "Orient Express", "Steam Locomotive", "Streetcar"), 3),
    "Trucks and Buses": ((1926, 2003), ("Ford F-150", "School Bus", "Fire Engine", "Double-Decker Bus",
                         "Delivery Van"), 11),
    "Vintage Cars": ((1904, 1940), ("Ford Model T", "Bugatti Type 35", "Rolls-Royce Silver Ghost",
                     "Duesenberg SJ", "Packard Eight", "Bentley Blower"), 24),
}  # fmt: skip
PRODUCT_VARIANTS = ("", "", "", " Convertible", " Coupe", " Limited Edition", " Racing", " Deluxe")
PRODUCT_FEATURES = ("opening hood", "detailed engine", "working steering", "rubber tires",
                    "official logos and insignias", "opening doors", "detailed interior",
                    "chrome accents", "die-cast metal body", "removable canopy", "spinning propeller",
                    "hand-painted details", "display stand included")  # fmt: skip
SCALES = ("10", "12", "18", "24", "32", "50", "72", "700")
VENDORS = ("Apex Diecast Works", "Brightline Replicas", "Coastline Model Co.", "Dieter & Sons Miniaturen",
           "Evergreen Scale Models", "Fairway Collectibles", "Granite State Diecast", "Harborlight Models",
           "Ironwood Replicas", "Juniper Scale Works", "Kestrel Miniatures", "Lumen Art Models")  # fmt: skip

ORDER_START = date(2003, 1, 6)
ORDER_DAYS = (date(2005, 5, 31) - ORDER_START).days
PAYMENT_START = date(2003, 1, 16)
PAYMENT_DAYS = (date(2005, 6, 9) - PAYMENT_START).days
BASE_TIME = datetime(2002, 12, 1, 9, 0)  # reference tables' updatedAt: a fixed base plus an offset


@dataclass(frozen=True)
class Calendar:
    """Where the sample lies in time: the reference's 2003-2005, or shifted to end the day before ``anchor``.

    Anchored, the orders and payments keep their spacing (the same daily volume) and end yesterday;
    a shipment that would lie after yesterday has not happened yet (the order is "In Process").
    """

    order_start: date = ORDER_START
    payment_start: date = PAYMENT_START
    base_time: datetime = BASE_TIME
    last_day: date | None = None  # nothing is dated after this day (None: the reference's dates)

    @classmethod
    def ending_before(cls, anchor: date | None, orders: int = 1) -> Calendar:
        """``orders``: how many orders the plan has (the last one is dated yesterday)."""
        if anchor is None:
            return cls()
        last = anchor - timedelta(days=1)
        last_order_offset = timedelta(days=((orders - 1) * ORDER_DAYS) // max(orders, 1))
        shift = (last - last_order_offset) - ORDER_START
        return cls(
            order_start=ORDER_START + shift,
            payment_start=last - timedelta(days=PAYMENT_DAYS - 1),
            base_time=BASE_TIME + shift,
            last_day=last,
        )


CUSTOMER_SECONDS = 2 * 365 * 86400
CUSTOMER_NUMBER_START = 103
ORDER_NUMBER_START = 10100


def _fill(rng: random.Random, pattern: str) -> str:
    """Replace '#' with a digit and '@' with a capital letter."""
    return "".join(
        str(rng.randrange(10)) if ch == "#" else chr(65 + rng.randrange(26)) if ch == "@" else ch
        for ch in pattern
    )


def _money(cents: int) -> Decimal:
    """Exact two-place decimal: 13600 -> Decimal('136.00')."""
    return Decimal(cents).scaleb(-2)


def _email(first: str, last: str) -> str:
    plain = unicodedata.normalize("NFKD", f"{first[0]}{last}").encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z]", "", plain.lower()) + "@classicmodels.example"


def customer_number(index: int) -> int:
    """Customer numbers are spaced by 3 from 103, like the reference's sparse numbering."""
    return CUSTOMER_NUMBER_START + 3 * index


def _is_active(index: int) -> bool:
    """One customer in five never orders (the reference has such customers too)."""
    return index % 5 != 4


def _hostile_name(index: int) -> str | None:
    if index % 13 == 5 and index // 13 < len(HOSTILE_CUSTOMER_NAMES):
        return HOSTILE_CUSTOMER_NAMES[index // 13]
    if index % 997 == 500:
        return HOSTILE_CUSTOMER_NAMES[(index // 997) % len(HOSTILE_CUSTOMER_NAMES)]
    return None


# ----------------------------------------------------------------------------------------- rows
# Every row generator yields rows in reference column order with the audit stamp appended last.


def _productline_rows(rng: random.Random, cal: Calendar) -> list[Row]:
    rows = []
    for i, name in enumerate(PRODUCT_LINES):
        features = ", ".join(rng.sample(PRODUCT_FEATURES, 4))
        text = f"{name}: faithful replicas with {features}. Fully assembled and ready for display."
        if i == 0:  # one long value near the VARCHAR(4000) limit
            text = (text + " ") * (3900 // (len(text) + 1))
        html = f"<p><b>{name}</b> &mdash; {features}.</p>" if i % 2 == 0 else None
        image = b"\x89PNG\r\n\x1a\n" + rng.randbytes(64 + 32 * i) if i % 3 != 2 else None
        rows.append((name, text.strip(), html, image, cal.base_time + timedelta(minutes=i)))
    return rows


def _office_rows(plan: Plan, rng: random.Random, cal: Calendar) -> list[Row]:
    rows = []
    for i in range(plan.offices):
        city = OFFICE_CITIES[i % len(OFFICE_CITIES)]
        rows.append(
            (
                str(i + 1),
                city.name,
                _fill(rng, city.phone),
                f"{rng.randint(1, 999)} {rng.choice(STREETS)}",
                rng.choice(ADDRESS_2) if rng.random() < 0.6 else None,
                city.state,
                city.country,
                _fill(rng, city.postal or "#####"),
                city.territory,
                cal.base_time + timedelta(hours=1, minutes=i),
            )
        )
    return rows


def _employee_rows(
    plan: Plan, rng: random.Random, offices: Sequence[Row], cal: Calendar
) -> tuple[list[Row], list[int]]:
    """Employees (president, two VPs, sales managers, sales reps) and the sales reps' numbers."""
    numbers = [1002 + 16 * i + rng.randrange(16) for i in range(plan.employees)]
    president, vp_sales = numbers[0], numbers[1]
    managers = numbers[3 : 3 + plan.managers]
    rows = []
    for i, number in enumerate(numbers):
        if i == 0:
            office, boss, title = offices[0], None, "President"
        elif i in (1, 2):
            office, boss, title = offices[0], president, ("VP Sales", "VP Marketing")[i - 1]
        elif i < 3 + plan.managers:
            office = offices[((i - 3) * len(offices)) // plan.managers]
            boss, title = vp_sales, f"Sales Manager ({office[8]})"
        else:
            office, boss, title = rng.choice(offices), rng.choice(managers), "Sales Rep"
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        stamp = cal.base_time + timedelta(hours=2, minutes=i)
        rows.append((number, last, first, f"x{rng.randrange(1000, 10000)}", _email(first, last), office[0],
                     boss, title, stamp))  # fmt: skip
    return rows, numbers[3 + plan.managers :]


def _product_rows(plan: Plan, rng: random.Random, cal: Calendar) -> list[Row]:
    lines = list(PRODUCT_LINES)
    weights = [PRODUCT_LINES[name][2] for name in lines]
    rows = []
    for i in range(plan.products):
        line = rng.choices(lines, weights)[0]
        (first_year, last_year), subjects, _ = PRODUCT_LINES[line]
        scale = rng.choice(SCALES)
        number = 1000 + (i * 83) % 9000 if i < 9000 else 1000 + i  # unique for every i
        name = f"{rng.randint(first_year, last_year)} {rng.choice(subjects)}{rng.choice(PRODUCT_VARIANTS)}"
        description = "This replica features " + ", ".join(rng.sample(PRODUCT_FEATURES, 3)) + "."
        buy = rng.randrange(1500, 10500)
        msrp = buy * rng.randint(130, 220) // 100
        rows.append((f"S{scale}_{number}", name, line, f"1:{scale}", rng.choice(VENDORS), description,
                     rng.randrange(0, 10000), _money(buy), _money(msrp),
                     cal.base_time + timedelta(hours=3, seconds=i)))  # fmt: skip
    return rows


def _stamp(rng: random.Random, day: date) -> datetime:
    """A working-hours time on ``day`` with microseconds, drawn from ``rng``."""
    return datetime.combine(day, time(8)) + timedelta(
        seconds=rng.randrange(10 * 3600), microseconds=rng.randrange(1_000_000)
    )


def _customer_rows(
    plan: Plan, rng: random.Random, reps: Mapping[str, Sequence[int]], cal: Calendar
) -> Iterator[Row]:
    """Customers; each one's sales rep works in an office of the customer's territory (as in the
    reference: a customer in Australia is served from APAC), or anywhere if that territory has none."""
    everyone = [n for numbers in reps.values() for n in numbers]
    for i in range(plan.customers):
        city = rng.choice(CITIES)
        name = _hostile_name(i) or (
            f"{rng.choice(COMPANY_WORDS)} {rng.choice(COMPANY_NOUNS)}{rng.choice(COMPANY_SUFFIXES)}"
        )
        active = _is_active(i)
        rep = rng.choice(reps.get(city.territory) or everyone) if active or rng.random() < 0.25 else None
        if rng.random() < 0.04:
            credit = None
        else:
            credit = _money(rng.randrange(210, 2280) * 10_000 if active else 0)
        yield (
            customer_number(i),
            name,
            rng.choice(LAST_NAMES),
            rng.choice(FIRST_NAMES),
            _fill(rng, city.phone),
            f"{rng.randint(1, 9999)} {rng.choice(STREETS)}",
            rng.choice(ADDRESS_2) if rng.random() < 0.2 else None,
            city.name,
            city.state,
            _fill(rng, city.postal) if city.postal else None,
            city.country,
            rep,
            credit,
            cal.base_time + timedelta(days=30, seconds=rng.randrange(CUSTOMER_SECONDS),
                                  microseconds=rng.randrange(1_000_000)),
        )  # fmt: skip


# Cumulative odds: (upper bound of random(), status). The newest orders are still being worked on.
_STATUS_ODDS = ((0.935, "Shipped"), (0.955, "Cancelled"), (0.97, "Resolved"), (0.98, "Disputed"),
                (0.99, "On Hold"), (1.0, "In Process"))  # fmt: skip
_RECENT_STATUS_ODDS = ((0.45, "In Process"), (0.6, "On Hold"), (0.65, "Disputed"), (1.0, "Shipped"))


def _status(rng: random.Random, progress: float) -> str:
    r = rng.random()
    return next(
        status for limit, status in (_RECENT_STATUS_ODDS if progress > 0.97 else _STATUS_ODDS) if r < limit
    )


def _order_rows(
    plan: Plan, rng: random.Random, products: Sequence[Row], cal: Calendar
) -> Iterator[tuple[Row, list[Row]]]:
    """Orders in date order, each with 1-17 lines of distinct products."""
    codes = [p[0] for p in products]
    msrp_cents = [int(p[8].scaleb(2)) for p in products]
    n_products = len(products)
    max_lines = min(17, n_products)
    for i in range(plan.orders):
        number = ORDER_NUMBER_START + i
        ordered = cal.order_start + timedelta(days=(i * ORDER_DAYS) // plan.orders)
        status = _status(rng, i / plan.orders)
        required = ordered + timedelta(days=rng.randint(6, 10))
        unshipped = status in ("In Process", "On Hold") or (status == "Cancelled" and rng.random() < 0.5)
        shipped = None if unshipped else ordered + timedelta(days=rng.randint(1, 6))
        if shipped is not None and cal.last_day is not None and shipped > cal.last_day:
            shipped, status = None, "In Process"  # not shipped yet
        comments = rng.choice(ORDER_COMMENTS) if status != "Shipped" or rng.random() < 0.15 else None
        customer = rng.randrange(plan.customers)
        if not _is_active(customer):
            customer -= 1
        stamp = _stamp(rng, shipped or ordered)
        order = (number, ordered, required, shipped, status, comments, customer_number(customer), stamp)
        lines = []
        for line, p in enumerate(rng.sample(range(n_products), rng.randint(1, max_lines)), 1):
            quantity = rng.randint(20, 50) if rng.random() < 0.9 else rng.randint(6, 97)
            price = _money(msrp_cents[p] * rng.randint(80, 100) // 100)
            lines.append((number, codes[p], quantity, price, line, stamp))
        yield order, lines


def _payment_rows(plan: Plan, rng: random.Random, cal: Calendar) -> Iterator[Row]:
    """Two to three payments per ordering customer, check numbers unique per customer."""
    for i in range(plan.customers):
        if not _is_active(i):
            continue
        checks: set[str] = set()
        for _ in range(rng.choice((1, 2, 2, 3, 3, 3, 4, 4))):
            check = f"{chr(65 + rng.randrange(26))}{chr(65 + rng.randrange(26))}{rng.randrange(10**6):06d}"
            if check in checks:
                continue
            checks.add(check)
            paid = cal.payment_start + timedelta(days=rng.randrange(PAYMENT_DAYS))
            cents = rng.randrange(60_000, 6_000_000) + (rng.randrange(6_000_000) if rng.random() < 0.2 else 0)
            yield (customer_number(i), check, paid, _money(cents), _stamp(rng, paid))


def _chunks(rows: Iterable[Row], size: int) -> Iterator[list[Row]]:
    iterator = iter(rows)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def iter_batches(
    scale: float = 1.0, seed: int = 42, batch_rows: int = 10_000, anchor: date | None = None
) -> Iterator[tuple[str, list[Row]]]:
    """(table, rows) batches in FK-safe order; rows end with the audit stamp. Content ignores batch_rows.

    ``anchor``: place the sample so that it ends the day before (see :class:`Calendar`).
    """
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be >= 1, got {batch_rows!r}")
    plan = Plan.for_scale(scale)

    def rng(table: str) -> random.Random:
        return random.Random(f"classicmodels:{seed}:{table}")  # str seeds hash stably (SHA-512)

    cal = Calendar.ending_before(anchor, plan.orders)
    yield "productlines", _productline_rows(rng("productlines"), cal)
    offices = _office_rows(plan, rng("offices"), cal)
    yield "offices", offices
    employees, reps = _employee_rows(plan, rng("employees"), offices, cal)
    yield "employees", employees
    territory = {office[0]: office[8] for office in offices}
    by_territory: dict[str, list[int]] = {}
    for employee in employees:
        if employee[0] in set(reps):
            by_territory.setdefault(territory[employee[5]], []).append(employee[0])
    for batch in _chunks(_customer_rows(plan, rng("customers"), by_territory, cal), batch_rows):
        yield "customers", batch
    products = _product_rows(plan, rng("products"), cal)
    yield "products", products
    orders: list[Row] = []
    details: list[Row] = []
    for order, lines in _order_rows(plan, rng("orders"), products, cal):
        orders.append(order)
        details.extend(lines)
        if len(details) >= batch_rows:
            yield "orders", orders
            yield "orderdetails", details
            orders, details = [], []
    if orders:
        yield "orders", orders
        yield "orderdetails", details
    for batch in _chunks(_payment_rows(plan, rng("payments"), cal), batch_rows):
        yield "payments", batch


# ------------------------------------------------------------------------------------ database I/O


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat(timespec="microseconds")
    if isinstance(value, date):
        return value.isoformat()
    return value


def _params(dialect: Dialect, rows: list[Row]) -> list[Row]:
    if dialect == "sqlite":
        return [tuple(_sqlite_value(v) for v in row) for row in rows]
    return rows


def _placeholder(dialect: Dialect) -> str:
    return "?" if dialect == "sqlite" else "%s"


class _Literals(dict[type, Callable[[Any], bytes]]):
    """type -> MySQL literal bytes; types without a fast path go through the driver's literal()."""

    def __init__(self, conn: Connection) -> None:
        escape = conn.string_literal  # the driver's escaping: knows the connection's charset and SQL mode
        super().__init__(
            {
                int: b"%d".__mod__,
                Decimal: lambda v: format(v, "f").encode(),
                type(None): lambda v: b"NULL",
                date: lambda v: b"'" + v.isoformat().encode() + b"'",
                datetime: lambda v: b"'" + v.isoformat(" ").encode() + b"'",
                str: lambda v: escape(v.encode()),
                bytes: lambda v: b"_binary" + escape(v),
            }
        )
        self._fallback: Callable[[Any], bytes] = conn.literal

    def __missing__(self, key: type) -> Callable[[Any], bytes]:
        return self._fallback


class _Writer:
    """Multi-row INSERTs for one dialect (bound parameters for SQLite and PostgreSQL).

    For MySQL it builds the statements mysqlclient's executemany would send, about five times
    cheaper per row (executemany's generic per-value conversion made the client, not the server,
    the bottleneck), and pipelines them: a statement is sent without waiting, and the next batch
    is generated while the server inserts. Statements stay under ``max_bytes``, below MySQL's
    smallest packet limit. ``close()`` waits for the last one and raises its error, if any.
    """

    def __init__(self, conn: Connection, dialect: Dialect, max_bytes: int = 1 << 20) -> None:
        self.conn, self.dialect, self.max_bytes = conn, dialect, max_bytes
        self.cur = conn.cursor()
        self._literals = _Literals(conn) if dialect == "mysql" else None
        self._pending = False

    def insert(self, table: str, columns: Sequence[str], rows: list[Row]) -> None:
        q, dialect = quote, self.dialect
        target = f"INSERT INTO {q(dialect, table)} ({', '.join(q(dialect, c) for c in columns)}) VALUES "  # noqa: S608 - fixed identifiers, quoted
        if self._literals is not None:
            self._mysql_insert(target.encode(), rows, self._literals)
        elif dialect == "postgresql":
            from psycopg2.extras import execute_values

            execute_values(self.cur, target + "%s", rows, page_size=len(rows))
        else:
            marks = ", ".join(["?"] * len(columns))
            self.cur.executemany(target + f"({marks})", _params(dialect, rows))

    def _mysql_insert(self, prefix: bytes, rows: list[Row], literals: _Literals) -> None:
        parts: list[bytes] = []
        size = len(prefix)
        for row in rows:
            values = b"(" + b",".join([literals[type(v)](v) for v in row]) + b")"
            if parts and size + len(values) + 1 > self.max_bytes:
                self._send(prefix + b",".join(parts))
                parts, size = [], len(prefix)
            parts.append(values)
            size += len(values) + 1
        if parts:
            self._send(prefix + b",".join(parts))

    def _send(self, statement: bytes) -> None:
        self._wait()
        self.conn.send_query(statement)
        self._pending = True

    def _wait(self) -> None:
        if self._pending:
            self._pending = False
            self.conn.read_query_result()

    def close(self) -> None:
        try:
            self._wait()
        finally:
            self.cur.close()


def _execute_many(cur: Any, dialect: Dialect, sql: str, rows: list[Row]) -> None:
    if not rows:
        return
    if dialect == "postgresql":
        from psycopg2.extras import execute_batch

        execute_batch(cur, sql, rows, page_size=1000)
    else:
        cur.executemany(sql, _params(dialect, rows))


def generate(
    conn: Connection,
    dialect: Dialect,
    *,
    scale: float = 1.0,
    seed: int = 42,
    batch_rows: int = 10_000,
    audit_column: bool = True,
    anchor: date | None = None,
) -> dict[str, int]:
    """Replace the eight tables with seeded data at ``scale`` (1.0 ~ reference sizes); commit; row counts.

    The same scale and seed give the same content (``updatedAt`` included) in every dialect, whatever
    ``batch_rows`` is. Other tables in the database are left alone; for MySQL/MariaDB and PostgreSQL
    the database itself must exist. ``audit_column=False`` gives the exact reference shape.
    ``anchor`` (a date) places the sample in time so that orders and payments end the day before it.
    """
    _check_dialect(dialect)
    Plan.for_scale(scale)  # validate before dropping anything
    drop_schema(conn, dialect)
    create_schema(conn, dialect, audit_column=audit_column)
    counts = dict.fromkeys(TABLES, 0)
    writer = _Writer(conn, dialect)
    try:
        for table, rows in iter_batches(scale, seed, batch_rows, anchor):
            columns = TABLES[table].column_names
            if audit_column:
                columns += (AUDIT_COLUMN,)
            else:
                rows = [row[:-1] for row in rows]
            writer.insert(table, columns, rows)
            counts[table] += len(rows)
    finally:
        writer.close()
    conn.commit()
    return counts


def _scan(conn: Connection, dialect: Dialect, sql: str, size: int = 10_000) -> Iterator[Row]:
    """Stream a query's rows without holding the result in memory (server-side cursors)."""
    if dialect == "mysql":
        import MySQLdb.cursors

        cur = conn.cursor(MySQLdb.cursors.SSCursor)
    elif dialect == "postgresql":
        cur = conn.cursor(name="classicmodels_scan")
        cur.itersize = size
    else:
        cur = conn.cursor()
    try:
        cur.execute(sql)
        while rows := cur.fetchmany(size):
            yield from rows
    finally:
        cur.close()


def _has_audit_column(conn: Connection, dialect: Dialect) -> bool:
    cur = conn.cursor()
    try:
        cur.execute(f"SELECT * FROM {quote(dialect, 'orders')} WHERE 1 = 0")  # noqa: S608 - fixed identifier
    except Exception as exc:
        conn.rollback()
        raise ValueError(
            f"table orders is missing or unreadable ({exc}); run generate() or create_schema() first"
        ) from exc
    names = [d[0] for d in cur.description]
    cur.close()
    return AUDIT_COLUMN in names


def _as_decimal(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _naive_utc(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(tzinfo=None) if now.tzinfo else now


def _select(dialect: Dialect, table: str, columns: Sequence[str]) -> str:
    q = quote
    keys = ", ".join(q(dialect, k) for k in TABLES[table].primary_key)
    return f"SELECT {', '.join(q(dialect, c) for c in columns)} FROM {q(dialect, table)} ORDER BY {keys}"  # noqa: S608 - fixed identifiers, quoted


def _update_sql(dialect: Dialect, table: str, columns: Sequence[str], audit: bool) -> str:
    q, mark = quote, _placeholder(dialect)
    assignments = [f"{q(dialect, c)} = {mark}" for c in (*columns, *((AUDIT_COLUMN,) if audit else ()))]
    where = " AND ".join(f"{q(dialect, k)} = {mark}" for k in TABLES[table].primary_key)
    return f"UPDATE {q(dialect, table)} SET {', '.join(assignments)} WHERE {where}"  # noqa: S608 - fixed identifiers, quoted


def _delete_sql(dialect: Dialect, table: str) -> str:
    q, mark = quote, _placeholder(dialect)
    where = " AND ".join(f"{q(dialect, k)} = {mark}" for k in TABLES[table].primary_key)
    return f"DELETE FROM {q(dialect, table)} WHERE {where}"  # noqa: S608 - fixed identifiers, quoted


def _nonzero(rng: random.Random, low: int, high: int) -> int:
    step = rng.randint(low, high)
    return step if step else high


def mutate(
    conn: Connection, dialect: Dialect, *, fraction: float, seed: int, now: datetime
) -> dict[str, int]:
    """Insert, update and delete about ``fraction`` of the rows, like a day of business; commit; counts.

    Inserts ``fraction`` x orders new orders (with lines) dated ``now``; updates ``fraction`` of
    orders, orderdetails, customers and payments (every update changes a value and sets updatedAt
    to ``now``); deletes ``fraction / 5`` of payments and of orderdetails (never an order's line 1,
    so no order is left empty). Deterministic for the same starting content, seed and ``now``; one
    transaction. Works on tables without the audit column too (then updatedAt is not touched).
    Memory grows with ``fraction`` x rows, not with the table sizes. An aware ``now`` is stored as UTC.
    """
    _check_dialect(dialect)
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}; 0.01 changes about 1% of rows")
    now = _naive_utc(now)
    audit = _has_audit_column(conn, dialect)
    rng = random.Random(f"classicmodels:{seed}:mutate")
    picker = random.Random(f"classicmodels:{seed}:mutate:customers")
    delete_share = fraction / 5

    order_updates: list[Row] = []
    orders_seen, last_order = 0, ORDER_NUMBER_START - 1
    columns = ("orderNumber", "orderDate", "shippedDate", "status", "comments")
    for number, ordered, shipped, status, comments in _scan(
        conn, dialect, _select(dialect, "orders", columns)
    ):
        orders_seen += 1
        last_order = max(last_order, number)
        if rng.random() >= fraction:
            continue
        if status in ("In Process", "On Hold"):
            shipped = min(
                _as_date(ordered) + timedelta(days=rng.randint(1, 5)), now.date()
            )  # never in the future
            status = "Shipped"
        elif status == "Disputed":
            status = "Resolved"
        elif status == "Shipped" and rng.random() < 0.2:
            status = "Disputed"
        else:
            new = rng.choice(MUTATION_COMMENTS)
            comments = new if new != comments else new + " (again)"
        order_updates.append((status, shipped, comments, *((now,) if audit else ()), number))

    new_orders = max(1, round(orders_seen * fraction))
    buyers: list[int] = []  # reservoir sample of customers for the new orders
    customer_updates: list[Row] = []
    scan = _scan(conn, dialect, _select(dialect, "customers", ("customerNumber", "creditLimit")))
    for seen, (number, credit) in enumerate(scan):
        if seen < new_orders:
            buyers.append(number)
        elif (slot := picker.randrange(seen + 1)) < new_orders:
            buyers[slot] = number
        if rng.random() < fraction:
            old = None if credit is None else _as_decimal(credit)
            if old is None or old == 0:
                new_credit = _money(rng.randrange(210, 2280) * 10_000)
            else:
                new_credit = old + _money(_nonzero(rng, -20, 40) * 10_000)
                if new_credit < 0:
                    new_credit = old + _money(50 * 10_000)
            customer_updates.append((new_credit, *((now,) if audit else ()), number))
    if not buyers:
        raise ValueError("table customers is empty; run generate() first")

    detail_updates: list[Row] = []
    detail_deletes: list[Row] = []
    columns = ("orderNumber", "productCode", "quantityOrdered", "priceEach", "orderLineNumber")
    for number, code, quantity, price, line in _scan(
        conn, dialect, _select(dialect, "orderdetails", columns)
    ):
        r = rng.random()
        if r < fraction:
            new_price = _as_decimal(price)
            if rng.random() < 0.5:
                new_price = max(new_price + _money(_nonzero(rng, -300, 300)), _money(1))
            detail_updates.append(
                (quantity + rng.randint(1, 10), new_price, *((now,) if audit else ()), number, code)
            )
        elif r < fraction + delete_share and line > 1:
            detail_deletes.append((number, code))

    payment_updates: list[Row] = []
    payment_deletes: list[Row] = []
    columns = ("customerNumber", "checkNumber", "amount")
    for number, check, amount in _scan(conn, dialect, _select(dialect, "payments", columns)):
        r = rng.random()
        if r < fraction:
            new_amount = _as_decimal(amount) + _money(_nonzero(rng, -5000, 5000))
            if new_amount <= 0:
                new_amount = _as_decimal(amount) + _money(5000)
            payment_updates.append((new_amount, *((now,) if audit else ()), number, check))
        elif r < fraction + delete_share:
            payment_deletes.append((number, check))

    products = [
        (code, _as_decimal(msrp))
        for code, msrp in _scan(conn, dialect, _select(dialect, "products", ("productCode", "MSRP")))
    ]
    if not products:
        raise ValueError("table products is empty; run generate() first")

    writer = _Writer(conn, dialect)
    cur = writer.cur
    _execute_many(cur, dialect, _update_sql(dialect, "orders", ("status", "shippedDate", "comments"), audit),
                  order_updates)  # fmt: skip
    _execute_many(cur, dialect, _update_sql(dialect, "customers", ("creditLimit",), audit), customer_updates)
    _execute_many(cur, dialect, _update_sql(dialect, "orderdetails", ("quantityOrdered", "priceEach"), audit),
                  detail_updates)  # fmt: skip
    _execute_many(cur, dialect, _update_sql(dialect, "payments", ("amount",), audit), payment_updates)
    _execute_many(cur, dialect, _delete_sql(dialect, "orderdetails"), detail_deletes)
    _execute_many(cur, dialect, _delete_sql(dialect, "payments"), payment_deletes)

    picker.shuffle(buyers)
    orders: list[Row] = []
    details: list[Row] = []
    for i in range(new_orders):
        number = last_order + 1 + i
        ordered = now.date()
        comments = rng.choice(ORDER_COMMENTS) if rng.random() < 0.2 else None
        orders.append((number, ordered, ordered + timedelta(days=rng.randint(6, 10)), None, "In Process",
                       comments, buyers[i % len(buyers)], now))  # fmt: skip
        for line, (code, msrp) in enumerate(rng.sample(products, rng.randint(1, min(17, len(products)))), 1):
            price = _money(int(msrp.scaleb(2)) * rng.randint(80, 100) // 100)
            details.append((number, code, rng.randint(20, 50), price, line, now))
    try:
        for table, rows in (("orders", orders), ("orderdetails", details)):
            columns = TABLES[table].column_names + ((AUDIT_COLUMN,) if audit else ())
            for batch in _chunks(rows if audit else [r[:-1] for r in rows], 10_000):
                writer.insert(table, columns, batch)
    finally:
        writer.close()
    conn.commit()
    return {
        "orders_inserted": len(orders),
        "orderdetails_inserted": len(details),
        "orders_updated": len(order_updates),
        "orderdetails_updated": len(detail_updates),
        "customers_updated": len(customer_updates),
        "payments_updated": len(payment_updates),
        "orderdetails_deleted": len(detail_deletes),
        "payments_deleted": len(payment_deletes),
    }


# ------------------------------------------------------------------------------------- connections


def parse_url(url: str) -> tuple[Dialect, dict[str, Any]]:
    """Split a database URL into the dialect and the driver's connect() keyword arguments."""
    parts = urlsplit(url)
    scheme = parts.scheme.split("+")[0].lower()
    if scheme == "sqlite":
        path = parts.path[1:] if parts.path.startswith("/") else parts.path  # as SQLAlchemy reads it
        return "sqlite", {"database": path or ":memory:"}
    if scheme not in ("mysql", "mariadb", "postgresql", "postgres"):
        raise ValueError(
            f"URL scheme {parts.scheme!r} is not supported; use sqlite:///file.db, "
            "mysql://user:pass@host:3306/db or postgresql://user@host:5432/db"
        )
    database = unquote(parts.path.lstrip("/"))
    if not database:
        raise ValueError(
            f"{scheme} URL names no database; add /<name> to the URL (the database must exist: CREATE DATABASE <name>)"
        )
    kwargs: dict[str, Any] = {"host": parts.hostname or "127.0.0.1"}
    if parts.username:
        kwargs["user"] = unquote(parts.username)
    if parts.password is not None:
        kwargs["password"] = unquote(parts.password)
    if scheme in ("mysql", "mariadb"):
        kwargs.update(port=parts.port or 3306, database=database, charset="utf8mb4")
        return "mysql", kwargs
    kwargs.update(port=parts.port or 5432, dbname=database)
    return "postgresql", kwargs


def connect(url: str) -> tuple[Connection, Dialect]:
    """Open a DB-API connection (sqlite3, MySQLdb or psycopg2; not autocommit) for ``url``."""
    dialect, kwargs = parse_url(url)
    if dialect == "sqlite":
        import sqlite3

        conn = sqlite3.connect(kwargs["database"], timeout=30)  # readers (the syncs) may hold it briefly
        conn.execute("PRAGMA foreign_keys = ON")
    elif dialect == "mysql":
        try:
            import MySQLdb
        except ImportError as exc:
            raise ImportError("mysql:// URLs need the mysqlclient package: pip install mysqlclient") from exc
        conn = MySQLdb.connect(**kwargs)
    else:
        try:
            import psycopg2
        except ImportError as exc:
            raise ImportError("postgresql:// URLs need psycopg2: pip install psycopg2-binary") from exc
        conn = psycopg2.connect(**kwargs)
    return conn, dialect


# --------------------------------------------------------------------------------------------- CLI


def _peak_rss_mib() -> float | None:
    try:
        import resource
    except ImportError:  # not on Windows
        return None
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _anchor(value: str) -> date:
    return datetime.now(UTC).date() if value == "today" else date.fromisoformat(value)


def _new_payment(conn: Connection, dialect: Dialect, round_: int, now: datetime) -> int:
    """One payment by a customer with orders, dated ``now`` (the live demo's cash coming in); commit."""
    cur = conn.cursor()
    cur.execute(f"SELECT DISTINCT {quote(dialect, 'customerNumber')} FROM {quote(dialect, 'orders')}")  # noqa: S608
    customers = sorted(r[0] for r in cur.fetchall())
    cur.close()
    if not customers:
        return 0
    rng = random.Random(f"classicmodels:live:{round_}:{now.isoformat()}")
    check = f"LV{now:%y%m%d%H%M%S}{round_ % 100:02d}"
    columns = ["customerNumber", "checkNumber", "paymentDate", "amount"]
    row = [rng.choice(customers), check, now.date(), _money(rng.randrange(50_000, 5_000_000))]
    if _has_audit_column(conn, dialect):
        columns.append(AUDIT_COLUMN)
        row.append(now)
    writer = _Writer(conn, dialect)
    try:
        writer.insert("payments", columns, [tuple(row)])
    finally:
        writer.close()
    conn.commit()
    return 1


def _live(url: str, every: float, fraction: float, out: Callable[[str], None]) -> int:
    """Local demo only: new orders and lines, updates and a few deletes every ``every`` seconds, stamped
    with the current UTC time, so the hourly syncs have new rows to pick up. Stops on SIGTERM/SIGINT."""
    import signal

    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)  # one line per change, in the log at once
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(True))
    round_ = 0
    while not stopping:
        deadline = _time.monotonic() + every
        while not stopping and _time.monotonic() < deadline:
            _time.sleep(min(1.0, every))
        if stopping:
            break
        round_ += 1
        conn, dialect = connect(url)
        try:
            now = datetime.now(UTC).replace(tzinfo=None)
            counts = mutate(conn, dialect, fraction=fraction, seed=round_, now=now)
            counts["payments_inserted"] = _new_payment(conn, dialect, round_, now)
        except Exception as exc:  # a busy SQLite file, say: try again next round
            out(f"{datetime.now(UTC):%H:%M:%S} change skipped: {type(exc).__name__}: {exc}")
            continue
        finally:
            conn.close()
        out(f"{now:%H:%M:%S} " + ", ".join(f"{k} {v}" for k, v in counts.items() if v))
    return 0


def main(argv: Sequence[str] | None = None, out: Callable[[str], None] = print) -> int:
    """``generate`` / ``mutate`` from the command line; prints counts, seconds and peak RSS."""
    parser = argparse.ArgumentParser(
        prog="python -m nightshift_core.sample.classicmodels",
        description="Seeded classicmodels-shaped sample database. For mysql:// and postgresql:// URLs "
        "the database must exist (CREATE DATABASE <name>); generate replaces the eight tables in it.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    gen = commands.add_parser("generate", help="drop, create and fill the eight tables")
    gen.add_argument("--url", required=True, help="sqlite:///file.db, mysql://user:pass@host:port/db, ...")
    gen.add_argument("--scale", type=float, default=1.0, help="1.0 ~ reference sizes (default 1.0)")
    gen.add_argument("--seed", type=int, default=42)
    gen.add_argument("--batch-rows", type=int, default=10_000)
    gen.add_argument("--no-audit-column", action="store_true", help="exact reference shape, no updatedAt")
    gen.add_argument("--anchor", type=_anchor, default=None,
                     help="YYYY-MM-DD or 'today': orders and payments end the day before (default: 2003-2005)")  # fmt: skip
    live = commands.add_parser(
        "live", help="keep the source changing: mutate every --every seconds until stopped"
    )
    live.add_argument("--url", required=True)
    live.add_argument("--every", type=float, default=120.0, help="seconds between changes (default 120)")
    live.add_argument("--fraction", type=float, default=0.003, help="share of rows changed each time")
    mut = commands.add_parser("mutate", help="insert, update and delete a fraction of the rows")
    mut.add_argument("--url", required=True)
    mut.add_argument("--fraction", type=float, required=True, help="e.g. 0.01 changes about 1%% of rows")
    mut.add_argument("--seed", type=int, default=1)
    mut.add_argument("--now", type=datetime.fromisoformat, default=None,
                     help="ISO timestamp stored in updatedAt (default: the current UTC time)")  # fmt: skip
    args = parser.parse_args(argv)

    if args.command == "live":
        return _live(args.url, args.every, args.fraction, out)
    conn, dialect = connect(args.url)
    started = _time.perf_counter()
    try:
        if args.command == "generate":
            counts = generate(conn, dialect, scale=args.scale, seed=args.seed, batch_rows=args.batch_rows,
                              audit_column=not args.no_audit_column, anchor=args.anchor)  # fmt: skip
        else:
            now = args.now or datetime.now(UTC).replace(tzinfo=None)
            counts = mutate(conn, dialect, fraction=args.fraction, seed=args.seed, now=now)
    finally:
        conn.close()
    elapsed = _time.perf_counter() - started
    for name, count in counts.items():
        out(f"{name:24} {count:>12,}")
    rss = _peak_rss_mib()
    out(f"{args.command} ({dialect}) took {elapsed:.1f} s" + (f"; peak RSS {rss:.0f} MiB" if rss else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
