"""Step 3: every list of one origin scored against what users did for the first time after it; origins pooled."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from typing import Any

import numpy as np
import pandas as pd

from bench import baselines
from bench.baselines import binary
from fusion_tasks import modalities, models
from fusion_tasks.config import RunConfig
from fusion_tasks.evaluation.metrics import per_user_metrics, summarise
from fusion_tasks.evaluation.relevance import first_time_pairs
from fusion_tasks.evaluation.report import COLD_USER_MAX_HISTORY, cold_users, head_items
from fusion_tasks.fusion import methods
from fusion_tasks.fusion.candidates import context_columns, load_pool
from fusion_tasks.metrics_schema import read_published_metrics
from fusion_tasks.modalities import Vocabulary
from fusion_tasks.storage import DataRoot, read_parquet
from fusion_tasks.training_data import TrainingData, load_relevance

HORIZON_DAYS = 90
KS = (10, 20)
# the modality subsets fused in the ablation: behaviour alone and with each other registered modality
ABLATIONS = {"behavior only": ("behavior",),
             **{f"behavior + {name}": ("behavior", name) for name in modalities.REGISTRY if name != "behavior"}}


def all_behaviour(root: DataRoot, until: dt.date) -> pd.DataFrame:
    """Every valid behaviour event up to ``until``, staged with the pipeline's own extractor."""
    config = RunConfig(as_of_date=until, data_root=root.root)
    if not root.staged("behavior", until).is_file():
        modalities.get("behavior").extract(root, config)
    frame = read_parquet(root.staged("behavior", until), columns=["user_id", "item_id", "timestamp"])
    return frame.assign(user_id=frame["user_id"].astype(str), item_id=frame["item_id"].astype(str))


@dataclasses.dataclass
class Context:
    """What the evaluation of one origin needs: vocabulary, full-history interactions, candidates."""

    vocab: Vocabulary
    seen: Any  # csr users x items, binary, all history up to the origin
    known: np.ndarray  # items known by the origin
    has_social: np.ndarray
    events_day: np.ndarray
    events_ui: tuple[np.ndarray, np.ndarray]
    origin_day: int


def context(root: DataRoot, config: RunConfig, origin: str) -> Context:
    full = dataclasses.replace(config, history_days=0)
    data = TrainingData.load(root, full, origin)
    ev = data.events
    return Context(vocab=data.vocab, seen=binary(data.interactions), known=data.item_known,
                   has_social=data.features["social"].has_social, events_day=ev["day"].to_numpy(),
                   events_ui=(ev["user_idx"].to_numpy(), ev["item_idx"].to_numpy()), origin_day=data.origin_day)


def as_recs(ctx: Context, users: np.ndarray, items: np.ndarray, ranks: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"user_id": ctx.vocab.users[users], "item_id": ctx.vocab.items[items], "rank": ranks})


def enforce_candidates(ctx: Context, recs: pd.DataFrame, k: int) -> tuple[pd.DataFrame, int]:
    """Drop recommended items outside the candidate rule (unknown, or in the user's full past) and
    re-rank; returns the list and how many rows were dropped."""
    u = ctx.vocab.user_index(recs["user_id"])
    i = ctx.vocab.item_index(recs["item_id"])
    # (an empty list, of a model with nothing to say, indexes the matrix with empty arrays: a sparse result)
    in_past = np.asarray(ctx.seen[u, i]).ravel() > 0 if len(u) else np.zeros(0, dtype=bool)
    bad = ~ctx.known[i] | in_past
    kept = recs.loc[~bad].sort_values(["user_id", "rank"]).copy()
    kept["rank"] = kept.groupby("user_id").cumcount() + 1
    return kept.loc[kept["rank"] <= k].reset_index(drop=True), int(bad.sum())


