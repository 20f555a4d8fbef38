"""The registry of fusion methods, and fitting, choosing and applying them for a run.

A new method is one module ``fusion_tasks/fusion/<name>.py`` with one ``FusionMethod`` subclass whose
``name`` is ``<name>`` (see ``fusion_tasks.catalogue``), and its known-answer test; nothing else. Each method is
fitted on the validation folds' pools only (``fold<k>`` origins), and reports a leave-one-fold-out
NDCG@K (fitted on the other folds, scored on the held-out one); the published method is the one with the
best such NDCG, the simpler on a tie (``choose_method``).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from fusion_tasks import catalogue
from fusion_tasks.config import RunConfig
from fusion_tasks.contract import GROUPS
from fusion_tasks.fusion.base import (
    CONTRIBUTION_GROUPS,
    FitInput,
    FoldPool,
    FusionMethod,
    model_names_in,
    pool_ndcg,
    pool_ndcg_per_user,
    top_k,
)
from fusion_tasks.fusion.candidates import context_columns, load_pool
from fusion_tasks.storage import DataRoot, read_json, write_json
from fusion_tasks.training_data import load_relevance

# a method scores a pool this many rows at a time (scoring, publishing, cross-validation): memory per block
SCORE_BLOCK_ROWS = 1 << 18
# the methods are fitted and compared on at most this many users of a fold, a sample drawn with the run's seed: a
# few weights, a logistic model or a small network need far fewer (stacking and deep fusion train on at most
# 40,000 and 30,000 sampled rows), and the methods' leave-one-fold-out NDCGs are compared on the same users, each
# with a standard error of about 0.002 at a per-user spread of 0.3. Ciao's folds hold a few hundred users; a fold
# of the cost curve's 10^7-event world, tens of thousands (fusion fitting there: 92.5 -> 33.6 s of wall time)
MAX_FOLD_USERS = 20_000
# ordered by simplicity: the order ties are broken in
REGISTRY: dict[str, type[FusionMethod]] = dict(sorted(catalogue.load("methods", FusionMethod).items(),
                                                      key=lambda item: (item[1].simplicity, item[0])))


def get(name: str) -> FusionMethod:
    try:
        return REGISTRY[name]()
    except KeyError:
        raise KeyError(f"unknown fusion method {name!r}; registered: {sorted(REGISTRY)}") from None


def fold_pools(root: DataRoot, config: RunConfig, max_users: int = MAX_FOLD_USERS) -> tuple[FoldPool, ...]:
    """The validation folds' pools of a run, with each user's number of relevant items: every user of a fold, or
    ``max_users`` of them drawn with the run's seed (the same draw at every call) when it has more."""
    folds = []
    for origin in config.origins():
        if not origin.startswith("fold"):
            continue
        pool = load_pool(root, config, origin)
        n_relevant = load_relevance(root, config, origin).groupby("user_idx").size()
        if len(n_relevant) > max_users:
            rng = np.random.default_rng(config.seed_for("fold_users", origin))
            users = np.sort(rng.choice(n_relevant.index.to_numpy(), max_users, replace=False))
            n_relevant = n_relevant.loc[users]
            pool = pool[pool["user_idx"].isin(users)].reset_index(drop=True)
        folds.append(FoldPool(origin, pool, n_relevant))
    return tuple(folds)


def fit_with_cv(method: FusionMethod, data: FitInput) -> dict[str, Any]:
    """Fit on every fold, and leave-one-fold-out: fit on the others, NDCG@K on the held-out fold."""
    started = time.perf_counter()
    fitted = method.fit(data)
    cv = {}
    for fold in data.folds:
        held = method.fit(data.without(fold.name)) if len(data.folds) > 1 else fitted
        users = pool_ndcg_per_user(fold.pool, scores_in_blocks(method, held, fold.pool), fold.n_relevant, data.k)
        cv[fold.name] = float(users.mean()) if len(users) else 0.0
    return {"method": method.name, "fitted": fitted, "cv_ndcg": float(np.mean(list(cv.values()))),
            "cv_ndcg_per_fold": cv, "k": data.k, "folds": [f.name for f in data.folds],
            "fit_seconds": round(time.perf_counter() - started, 3)}  # not written: reruns write identical files


