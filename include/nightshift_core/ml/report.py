"""The e-mail a retraining run sends: decision, why, and the metrics table of every contender."""

from __future__ import annotations

import html
from typing import Any

COLUMNS = (("weighted_f1", "weighted F1"), ("macro_f1", "macro F1"), ("macro_recall", "macro recall"),
           ("accuracy", "accuracy"), ("auc", "AUC"), ("pearson_r", "Pearson r"),
           ("override_share", "overrides the rule"), ("override_right", "override right"),
           ("ms_per_1k", "ms / 1k texts"), ("n", "texts"))  # fmt: skip


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:.0f}"
    return str(value)


def render(
    *,
    dag_id: str,
    model_name: str,
    outcome: str,
    reason: str,
    metrics: dict[str, dict[str, Any]],
    facts: dict[str, Any],
) -> tuple[str, str, str]:
    """``(subject, html, text)`` for one run. ``metrics`` maps a contender's name to its
    summary; ``facts`` are extra lines (versions, label counts, drift) shown as a list."""
    subject = f"[nightshift] {model_name}: {outcome} ({dag_id})"
    head = "".join(f"<th>{html.escape(title)}</th>" for _, title in COLUMNS)
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td>"
        + "".join(f'<td style="text-align:right">{_cell(m.get(k))}</td>' for k, _ in COLUMNS)
        + "</tr>"
        for name, m in metrics.items()
    )
    fact_items = "".join(f"<li>{html.escape(str(k))}: {html.escape(_cell(v))}</li>" for k, v in facts.items())
    body = (
        f"<h2>{html.escape(model_name)}: {html.escape(outcome)}</h2>"
        f"<p>{html.escape(reason)}</p>"
        + (f'<table border="1" cellpadding="4" style="border-collapse:collapse"><tr><th>contender</th>{head}</tr>'
           f"{rows}</table>" if metrics else "")
        + (f"<ul>{fact_items}</ul>" if facts else "")
    )  # fmt: skip
    lines = [f"{model_name}: {outcome}", reason, ""]
    if metrics:
        lines.append("contender | " + " | ".join(title for _, title in COLUMNS))
        lines += [
            f"{name} | " + " | ".join(_cell(m.get(k)) for k, _ in COLUMNS) for name, m in metrics.items()
        ]
        lines.append("")
    lines += [f"{k}: {_cell(v)}" for k, v in facts.items()]
    return subject, body, "\n".join(lines) + "\n"
