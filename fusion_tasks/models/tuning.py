"""Per-run tuning of a base model on the run's validation folds.

The search is coordinate-wise over the model's ``search_space`` (the first value of each parameter is
its default): starting from the defaults, each parameter in turn is set to each of its other values
with the others at the best found so far, and the change is kept when it raises the pooled fold
NDCG@K. A setting's score is NDCG@K over every user of every fold window (full ranking of the items
known at the fold's origin that the user has not interacted with), each fold fitted on data up to
its origin: nothing after a fold's window, and never the holdout, is read. ``n`` parameters with
``v`` values each cost ``1 + n (v - 1)`` settings, each one fit per fold.

The search stops early when the next setting would exceed the time budget (estimated from the
settings tried so far); settings not tried are recorded as such. A budget that the default setting
alone exceeds raises ``TuningBudgetError`` naming the model and the budget.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from fusion_tasks import topn
from fusion_tasks.models.base import BaseRecommender
from fusion_tasks.training_data import TrainingData

BATCH_USERS = 512


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


def ndcg_at_k(model: BaseRecommender, data: TrainingData, relevance: pd.DataFrame, k: int) -> tuple[float, int]:
    """Sum of NDCG@k over the users of ``relevance`` (full ranking of known, unseen items) and their count."""
    users = np.unique(relevance["user_idx"].to_numpy())
    if not len(users):
        return 0.0, 0
    relevant = relevance.groupby("user_idx")["item_idx"].apply(lambda s: set(s.tolist()))
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.cumsum(discount)
    total = 0.0
    for start in range(0, len(users), BATCH_USERS):
        batch = users[start:start + BATCH_USERS]
        top = top_items(model.score(batch), data, batch, k)
        for row, user in enumerate(batch):
            rel = relevant[user]
            hits = np.fromiter((item in rel for item in top[row]), dtype=bool, count=top.shape[1])
            total += float(discount[: len(hits)][hits].sum() / ideal[min(len(rel), k) - 1])
    return total, len(users)


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

    def evaluate(params: dict[str, Any]) -> tuple[float, dict[str, BaseRecommender], float]:
        t0 = time.perf_counter()
        fitted, total, count = {}, 0.0, 0
        for fold in folds:
            model = make(cls, params, fold.name).fit(fold.data)
            s, n = ndcg_at_k(model, fold.data, fold.relevance, k)
            fitted[fold.name], total, count = model, total + s, count + n
        return total / max(count, 1), fitted, time.perf_counter() - t0

    best_score, best_fitted, seconds = evaluate(defaults)
    trials.append({"params": dict(defaults), "fold_ndcg": best_score, "seconds": round(seconds, 3)})
    if seconds > budget_seconds:
        raise TuningBudgetError(
            f"tuning {cls.name}: its default setting took {seconds:.1f} s on {len(folds)} folds, over the budget of "
            f"{budget_seconds:g} s (tuning_budget_seconds); raise the budget")
    best = dict(defaults)
    durations = [seconds]
    for name, values in cls.search_space.items():
        for value in values:
            if value == best[name]:
                continue
            candidate = {**best, name: value}
            elapsed = time.perf_counter() - started
            if elapsed + float(np.median(durations)) > budget_seconds:
                trials.append({"params": candidate, "fold_ndcg": None, "skipped": "time budget"})
                continue
            score, fitted, seconds = evaluate(candidate)
            durations.append(seconds)
            trials.append({"params": candidate, "fold_ndcg": score, "seconds": round(seconds, 3)})
            if score > best_score + 1e-12:
                best, best_score, best_fitted = candidate, score, fitted
    return TuningResult(params=best, score=best_score, trials=trials, fitted=best_fitted,
                        seconds=time.perf_counter() - started)
