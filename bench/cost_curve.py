"""How the cost of a run grows with the data: ``python -m bench.cost_curve`` (part of ``make bench-speed``).

Synthetic worlds of ``--events`` events (default 10^5, 10^6, 10^7) with users and items growing with them
(``scaled_sizes``), each run through every stage of the pipeline, one fresh process per stage as the DAG runs
its tasks: per stage, wall seconds, CPU seconds (every thread) and the process's peak RSS. Then, per stage,
the exponent ``b`` of a least-squares fit of ``log cost = a + b log events`` (the goal: ``b`` ≤ 1.1), and,
on the largest world, in the same run:

* the machine's float32 matrix-product peak (``numpy.matmul`` of square matrices, the best of a few sizes);
* the factor model (ALS) scored as the pools score it, for every user (the product in cache-sized blocks, the
  mask of seen items, the moments, the top-N): its floating-point operations (``2 · users · known items ·
  factors``) per second as a fraction of that peak; the pool of ALS alone (with the pool's features); and the
  bare product in blocks of 4,096 users, without masking or top-N;
* each behavioural fit against its anchor on the same matrix: ALS against ``implicit``'s own fit called
  directly, EASE against its bare recipe (the Gram matrix and a float32 Cholesky inverse).

The worlds are run with the settings every size can afford (``CONFIG``: one validation fold, base models
with their default settings; per-run tuning multiplies a model's fits by the settings it tries, so its
exponent is the fit's). Writes ``bench/cost_curve.md``, ``bench/cost_curve.json`` (the raw numbers) and
``bench/plots/cost_curve.png``, all committed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from fusion_tasks.config import PROJECT_ROOT

TABLE = PROJECT_ROOT / "bench" / "cost_curve.md"  # committed, with the plot and the raw numbers beside it
PLOT = PROJECT_ROOT / "bench" / "plots" / "cost_curve.png"
DAYS = 365
START = dt.date(2024, 1, 1)
# the smallest world, and how users and items grow with events from it (users x items, the size of full
# ranking, then grows like events ** (USER_GROWTH + ITEM_GROWTH))
BASE_EVENTS, BASE_USERS, BASE_ITEMS = 100_000, 3_000, 2_000
USER_GROWTH, ITEM_GROWTH = 0.7, 0.4
N_CATEGORIES = 20
TIES_PER_USER = 8
MIN_FITTED_SECONDS = 1.0  # stages shorter than this on every world get no exponent
CONFIG = {"ndcg_floor": 0.0, "n_folds": 1, "tune_models": False, "holdout_days": 30, "validation_days": 30}


def scaled_sizes(events: int) -> tuple[int, int]:
    """(users, items) of the world of ``events`` events."""
    growth = events / BASE_EVENTS
    return round(BASE_USERS * growth ** USER_GROWTH), round(BASE_ITEMS * growth ** ITEM_GROWTH)


def generate_scaled(landing_root: Path, events: int, seed: int = 11) -> dict[str, int]:
    """Write a world of ``events`` behaviour events over ``DAYS`` days (Parquet, one file per day), one content
    file (every item's category, brand, price and tags) and one social file, under ``landing_root``.

    Vectorised, so that 10^7 events take about a minute: users have a taste over categories and an activity
    level; an event's item is drawn from a category the user likes, by the item's popularity within it
    (a power law); ties point mostly to users who share the favourite category.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from fusion_tasks.storage import DataRoot

    root = DataRoot(landing_root)
    rng = np.random.default_rng(seed)
    n_users, n_items = scaled_sizes(events)
    taste = rng.dirichlet(np.full(N_CATEGORIES, 0.3), size=n_users)
    activity = rng.lognormal(0.0, 1.0, n_users)
    item_category = rng.integers(0, N_CATEGORIES, n_items)
    appeal = rng.permutation(np.arange(1, n_items + 1) ** -0.8)
    by_category = [np.flatnonzero(item_category == c) for c in range(N_CATEGORIES)]
    cdf = [np.cumsum(appeal[items]) / appeal[items].sum() for items in by_category]

    user = rng.choice(n_users, size=events, p=activity / activity.sum())
    category = (rng.random(events)[:, None] > np.cumsum(taste[user], axis=1)).sum(axis=1).clip(0, N_CATEGORIES - 1)
    item = np.empty(events, dtype=np.int64)
    for c in range(N_CATEGORIES):
        at = np.flatnonzero(category == c)
        item[at] = by_category[c][np.searchsorted(cdf[c], rng.random(len(at))).clip(0, len(cdf[c]) - 1)]
    second = np.sort(rng.integers(0, DAYS * 86_400, events))
    kind = rng.choice(np.array(["view", "click", "purchase", "rating"]), size=events, p=[0.4, 0.3, 0.15, 0.15])
    value = np.where(kind == "rating", rng.integers(1, 6, events), 1).astype("float64")
    stamps = (np.datetime64(START.isoformat(), "s") + second.astype("timedelta64[s]"))
    user_ids = np.char.add("u", np.arange(n_users).astype(str)).astype(object)
    item_ids = np.char.add("i", np.arange(n_items).astype(str)).astype(object)
    bounds = np.searchsorted(second, np.arange(DAYS + 1) * 86_400)
    for day in range(DAYS):
        lo, hi = bounds[day], bounds[day + 1]
        path = root.landing_day("behavior", START + dt.timedelta(days=day)) / "events.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({"user_id": user_ids[user[lo:hi]], "item_id": item_ids[item[lo:hi]],
                                 "event_type": kind[lo:hi], "value": value[lo:hi],
                                 "timestamp": pa.array(stamps[lo:hi], pa.timestamp("s", tz="UTC"))}), path)

    path = root.landing_day("content", START) / "items.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    tags = np.char.add(np.char.add("t", item_category.astype(str)),
                       np.char.add("_", rng.integers(0, 5, n_items).astype(str)))
    pq.write_table(pa.table({"item_id": item_ids, "valid_from": [START.isoformat()] * n_items,
                             "category": np.char.add("category_", item_category.astype(str)).astype(object),
                             "brand": np.char.add("b", rng.integers(0, 50, n_items).astype(str)).astype(object),
                             "price": np.round(rng.lognormal(3.0, 0.5, n_items), 2), "tags": tags.astype(object)}),
                   path)

    favourite = taste.argmax(axis=1)
    members = [np.flatnonzero(favourite == c) for c in range(N_CATEGORIES)]
    src = np.repeat(np.arange(n_users), TIES_PER_USER)
    same = rng.random(len(src)) < 0.7
    dst = rng.integers(0, n_users, len(src))
    for c in range(N_CATEGORIES):
        at = np.flatnonzero(same & (favourite[src] == c))
        if len(members[c]):
            dst[at] = members[c][rng.integers(0, len(members[c]), len(at))]
    keep = src != dst
    edges = np.unique(np.stack([src[keep], dst[keep]], axis=1), axis=0)
    path = root.landing_day("social", START) / "edges.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"src_user_id": user_ids[edges[:, 0]], "dst_user_id": user_ids[edges[:, 1]],
                             "edge_type": ["follow"] * len(edges), "weight": np.ones(len(edges)),
                             "valid_from": [START.isoformat()] * len(edges)}), path)
    return {"events": events, "users": n_users, "items": n_items, "ties": len(edges)}


