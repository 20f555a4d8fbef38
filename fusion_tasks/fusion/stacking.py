"""Stacking: a logistic-regression meta-learner on out-of-fold base-model features.

Trained on the validation folds' pools only (each fold's base models were fitted before the
fold's window). Per (user, item) and base model: z-score, reciprocal rank, whether the model had
signal for the user, and the z-score times the user's activity and times whether the user has
ties (so the learner can trust a model more for heavy users, or for users with ties); plus the
context columns of the run's modalities and item popularity times user activity. Its weights are
plain JSON. The form stays linear in these features, so each modality's contribution to a score
is exact: a model's terms belong to its modality, each context term to the modality it comes
from (activity and popularity: behaviour), and the intercept to ``context``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from fusion_tasks.fusion.base import FitInput, FusionMethod, empty_contributions, group_of
from fusion_tasks.fusion.candidates import CONTEXT_FEATURES

MODEL_FEATURES = ("z", "rr", "avail", "zxactivity", "zxsocial")  # per model: <feature>:<model>


class Stacking(FusionMethod):
    name = "stacking"
    simplicity = 1

    def __init__(self, negatives_per_positive: int = 30, c: float = 0.5) -> None:
        self.negatives_per_positive = negatives_per_positive
        self.c = c

    def fit(self, data: FitInput) -> dict[str, Any]:
        from sklearn.linear_model import LogisticRegression

        rng = np.random.default_rng(data.seed)
        train = sampled_frame(data, self.negatives_per_positive, rng)
        spec = {"models": list(data.models), "context": list(data.context)}
        x, columns = features(train, spec)
        y = train["label"].to_numpy()
        mean, std = x.mean(axis=0), x.std(axis=0)
        std[std < 1e-9] = 1.0
        # Newton-Cholesky: many more rows than columns, and collinear columns that slow L-BFGS down
        meta = LogisticRegression(C=self.c, solver="newton-cholesky", max_iter=100, random_state=data.seed)
        meta.fit((x - mean) / std, y)
        return {**spec, "columns": columns, "mean": mean.tolist(), "std": std.tolist(),
                "coef": meta.coef_[0].tolist(), "intercept": float(meta.intercept_[0]),
                "training_rows": int(len(train)), "positives": int(y.sum())}

    def scores(self, fitted: dict[str, Any], pool: pd.DataFrame) -> np.ndarray:
        terms, _ = _terms(pool, fitted)
        return terms.sum(axis=1) + fitted["intercept"]

    def contributions(self, fitted: dict[str, Any], pool: pd.DataFrame) -> pd.DataFrame:
        terms, columns = _terms(pool, fitted)
        out = empty_contributions(pool)
        for j, column in enumerate(columns):
            feature, _, model = column.partition(":")
            if feature in MODEL_FEATURES and model:
                group = group_of(model)
            else:
                group = CONTEXT_FEATURES.get(column, "behavior")  # popularityxactivity: behaviour
            out[f"contribution_{group}"] += terms[:, j]
        out["contribution_context"] += fitted["intercept"]
        return out


def sample_rows(labels: np.ndarray, negatives_per_positive: int, rng: np.random.Generator,
                max_rows: int = 40_000) -> np.ndarray:
    """Every positive row and up to ``negatives_per_positive`` random negatives per positive; on
    dense data (more rows than ``max_rows``) positives and negatives are subsampled alike, so the
    meta-learner's cost stays bounded."""
    positives = np.flatnonzero(labels == 1)
    negatives = np.flatnonzero(labels == 0)
    take = min(len(negatives), max(1, len(positives)) * negatives_per_positive)
    if len(positives) + take > max_rows:
        keep = max_rows / (len(positives) + take)
        positives = np.sort(rng.choice(positives, size=max(1, int(len(positives) * keep)), replace=False))
        take = int(take * keep)
    return np.sort(np.concatenate([positives, rng.choice(negatives, size=take, replace=False)]))


def sampled_frame(data: FitInput, negatives_per_positive: int, rng: np.random.Generator,
                  max_rows: int = 40_000) -> pd.DataFrame:
    """The rows of the folds' pools, taken one after another, that ``sample_rows`` picks (indexed by their place
    among all the folds' rows), without a copy of every pool: on a large world the pools are gigabytes."""
    labels = np.concatenate([f.pool["label"].to_numpy() for f in data.folds])
    rows = sample_rows(labels, negatives_per_positive, rng, max_rows)
    bounds = np.cumsum([0] + [len(f.pool) for f in data.folds])
    parts = [f.pool.iloc[rows[(rows >= low) & (rows < high)] - low]
             for f, low, high in zip(data.folds, bounds[:-1], bounds[1:], strict=True)]
    frame = pd.concat(parts, ignore_index=True)
    frame.index = rows
    return frame


def features(pool: pd.DataFrame, spec: dict[str, Any]) -> tuple[np.ndarray, list[str]]:
    """The meta-learner's design matrix (see the module docstring) and its column names."""
    activity = pool["user_activity"].to_numpy(dtype="float64")
    social = (pool["user_has_social"].to_numpy(dtype="float64") if "user_has_social" in spec["context"]
              else np.zeros(len(pool)))
    columns, values = [], []
    for m in spec["models"]:
        z = pool[f"z_{m}"].to_numpy(dtype="float64")
        columns += [f"{feature}:{m}" for feature in MODEL_FEATURES]
        values += [z, 1.0 / pool[f"rank_{m}"].to_numpy(dtype="float64"),
                   pool[f"avail_{m}"].to_numpy(dtype="float64"), z * activity, z * social]
    for c in spec["context"]:
        columns.append(c)
        values.append(pool[c].to_numpy(dtype="float64"))
    columns.append("popularityxactivity")
    values.append(pool["item_popularity"].to_numpy(dtype="float64") * activity)
    return np.column_stack(values), columns


def _terms(pool: pd.DataFrame, fitted: dict[str, Any]) -> tuple[np.ndarray, list[str]]:
    """Each feature's term ``coef * standardised value``; the score is their sum plus the intercept."""
    x, columns = features(pool, fitted)
    if columns != fitted["columns"]:
        raise ValueError(f"meta-learner was fitted on {fitted['columns']}, pool has {columns}")
    return (x - np.array(fitted["mean"])) / np.array(fitted["std"]) * np.array(fitted["coef"]), columns
