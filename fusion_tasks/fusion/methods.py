"""The two fusion methods, both fitted only on the validation folds before the test window.

* **Weighted sum**: ``score = Σ_m w_m z_m`` over the base models' per-user z-scores, weights on the
  simplex, chosen by random search + coordinate refinement maximising mean NDCG@K over the users
  of all validation folds (time-aware cross-validation: each fold's models were fitted before
  the fold's window).
* **Stacking**: a logistic-regression meta-learner on out-of-fold features of each (user, item)
  of the fold pools — per model: z-score, reciprocal rank, whether the model had signal for the
  user, and the z-score times the user's activity and times whether the user has ties (so the
  learner can trust a model more for heavy users, or for users with ties); context: user activity,
  has ties, item has content, item popularity, item popularity times user activity. Its weights
  are plain JSON. The form stays linear in these features, so each modality's contribution to a
  score is exact (an interaction term belongs to its model's modality).

Each method also reports a leave-one-fold-out NDCG (fit on the other folds, score the held-out
one); the published method is the one with the better leave-one-fold-out NDCG.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from fusion_tasks import models
from fusion_tasks.config import RunConfig
from fusion_tasks.fusion.candidates import CONTEXT_FEATURES, load_pool
from fusion_tasks.storage import DataRoot, read_json, write_json
from fusion_tasks.training_data import load_relevance

GROUPS = ("behavior", "content", "social", "cross")


# shared ------------------------------------------------------------------------------------------
def top_k(pool: pd.DataFrame, scores: np.ndarray, k: int) -> pd.DataFrame:
    """The k best pooled items per user by ``scores`` (ties by item index), with 1-based ranks."""
    order = np.lexsort((pool["item_idx"].to_numpy(), -scores, pool["user_idx"].to_numpy()))
    ranked = pool.iloc[order][["user_idx", "item_idx"]].assign(score=scores[order])
    ranked["rank"] = ranked.groupby("user_idx").cumcount() + 1
    return ranked.loc[ranked["rank"] <= k].reset_index(drop=True)


def pool_ndcg(pool: pd.DataFrame, scores: np.ndarray, n_relevant: pd.Series, k: int) -> float:
    """Mean NDCG@k over the users of ``n_relevant`` (binary labels from ``pool['label']``)."""
    order = np.lexsort((pool["item_idx"].to_numpy(), -scores, pool["user_idx"].to_numpy()))
    users = pool["user_idx"].to_numpy()[order]
    labels = pool["label"].to_numpy()[order]
    starts = np.r_[0, np.flatnonzero(np.diff(users)) + 1]
    rank = np.arange(len(users)) - np.repeat(starts, np.diff(np.r_[starts, len(users)]))
    keep = rank < k
    dcg = pd.Series(labels[keep] / np.log2(rank[keep] + 2)).groupby(users[keep]).sum()
    ideal = np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))
    idcg = ideal[np.minimum(n_relevant.to_numpy(), k) - 1]
    return float((dcg.reindex(n_relevant.index, fill_value=0.0).to_numpy() / idcg).mean())


def _fold_data(root: DataRoot, config: RunConfig) -> dict[str, tuple[pd.DataFrame, pd.Series]]:
    folds = {}
    for origin in config.origins():
        if origin.startswith("fold"):
            pool = load_pool(root, config, origin)
            folds[origin] = (pool, load_relevance(root, config, origin).groupby("user_idx").size())
    return folds


def model_names_in(pool: pd.DataFrame) -> list[str]:
    return [c.removeprefix("z_") for c in pool.columns if c.startswith("z_")]


# weighted sum ------------------------------------------------------------------------------------
def weighted_scores(pool: pd.DataFrame, weights: dict[str, float]) -> np.ndarray:
    return sum(w * pool[f"z_{m}"].to_numpy(dtype="float64") for m, w in weights.items())


def search_weights(folds: list[tuple[pd.DataFrame, pd.Series]], names: list[str], k: int,
                   seed: int, samples: int = 120) -> tuple[dict[str, float], float]:
    """Weights on the simplex with the best mean NDCG@k over ``folds`` (pooled over users)."""
    rng = np.random.default_rng(seed)

    def objective(w: np.ndarray) -> float:
        total = sum(pool_ndcg(pool, weighted_scores(pool, dict(zip(names, w, strict=True))), rel, k) * len(rel)
                    for pool, rel in folds)
        return total / sum(len(rel) for _, rel in folds)

    n = len(names)
    trials = [np.full(n, 1.0 / n), *np.eye(n), *rng.dirichlet(np.ones(n), size=samples)]
    scored = [(objective(w), i, w) for i, w in enumerate(trials)]
    best_value, _, best = max(scored, key=lambda t: (t[0], -t[1]))
    for _ in range(2):  # coordinate refinement
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
    return {m: round(float(v), 6) for m, v in zip(names, best, strict=True)}, best_value


def fit_weighted_sum(root: DataRoot, config: RunConfig) -> dict[str, Any]:
    """Choose the weights on all validation folds; writes ``fused/ds=D/weighted_sum.json``."""
    folds = _fold_data(root, config)
    names = model_names_in(next(iter(folds.values()))[0])
    seed = config.seed_for("weighted_sum")
    weights, value = search_weights(list(folds.values()), names, config.top_k, seed)
    cv = []
    for held in folds:
        w, _ = search_weights([f for o, f in folds.items() if o != held], names, config.top_k, seed)
        pool, rel = folds[held]
        cv.append(pool_ndcg(pool, weighted_scores(pool, w), rel, config.top_k))
    result = {"method": "weighted_sum", "weights": weights, "validation_ndcg": value,
              "cv_ndcg": float(np.mean(cv)), "cv_ndcg_per_fold": dict(zip(folds, cv, strict=True)),
              "k": config.top_k, "folds": list(folds)}
    write_json(root.fused(config.as_of_date) / "weighted_sum.json", result)
    return result


def weighted_sum_contributions(pool: pd.DataFrame, weights: dict[str, float]) -> pd.DataFrame:
    out = pd.DataFrame(0.0, index=pool.index, columns=[f"contribution_{g}" for g in GROUPS])
    for name, w in weights.items():
        out[f"contribution_{models.get(name).group}"] += w * pool[f"z_{name}"].to_numpy(dtype="float64")
    return out


# stacking ----------------------------------------------------------------------------------------
MODEL_FEATURES = ("z", "rr", "avail", "zxactivity", "zxsocial")  # column prefixes: <prefix>_<model>


def stacking_features(pool: pd.DataFrame, names: list[str]) -> tuple[np.ndarray, list[str]]:
    """The meta-learner's design matrix (see the module docstring) and its column names."""
    activity = pool["user_activity"].to_numpy(dtype="float64")
    social = pool["user_has_social"].to_numpy(dtype="float64")
    columns, values = [], []
    for m in names:
        z = pool[f"z_{m}"].to_numpy(dtype="float64")
        columns += [f"{prefix}_{m}" for prefix in MODEL_FEATURES]
        values += [z, 1.0 / pool[f"rank_{m}"].to_numpy(dtype="float64"),
                   pool[f"avail_{m}"].to_numpy(dtype="float64"), z * activity, z * social]
    for c in CONTEXT_FEATURES:
        columns.append(c)
        values.append(pool[c].to_numpy(dtype="float64"))
    columns.append("popularityxactivity")
    values.append(pool["item_popularity"].to_numpy(dtype="float64") * activity)
    return np.column_stack(values), columns


