"""The dbt project's plain logic: manifest freshness, the run window, and what a dbt run's results say.

No Airflow here: ``nightshift.dbt_project`` and ``nightshift.dbt_dags`` use it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROJECT_DIR = Path(__file__).resolve().parents[1] / "dbt"
FINGERPRINT_FILE = "nightshift_fingerprint.txt"
# What Cosmos renders from: the manifest without macros, docs and maps (a quarter of its size, so the
# DAG file parses within the budget). dbt's own manifest.json stays beside it.
RENDER_MANIFEST = "nightshift_manifest.json"
_RENDER_KEYS = ("metadata", "nodes", "sources", "exposures", "selectors")
_SOURCE_SUFFIXES = (".sql", ".yml", ".yaml", ".csv", ".md")


class DbtProjectError(RuntimeError):
    """The dbt project and its manifest disagree; the message says what to run."""


def project_files(project: Path = PROJECT_DIR) -> list[Path]:
    """The files dbt parses: everything but build output, sorted."""
    skip = {"target", "logs", "dbt_packages"}
    return sorted(
        p
        for p in project.rglob("*")
        if p.is_file() and p.suffix in _SOURCE_SUFFIXES and not skip & set(p.relative_to(project).parts)
    )


def fingerprint(project: Path = PROJECT_DIR) -> str:
    digest = hashlib.sha256()
    for path in project_files(project):
        digest.update(str(path.relative_to(project)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def target_dir(project: Path = PROJECT_DIR) -> Path:
    """Where `dbt parse` writes the manifest: NIGHTSHIFT_DBT_TARGET (the Docker image, whose include/ may be
    mounted read-only), else the project's target/."""
    override = os.environ.get("NIGHTSHIFT_DBT_TARGET")
    return Path(override) if override and project == PROJECT_DIR else project / "target"


def write_render_manifest(project: Path = PROJECT_DIR, target: Path | None = None) -> None:
    """After `dbt parse`: the slim manifest Cosmos renders from, and which files it was parsed from."""
    target = target or target_dir(project)
    full = json.loads((target / "manifest.json").read_text())
    (target / RENDER_MANIFEST).write_text(json.dumps({key: full.get(key, {}) for key in _RENDER_KEYS}))
    (target / FINGERPRINT_FILE).write_text(fingerprint(project) + "\n")


def manifest_path(project: Path = PROJECT_DIR) -> Path:
    """The manifest, checked to exist and to match the project's files (a cheap read, no dbt)."""
    manifest = target_dir(project) / RENDER_MANIFEST
    stamp = target_dir(project) / FINGERPRINT_FILE
    fix = "run `scripts/dbt_setup.sh parse` (make run and the bootstrap do it; the Docker build does it too)"
    if not manifest.is_file() or not stamp.is_file():
        raise DbtProjectError(f"no dbt manifest at {manifest}: {fix}")
    if stamp.read_text().strip() != fingerprint(project):
        raise DbtProjectError(
            f"the dbt project under {project} changed since its manifest was built (a model or YAML file "
            f"was added or edited): {fix}"
        )
    return manifest


def window(
    interval_start: dt.datetime | None,
    interval_end: dt.datetime | None,
    run_after: dt.datetime | None,
    *,
    days: int = 1,
    start: str | None = None,
    end: str | None = None,
) -> tuple[str, str]:
    """The partitioned models' window [start, end) as YYYY-MM-DD, from the run, never from the clock.

    Explicit ``start``/``end`` (the DAG's Params) win. Otherwise the window holds every UTC day the
    data interval touches, widened to at least ``days`` days ending with the interval's last day.
    Runs without a data interval use the day before ``run_after`` (the run's own time).
    """
    if start or end:
        if not (start and end):
            raise ValueError("give both window_start and window_end (YYYY-MM-DD), or neither")
        first, last = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
        if last <= first:
            raise ValueError(f"window_end {end} must be after window_start {start}")
        return first.isoformat(), last.isoformat()
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    if interval_end is not None:
        end_utc = interval_end.astimezone(dt.UTC)
        # The interval's end is exclusive: an interval ending at midnight does not touch that day.
        last_day = (end_utc - dt.timedelta(microseconds=1)).date()
        first_day = (interval_start or interval_end).astimezone(dt.UTC).date()
    elif run_after is not None:
        last_day = first_day = run_after.astimezone(dt.UTC).date() - dt.timedelta(days=1)
    else:
        raise ValueError("the run has neither a data interval nor a run_after time")
    first_day = min(first_day, last_day - dt.timedelta(days=days - 1), last_day)
    return first_day.isoformat(), (last_day + dt.timedelta(days=1)).isoformat()