# One stage per process (as the DAG runs it): argv[1] = {"root", "config", "stage", "name"}; prints its costs.
STAGE_CHILD = r"""
import json, sys, time
args = json.loads(sys.argv[1])
from fusion_tasks import pipeline
from fusion_tasks.config import RunConfig
from fusion_tasks.evaluation.report import evaluate_run, quality_gate
from fusion_tasks.fusion.candidates import build_pools, enabled_models
from fusion_tasks.fusion.methods import fit_method
from fusion_tasks.models import train_model
from fusion_tasks.publish import fuse_recommendations, publish
from fusion_tasks.storage import DataRoot
from fusion_tasks.training_data import build_training_data
root, config = DataRoot(args["root"]), RunConfig.from_dict({**args["config"], "data_root": args["root"]})
stage, name = args["stage"], args["name"]
steps = {"extract": lambda: pipeline.extract(root, config, name),
         "build_training_data": lambda: build_training_data(root, config),
         "train": lambda: train_model(root, config, name),
         "score_candidates": lambda: build_pools(root, config, enabled_models(config)),
         "fit": lambda: fit_method(root, config, name), "evaluate": lambda: evaluate_run(root, config),
         "fuse_recommendations": lambda: fuse_recommendations(root, config),
         "quality_gate": lambda: quality_gate(root, config), "publish": lambda: publish(root, config)}
wall, cpu = time.perf_counter(), time.process_time()
steps[stage]()
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
# the peak RSS of this program: VmHWM starts afresh at exec (ru_maxrss keeps the forking parent's size)
with open("/proc/self/status") as status:
    peak_kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
print(json.dumps({"wall": wall, "cpu": cpu, "peak_mib": peak_kib / 1024}))
"""


