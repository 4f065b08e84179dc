"""Where built reports live, and the one check every report task runs on a path it is handed.

A report task gets its file paths from the build task's XCom, a Param or a template, all of
which a user with access to the run can change. So every path is resolved (``..`` and symlinks
followed) and must lie under that report's own folder, ``<reports dir>/<report_id>/``, before
anything is read from it, sent or published; anything else is a :class:`ReportPathError`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from nightshift_core.errors import PermanentError


class ReportPathError(ValueError, PermanentError):
    """A path handed to a report task that is not inside that report's folder."""


def reports_dir(env: Mapping[str, str] = os.environ) -> Path:
    """Where built reports go: $NIGHTSHIFT_REPORTS_DIR, else $NIGHTSHIFT_RUNTIME/reports.

    Every worker must see the same folder (a shared volume, or a GCS FUSE mount on Composer).
    """
    if env.get("NIGHTSHIFT_REPORTS_DIR"):
        return Path(env["NIGHTSHIFT_REPORTS_DIR"])
    if env.get("NIGHTSHIFT_RUNTIME"):
        return Path(env["NIGHTSHIFT_RUNTIME"]) / "reports"
    raise RuntimeError(
        "no folder for reports: set NIGHTSHIFT_REPORTS_DIR to a folder every Airflow worker shares "
        "(docker-compose.yaml sets it to the reports volume)"
    )


def report_folder(report_id: str, env: Mapping[str, str] = os.environ) -> Path:
    """``<reports dir>/<report_id>``, resolved: the only folder a report's tasks read from."""
    if not report_id or report_id in (".", "..") or Path(report_id).name != report_id:
        raise ReportPathError(f"report_id {report_id!r} must be a plain name (e.g. daily_sales), not a path")
    return (reports_dir(env) / report_id).resolve()


def inside_folder(path: str | os.PathLike[str], folder: str | os.PathLike[str], what: str, fix: str) -> Path:
    """``path`` resolved (``..`` and symlinks followed) if it lies under ``folder``; else an error.

    Callers use the returned path, so what is checked is what is opened.
    """
    root = Path(folder).resolve()
    given = Path(path)
    resolved = given.resolve()
    if root in resolved.parents:
        return resolved
    via = "" if resolved == given else f" (resolves to {str(resolved)!r})"
    raise ReportPathError(
        f"{what} {str(given)!r}{via} is outside the folder {str(root)!r}; "
        f"stopped before reading, writing or sending anything. {fix}"
    )


def report_path(path: str | os.PathLike[str], report_id: str, what: str) -> Path:
    """``path`` resolved, if it lies under the report's own folder (:func:`inside_folder`)."""
    return inside_folder(
        path, report_folder(report_id), f"report {report_id!r}: {what}",
        "A report task only uses files its build task wrote to that folder: re-run the report's build "
        "task (clear 'build' with its downstream tasks) instead of passing another path",
    )  # fmt: skip
