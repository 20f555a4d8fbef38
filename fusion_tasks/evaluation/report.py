"""Evaluation of every base model and fusion method on the time-based holdout, and the quality gate.

The holdout is the window (test origin, D]: models fitted on data up to the test origin rank every
item that exists at that origin and that the user has not interacted with; a user's relevant items
are what they interacted with for the first time in the window. Two variants are reported:
``metrics`` counts relevant items that did not exist at the origin as misses; ``metrics_known_items``
only keeps relevant items that existed by the origin.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from fusion_tasks import models
from fusion_tasks.config import RunConfig
from fusion_tasks.evaluation.metrics import METRICS, evaluate
from fusion_tasks.fusion import methods
from fusion_tasks.fusion.candidates import load_pool
from fusion_tasks.metrics_schema import METRICS_SCHEMA_VERSION, validate_metrics
from fusion_tasks.storage import DataRoot, read_json, write_json
from fusion_tasks.training_data import TrainingData, load_relevance

LONG_TAIL_HEAD_SHARE = 0.2  # the 20% most interacted-with items are the head; the rest is the long tail
COLD_USER_MAX_HISTORY = 5


def cold_users(seen: sparse.spmatrix) -> np.ndarray:
    """A mask over the users of ``seen`` (users x items, non-zero: done before the origin): those with
    at most ``COLD_USER_MAX_HISTORY`` past items."""
    return np.asarray((seen != 0).sum(axis=1)).ravel() <= COLD_USER_MAX_HISTORY


def head_items(seen: sparse.spmatrix, item_known: np.ndarray) -> np.ndarray:
    """A mask over items: the ``LONG_TAIL_HEAD_SHARE`` of the items known by the origin that most users
    did (``seen`` as in ``cold_users``; ties: the lower index first). The other items are the long tail."""
    popularity = np.asarray((seen != 0).sum(axis=0)).ravel()
    known = np.flatnonzero(item_known)
    head = known[np.argsort(-popularity[known], kind="stable")[: int(np.ceil(LONG_TAIL_HEAD_SHARE * len(known)))]]
    mask = np.zeros(len(item_known), dtype=bool)
    mask[head] = True
    return mask


def rankings(pool: pd.DataFrame, fitted: dict[str, dict[str, Any]], k: int) -> dict[str, pd.DataFrame]:
    """Top-k of every base model and of every fitted fusion method. A base model's list is its own top-k,
    from its ranks in the pool: where it had no signal for a user it recommends nothing (ranking the other
    models' candidates by its constant score would credit it with their hits)."""
    out = {}
    for m in methods.model_names_in(pool):
        own = pool.loc[pool[f"rank_{m}"].to_numpy() <= k]
        out[m] = methods.top_k(own, own[f"z_{m}"].to_numpy(dtype="float64"), k)
    for method, params in fitted.items():
        out[method] = methods.top_k(pool, methods.fused_scores(method, params, pool), k)
    return out


def evaluate_run(root: DataRoot, config: RunConfig) -> dict[str, Any]:
    """Metrics of every model and method on the holdout; writes ``fused/ds=D/metrics.json``, which follows
    ``fusion_tasks.metrics_schema.EVALUATION_SCHEMA`` (checked before it is written)."""
    k = config.top_k
    pool = load_pool(root, config, "test")
    relevance = load_relevance(root, config, "test")
    data = TrainingData.load(root, config, "test")
    fitted = methods.load_fitted_methods(root, config)
    chosen = methods.choose_method(fitted)
    ks = sorted({k, 2 * k} & set(range(1, config.candidates_per_model + 1)))
    catalogue = int(data.item_known.sum())
    ranked = rankings(pool, fitted, max(ks))

    known_relevance = relevance.loc[data.item_known[relevance["item_idx"].to_numpy()]]
    has_social = (data.features["social"].has_social if data.has("social")
                  else np.zeros(data.n_users, dtype=bool))
    users, items = relevance["user_idx"].to_numpy(), relevance["item_idx"].to_numpy()
    segments = {
        f"users_with_at_most_{COLD_USER_MAX_HISTORY}_past_interactions": relevance.loc[cold_users(data.seen)[users]],
        "users_without_ties": relevance.loc[~has_social[users]],
        "long_tail_items": relevance.loc[~head_items(data.seen, data.item_known)[items]],
    }

    def table(rel: pd.DataFrame, at: int) -> dict[str, dict[str, Any]]:
        return {name: evaluate(recs, rel, catalogue, at) for name, recs in ranked.items()}

    report = {
        "schema_version": METRICS_SCHEMA_VERSION,
        "as_of_date": config.as_of_date.isoformat(),
        "k": k,
        "holdout": {"origin": config.test_origin.isoformat(), "end": config.as_of_date.isoformat()},
        "catalogue_size": catalogue,
        "n_users_evaluated": int(relevance["user_idx"].nunique()),
        "chosen_method": chosen,
        "fusion": {m: fusion_summary(p) for m, p in fitted.items()},
        "metrics": table(relevance, k),
        "metrics_known_items": table(known_relevance, k),
        "metrics_by_k": {str(at): table(relevance, at) for at in ks},
        "segments": {name: table(rel, k) for name, rel in segments.items()},
        "base_models": methods.model_names_in(pool),
        "tuning": {name: models.load_tuning(root, config, name) for name in methods.model_names_in(pool)},
    }
    validate_metrics(report, published=False)
    write_json(root.fused_metrics(config.as_of_date), report)
    return report


def fusion_summary(result: dict[str, Any]) -> dict[str, Any]:
    """What ``metrics.json`` keeps of a fitted method: its cross-validated NDCG and, for the
    weighted sum, its weights (the meta-learners' parameters stay in ``fused/ds=D/<method>.json``)."""
    out = {key: result[key] for key in ("cv_ndcg", "cv_ndcg_per_fold", "folds", "k", "fit_seconds") if key in result}
    if "weights" in result["fitted"]:
        out["weights"] = result["fitted"]["weights"]
    return out


def summary_table(report: dict[str, Any]) -> str:
    """A plain-text table: one row per model/method, the metrics at K and coverage."""
    k = report["k"]
    head = ["model"] + [f"{m}@{k}" for m in ("precision", "recall", "f1", "ndcg", "map", "hit_rate")] + ["coverage"]
    rows = [head]
    for name, values in report["metrics"].items():
        marker = " *" if name == report["chosen_method"] else ""
        rows.append([name + marker] + [f"{values[m]:.4f}" for m in METRICS] + [f"{values['coverage']:.3f}"])
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows)