@dataclass(frozen=True)
class NodeProblem:
    """One dbt node that failed, errored or is stale, as shown to a person."""

    kind: str  # "test", "model", "source", ...
    name: str
    status: str
    failures: int | None
    file: str | None
    stored_in: str | None
    message: str

    def line(self) -> str:
        where = f" ({self.file})" if self.file else ""
        if self.kind == "test" and self.status == "fail":
            rows = f"{self.failures} failing row{'s' if self.failures != 1 else ''}"
            kept = f", kept in {self.stored_in}" if self.stored_in else ""
            return f"audit {self.name}{where} failed: {rows}{kept}"
        if self.kind == "source":
            return f"source freshness {self.name}: {self.status} ({self.message})"
        return f"{self.kind} {self.name}{where} {self.status}: {self.message}"


def problems(target_dir: Path) -> list[NodeProblem]:
    """Failed tests, errored nodes and stale sources from a dbt invocation's target/ folder."""
    manifest = _load(target_dir / "manifest.json") or {}
    nodes = {**manifest.get("nodes", {}), **manifest.get("sources", {})}
    found: list[NodeProblem] = []
    run_results = _load(target_dir / "run_results.json") or {}
    for result in run_results.get("results", []):
        status = str(result.get("status", ""))
        if status not in ("fail", "error", "runtime error"):
            continue
        unique_id = result.get("unique_id", "")
        node = nodes.get(unique_id, {})
        kind = unique_id.split(".", 1)[0] if unique_id else "node"
        found.append(
            NodeProblem(
                kind=kind,
                name=node.get("name") or unique_id,
                status=status,
                failures=result.get("failures"),
                file=node.get("original_file_path"),
                stored_in=_stored_in(result, node),
                message=" ".join(str(result.get("message") or "").split())[:600],
            )
        )
    sources = _load(target_dir / "sources.json") or {}
    for result in sources.get("results", []):
        status = str(result.get("status", ""))
        if status not in ("error", "runtime error"):
            continue
        unique_id = result.get("unique_id", "")
        node = nodes.get(unique_id, {})
        age = result.get("max_loaded_at_time_ago_in_s")
        detail = (
            f"newest row loaded {age / 3600:.1f} h ago, at {result.get('max_loaded_at')}"
            if isinstance(age, int | float)
            else " ".join(str(result.get("error") or result.get("message") or "").split())[:300]
        )
        found.append(
            NodeProblem(
                kind="source",
                name=f"{node.get('source_name', '?')}.{node.get('name', unique_id)}",
                status=status,
                failures=None,
                file=node.get("original_file_path"),
                stored_in=None,
                message=detail,
            )
        )
    return found


def summary(found: list[NodeProblem]) -> str:
    tests = [p for p in found if p.kind == "test" and p.status == "fail"]
    head = (
        f"{len(tests)} dbt audit(s) failed"
        if tests and len(tests) == len(found)
        else f"{len(found)} dbt node(s) failed"
    )
    return head + ":\n" + "\n".join(f"- {p.line()}" for p in found)


def _stored_in(result: dict[str, Any], node: dict[str, Any]) -> str | None:
    relation = result.get("relation_name") or node.get("relation_name")
    if not relation:
        return None
    # "db"."schema"."table" or `project`.`dataset`.`table`: keep dataset.table
    parts = [p.strip('"`') for p in str(relation).split(".")]
    return ".".join(parts[-2:])


def _load(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
