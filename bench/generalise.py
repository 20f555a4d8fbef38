"""Quality on worlds the pipeline was not shaped on: ``python -m bench.generalise`` (``make bench-generalise``).

Ciao is one data set, and every choice checked on it can be a choice shaped by it. This benchmark scores the
same lists as ``make bench-quality`` (the published top-K, every base model, every fusion method, the modality
ablation and the tuned external baselines of ``bench.baselines``) on synthetic worlds of other shapes: denser,
sparser and faster-moving, and worlds where one modality carries the signal (``fusion_tasks.synthetic.REGIMES``).
For each world it generates ``--days`` days of landing files, runs the pipeline at the DAG's default settings
(14-day holdout and validation windows, three folds; the gate opened so every date publishes) for the last
``--dates`` origins, 15 days apart, and scores what each user did for the first time in the ``--horizon`` days
after each origin. Written to ``bench/generalisation.md`` (raw numbers: ``bench/out/generalisation.json``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from bench.quality import OUT, log
from bench.quality.running import run_date
from bench.quality.scoring import aggregate, all_behaviour, evaluate_date
from fusion_tasks.config import PROJECT_ROOT
from fusion_tasks.storage import DataRoot
from fusion_tasks.synthetic import REGIMES, SyntheticSpec, generate

# the DAG's default windows; top_k 20 as in bench-quality; the gate opened so every origin publishes
CONF: dict[str, Any] = {"holdout_days": 14, "validation_days": 14, "n_folds": 3, "ndcg_floor": 0.0, "top_k": 20,
                        "candidates_per_model": 50, "regression_tolerance": 1.0}
# (SyntheticSpec overrides, what the world is): shapes other than Ciao's, then one modality dominant
WORLDS: dict[str, tuple[dict[str, Any], str]] = {
    "mixed": ({}, "the generator's defaults: every modality matters"),
    "dense": (dict(n_users=800, n_items=600, daily_activity=0.8, behavior_signal=1.5),
              "a denser world where co-occurrence carries more"),
    "content + social": (dict(content_signal=2.5, social_signal=3.0), "strong category tastes and ties"),
    "tags only": (dict(content_signal=2.5, social_signal=3.0, category_visible=False),
                  "the same, with the category left out of the content files: only the tags show it"),
    "sparse fast-moving": (dict(daily_activity=0.12, social_memory=0.5, share_released_later=0.6, quality_signal=0.3),
                           "sparse histories, short-lived social influence, many new items"),
    **{f"regime: {name}": (regime.settings, f"{regime.dominant} carries the signal") for name, regime in
       REGIMES.items()},
}
OUT_MD = PROJECT_ROOT / "bench" / "generalisation.md"


def evaluate_world(base: Path, name: str, days: int, n_dates: int, horizon: int, runner: str,
                   **sizes: Any) -> dict[str, Any]:
    """Generate one world (``sizes``: further ``SyntheticSpec`` overrides), run the pipeline at its origins and
    score every list: ``aggregate``'s result."""
    overrides, _ = WORLDS[name]
    spec = SyntheticSpec(**{"n_days": days, **overrides, **sizes})
    root = DataRoot(base / name.replace(" ", "_").replace(":", "").replace("+", "and"))
    generate(root, spec)
    last = spec.end - dt.timedelta(days=horizon)
    dates = [last - dt.timedelta(days=15 * n) for n in range(n_dates - 1, -1, -1)]
    events = all_behaviour(root, spec.end)
    per_date, timings = [], {"runs": {}}
    for day in dates:
        timings["runs"][day.isoformat()] = run_date(root, day, CONF, runner)
        per_date.append(evaluate_date(root, day, CONF, events, horizon_days=horizon))
    return aggregate(per_date, CONF, dates, timings, horizon_days=horizon)


def headline(results: dict[str, dict[str, Any]]) -> list[str]:
    """One row per world: the published list against the best base model and the best tuned baseline (each
    picked on the same table), and all modalities against behaviour only, paired per (user, date)."""
    lines = ["| world | pairs | published | best base model | vs it: diff ± SE (z), ratio | best baseline | "
             "vs it: diff ± SE (z), ratio | all modalities vs behaviour only | chosen methods |",
             "|---|---|---|---|---|---|---|---|---|"]
    for world, result in results.items():
        base = result["comparisons"]["published vs best single base model"]
        baseline = result["comparisons"]["published vs best baseline"]
        only = result["ablation"].get("behavior only")
        chosen = pd.Series([d["chosen_method"] for d in result["per_date"]]).value_counts()
        lines.append(
            f"| {world} | {base['n_pairs']} | {base['fusion_ndcg']:.4f} | {base['other'].removeprefix('base: ')} "
            f"{base['other_ndcg']:.4f} | {_diff(base)} | {baseline['other'].removeprefix('baseline: ')} "
            f"{baseline['other_ndcg']:.4f} | {_diff(baseline)} | "
            + (f"{-only['diff_vs_all']:+.4f} ± {only['se_diff']:.4f} ({-only['z']:.1f})" if only else "–")
            + " | " + ", ".join(f"{m} {n}" for m, n in chosen.items()) + " |")
    return lines


