"""Layering rules from STYLE.md, checked on the source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = {
    "pandas",
    "numpy",
    "pyarrow",
    "torch",
    "praw",
    "gspread",
    "yagmail",
    "openpyxl",
    "duckdb",
    "textblob",
}


def imported_modules(path: Path, top_level_only: bool = False) -> set[str]:
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else ast.walk(tree)
    names = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize(
    "path", sorted((ROOT / "include").rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT))
)
def test_pure_logic_never_imports_airflow(path):
    assert "airflow" not in imported_modules(path), f"{path}: include/ must not import airflow"


# What plugins/ and dags/ define, as import names: the layers above include/.
UPPER_LAYERS = {
    path.stem
    for folder in ("plugins", "dags")
    for path in (ROOT / folder).iterdir()
    if path.suffix == ".py" or (path / "__init__.py").is_file()
}


@pytest.mark.parametrize(
    "path", sorted((ROOT / "include").rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT))
)
def test_include_never_imports_from_plugins_or_dags(path):
    """include/ (pure logic, SQL, config) is the ground floor: nothing in it imports a layer above."""
    upward = imported_modules(path) & UPPER_LAYERS
    assert not upward, f"{path.relative_to(ROOT)}: imports {sorted(upward)} from plugins/ or dags/"


@pytest.mark.parametrize("path", sorted((ROOT / "dags").rglob("*.py")), ids=lambda p: p.name)
def test_dag_files_import_no_heavy_libraries_at_module_level(path):
    heavy = imported_modules(path, top_level_only=True) & HEAVY
    assert not heavy, f"{path.name}: import {sorted(heavy)} inside the task that needs it"


def test_no_airflow2_idioms():
    for path in (ROOT / "dags").rglob("*.py"):
        text = path.read_text()
        for idiom in ("schedule_interval", "execution_date", "airflow.operators.", "days_ago"):
            assert idiom not in text, f"{path.name}: Airflow 2 idiom {idiom!r}"


def test_repository_names_no_machine_paths():
    import subprocess

    files = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    # Spelled in pieces so this file does not match itself.
    needles = ["/" + "work/", "/" + "root/", "/opt/" + "wheels"]
    offenders = []
    for name in files:
        path = ROOT / name
        if path.suffix in {".py", ".sh", ".yaml", ".yml", ".md", ".txt", ".toml", ""} and path.is_file():
            text = path.read_text(errors="replace")
            if any(needle in text for needle in needles):
                offenders.append(name)
    assert not offenders, f"machine-specific paths in {offenders}"


# The sync names a database only in its dialects (one class per source database); change capture's
# per-database behaviour sits behind the LogSource sync/cdc/sources.py picks for a dialect
# (sync/cdc/log_source.py).
SYNC = ROOT / "include" / "nightshift_core" / "sync"
SYNC_FILES = sorted(
    {p for p in SYNC.rglob("*.py") if not p.is_relative_to(SYNC / "dialects")}
    | {ROOT / "plugins" / "nightshift" / "operators" / "sql_to_warehouse.py"}
)
DATABASE_NAMES = {"mysql", "mariadb", "postgres", "postgresql", "sqlite", "google_cloud_sql_mysql"}
DRIVERS = {"MySQLdb", "pymysql", "psycopg", "psycopg2", "sqlite3", "mysql"}
# Change capture's log readers and server checks speak one database's protocol each: they may import its
# driver (never branch on a dialect). Preflight's one comparison tells MariaDB from MySQL by the server's
# own version string, within the one MySQL dialect.
CDC = SYNC / "cdc"
DRIVER_FILES = {
    CDC / name for name in ("mysql_binlog.py", "postgres_logical.py", "preflight.py", "guards.py")
}
SERVER_PROBES = {(CDC / "preflight.py", "'mariadb' in found.get('version', '').lower()")}


def database_branches(tree: ast.AST, path: Path | None = None) -> list[str]:
    """Comparisons against a database's name (``dialect == "mysql"``, ``kind in ("postgres", ...)``) and
    imports of a database driver (outside ``DRIVER_FILES``), as 'line: code'."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            names = [
                c.value
                for o in operands
                for c in ([o] if isinstance(o, ast.Constant) else getattr(o, "elts", []))
                if isinstance(c, ast.Constant) and isinstance(c.value, str)
            ]
            if (
                any(n.lower() in DATABASE_NAMES for n in names)
                and (path, ast.unparse(node)) not in SERVER_PROBES
            ):
                found.append(f"{node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, (ast.Import, ast.ImportFrom)) and path not in DRIVER_FILES:
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if any(m.split(".")[0] in DRIVERS for m in modules):
                found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


@pytest.mark.parametrize("path", SYNC_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_only_the_dialects_name_a_source_database(path):
    found = database_branches(ast.parse(path.read_text()), path)
    assert not found, (
        f"{path.relative_to(ROOT)} branches on a database (move it into sync/dialects/, or change "
        f"capture's into its LogSource): {found}"
    )


def test_the_change_capture_readers_may_not_branch_on_a_dialect():
    """The per-database readers' allowance is their driver imports, not dialect branches."""
    for path in DRIVER_FILES:
        assert path.is_file(), f"{path.relative_to(ROOT)}: named in DRIVER_FILES, missing"
        assert database_branches(ast.parse('if dialect == "mysql": pass'), path)
        assert not database_branches(ast.parse("import psycopg2"), path)


@pytest.mark.parametrize(
    "code",
    ['if dialect == "mysql": pass', "x = kind in ('postgres', 'postgresql')", "import MySQLdb.cursors",
     "from psycopg2 import sql", 'ok = name != "SQLite"'],
)  # fmt: skip
def test_the_database_branch_check_sees_a_branch(code):
    assert database_branches(ast.parse(code))


def test_the_sync_engine_imports_no_airflow():
    """Not even through what it imports: the engine runs with a database and no scheduler."""
    import subprocess
    import sys

    probe = (
        "import sys; import nightshift_core.sync.engine, nightshift_core.sync.dialects; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'airflow'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT / "include")},
    ).stdout  # fmt: skip
    assert out.strip() == "[]", f"the engine pulls in Airflow: {out}"


def module_imports(tree: ast.AST) -> set[str]:
    """Every module a file imports, wherever (top level, under TYPE_CHECKING, inside a function), by its
    full name; ``from a.b import c`` counts as both ``a.b`` and ``a.b.c`` (c may be a module)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def imports_under(tree: ast.AST, package: str) -> list[str]:
    """The imports of ``package`` or of a module in it."""
    return sorted(m for m in module_imports(tree) if m == package or m.startswith(package + "."))


# Change capture builds on the dialects, never the other way: sync/cdc/sources.py picks a dialect's log
# source, so the dialects import nothing of sync/cdc (not even for a type hint, nor lazily).
DIALECT_FILES = sorted((SYNC / "dialects").glob("*.py"))
CDC_FILES = sorted(CDC.glob("*.py"))


@pytest.mark.parametrize("path", DIALECT_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_dialects_never_import_change_capture(path):
    found = imports_under(ast.parse(path.read_text()), "nightshift_core.sync.cdc")
    assert not found, (
        f"{path.relative_to(ROOT)} imports {found}: sync.dialects must not import sync.cdc (register a "
        "dialect's log source in sync/cdc/sources.py)"
    )


@pytest.mark.parametrize(
    "path", [p for p in CDC_FILES if p.name != "run.py"], ids=lambda p: str(p.relative_to(ROOT))
)
def test_change_capture_modules_never_import_the_run(path):
    """run.py is the top of change capture: what it imports must not import it back (CdcTable is in
    table.py, the log-source registry in sources.py)."""
    found = imports_under(ast.parse(path.read_text()), "nightshift_core.sync.cdc.run")
    assert not found, f"{path.relative_to(ROOT)} imports {found}, which imports it back"


@pytest.mark.parametrize(
    "code",
    ["from nightshift_core.sync.cdc.log_source import LogSource", "import nightshift_core.sync.cdc.run",
     "from nightshift_core.sync import cdc", "def f():\n    from nightshift_core.sync.cdc import run",
     "if TYPE_CHECKING:\n    from nightshift_core.sync.cdc.run import CdcTable"],
)  # fmt: skip
def test_the_import_check_sees_an_import_of_change_capture(code):
    assert imports_under(ast.parse(code), "nightshift_core.sync.cdc")


def test_the_import_check_ignores_a_module_that_only_shares_the_prefix():
    assert not imports_under(ast.parse("import nightshift_core.sync.cdcx"), "nightshift_core.sync.cdc")
    assert DIALECT_FILES and CDC_FILES, "the layering rules found no files to check"
