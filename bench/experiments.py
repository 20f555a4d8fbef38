"""Measured what-ifs for fusion on Ciao (``python -m bench.experiments --date D``): extra context
features for the stacking meta-learner, fitted on the DAG's own fold pools (labels from the
validation windows) and scored on the final pool against (D, D+90], exactly like bench.quality.

Features (all computed at each pool's origin, from history up to it):
* ``item_age``: log1p(days since the item's first rating) — new items are what Ciao users rate next;
* ``item_recent_pop``: log1p(distinct users in the last 90 days) — short-term popularity;
* ``user_category_share``: share of the user's past ratings in the item's category (category preference);
* ``user_recency``: log1p(days since the user's last rating).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json

import numpy as np
import pandas as pd
from scipy import sparse

from bench import quality
from fusion_tasks.config import RunConfig
from fusion_tasks.evaluation.metrics import per_user_metrics
from fusion_tasks.fusion import methods
from fusion_tasks.fusion.candidates import load_pool
from fusion_tasks.storage import DataRoot
from fusion_tasks.training_data import TrainingData

EXTRA = ("item_age", "item_recent_pop", "user_category_share", "user_recency")


def extra_features(root: DataRoot, config: RunConfig, origin: str, pool: pd.DataFrame) -> pd.DataFrame:
    data = TrainingData.load(root, dataclasses.replace(config, history_days=0), origin)
    ev = data.events
    first = pd.Series(ev["day"].to_numpy()).groupby(ev["item_idx"].to_numpy()).min()
    age = np.full(data.n_items, 10_000.0)
    age[first.index.to_numpy()] = data.origin_day - first.to_numpy()
    recent = ev.loc[ev["day"] > data.origin_day - 90].drop_duplicates(["user_idx", "item_idx"])
    rpop = np.bincount(recent["item_idx"].to_numpy(), minlength=data.n_items)
    last = pd.Series(ev["day"].to_numpy()).groupby(ev["user_idx"].to_numpy()).max()
    urec = np.full(data.n_users, 10_000.0)
    urec[last.index.to_numpy()] = data.origin_day - last.to_numpy()
    cat = data.features["content"]["category_idx"]
    n_cat = int(cat.max()) + 1
    uc = sparse.csr_matrix((np.ones(len(ev)), (ev["user_idx"].to_numpy(), cat[ev["item_idx"].to_numpy()])),
                           shape=(data.n_users, n_cat)).toarray()
    uc = uc / np.maximum(uc.sum(axis=1, keepdims=True), 1)
    u, i = pool["user_idx"].to_numpy(), pool["item_idx"].to_numpy()
    return pool.assign(item_age=np.log1p(age[i]), item_recent_pop=np.log1p(rpop[i]),
                       user_category_share=uc[u, cat[i]], user_recency=np.log1p(urec[u]))


def fit(pools: list[pd.DataFrame], names: list[str], extra: tuple[str, ...], seed: int) -> dict:
    from sklearn.linear_model import LogisticRegression

    frame = pd.concat(pools, ignore_index=True)
    rng = np.random.default_rng(seed)
    pos = np.flatnonzero(frame["label"].to_numpy() == 1)
    neg = np.flatnonzero(frame["label"].to_numpy() == 0)
    rows = np.sort(np.concatenate([pos, rng.choice(neg, size=min(len(neg), 30 * len(pos)), replace=False)]))
    x = features(frame.iloc[rows], names, extra)
    mean, std = x.mean(0), x.std(0)
    std[std < 1e-9] = 1
    y = frame["label"].to_numpy()[rows]
    lr = LogisticRegression(C=0.5, max_iter=2000, random_state=seed).fit((x - mean) / std, y)
    return {"mean": mean, "std": std, "coef": lr.coef_[0], "b": lr.intercept_[0]}


def features(pool: pd.DataFrame, names: list[str], extra: tuple[str, ...]) -> np.ndarray:
    x, _ = methods.stacking_features(pool, names)
    return np.column_stack([x, *[pool[c].to_numpy(float) for c in extra]]) if extra else x


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--date", default="2010-10-01")
    args = parser.parse_args()
    root = DataRoot(quality.PROJECT_ROOT / "var" / "bench-ciao")
    day = dt.date.fromisoformat(args.date)
    config = RunConfig.from_dict({**quality.CONF, "as_of_date": args.date, "data_root": str(root.root)})
    events = quality.all_behaviour(root, day + dt.timedelta(days=quality.HORIZON_DAYS))
    ctx = quality.context(root, config, "final")
    rel = quality.first_time_pairs(events, ctx, day, day + dt.timedelta(days=quality.HORIZON_DAYS))
    users = np.unique(rel["user_idx"].to_numpy())
    folds = [extra_features(root, config, o, load_pool(root, config, o))
             for o in config.origins() if o.startswith("fold")]
    final = load_pool(root, config, "final")
    final = extra_features(root, config, "final", final.loc[np.isin(final["user_idx"], users)].reset_index(drop=True))
    names = methods.model_names_in(final)
    out = {}
    variants = {"stacking (as in the DAG)": (), **{f"+ {c}": (c,) for c in EXTRA}, "+ all four": EXTRA}
    for label, extra in variants.items():
        meta = fit(folds, names, extra, config.seed_for("stacking"))
        x = features(final, names, extra)
        scores = ((x - meta["mean"]) / meta["std"]) @ meta["coef"] + meta["b"]
        top = methods.top_k(final, scores, 10)
        recs = quality.as_recs(ctx, top["user_idx"].to_numpy(), top["item_idx"].to_numpy(), top["rank"].to_numpy())
        recs, _ = quality.enforce_candidates(ctx, recs, 10)
        pu = per_user_metrics(recs, rel[["user_id", "item_id"]], 10)
        out[label] = {"ndcg@10": float(pu["ndcg"].mean()), "se": float(pu["ndcg"].std(ddof=1) / np.sqrt(len(pu))),
                      "users": len(pu),
                      "coef": dict(zip(extra, np.round(meta["coef"][-len(extra):], 3).tolist(), strict=True))
                      if extra else {}}
        print(label, json.dumps(out[label]), flush=True)
    # how much of the truth is even reachable from the pool
    truth = rel[["user_idx", "item_id"]].assign(item_idx=lambda f: np.searchsorted(ctx.items, f["item_id"]))
    reach = final.merge(truth.loc[rel["item_known"].to_numpy()], on=["user_idx", "item_idx"])
    print("relevant pairs", len(rel), "in the final pool", len(reach), "known by D", int(rel["item_known"].sum()))


if __name__ == "__main__":
    main()