def quality_gate(root: DataRoot, config: RunConfig) -> dict[str, Any]:
    """Decide whether D's table may be published; writes ``fused/ds=D/gate.json``.

    Fails (``passed`` False, ``reason`` set) when the chosen method's holdout NDCG@K is below
    ``config.ndcg_floor`` or below the last published date's by more than
    ``config.regression_tolerance`` (relative). The caller decides how to surface a failure.
    """
    report = read_json(root.fused_metrics(config.as_of_date))
    method = report["chosen_method"]
    ndcg = report["metrics"][method]["ndcg"]
    decision: dict[str, Any] = {"method": method, "ndcg": ndcg, "floor": config.ndcg_floor,
                                "tolerance": config.regression_tolerance, "passed": True, "reason": None,
                                "kind": None}
    previous_day = root.latest_published_before(config.as_of_date)
    if previous_day is not None:
        previous = root.read_published_metrics(previous_day)
        previous_ndcg = previous["metrics"][previous["chosen_method"]]["ndcg"]
        decision.update(previous_date=previous_day.isoformat(), previous_ndcg=previous_ndcg)
        if ndcg < previous_ndcg * (1 - config.regression_tolerance):
            decision.update(passed=False, kind="regression", reason=(
                f"{method} NDCG@{report['k']} {ndcg:.4f} is more than {config.regression_tolerance:.0%} below "
                f"the last published date {previous_day} ({previous_ndcg:.4f})"))
    if ndcg < config.ndcg_floor:
        decision.update(passed=False, kind="floor", reason=(
            f"{method} NDCG@{report['k']} {ndcg:.4f} is below the floor {config.ndcg_floor:.4f}"))
    write_json(root.fused_gate(config.as_of_date), decision)
    return decision
