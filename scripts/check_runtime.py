"""Import every module of dags/, plugins/ and include/ with the interpreter that runs this script.

`make test` runs it with the runtime venv (`.venv-runtime`, built exactly as `make run` builds
`.venv`: requirements.txt pinned by requirements.lock, no dev tools), so a package that only the
dev tools bring in fails here instead of on a user's first `make run`.

    .venv-runtime/bin/python scripts/check_runtime.py

Prints one line per module that fails to import (file, error, fix) and exits 1; else exits 0.
"""

from __future__ import annotations

import importlib
import os
import sys
import tempfile
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def module_name(path: Path, base: Path) -> str:
    parts = list(path.relative_to(base).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _fix(exc: BaseException) -> str:
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        package = exc.name.split(".")[0]
        return (
            f"the runtime install lacks {package!r}: add it to requirements.txt (not requirements-dev.txt), "
            "run `make lock`, then `make venv`"
        )
    return "fix the module so that it imports without the dev tools"


def check() -> list[str]:
    problems = []
    for base in (ROOT / "include", ROOT / "plugins"):
        for path in sorted(base.rglob("*.py")):
            name = module_name(path, base)
            try:
                importlib.import_module(name)
            except BaseException as exc:  # noqa: BLE001 - SystemExit from a module counts too
                where = path.relative_to(ROOT)
                problems.append(f"{where}: {type(exc).__name__}: {exc} -> {_fix(exc)}")
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    for file, error in sorted(bag.import_errors.items()):
        last = error.strip().splitlines()[-1] if error.strip() else error
        where = Path(file).relative_to(ROOT) if Path(file).is_relative_to(ROOT) else file
        hint = "the runtime install lacks a package: add it to requirements.txt, `make lock`, `make venv`"
        problems.append(f"{where}: {last} -> {hint if 'ModuleNotFoundError' in last else 'fix the DAG file'}")
    if not bag.dags:
        problems.append("dags/: no DAG was loaded")
    return problems


def main() -> int:
    home = tempfile.mkdtemp(prefix="nightshift-runtime-check-")
    os.environ.update(
        {
            "AIRFLOW_HOME": home,
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        }
    )
    sys.path[:0] = [str(ROOT / "include"), str(ROOT / "plugins")]
    try:
        problems = check()
    except BaseException:  # noqa: BLE001 - report, never hide, a crash of the check itself
        traceback.print_exc()
        return 2
    for line in problems:
        print(f"error: {line}")
    if problems:
        print(f"{len(problems)} module(s) do not import with {sys.prefix}", file=sys.stderr)
        return 1
    print(f"every module of dags/, plugins/ and include/ imports with {sys.prefix}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