def _fit_meta(pools: list[pd.DataFrame], names: list[str], seed: int,
              negatives_per_positive: int = 30) -> dict[str, Any]:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    frame = pd.concat(pools, ignore_index=True)
    positives = np.flatnonzero(frame["label"].to_numpy() == 1)
    negatives = np.flatnonzero(frame["label"].to_numpy() == 0)
    take = min(len(negatives), max(1, len(positives)) * negatives_per_positive)
    rows = np.sort(np.concatenate([positives, rng.choice(negatives, size=take, replace=False)]))
    x, columns = stacking_features(frame.iloc[rows], names)
    y = frame["label"].to_numpy()[rows]
    mean, std = x.mean(axis=0), x.std(axis=0)
    std[std < 1e-9] = 1.0
    meta = LogisticRegression(C=0.5, max_iter=2000, random_state=seed).fit((x - mean) / std, y)
    return {"columns": columns, "mean": mean.tolist(), "std": std.tolist(),
            "coef": meta.coef_[0].tolist(), "intercept": float(meta.intercept_[0]), "models": names,
            "training_rows": int(len(rows)), "positives": int(len(positives))}


def stacking_terms(pool: pd.DataFrame, meta: dict[str, Any]) -> tuple[np.ndarray, list[str]]:
    """Each feature's term ``coef * standardised value``; the score is their sum plus the intercept."""
    x, columns = stacking_features(pool, meta["models"])
    if columns != meta["columns"]:
        raise ValueError(f"meta-learner was fitted on {meta['columns']}, pool has {columns}")
    return (x - np.array(meta["mean"])) / np.array(meta["std"]) * np.array(meta["coef"]), columns


