"""The quality gate's decision as one sentence, for task logs and the command line."""

from __future__ import annotations

from typing import Any


def describe_gate(decision: dict[str, Any], k: int) -> str:
    """One sentence: the decision, the chosen method's holdout NDCG@K, the floor and, when there is a
    previously published date, its NDCG and the lowest value the tolerance allows.

    ``decision`` is what ``fusion_tasks.evaluation.report.quality_gate`` returns (and writes to
    ``gate.json``): ``method``, ``ndcg``, ``floor``, ``tolerance``, ``passed``, ``kind`` and, when a
    date was published before, ``previous_date`` and ``previous_ndcg``.
    """
    method, ndcg, floor = decision["method"], float(decision["ndcg"]), float(decision["floor"])
    head = f"{method} NDCG@{k} {ndcg:.4f}"
    if decision.get("previous_date") is not None:
        tolerance, previous = float(decision["tolerance"]), float(decision["previous_ndcg"])
        reference = (f"the last published date {decision['previous_date']} had {previous:.4f}, so with "
                     f"regression_tolerance {tolerance:.0%} the lowest allowed is {previous * (1 - tolerance):.4f}")
    else:
        reference = "no date was published before, so only the floor applies"
    if decision["passed"]:
        return f"quality gate passed: {head} is at or above the floor {floor:.4f}; {reference}; publishing"
    if decision.get("kind") == "floor":
        return f"quality gate failed: {head} is below the floor {floor:.4f}; {reference}; nothing is published"
    return (f"quality gate skipped publishing: {head} is at or above the floor {floor:.4f}, but {reference}; "
            "the previous table stays current")
