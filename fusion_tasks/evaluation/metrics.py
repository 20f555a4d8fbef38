"""Top-K ranking metrics with binary relevance, per user and pooled.

Definitions (``hit_r`` = 1 when the item at rank r is relevant, ``R`` = the user's relevant set):

* precision@K = Σ hit_r / K; recall@K = Σ hit_r / |R|; F1@K = harmonic mean of the two (per user)
* NDCG@K = Σ hit_r / log2(r + 1), divided by the same sum for an ideal list of min(|R|, K) hits
* MAP@K: AP@K = Σ_r precision@r · hit_r / min(|R|, K), averaged over users
* hit rate@K = share of users with at least one hit
* coverage = distinct recommended items / catalogue size

Every user with a non-empty relevant set counts, also when nothing was recommended to them (all
metrics 0 then): the denominator is the users who did something in the window.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

METRICS = ("precision", "recall", "f1", "ndcg", "map", "hit_rate")


def per_user_metrics(recommendations: pd.DataFrame, relevant: pd.DataFrame, k: int) -> pd.DataFrame:
    """One row per user of ``relevant`` with each metric at ``k``.

    ``recommendations`` has columns (user, item, rank) with ranks starting at 1 (only ranks <= k
    are used); ``relevant`` has (user, item). Column names may be ``*_idx`` or ``*_id``.
    """
    recs = _standard(recommendations, with_rank=True)
    rel = _standard(relevant).drop_duplicates()
    recs = recs.loc[recs["rank"] <= k]
    n_relevant = rel.groupby("user").size()
    hits = recs.merge(rel.assign(hit=1), on=["user", "item"], how="left").fillna({"hit": 0})
    hits = hits.loc[hits["user"].isin(n_relevant.index)].sort_values(["user", "rank"])

    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.cumsum(discounts)
    hits["gain"] = hits["hit"] * discounts[hits["rank"].to_numpy() - 1]
    hits["cum_hits"] = hits.groupby("user")["hit"].cumsum()
    hits["precision_at_r"] = hits["cum_hits"] / hits["rank"] * hits["hit"]
    grouped = hits.groupby("user").agg(n_hits=("hit", "sum"), dcg=("gain", "sum"), ap_sum=("precision_at_r", "sum"))
    out = pd.DataFrame(index=n_relevant.index).join(grouped).fillna(0.0)
    out["n_relevant"] = n_relevant
    capped = np.minimum(out["n_relevant"].to_numpy(), k)
    out["precision"] = out["n_hits"] / k
    out["recall"] = out["n_hits"] / out["n_relevant"]
    total = out["precision"] + out["recall"]
    out["f1"] = np.where(total > 0, 2 * out["precision"] * out["recall"] / np.where(total > 0, total, 1), 0.0)
    out["ndcg"] = out["dcg"] / ideal[capped - 1]
    out["map"] = out["ap_sum"] / capped
    out["hit_rate"] = (out["n_hits"] > 0).astype(float)
    return out[list(METRICS)].rename_axis("user").reset_index()


def summarise(per_user: pd.DataFrame, recommendations: pd.DataFrame, catalogue_size: int, k: int) -> dict[str, Any]:
    """Means over users, the standard error of each mean, coverage and the number of users."""
    recs = _standard(recommendations, with_rank=True)
    recs = recs.loc[recs["rank"] <= k]
    n = len(per_user)
    out: dict[str, Any] = {"k": k, "n_users": n}
    for name in METRICS:
        values = per_user[name].to_numpy(dtype=float) if n else np.zeros(0)
        out[name] = float(values.mean()) if n else 0.0
        out[f"{name}_se"] = float(values.std(ddof=1) / np.sqrt(n)) if n > 1 else 0.0
    out["coverage"] = float(recs["item"].nunique() / catalogue_size) if catalogue_size else 0.0
    return out


def evaluate(recommendations: pd.DataFrame, relevant: pd.DataFrame, catalogue_size: int, k: int) -> dict[str, Any]:
    """``summarise(per_user_metrics(...))`` in one call."""
    return summarise(per_user_metrics(recommendations, relevant, k), recommendations, catalogue_size, k)


def _standard(frame: pd.DataFrame, with_rank: bool = False) -> pd.DataFrame:
    columns = {}
    for kind in ("user", "item"):
        for suffix in ("_idx", "_id", ""):
            if f"{kind}{suffix}" in frame.columns:
                columns[f"{kind}{suffix}"] = kind
                break
        else:
            raise KeyError(f"no {kind} column in {list(frame.columns)}")
    if with_rank:
        columns["rank"] = "rank"
    return frame[list(columns)].rename(columns=columns)