def _diff(comparison: dict[str, Any]) -> str:
    return (f"{comparison['mean_diff']:+.4f} ± {comparison['se_diff']:.4f} ({comparison['z']:.1f}), "
            f"{comparison['ratio']:.2f}×")


def every_list(results: dict[str, dict[str, Any]]) -> list[str]:
    """NDCG@10 (main variant) of every list, a column per world."""
    worlds = list(results)
    names = list(dict.fromkeys(n for r in results.values() for n in r["tables"]["main@10"]))
    lines = ["| list | " + " | ".join(worlds) + " |", "|---|" + "---|" * len(worlds)]
    for name in names:
        cells = [f"{results[w]['tables']['main@10'][name]['ndcg']:.4f}" if name in results[w]["tables"]["main@10"]
                 else "–" for w in worlds]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def markdown(results: dict[str, dict[str, Any]], args: argparse.Namespace, seconds: float) -> str:
    return "\n".join([
        "# Quality on worlds fusionrec was not shaped on", "",
        f"Generated by `make bench-generalise` (`python -m bench.generalise`) on {time.strftime('%Y-%m-%d')} in "
        f"{seconds / 60:.0f} minutes; raw numbers in `bench/out/generalisation.json`.", "",
        "## Protocol", "",
        f"* Worlds: `fusion_tasks.synthetic.generate`, {args.days} days, seed 7, with these `SyntheticSpec` "
        "overrides:",
        *[f"  * **{w}** ({WORLDS[w][1]}): `{json.dumps(WORLDS[w][0])}`" for w in results],
        f"* Origins: the last {args.dates} dates 15 days apart whose {args.horizon}-day horizon the world covers. "
        f"At each the pipeline ran (`{args.runner}` runner) with `{json.dumps(CONF)}`: the DAG's default windows, "
        "every setting chosen on the run's own validation folds, nothing set for these worlds.",
        f"* Test: what each user did for the first time in (D, D+{args.horizon}d], every item known by D minus "
        "the user's past items ranked, as in `BENCHMARKS.md` (main variant, K = 10), pooled over origins, paired "
        "per (user, date). Baselines (`bench/baselines.py`): each tuned on the DAG's holdout window before D with "
        "data up to its start, refitted on data up to D.",
        "* \"Best\" base model and baseline are picked on this table, which favours them.", "",
        "## Published list against the best single model and the best tuned baseline", "",
        *headline(results), "",
        "## NDCG@10 of every list", "", *every_list(results), ""])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.generalise", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worlds", default=",".join(WORLDS), help=f"comma-separated, of: {', '.join(WORLDS)}")
    parser.add_argument("--days", type=int, default=150, help="days of landing files per world")
    parser.add_argument("--dates", type=int, default=3, help="origins per world")
    parser.add_argument("--horizon", type=int, default=30, help="days after an origin that are scored")
    parser.add_argument("--runner", choices=("pipeline", "airflow"), default="pipeline")
    parser.add_argument("--out", type=Path, default=OUT_MD)
    args = parser.parse_args(argv)
    worlds = [w.strip() for w in args.worlds.split(",") if w.strip()]
    unknown = sorted(set(worlds) - set(WORLDS))
    if unknown:
        parser.error(f"unknown world(s) {unknown}; known: {list(WORLDS)}")
    started = time.perf_counter()
    base = Path(tempfile.mkdtemp(prefix="fusionrec-generalise-"))
    results: dict[str, dict[str, Any]] = {}
    try:
        for world in worlds:
            t0 = time.perf_counter()
            results[world] = evaluate_world(base, world, args.days, args.dates, args.horizon, args.runner)
            log(f"{world}: {time.perf_counter() - t0:.0f}s")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    seconds = time.perf_counter() - started
    OUT.mkdir(parents=True, exist_ok=True)
    raw = {w: {k: r[k] for k in ("dates", "conf", "horizon_days", "tables", "comparisons", "ablation")}
           | {"chosen": [d["chosen_method"] for d in r["per_date"]]} for w, r in results.items()}
    (OUT / "generalisation.json").write_text(json.dumps(raw, indent=1, default=str) + "\n")
    text = markdown(results, args, seconds)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
