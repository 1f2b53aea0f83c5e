"""A readable text report of an audit result or certificate body.

Bounds and estimates are printed under different headings, and every
verdict is printed next to the ceiling, so a CONSISTENT verdict from a small
audit is not read as evidence of privacy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["format_report"]


def _num(value: object, digits: int = 3) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:.{digits}f}"
    return "-"


def _tpr_cells(metrics: Mapping[str, Any] | None) -> list[str]:
    if metrics is None:
        return ["-", "-"]
    cells = []
    for row in metrics.get("tpr_at_fpr", [])[:2]:
        cells.append(_num(row["tpr"]) if row["status"] == "ok" else "too few samples")
    return cells + ["-"] * (2 - len(cells))


def format_report(body: Mapping[str, Any]) -> str:
    """Format the JSON form of an :class:`AuditResult` (or a certificate body)."""
    datasets = body["datasets"]
    bound = body["epsilon_lower_bound"]
    lines = [f"Privacy audit (membership inference), spec {body['spec_digest']}"]
    if "model_digest" in body:
        lines.append(f"  model        {body['model_digest']}")
    if "issued_at" in body:
        lines.append(f"  issued at    {body['issued_at']}")
    lines += [
        f"  members      {datasets['members']['count']:>7}  {datasets['members']['commitment']}",
        f"  non-members  {datasets['nonmembers']['count']:>7}  "
        f"{datasets['nonmembers']['commitment']}",
        f"  confidence   {body['confidence'] * 100:.4g}%   delta = {body['delta']:g}   "
        f"claimed epsilon = {body['epsilon_claim']:g}",
        "",
        "Lower bounds on epsilon (hold with the stated confidence):",
        f"  {'attack':<16}{'eps_LB':>8}{'ceiling':>9}  method",
    ]
    for attack in body["attacks"]:
        b = attack["epsilon_lower_bound"]
        lines.append(
            f"  {attack['attack']:<16}{_num(b['epsilon']):>8}{_num(b['ceiling']):>9}  "
            f"{b['method']} at {b['confidence']:.4g}"
        )
    lines += [
        "",
        "Empirical attack metrics (descriptive, not bounds):",
        f"  {'attack':<16}{'AUC':>7}{'advantage':>11}{'TPR@1%FPR':>17}{'TPR@0.1%FPR':>17}"
        f"{'acc members':>13}{'acc non-m.':>12}",
    ]
    for attack in body["attacks"]:
        metrics = attack.get("metrics")
        tpr1, tpr01 = _tpr_cells(metrics)
        lines.append(
            f"  {attack['attack']:<16}"
            f"{_num(metrics['auc'] if metrics else None):>7}"
            f"{_num(metrics['advantage'] if metrics else None):>11}"
            f"{tpr1:>17}{tpr01:>17}"
            f"{_num(attack.get('accuracy_members')):>13}"
            f"{_num(attack.get('accuracy_nonmembers')):>12}"
        )
    lines += ["", "Bayesian estimates of epsilon (estimates, NOT bounds):"]
    for attack in body["attacks"]:
        est = attack["epsilon_lower_bound"]["estimate"]
        low, high = est["credible_interval"]
        lines.append(
            f"  {attack['attack']:<16}median {_num(est['median'])}, "
            f"{est['credible_level'] * 100:.4g}% credible interval [{_num(low)}, {_num(high)}]"
        )
    if body.get("attribute_inference"):
        lines += ["", "Attribute inference (accuracy of guessing the sensitive column):"]
        for a in body["attribute_inference"]:
            lines.append(
                f"  column {a['column']}: members {_num(a['attack_accuracy_members'])}, "
                f"non-members {_num(a['attack_accuracy_nonmembers'])} "
                f"(gap {_num(a['membership_gap'])}); model-free baseline on members "
                f"{_num(a['baseline_accuracy_members'])} (gain {_num(a['gain_over_baseline'])})"
            )
    verdict = body["verdict"]
    lines += [
        "",
        f"Overall epsilon lower bound: {_num(bound['epsilon'])} "
        f"({bound['strongest_attack']}); ceiling {_num(body['ceiling'])}",
    ]
    if verdict == "VIOLATION":
        lines.append(
            f"Verdict: VIOLATION - the lower bound exceeds the claimed epsilon "
            f"{body['epsilon_claim']:g} at {body['confidence'] * 100:.4g}% confidence."
        )
    else:
        lines.append(
            f"Verdict: CONSISTENT - no attack showed more leakage than the claimed epsilon "
            f"{body['epsilon_claim']:g}. This audit could not have certified more than "
            f"epsilon = {_num(body['ceiling'])}; CONSISTENT is not a proof of privacy."
        )
    return "\n".join(lines) + "\n"