def fit_method(root: DataRoot, config: RunConfig, name: str) -> dict[str, Any]:
    """Fit ``name`` on the run's validation folds; writes ``fused/ds=D/<name>.json`` and returns it."""
    folds = fold_pools(root, config)
    data = FitInput(folds=folds, models=tuple(model_names_in(folds[0].pool)),
                    context=context_columns(config.modalities), k=config.top_k, seed=config.seed_for(name))
    result = fit_with_cv(get(name), data)
    write_json(root.fused_method(config.as_of_date, name), {k: v for k, v in result.items() if k != "fit_seconds"})
    return result


def load_fitted_methods(root: DataRoot, config: RunConfig) -> dict[str, dict[str, Any]]:
    return {m: read_json(root.fused_method(config.as_of_date, m)) for m in config.methods}


def fused_scores(name: str, result: dict[str, Any], pool: pd.DataFrame) -> np.ndarray:
    return scores_in_blocks(get(name), result["fitted"], pool)


def scores_in_blocks(method: FusionMethod, fitted: dict[str, Any], pool: pd.DataFrame,
                     rows: int = SCORE_BLOCK_ROWS) -> np.ndarray:
    """``method.scores`` of every pool row, ``rows`` rows at a time: a method scores each row from that row alone,
    so the values are the same to rounding (a matrix product over fewer rows may sum in another order), as
    publishing's blocks, and what a method holds while scoring (a design matrix, hidden activations) is bounded
    by the block, not by the pool (tens of millions of rows on a large world)."""
    if len(pool) <= rows:
        return method.scores(fitted, pool)
    return np.concatenate([method.scores(fitted, pool.iloc[start:start + rows]) for start in range(0, len(pool), rows)])


def contributions(name: str, result: dict[str, Any], pool: pd.DataFrame) -> pd.DataFrame:
    return get(name).contributions(result["fitted"], pool)


def scores_and_contributions(name: str, result: dict[str, Any], pool: pd.DataFrame,
                             rows: int = SCORE_BLOCK_ROWS) -> tuple[np.ndarray, pd.DataFrame]:
    """The fused scores and contributions of every pool row, ``rows`` rows at a time: a method scores each row from
    that row alone, so the values are the same, and what a method holds while scoring (deep fusion's hidden
    activations for every row, about 1 GB on a Ciao date's final pool of 2.5 million rows) is bounded."""
    method = get(name)
    parts = [method.scores_and_contributions(result["fitted"], pool.iloc[start:start + rows])
             for start in range(0, len(pool), rows)] or [method.scores_and_contributions(result["fitted"], pool)]
    return np.concatenate([scores for scores, _ in parts]), pd.concat([frame for _, frame in parts])


def choose_method(fitted: dict[str, dict[str, Any]]) -> str:
    """The method with the best leave-one-fold-out NDCG; on a tie (to 1e-9), the simpler one.

    Each method's score is already an out-of-sample estimate (every fold scored by a fit that did not see
    it), so the best of them is the best guess of what will do best after D. A rule that keeps the simplest
    method within one standard error of the best was measured against this one on 25 synthetic worlds (five
    regimes, five seeds each): they chose differently on 7, and the best-mean choice had the higher holdout
    NDCG on 6 of those 7 (+0.0026 +- 0.0012 mean over the 25 worlds).
    """
    return max(fitted, key=lambda m: (round(fitted[m]["cv_ndcg"], 9), -REGISTRY[m].simplicity))


__all__ = ["CONTRIBUTION_GROUPS", "GROUPS", "REGISTRY", "FitInput", "FoldPool", "FusionMethod", "choose_method",
           "contributions", "fit_method", "fit_with_cv", "fold_pools", "fused_scores", "get", "load_fitted_methods",
           "model_names_in", "pool_ndcg", "scores_and_contributions", "top_k"]
