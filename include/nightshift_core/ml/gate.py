"""Decisions of the retraining job: whether to train, and whether the challenger ships."""

from __future__ import annotations

import dataclasses
from typing import Any

from nightshift_core.ml.config import Drift


@dataclasses.dataclass(frozen=True)
class Decision:
    go: bool
    reason: str


def drift_reasons(drift: Drift, measured: dict[str, Any]) -> list[str]:
    """Which drift limits ``measured`` (``length_psi``, ``score_psi``, ``unseen_share``,
    ``champion_f1``, ``recent_f1``; any may be ``None``) breaks, in words."""
    reasons = []
    for key, limit in (("length_psi", drift.max_length_psi), ("score_psi", drift.max_score_psi),
                       ("unseen_share", drift.max_unseen_share)):  # fmt: skip
        value = measured.get(key)
        if value is not None and value > limit:
            reasons.append(f"{key} {value:.3f} > {limit:g}")
    before, recent = measured.get("champion_f1"), measured.get("recent_f1")
    # Metrics are rounded to 4 places: compare at that precision, so a drop of exactly the
    # limit (0.80 -> 0.75 with a 0.05 limit) is not drift because of float noise.
    if before is not None and recent is not None and round(before - recent, 4) > drift.max_f1_drop:
        reasons.append(
            f"champion F1 fell from {before:.3f} to {recent:.3f} on new labels (> {drift.max_f1_drop:g})"
        )
    return reasons


def should_train(
    *,
    force: bool,
    champion: str | None,
    new_labels: int,
    min_new_labels: int,
    drift: list[str],
    champion_is_rules: bool = False,
) -> Decision:
    if force:
        return Decision(True, "forced by the run's Param force=true")
    if champion is None:
        return Decision(True, "no champion yet")
    if champion_is_rules and new_labels:
        return Decision(True, f"the champion v{champion} is the rule baseline and {new_labels} labels exist")
    if drift:
        return Decision(True, "drift: " + "; ".join(drift))
    if new_labels >= min_new_labels:
        return Decision(True, f"{new_labels} new labels since champion v{champion} (>= {min_new_labels})")
    return Decision(
        False,
        f"skipped: {new_labels} new labels since champion v{champion} (< {min_new_labels}) and no drift; "
        "trigger with force=true to train anyway",
    )


def should_promote(
    challenger: dict[str, Any],
    champion: dict[str, Any] | None,
    rules: dict[str, dict[str, Any]],
    *,
    min_f1_gain: float,
    max_ms_per_1k: float,
    check: dict[str, Any] | None = None,
    max_check_drop: float = 0.0,
) -> Decision:
    """Promote when the challenger's weighted F1 beats the champion's (or, with no champion,
    the best rule's) by ``min_f1_gain``, it scores 1,000 texts within ``max_ms_per_1k``, and --
    given an out-of-domain ``check`` (``{"name", "n", "challenger", "vader"}`` reports) -- its
    weighted F1 there is at least VADER's minus ``max_check_drop``: a model that wins in domain
    but falls below the rule on other text does not ship."""
    if champion is not None:
        name, bar = "champion", champion["weighted_f1"]
    else:
        name = max(rules, key=lambda r: rules[r]["weighted_f1"])
        bar = rules[name]["weighted_f1"]
    f1, ms = challenger["weighted_f1"], challenger["ms_per_1k"]
    if ms > max_ms_per_1k:
        return Decision(False, f"rejected: {ms:.0f} ms per 1k texts is over the {max_ms_per_1k:g} ms budget")
    if round(f1, 4) < round(bar + min_f1_gain, 4):  # metrics carry 4 places; no float noise
        return Decision(False, f"rejected: weighted F1 {f1:.4f} < {name} {bar:.4f} + margin {min_f1_gain:g}")
    generalises = ""
    if check is not None:
        ours, rule = check["challenger"]["weighted_f1"], check["vader"]["weighted_f1"]
        if round(ours, 4) < round(rule - max_check_drop, 4):
            return Decision(
                False,
                f"rejected: it beats the {name} in domain (weighted F1 {f1:.4f} >= {bar:.4f} + {min_f1_gain:g}) "
                f"but falls below the rule baseline out of domain: weighted F1 {ours:.4f} < VADER {rule:.4f}"
                f"{f' - {max_check_drop:g}' if max_check_drop else ''} on the check set {check['name']} "
                f"({check['n']} texts)",
            )
        generalises = f"; check set {check['name']}: {ours:.4f} vs VADER {rule:.4f}"
    return Decision(
        True,
        f"promoted: weighted F1 {f1:.4f} >= {name} {bar:.4f} + margin {min_f1_gain:g}, {ms:.0f} ms/1k{generalises}",
    )