def stages(config: dict) -> list[tuple[str, str, str]]:
    """(label, stage, name) of every stage of a run, in the DAG's order."""
    from fusion_tasks.config import RunConfig
    from fusion_tasks.fusion.candidates import enabled_models

    run = RunConfig.from_dict({**config, "data_root": "."})
    return ([(f"extract_{m}", "extract", m) for m in run.modalities]
            + [("build_training_data", "build_training_data", "")]
            + [(f"train_{m}", "train", m) for m in enabled_models(run)]
            + [("score_candidates", "score_candidates", "")]
            + [(f"fit_{m}", "fit", m) for m in run.methods]
            + [("evaluate", "evaluate", ""), ("fuse_recommendations", "fuse_recommendations", ""),
               ("quality_gate", "quality_gate", ""), ("publish_recommendations", "publish", "")])


def run_stages(root: Path, config: dict) -> dict[str, dict[str, float]]:
    costs = {}
    for label, stage, name in stages(config):
        done = subprocess.run([sys.executable, "-c", STAGE_CHILD, json.dumps(
            {"root": str(root), "config": config, "stage": stage, "name": name})], capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"{label} failed on {root}:\n{done.stderr[-3000:]}")
        costs[label] = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"  {label}: {costs[label]['wall']:.1f} s wall, {costs[label]['cpu']:.1f} s CPU, "
              f"{costs[label]['peak_mib']:.0f} MiB", flush=True)
    return costs


def exponent(events: list[int], costs: list[float]) -> float:
    """The slope of log cost on log events (least squares); NaN with fewer than two positive costs."""
    pairs = [(math.log(e), math.log(c)) for e, c in zip(events, costs, strict=True) if c > 0]
    if len(pairs) < 2:
        return float("nan")
    x, y = np.array(pairs).T
    return float(np.polyfit(x, y, 1)[0])


def gemm_peak(repeats: int = 3) -> float:
    """The best float32 matrix-product rate of this process (GFLOP/s), over a few square sizes."""
    rng = np.random.default_rng(0)
    best = 0.0
    for n in (1024, 2048, 3072):
        a, b = rng.standard_normal((n, n), dtype="float32"), rng.standard_normal((n, n), dtype="float32")
        a @ b
        for _ in range(repeats):
            started = time.perf_counter()
            a @ b
            best = max(best, 2 * n ** 3 / (time.perf_counter() - started) / 1e9)
    return best