def evaluate_date(root: DataRoot, day: dt.date, conf: dict[str, Any], events: pd.DataFrame,
                  horizon_days: int = HORIZON_DAYS) -> dict[str, Any]:
    """Per-(user, date) metrics of every list for one origin (relevant: what users did for the first time in
    (D, D + ``horizon_days``]), plus timings and tuning choices."""
    config = RunConfig.from_dict({**conf, "as_of_date": day.isoformat(), "data_root": str(root.root)})
    kmax = max(KS)
    ctx = context(root, config, "final")
    relevant = first_time_pairs(events, ctx.vocab, ctx.seen, day, day + dt.timedelta(days=horizon_days))
    items = relevant["item_idx"].to_numpy()
    relevant["item_known"] = (items >= 0) & ctx.known[items]  # -1: an item new after D
    eval_users = np.unique(relevant["user_idx"].to_numpy())
    in_eval = np.zeros(len(ctx.vocab.users), dtype=bool)
    in_eval[eval_users] = True

    lists: dict[str, pd.DataFrame] = {}
    info: dict[str, Any] = {"dropped_by_candidate_rule": {}, "fit_seconds": {}, "score_seconds": {}, "params": {}}
    published = root.read_recommendations(day)
    published = published.loc[published["user_id"].isin(ctx.vocab.users[eval_users]), ["user_id", "item_id", "rank"]]
    lists["published (chosen fusion)"], info["dropped_by_candidate_rule"]["published"] = \
        enforce_candidates(ctx, published, kmax)
    dag_metrics = read_published_metrics(root, day)
    info["chosen_method"] = dag_metrics["chosen_method"]

    pool = load_pool(root, config, "final")
    pool = pool.loc[in_eval[pool["user_idx"].to_numpy()]].reset_index(drop=True)
    info["base_models"] = methods.model_names_in(pool)
    for name in methods.model_names_in(pool):
        top = pool.loc[pool[f"rank_{name}"] <= kmax]
        recs = as_recs(ctx, top["user_idx"].to_numpy(), top["item_idx"].to_numpy(), top[f"rank_{name}"].to_numpy())
        lists[f"base: {name}"], info["dropped_by_candidate_rule"][name] = enforce_candidates(ctx, recs, kmax)
    fitted = methods.load_fitted_methods(root, config)
    for method, params in fitted.items():
        t0 = time.perf_counter()
        ranked = methods.top_k(pool, methods.fused_scores(method, params, pool), kmax)
        info["score_seconds"][f"fusion: {method}"] = time.perf_counter() - t0
        recs = as_recs(ctx, ranked["user_idx"].to_numpy(), ranked["item_idx"].to_numpy(), ranked["rank"].to_numpy())
        lists[f"fusion: {method}"], info["dropped_by_candidate_rule"][method] = enforce_candidates(ctx, recs, kmax)

    for label, recs in ablation_lists(root, config, pool, fitted, info).items():
        lists[label], info["dropped_by_candidate_rule"][label] = enforce_candidates(ctx, as_recs(
            ctx, recs["user_idx"].to_numpy(), recs["item_idx"].to_numpy(), recs["rank"].to_numpy()), kmax)

    # baselines: tune on (D-90, D] with data up to D-90, refit on data up to D
    vctx = context(root, config, "test")
    vrel = load_relevance(root, config, "test")
    active = np.asarray(vctx.seen.sum(axis=1)).ravel() > 0
    vrel = vrel.loc[active[vrel["user_idx"].to_numpy()]]
    vusers = np.unique(vrel["user_idx"].to_numpy())
    for name, (factory, grid) in baselines.BASELINES.items():
        best, best_ndcg = None, -1.0
        tried = []
        for params in grid:
            model = factory(**params).fit(vctx.seen, events_day=vctx.events_day, origin_day=vctx.origin_day,
                                          events=vctx.events_ui, item_known=vctx.known,
                                          seed=config.seed_for(name, "test"))
            u, i, r, _ = baselines.top_k(model, vusers, vctx.known, vctx.seen, 10)
            recs = pd.DataFrame({"user_idx": u, "item_idx": i, "rank": r})
            ndcg = float(per_user_metrics(recs, vrel, 10)["ndcg"].mean())
            tried.append({"params": params, "validation_ndcg@10": ndcg})
            if ndcg > best_ndcg:
                best, best_ndcg = params, ndcg
        t0 = time.perf_counter()
        model = factory(**best).fit(ctx.seen, events_day=ctx.events_day, origin_day=ctx.origin_day,
                                    events=ctx.events_ui, item_known=ctx.known, seed=config.seed_for(name, "final"))
        info["fit_seconds"][name] = time.perf_counter() - t0
        u, i, r, seconds = baselines.top_k(model, eval_users, ctx.known, ctx.seen, kmax)
        info["score_seconds"][name] = seconds
        info["params"][name] = {"chosen": best, "grid": tried}
        lists[f"baseline: {name}"] = as_recs(ctx, u, i, r)

    # relevance variants and segments
    catalogue = int(ctx.known.sum())
    rel = relevant[["user_id", "item_id"]]
    ui = relevant["user_idx"].to_numpy()
    head = (items >= 0) & head_items(ctx.seen, ctx.known)[items]
    variants = {
        "main": rel,
        "known_items": rel.loc[relevant["item_known"].to_numpy()],
        f"users_with_at_most_{COLD_USER_MAX_HISTORY}_past_interactions": rel.loc[cold_users(ctx.seen)[ui]],
        "users_without_trust_edges": rel.loc[~ctx.has_social[ui]],
        "long_tail_items": rel.loc[~head],
    }
    rows = []
    coverage: dict[str, dict[str, float]] = {}
    for name, recs in lists.items():
        coverage[name] = {}
        for variant, vr in variants.items():
            for k in (KS if variant in ("main", "known_items") else (10,)):
                pu = per_user_metrics(recs, vr, k)
                # coverage of the lists of this variant's users only (segments have fewer users)
                segment_recs = recs.loc[recs["user_id"].isin(vr["user_id"].unique())]
                coverage[name][f"{variant}@{k}"] = summarise(pu, segment_recs, catalogue, k)["coverage"]
                rows.append(pu.assign(list=name, variant=variant, k=k, date=day.isoformat()))
    info.update(date=day.isoformat(), catalogue=catalogue, users_evaluated=int(len(eval_users)),
                relevant_pairs=int(len(relevant)), relevant_known_share=float(relevant["item_known"].mean()),
                validation_users=int(len(vusers)), coverage=coverage,
                dag_holdout=_dag_holdout(dag_metrics))
    return {"per_user": pd.concat(rows, ignore_index=True), "info": info}


