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