ANCHOR_CHILD = r"""
import json, sys, time
import numpy as np
from scipy import linalg
from fusion_tasks.config import RunConfig
from fusion_tasks.fusion.candidates import score_pool
from fusion_tasks.models import make
from fusion_tasks.models.base import decayed_interactions
from fusion_tasks.storage import DataRoot
from fusion_tasks.training_data import TrainingData
args = json.loads(sys.argv[1])
root, config = DataRoot(args["root"]), RunConfig.from_dict({**args["config"], "data_root": args["root"]})
data = TrainingData.load(root, config, "final")
out = {}
def best(f, n=3):
    times = []
    for _ in range(n):
        t = time.perf_counter(); value = f(); times.append(time.perf_counter() - t)
    return min(times), value
# ALS: the model's fit against implicit's fit on the same matrix and settings
out["als_fit"], als = best(lambda: make("als", config, "final").fit(data))
def implicit_fit():
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits
    matrix = decayed_interactions(data, als.half_life_days)
    matrix.data = np.log1p(matrix.data).astype("float32")
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(factors=als.factors, regularization=als.regularization, alpha=als.alpha,
                                        iterations=als.iterations, random_state=0, num_threads=1)
        model.fit(matrix.tocsr(), show_progress=False)
out["als_anchor"], _ = best(implicit_fit)
# EASE: the model's fit against the Gram matrix and a float32 Cholesky inverse of the same items
ease = make("ease", config, "final")
out["ease_fit"], ease = best(lambda: make("ease", config, "final").fit(data))
def ease_anchor():
    binary = data.interactions.tocsr(copy=True); binary.data[:] = 1.0
    sub = binary[:, ease.items_]
    gram = (sub.T @ sub).toarray().astype("float32"); gram[np.diag_indices_from(gram)] += ease.l2
    factor = linalg.cho_factor(gram, lower=True, overwrite_a=True, check_finite=False)
    return linalg.cho_solve(factor, np.eye(len(gram), dtype="float32"), overwrite_b=True, check_finite=False)
out["ease_anchor"], _ = best(ease_anchor)
out["ease_items"] = int(len(ease.items_))
# scoring: ALS as the pools score it (product, mask of the seen items, moments, top-N) for every user; the pool of
# ALS alone (that scoring per block of users, and the pool's features); the bare product of the same factors
from fusion_tasks.fusion.candidates import _Factored
users = np.arange(data.n_users)
seen = data.seen.tocsr(copy=True); seen.sum_duplicates()
seen_rows, seen_cols = np.repeat(users, np.diff(seen.indptr)), seen.indices
n_valid = np.maximum(int(data.item_known.sum()) - np.diff(seen.indptr), 1)
factored = _Factored(als.item_factors_, data.item_known)
out["score_seconds"], _ = best(lambda: factored.score(als.user_factors_, seen_rows, seen_cols, n_valid,
                                                      config.candidates_per_model))
out["pool_seconds"], _ = best(lambda: score_pool(data, {"als": als}, users, config.candidates_per_model), n=1)
out["known_items"] = int(data.item_known.sum())
def product():
    for start in range(0, len(users), 4096):
        als.user_factors_[users[start:start + 4096]] @ als.item_factors_.T
out["product_seconds"], _ = best(product)
out.update(users=int(data.n_users), items=int(data.n_items), factors=int(als.factors))
print(json.dumps(out))
"""


