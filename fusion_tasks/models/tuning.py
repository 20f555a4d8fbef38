"""Per-run tuning of a base model on the run's validation folds.

The search is coordinate-wise over the model's ``search_space`` (the first value of each parameter is
its default): starting from the defaults, each parameter in turn is set to each of its other values
with the others at the best found so far, and the change is kept when it raises the pooled fold
NDCG@K. A setting's score is NDCG@K over every user of every fold window (full ranking of the items
known at the fold's origin that the user has not interacted with), each fold fitted on data up to
its origin: nothing after a fold's window, and never the holdout, is read. ``n`` parameters with
``v`` values each cost ``1 + n (v - 1)`` settings, each one fit per fold.

A candidate is raced against the best setting so far: its folds are fitted latest first, and after
each fold but the last it is dropped when it is behind the best on the same users by more than
``PRUNE_Z`` standard errors of the paired per-user difference (the race of Maron & Moore, 1994). A
clearly worse setting then costs one fold's fit instead of all of them, while a close one is fitted on
every fold and decided on the pooled score as before. Dropped settings are recorded with the folds
they were fitted on and how far behind they were.

A candidate is fitted on each fold from the best setting's fit on that fold (``BaseRecommender.fit_from``):
item-kNN takes that fit's similarity when only the half-life changed, and prunes it when only fewer neighbours are
asked (the same fit, for less work); other models ignore it.

The search stops early when the next setting would exceed the time budget (estimated from the
seconds per fold fit so far); settings not tried are recorded as such. A budget that the default
setting alone exceeds raises ``TuningBudgetError`` naming the model and the budget.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from fusion_tasks import arrays, topn
from fusion_tasks.models.base import BaseRecommender
from fusion_tasks.training_data import TrainingData

BATCH_USERS = 512
PRUNE_Z = 2.0  # standard errors behind the best at which a candidate is dropped before its last fold


class TuningBudgetError(RuntimeError):
    """The time budget cannot cover even the default setting of a model."""


@dataclasses.dataclass(frozen=True)
class Fold:
    """A validation fold: the data at its origin and the relevant (user_idx, item_idx) of its window."""

    name: str
    data: TrainingData
    relevance: pd.DataFrame


@dataclasses.dataclass
class TuningResult:
    params: dict[str, Any]
    score: float
    trials: list[dict[str, Any]]
    fitted: dict[str, BaseRecommender]  # the best setting's fit per fold (reused by the pools)
    seconds: float

    def summary(self) -> dict[str, Any]:
        return {"chosen": self.params, "fold_ndcg": self.score, "trials": self.trials,
                "seconds": round(self.seconds, 3)}


def ndcg_per_user(model: BaseRecommender, data: TrainingData, relevance: pd.DataFrame, k: int) -> np.ndarray:
    """NDCG@k of each user of ``relevance`` (full ranking of known, unseen items), in user order."""
    users = arrays.unique(relevance["user_idx"].to_numpy())
    out = np.zeros(len(users))
    if not len(users):
        return out
    relevant = relevance.groupby("user_idx")["item_idx"].apply(lambda s: set(s.tolist()))
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.cumsum(discount)
    for start in range(0, len(users), BATCH_USERS):
        batch = users[start:start + BATCH_USERS]
        top = top_items(model.score(batch), data, batch, k)
        for row, user in enumerate(batch):
            rel = relevant[user]
            hits = np.fromiter((item in rel for item in top[row]), dtype=bool, count=top.shape[1])
            out[start + row] = float(discount[: len(hits)][hits].sum() / ideal[min(len(rel), k) - 1])
    return out


def top_items(scores: np.ndarray, data: TrainingData, users: np.ndarray, k: int) -> np.ndarray:
    """The k best items per row among items known at the origin and not seen by the user (ties by item
    index, also at the k-th place). Works in place on ``scores``."""
    scores = np.asarray(scores, dtype="float32")
    if not scores.flags.writeable:
        scores = scores.copy()
    scores[:, ~data.item_known] = -np.inf
    seen = data.seen[users]
    scores[np.repeat(np.arange(len(users)), np.diff(seen.indptr)), seen.indices] = -np.inf
    return topn.top_n(scores, k)


def tune(cls: type[BaseRecommender], folds: list[Fold], k: int, budget_seconds: float,
         make: Callable[[type[BaseRecommender], dict[str, Any], str], BaseRecommender]) -> TuningResult:
    """Coordinate-wise search of ``cls.search_space`` on ``folds`` (see the module docstring).

    ``make(cls, params, fold_name)`` builds an unfitted model (it sets the derived seed).
    """
    started = time.perf_counter()
    defaults = {name: values[0] for name, values in cls.search_space.items()}
    trials: list[dict[str, Any]] = []
    order = sorted(folds, key=lambda fold: fold.data.origin, reverse=True)  # latest first

    best_fitted: dict[str, BaseRecommender] | None = None

    def evaluate(params: dict[str, Any], best_users: list[np.ndarray] | None) -> dict[str, Any]:
        """Fit and score ``params`` fold by fold; stop early when it is clearly behind ``best_users``."""
        t0 = time.perf_counter()
        fitted, per_fold = {}, []
        for fold in order:
            model = make(cls, params, fold.name)
            model = model.fit(fold.data) if best_fitted is None else model.fit_from(fold.data, best_fitted[fold.name])
            fitted[fold.name] = model
            per_fold.append(ndcg_per_user(model, fold.data, fold.relevance, k))
            if best_users is not None and len(per_fold) < len(order):
                behind = _clearly_behind(np.concatenate(per_fold), np.concatenate(best_users[:len(per_fold)]))
                if behind is not None:
                    return {"pruned": {"folds": [f.name for f in order[:len(per_fold)]], **behind},
                            "seconds": time.perf_counter() - t0, "n_folds": len(per_fold)}
        users = np.concatenate(per_fold) if per_fold else np.zeros(0)
        return {"score": float(users.mean()) if len(users) else 0.0, "fitted": fitted, "users": per_fold,
                "seconds": time.perf_counter() - t0, "n_folds": len(order)}

    first = evaluate(defaults, None)
    best_score, best_fitted, best_users = first["score"], first["fitted"], first["users"]
    trials.append({"params": dict(defaults), "fold_ndcg": best_score, "seconds": round(first["seconds"], 3)})
    if first["seconds"] > budget_seconds:
        raise TuningBudgetError(
            f"tuning {cls.name}: its default setting took {first['seconds']:.1f} s on {len(folds)} folds, over the "
            f"budget of {budget_seconds:g} s (tuning_budget_seconds); raise the budget")
    best = dict(defaults)
    per_fold_seconds = [first["seconds"] / max(first["n_folds"], 1)]
    for name, values in cls.search_space.items():
        for value in values:
            if value == best[name]:
                continue
            candidate = {**best, name: value}
            elapsed = time.perf_counter() - started
            if elapsed + float(np.median(per_fold_seconds)) * len(order) > budget_seconds:
                trials.append({"params": candidate, "fold_ndcg": None, "skipped": "time budget"})
                continue
            result = evaluate(candidate, best_users)
            per_fold_seconds.append(result["seconds"] / max(result["n_folds"], 1))
            if "pruned" in result:
                trials.append({"params": candidate, "fold_ndcg": None, "pruned": result["pruned"],
                               "seconds": round(result["seconds"], 3)})
                continue
            trials.append({"params": candidate, "fold_ndcg": result["score"], "seconds": round(result["seconds"], 3)})
            if result["score"] > best_score + 1e-12:
                best, best_score = candidate, result["score"]
                best_fitted, best_users = result["fitted"], result["users"]
    return TuningResult(params=best, score=best_score, trials=trials, fitted=best_fitted,
                        seconds=time.perf_counter() - started)


def _clearly_behind(candidate: np.ndarray, best: np.ndarray) -> dict[str, float] | None:
    """The pooled NDCG of both, their paired difference and its standard error when the candidate is behind
    by more than ``PRUNE_Z`` standard errors; None otherwise (also with fewer than two users)."""
    difference = candidate - best
    if len(difference) < 2:
        return None
    mean, se = float(difference.mean()), float(difference.std(ddof=1) / np.sqrt(len(difference)))
    if mean + PRUNE_Z * se >= 0.0:
        return None
    return {"ndcg": float(candidate.mean()), "best_ndcg": float(best.mean()), "difference": mean, "se": se}
