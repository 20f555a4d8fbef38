"""Weighted sum: ``score = Σ_m w_m z_m`` over the base models' per-user z-scores.

The weights lie on the simplex and are chosen by random search plus coordinate refinement,
maximising NDCG@K pooled over the users of every validation fold (time-aware cross-validation:
each fold's models were fitted before the fold's window). The contribution of a model is its
weighted z-score, credited to the model's modality group.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from fusion_tasks.fusion.base import FitInput, FusionMethod, PoolRanker, empty_contributions, group_of


class WeightedSum(FusionMethod):
    name = "weighted_sum"
    simplicity = 0

    def __init__(self, samples: int = 60, refinement_rounds: int = 2) -> None:
        self.samples = samples
        self.refinement_rounds = refinement_rounds

    def fit(self, data: FitInput) -> dict[str, Any]:
        names = list(data.models)
        folds = []
        for f in data.folds:
            ranker = PoolRanker(f.pool, f.n_relevant, data.k)  # only the rows it keeps are ever scored
            folds.append((ranker, _z_matrix(f.pool, names)[ranker.rows], len(f.n_relevant)))
        total_users = sum(n for _, _, n in folds)

        def objective(w: np.ndarray) -> float:
            return sum(ranker.ndcg_of_kept(z @ w) * n for ranker, z, n in folds) / total_users

        rng = np.random.default_rng(data.seed)
        n = len(names)
        trials = [np.full(n, 1.0 / n), *np.eye(n), *rng.dirichlet(np.ones(n), size=self.samples)]
        scored = [(objective(w), i, w) for i, w in enumerate(trials)]
        best_value, _, best = max(scored, key=lambda t: (t[0], -t[1]))
        for _ in range(self.refinement_rounds):
            for j in range(n):
                for factor in (0.0, 0.5, 0.75, 1.25, 1.5, 2.0):
                    w = best.copy()
                    w[j] *= factor
                    if w.sum() <= 0:
                        continue
                    w /= w.sum()
                    value = objective(w)
                    if value > best_value + 1e-12:
                        best_value, best = value, w
        weights = {m: round(float(v), 6) for m, v in zip(names, best, strict=True)}
        return {"models": names, "weights": weights, "validation_ndcg": best_value}

    def scores(self, fitted: dict[str, Any], pool: pd.DataFrame) -> np.ndarray:
        names = list(fitted["weights"])
        return _z_matrix(pool, names) @ np.array([fitted["weights"][m] for m in names], dtype="float64")

    def contributions(self, fitted: dict[str, Any], pool: pd.DataFrame) -> pd.DataFrame:
        out = empty_contributions(pool)
        for name, w in fitted["weights"].items():
            out[f"contribution_{group_of(name)}"] += w * pool[f"z_{name}"].to_numpy(dtype="float64")
        return out


def _z_matrix(pool: pd.DataFrame, names: list[str]) -> np.ndarray:
    return np.column_stack([pool[f"z_{m}"].to_numpy(dtype="float64") for m in names]) if names else \
        np.zeros((len(pool), 0))