def anchors(root: Path, config: dict) -> dict[str, float]:
    done = subprocess.run([sys.executable, "-c", ANCHOR_CHILD, json.dumps({"root": str(root), "config": config})],
                          capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"the anchors failed on {root}:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(worlds: dict[int, dict], anchor: dict | None, peak: float, config: dict, plot_link: str) -> list[str]:
    events = sorted(worlds)
    labels = list(dict.fromkeys(label for e in events for label in worlds[e]["costs"]))
    head = " | ".join(f"{e:.0e} wall s | CPU s | peak MiB" for e in events)
    lines = ["# Cost curve", "", f"`python -m bench.cost_curve --events {' '.join(str(e) for e in events)}` on "
             f"{time.strftime('%Y-%m-%d')}, one fresh process per stage, settings `{json.dumps(config)}`. "
             "Exponent: the slope of log cost on log events over every world (least squares), and between the largest "
             "two (small worlds are dominated by each process's start, which flattens the first); goal ≤ 1.1; none "
             f"for a stage under {MIN_FITTED_SECONDS:g} s on every world.", "",
             "| world | events | users | items | ties | generated in s |", "|---|---|---|---|---|---|",
             *[f"| {e:.0e} | {w['world']['events']:,} | {w['world']['users']:,} | {w['world']['items']:,} | "
               f"{w['world']['ties']:,} | {w['generate_seconds']:.1f} |" for e, w in sorted(worlds.items())], "",
             f"| stage | {head} | exponent (CPU) | exponent (wall) | CPU exponent between the largest two |",
             "|---|" + "---|---|---|" * len(events) + "---|---|---|"]
    for label in labels:
        cells = []
        for e in events:
            c = worlds[e]["costs"].get(label)
            cells += [f"{c['wall']:.2f}", f"{c['cpu']:.2f}", f"{c['peak_mib']:.0f}"] if c else ["–"] * 3
        cpu = [worlds[e]["costs"].get(label, {}).get("cpu", 0) for e in events]
        wall = [worlds[e]["costs"].get(label, {}).get("wall", 0) for e in events]
        slopes = (f"{exponent(events, cpu):.2f} | {exponent(events, wall):.2f} | {exponent(events[-2:], cpu[-2:]):.2f}"
                  if max(wall) >= MIN_FITTED_SECONDS else "– | – | –")  # mostly its process's start: no slope
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {slopes} |")
    totals = [sum(c["cpu"] for c in worlds[e]["costs"].values()) for e in events]
    walls = [sum(c["wall"] for c in worlds[e]["costs"].values()) for e in events]
    cells = []
    for e, w, c in zip(events, walls, totals, strict=True):
        cells += [f"**{w:.1f}**", f"**{c:.1f}**", f"{max(s['peak_mib'] for s in worlds[e]['costs'].values()):.0f}"]
    lines.append("| whole run | " + " | ".join(cells) + f" | {exponent(events, totals):.2f} | "
                 f"{exponent(events, walls):.2f} | {exponent(events[-2:], totals[-2:]):.2f} |")
    lines += ["", f"Float32 matrix-product peak of this machine, measured in this run: **{peak:.1f} GFLOP/s**."]
    if anchor:
        flops = 2 * anchor["users"] * anchor.get("known_items", anchor["items"]) * anchor["factors"]
        lines += ["", f"On the largest world ({anchor['users']:,} users × {anchor['items']:,} items, final origin), "
                  "best of three:", "",
                  "| measure | this pipeline, s | anchor, s | ratio |", "|---|---|---|---|",
                  f"| ALS fit vs `implicit`'s fit called directly | {anchor['als_fit']:.2f} | "
                  f"{anchor['als_anchor']:.2f} | {anchor['als_fit'] / anchor['als_anchor']:.2f} |",
                  f"| EASE fit ({anchor['ease_items']:,} items) vs Gram + float32 Cholesky inverse | "
                  f"{anchor['ease_fit']:.2f} | {anchor['ease_anchor']:.2f} | "
                  f"{anchor['ease_fit'] / anchor['ease_anchor']:.2f} |",
                  f"| ALS scoring of every user as the pools do it (product, mask, moments, top-N) vs the bare "
                  f"product | {anchor['score_seconds']:.2f} | {anchor['product_seconds']:.2f} | "
                  f"{anchor['score_seconds'] / anchor['product_seconds']:.2f} |"]
        if "pool_seconds" in anchor:
            lines.append(f"| the pool of ALS alone (that scoring per block of users, and the pool's features) vs the "
                         f"bare product | {anchor['pool_seconds']:.2f} | {anchor['product_seconds']:.2f} | "
                         f"{anchor['pool_seconds'] / anchor['product_seconds']:.2f} |")
        rate = flops / anchor["score_seconds"] / 1e9
        bare = 2 * anchor["users"] * anchor["items"] * anchor["factors"] / anchor["product_seconds"] / 1e9
        lines += ["", f"ALS scoring as the pools do it: {rate:.1f} GFLOP/s, **{rate / peak:.1%} of the peak** (the "
                  f"bare product, in blocks of 4,096 users: {bare / peak:.1%}); "
                  f"{anchor['factors']} factors make the product a thin one, bound by memory more than by arithmetic."]
    lines += ["", f"![CPU seconds per stage against events]({plot_link})", ""]
    return lines


def plot(worlds: dict[int, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    events = sorted(worlds)
    labels = list(dict.fromkeys(label for e in events for label in worlds[e]["costs"]))
    fig, ax = plt.subplots(figsize=(9, 5.5))
    shown = [label for label in labels  # stages too short to read a slope from are left out, as in the table
             if max(worlds[e]["costs"].get(label, {}).get("wall", 0) for e in events) >= MIN_FITTED_SECONDS]
    colours = plt.get_cmap("tab20").colors
    for n, label in enumerate(shown):
        ax.plot(events, [worlds[e]["costs"].get(label, {}).get("cpu", np.nan) for e in events],
                marker="osD^v"[n % 5], color=colours[n % len(colours)], label=label)
    ax.plot(events, [sum(c["cpu"] for c in worlds[e]["costs"].values()) for e in events], marker="s", color="black",
            linewidth=2.5, label="whole run")
    ref = sum(c["cpu"] for c in worlds[events[0]]["costs"].values())
    ax.plot(events, [ref * (e / events[0]) ** 1.1 for e in events], linestyle="--", color="grey",
            label="slope 1.1 from the whole run")
    ax.set(xscale="log", yscale="log", xlabel="events", ylabel="CPU seconds",
           title=f"CPU seconds per stage against the world's events (stages of {MIN_FITTED_SECONDS:g} s or more)")
    ax.legend(fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, nargs="+", default=[100_000, 1_000_000, 10_000_000])
    parser.add_argument("--out", type=Path, default=TABLE)
    parser.add_argument("--plot", type=Path, default=PLOT)
    parser.add_argument("--no-anchors", action="store_true", help="skip the anchors and the GEMM peak")
    parser.add_argument("--from-json", type=Path, help="write the table and plot again from a run's raw numbers")
    args = parser.parse_args(argv)
    if args.from_json:
        raw = json.loads(args.from_json.read_text())
        write(args, {int(e): w for e, w in raw["worlds"].items()}, raw["anchors"], raw["gemm_peak_gflops"],
              raw["config"])
        return 0

    worlds: dict[int, dict] = {}
    anchor = None
    base = Path(tempfile.mkdtemp(prefix="fusionrec-cost-"))
    end = (START + dt.timedelta(days=DAYS - 1)).isoformat()
    config = {**CONFIG, "as_of_date": end}
    try:
        for events in sorted(args.events):
            root = base / f"world-{events}"
            started = time.perf_counter()
            world = generate_scaled(root, events)
            generated = time.perf_counter() - started
            print(f"world of {events:,} events: {world}, generated in {generated:.1f} s", flush=True)
            worlds[events] = {"world": world, "generate_seconds": generated, "costs": run_stages(root, config)}
            if events == max(args.events) and not args.no_anchors:
                anchor = anchors(root, config)
            if events != max(args.events):
                shutil.rmtree(root, ignore_errors=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    peak = 0.0 if args.no_anchors else gemm_peak()
    write(args, worlds, anchor, peak, config)
    return 0


def write(args: argparse.Namespace, worlds: dict[int, dict], anchor: dict | None, peak: float, config: dict) -> None:
    link = os.path.relpath(args.plot.resolve(), args.out.resolve().parent)
    lines = report(worlds, anchor, peak, config, link)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    raw = args.out.with_suffix(".json")
    if not args.from_json or args.from_json.resolve() != raw.resolve():
        raw.write_text(json.dumps({"config": config, "worlds": worlds, "anchors": anchor,
                                   "gemm_peak_gflops": peak}, indent=1))
    plot(worlds, args.plot)
    print("\n".join(lines))


if __name__ == "__main__":
    raise SystemExit(main())