def ablation_lists(root: DataRoot, config: RunConfig, pool: pd.DataFrame, fitted: dict[str, dict[str, Any]],
                   info: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """The published fusion refitted on fewer modalities, and without the deep fusion method.

    For each modality subset, every fusion method of the run is refitted on the DAG's validation
    fold pools with only the base models (and context columns) of those modalities, the method
    with the best leave-one-fold-out NDCG is chosen as the DAG chooses, and its top-K of the final
    pool is the list. "all modalities" reuses the DAG's own fits (so it is the published choice);
    "all, no deep fusion" chooses among the other methods only.
    """
    kmax = max(KS)
    folds = methods.fold_pools(root, config)
    names = methods.model_names_in(pool)
    out: dict[str, pd.DataFrame] = {}
    info["ablation"] = {}

    def chosen_list(label: str, results: dict[str, dict[str, Any]]) -> None:
        best = methods.choose_method(results)
        info["ablation"][label] = {"chosen": best, "cv_ndcg": {m: r["cv_ndcg"] for m, r in results.items()}}
        out[f"ablation: {label}"] = methods.top_k(pool, methods.fused_scores(best, results[best], pool), kmax)

    for label, subset in ABLATIONS.items():
        kept = tuple(n for n in names if set(models.get(n).modalities) <= set(subset))
        data = methods.FitInput(folds=folds, models=kept, context=context_columns(subset), k=config.top_k,
                                seed=config.seed_for("ablation", label))
        chosen_list(label, {m: methods.fit_with_cv(methods.get(m), data) for m in config.methods})
    chosen_list("all modalities", fitted)
    if "deep_fusion" in fitted and len(fitted) > 1:
        chosen_list("all, no deep fusion", {m: r for m, r in fitted.items() if m != "deep_fusion"})
    return out


def _dag_holdout(report: dict[str, Any]) -> dict[str, Any]:
    return {"chosen": report["chosen_method"], "k": report["k"],
            "ndcg": {m: v["ndcg"] for m, v in report["metrics"].items()},
            "cv_ndcg": {m: v.get("cv_ndcg") for m, v in report["fusion"].items()}}


def aggregate(per_date: list[dict[str, Any]], conf: dict[str, Any], dates: list[dt.date],
              timings: dict[str, Any], horizon_days: int = HORIZON_DAYS) -> dict[str, Any]:
    """The origins pooled: a table per variant and segment, the paired comparisons of the headline and
    of the ablation, NDCG@10 per origin and list, and mean seconds per date (the raw numbers of the report)."""
    frame = pd.concat([p["per_user"] for p in per_date], ignore_index=True)
    infos = [p["info"] for p in per_date]
    tables: dict[str, dict[str, Any]] = {}
    for (variant, k, name), group in frame.groupby(["variant", "k", "list"], sort=False):
        summary = summarise(group, pd.DataFrame({"user": [], "item": [], "rank": []}), 0, k)
        summary["coverage"] = float(np.mean([i["coverage"][name][f"{variant}@{k}"] for i in infos
                                             if name in i["coverage"]]))
        tables.setdefault(f"{variant}@{k}", {})[name] = summary
    main = frame.loc[(frame["variant"] == "main") & (frame["k"] == 10)]
    wide = main.pivot_table(index=["date", "user"], columns="list", values="ndcg")
    names = list(wide.columns)

    def best(prefix: str) -> str:
        cands = [n for n in names if n.startswith(prefix)]
        return max(cands, key=lambda n: wide[n].mean())

    best_fusion = max([n for n in names if n.startswith(("fusion", "published"))], key=lambda n: wide[n].mean())
    comparisons = {}
    # the published list is what the targets are about; the best fusion on this table is an optimistic bound
    for side, fusion in (("published", "published (chosen fusion)"), ("best fusion on this table", best_fusion)):
        for label, other in (("best single base model", best("base: ")), ("best baseline", best("baseline: "))):
            both = wide[[fusion, other]].dropna()
            diff = (both[fusion] - both[other]).to_numpy()
            se = float(diff.std(ddof=1) / np.sqrt(len(diff)))
            comparisons[f"{side} vs {label}"] = {
                "fusion": fusion, "other": other, "n_pairs": len(diff),
                "fusion_ndcg": float(both[fusion].mean()), "other_ndcg": float(both[other].mean()),
                "mean_diff": float(diff.mean()), "se_diff": se,
                "z": float(diff.mean() / se) if se > 0 else float("nan"),
                "ratio": float(both[fusion].mean() / both[other].mean()) if both[other].mean() > 0 else float("nan")}
    ablation = {}
    reference = "ablation: all modalities"
    for name in [n for n in names if n.startswith("ablation: ")]:
        both = wide[list(dict.fromkeys([name, reference]))].dropna()
        diff = (both[name] - both[reference]).to_numpy()
        se = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else float("nan")
        ablation[name.removeprefix("ablation: ")] = {
            "ndcg": float(both[name].mean()), "ndcg_se": float(both[name].std(ddof=1) / np.sqrt(len(both))),
            "diff_vs_all": float(diff.mean()), "se_diff": se,
            "z": float(diff.mean() / se) if se and se > 0 else float("nan"), "n_pairs": len(diff)}
    per_origin = {name: {d: float(v) for d, v in main.loc[main["list"] == name].groupby("date")["ndcg"].mean().items()}
                  for name in names}
    fit_seconds: dict[str, float] = {}
    score_seconds: dict[str, float] = {}
    for i in infos:
        for n, s in i["fit_seconds"].items():
            fit_seconds[f"baseline: {n}"] = fit_seconds.get(f"baseline: {n}", 0.0) + s / len(infos)
        for n, s in i["score_seconds"].items():
            key = n if n.startswith("fusion") else f"baseline: {n}"
            score_seconds[key] = score_seconds.get(key, 0.0) + s / len(infos)
    for run in timings["runs"].values():
        for model, fits in run["fit_seconds"].items():
            if "final" in fits:
                fit_seconds[f"base: {model}"] = fit_seconds.get(f"base: {model}", 0.0) + fits["final"] / len(infos)
    return {"dates": [d.isoformat() for d in dates], "conf": conf, "horizon_days": horizon_days,
            "tables": tables, "comparisons": comparisons, "ablation": ablation, "per_origin": per_origin,
            "fit_seconds": fit_seconds,
            "score_seconds": score_seconds, "per_date": infos, "timings": timings,
            "users_evaluated": {k: int(v) for k, v in main.groupby("list").size().items()}}