def stacking_scores(pool: pd.DataFrame, meta: dict[str, Any]) -> np.ndarray:
    terms, _ = stacking_terms(pool, meta)
    return terms.sum(axis=1) + meta["intercept"]


def stacking_contributions(pool: pd.DataFrame, meta: dict[str, Any]) -> pd.DataFrame:
    terms, columns = stacking_terms(pool, meta)
    out = pd.DataFrame(0.0, index=pool.index, columns=[f"contribution_{g}" for g in (*GROUPS, "context")])
    for j, column in enumerate(columns):
        prefix, _, model = column.partition("_")
        group = models.get(model).group if prefix in MODEL_FEATURES and model in models.REGISTRY else "context"
        out[f"contribution_{group}"] += terms[:, j]
    out["contribution_context"] += meta["intercept"]
    return out


def fit_stacking(root: DataRoot, config: RunConfig) -> dict[str, Any]:
    """Fit the meta-learner on the validation folds' pools; writes ``fused/ds=D/stacking.json``."""
    folds = _fold_data(root, config)
    names = model_names_in(next(iter(folds.values()))[0])
    seed = config.seed_for("stacking")
    meta = _fit_meta([pool for pool, _ in folds.values()], names, seed)
    cv = []
    for held in folds:
        held_meta = _fit_meta([pool for o, (pool, _) in folds.items() if o != held], names, seed)
        pool, rel = folds[held]
        cv.append(pool_ndcg(pool, stacking_scores(pool, held_meta), rel, config.top_k))
    result = {"method": "stacking", "meta_learner": meta, "cv_ndcg": float(np.mean(cv)),
              "cv_ndcg_per_fold": dict(zip(folds, cv, strict=True)), "k": config.top_k, "folds": list(folds)}
    write_json(root.fused(config.as_of_date) / "stacking.json", result)
    return result


# applying a fitted method ------------------------------------------------------------------------
def load_fitted_methods(root: DataRoot, config: RunConfig) -> dict[str, dict[str, Any]]:
    return {m: read_json(root.fused(config.as_of_date) / f"{m}.json") for m in config.methods}


def fused_scores(method: str, fitted: dict[str, Any], pool: pd.DataFrame) -> np.ndarray:
    if method == "weighted_sum":
        return weighted_scores(pool, fitted["weights"])
    return stacking_scores(pool, fitted["meta_learner"])


def contributions(method: str, fitted: dict[str, Any], pool: pd.DataFrame) -> pd.DataFrame:
    if method == "weighted_sum":
        return weighted_sum_contributions(pool, fitted["weights"])
    return stacking_contributions(pool, fitted["meta_learner"])


def choose_method(fitted: dict[str, dict[str, Any]]) -> str:
    """The method with the best leave-one-fold-out NDCG (ties: the simpler weighted sum)."""
    order = {"weighted_sum": 0, "stacking": 1}
    return max(fitted, key=lambda m: (round(fitted[m]["cv_ndcg"], 9), -order[m]))
