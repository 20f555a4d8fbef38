"""Extraction speed and memory during a backfill: ``python -m bench.speed`` (``make bench-speed``).

A backfill extracts every modality once per date, and each date reads all landing files up to it.
This measures, on a seeded synthetic world of ``--days`` days of landing files, extracting the last ``--dates``
dates one after another (as a backfill does) in two ways, each in a fresh process:

* ``cold`` (the baseline): the landing cache is removed before every extraction, so each date
  reads and validates every landing file again, as extraction did before the cache existed (and
  also rewrites the cache, so this is slightly slower than having no cache at all);
* ``cached``: the cache is kept, so each date reads only the files it has not seen.

Both produce the same staged files (``tests/unit/test_extract_cache.py``). The table gives, per
modality, the median seconds per date over ``--repeats`` runs and the peak RSS of the process, with
ratios against the baseline measured in the same run.

Then the stages of whole runs (``fusion_tasks.pipeline.run_all``, each in a fresh process): wall and
CPU seconds per stage, and the process's peak RSS, on the default synthetic world, on each synthetic
regime and (when the Ciao folder is there) on one Ciao date with the quality benchmark's settings, the
share of the run that fusion fitting (every ``fit_<method>``) takes, and what building features once per
origin saves.

Last, the DAG itself on a real Airflow (scheduler, dag-processor and api-server, LocalExecutor, as the integration
tests start it): ``--dag-runs`` manual runs of the default synthetic world, one after another. Each task runs in its
own process, and the tasks of a stage run side by side (the three ``fit_<method>`` tasks too), so the DAG's wall
time is not the sum of ``run_all``'s stages. From the task instances the API reports: each stage's span (its first
task's start to its last task's end) and fusion fitting's share of the run's wall time.
Written to ``bench/out/speed.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fusion_tasks import catalogue
from fusion_tasks.config import PROJECT_ROOT

OUT = PROJECT_ROOT / "bench" / "out"
DAG_ID = "multimodal_fusion"
MODALITIES = catalogue.modalities()

# One measured process: argv[1] = {"root", "dates", "mode"}; prints {modality: [seconds per date]}.
CHILD = r"""
import datetime as dt, json, shutil, sys, time
from fusion_tasks.config import RunConfig
from fusion_tasks.modalities import REGISTRY
from fusion_tasks.storage import DataRoot

args = json.loads(sys.argv[1])
root = DataRoot(args["root"])
seconds = {name: [] for name in REGISTRY}
for day in map(dt.date.fromisoformat, args["dates"]):
    for name, modality in REGISTRY.items():
        if args["mode"] == "cold":
            shutil.rmtree(root.landing_cache(), ignore_errors=True)
        started = time.perf_counter()
        modality.extract(root, RunConfig(as_of_date=day, data_root=root.root, max_quarantine_share=1.0))
        seconds[name].append(time.perf_counter() - started)
print(json.dumps(seconds))
"""


def _run_child(root: Path, dates: list[dt.date], mode: str) -> tuple[dict[str, list[float]], float]:
    """Seconds per date and modality, and the measured process's peak RSS in MiB.

    A small wrapper process starts the measured one and reports ``RUSAGE_CHILDREN.ru_maxrss``: the
    peak of that one child only (in this process it would be a running maximum over all children).
    """
    wrapper = ("import resource, subprocess, sys; "
               "out = subprocess.run([sys.executable, '-c', sys.argv[1], sys.argv[2]], check=True, "
               "capture_output=True, text=True).stdout.strip().splitlines()[-1]; "
               "print(out); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    done = subprocess.run([sys.executable, "-c", wrapper, CHILD, json.dumps({
        "root": str(root), "dates": [d.isoformat() for d in dates], "mode": mode})],
        capture_output=True, text=True, check=True)
    seconds, peak_kib = done.stdout.strip().splitlines()[-2:]
    return json.loads(seconds), int(peak_kib) / 1024


# One whole run per process: argv[1] = {"root", "config", "regime" | null, "generate"}; prints run_all's seconds.
STAGES_CHILD = r"""
import json, sys
from fusion_tasks.config import RunConfig
from fusion_tasks.pipeline import run_all
from fusion_tasks.storage import DataRoot
from fusion_tasks.synthetic import SyntheticSpec, generate

args = json.loads(sys.argv[1])
if args["generate"]:
    spec = SyntheticSpec.regime(args["regime"]) if args["regime"] else SyntheticSpec()
    generate(DataRoot(args["root"]), spec)
    args["config"]["as_of_date"] = spec.end.isoformat()
import time
from fusion_tasks.training_data import TrainingData
loads = []  # seconds of every TrainingData.load: each model's training and the pools read one origin each
plain = TrainingData.load.__func__
def timed_load(cls, *a, **k):
    t0 = time.perf_counter()
    try:
        return plain(cls, *a, **k)
    finally:
        loads.append(time.perf_counter() - t0)
TrainingData.load = classmethod(timed_load)
out = run_all(RunConfig.from_dict({**args["config"], "data_root": args["root"]}))
features = {"origins": len(out["training_data"]["origins"]), "build_seconds": out["training_data"]["feature_seconds"],
            "loads": len(loads), "load_seconds": sum(loads)}
# the peak RSS of this process (VmHWM starts afresh at exec): every stage, as one DAG run on one worker holds them
with open("/proc/self/status") as status:
    peak_kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
print(json.dumps({"seconds": out["seconds"], "features": features, "peak_mib": peak_kib / 1024}))
"""


def stage_seconds(root: Path, config: dict, *, regime: str | None = None,
                  generate: bool = True) -> tuple[dict, dict, float]:
    """One whole run in a fresh process: its seconds per stage, what its feature builds and loads cost, and the
    process's peak RSS in MiB."""
    done = subprocess.run([sys.executable, "-c", STAGES_CHILD, json.dumps(
        {"root": str(root), "config": config, "regime": regime, "generate": generate})],
        capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"run for {root} failed:\n{done.stderr[-3000:]}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    return out["seconds"], out["features"], out["peak_mib"]


def feature_table(features: dict[str, dict[str, float]]) -> list[str]:
    """Features built once per origin against rebuilt at every load (the design before), from the same run:
    the build time of an origin (measured once per origin) times the number of loads, against the builds plus
    the loads of what was stored."""
    lines = ["| world | origins | loads of an origin's data | rebuilt at every load: builds, s | built once: "
             "builds, s | built once + loads, s | ratio |", "|---|---|---|---|---|---|---|"]
    for world, f in features.items():
        per_origin = f["build_seconds"] / f["origins"]
        before = per_origin * f["loads"]
        after = f["build_seconds"] + f["load_seconds"]
        lines.append(f"| {world} | {f['origins']} | {f['loads']} | {f['loads']}, {before:.1f} | {f['origins']}, "
                     f"{f['build_seconds']:.1f} | {after:.1f} | {after / before:.2f} |" if before else
                     f"| {world} | {f['origins']} | {f['loads']} | – | – | – | – |")
    return lines


def stage_table(runs: dict[str, dict[str, dict[str, float]]], peaks: dict[str, float]) -> list[str]:
    """One column pair (wall, CPU) per world; a row per stage; fusion fitting's share of the wall time; each
    run's peak RSS in MiB (``peaks``, by world)."""
    worlds = list(runs)
    stages = list(dict.fromkeys(stage for seconds in runs.values() for stage in seconds))
    lines = ["| stage | " + " | ".join(f"{w} wall s | {w} CPU s" for w in worlds) + " |",
             "|---|" + "---|---|" * len(worlds)]
    for stage in stages:
        cells = []
        for w in worlds:
            spent = runs[w].get(stage)
            cells += [f"{spent['wall']:.1f}", f"{spent['cpu']:.1f}"] if spent else ["–", "–"]
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    totals, shares = [], []
    for w in worlds:
        wall = sum(v["wall"] for v in runs[w].values())
        cpu = sum(v["cpu"] for v in runs[w].values())
        fusion = sum(v["wall"] for k, v in runs[w].items() if k.startswith("fit_"))
        totals += [f"**{wall:.1f}**", f"**{cpu:.1f}**"]
        shares += [f"{fusion / wall:.1%}", ""]
    lines.append("| whole run | " + " | ".join(totals) + " |")
    lines.append("| fusion fitting share of wall | " + " | ".join(shares) + " |")
    lines.append("| peak RSS of the run, MiB | " + " | ".join(
        f"{peaks[w]:,.0f} | " if w in peaks else "– | " for w in worlds) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=365, help="days of landing files")
    parser.add_argument("--dates", type=int, default=10, help="backfilled dates (the last ones)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=OUT / "speed.md")
    parser.add_argument("--ciao-date", default="2010-04-01", help="the Ciao date whose stages are timed")
    parser.add_argument("--no-stages", action="store_true", help="only the extraction table")
    parser.add_argument("--dag-runs", type=int, default=3,
                        help="DAG runs of the synthetic world on a real scheduler (0: none)")
    args = parser.parse_args(argv)

    from fusion_tasks.storage import DataRoot
    from fusion_tasks.synthetic import SyntheticSpec, generate

    spec = SyntheticSpec(n_days=args.days, n_users=1000, n_items=1500)
    dates = [spec.end - dt.timedelta(days=n) for n in range(args.dates - 1, -1, -1)]
    base = Path(tempfile.mkdtemp(prefix="fusionrec-speed-"))
    rows = []
    try:
        world = base / "world"
        generate(DataRoot(world), spec)
        runs: dict[str, list[dict[str, list[float]]]] = {"cold": [], "cached": []}
        peaks: dict[str, list[float]] = {"cold": [], "cached": []}
        for repeat in range(args.repeats):
            for mode in ("cold", "cached"):  # alternate, so drift in machine load hits both
                root = base / f"{mode}-{repeat}"
                shutil.copytree(DataRoot(world).landing(), DataRoot(root).landing())
                seconds, peak = _run_child(root, dates, mode)
                runs[mode].append(seconds)
                peaks[mode].append(peak)
                shutil.rmtree(root)
        for name in MODALITIES:
            cold = statistics.median(s for run in runs["cold"] for s in run[name])
            cached = statistics.median(s for run in runs["cached"] for s in run[name])
            rows.append((name, cold, cached, cached / cold))
    finally:
        shutil.rmtree(base, ignore_errors=True)

    rss = {mode: statistics.median(values) for mode, values in peaks.items()}
    lines = [
        "# Extraction speed during a backfill",
        "",
        f"`python -m bench.speed --days {args.days} --dates {args.dates} --repeats {args.repeats}` on "
        f"{time.strftime('%Y-%m-%d')}: synthetic world of {args.days} days of landing files "
        f"({spec.n_users} users, {spec.n_items} items), the last {args.dates} dates extracted in order, "
        f"{args.repeats} repeats. Median seconds per date and modality; baseline = `cold` (every file read "
        "and validated again for every date, cache rewritten).",
        "",
        "| modality | cold s/date (baseline) | cached s/date | ratio cached/cold |",
        "|---|---|---|---|",
        *[f"| {name} | {cold:.3f} | {cached:.3f} | {ratio:.2f} |" for name, cold, cached, ratio in rows],
        "",
        f"Peak RSS of the extracting process (median): cold {rss['cold']:.0f} MiB, cached {rss['cached']:.0f} MiB "
        f"(ratio {rss['cached'] / rss['cold']:.2f}).",
        "",
    ]
    if not args.no_stages:
        lines += stages_section(args.ciao_date)
    if args.dag_runs:
        lines += dag_section(args.dag_runs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


def stages_section(ciao_date: str) -> list[str]:
    from fusion_tasks.config import default_ciao_dir, default_data_root
    from fusion_tasks.synthetic import REGIMES

    runs: dict[str, dict[str, dict[str, float]]] = {}
    features: dict[str, dict[str, float]] = {}
    peaks: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="fusionrec-stages-") as tmp:
        for regime in (None, *sorted(REGIMES)):
            name = regime or "synthetic"
            runs[name], features[name], peaks[name] = stage_seconds(Path(tmp) / name, {"ndcg_floor": 0.0,
                                                                          "as_of_date": "2000-01-01"}, regime=regime)
            print(f"stages: {name} done", flush=True)
    ciao = default_ciao_dir()
    note = ""
    if (ciao / "rating_with_timestamp.mat").is_file():
        from bench.quality.importing import ensure_import
        from bench.quality.running import CONF
        from fusion_tasks.storage import DataRoot

        root = DataRoot(default_data_root() / "bench-ciao")
        ensure_import(ciao, root)
        runs[f"Ciao {ciao_date}"], features[f"Ciao {ciao_date}"], peaks[f"Ciao {ciao_date}"] = stage_seconds(
            root.root, {**CONF, "as_of_date": ciao_date}, generate=False)
    else:
        note = f"Ciao was not found at {ciao} (FUSION_CIAO_DIR): its column is missing."
    return ["", "## Stages of one run", "",
            f"`fusion_tasks.pipeline.run_all`, one fresh process per world, on {time.strftime('%Y-%m-%d')}: the "
            "default synthetic world and each regime (`SyntheticSpec.regime`) with the default settings, and one "
            "Ciao date with the quality benchmark's settings. CPU seconds count every thread of the process. "
            "Target: fusion fitting (every `fit_<method>`) at most 15% of the run's wall time.", "",
            *stage_table(runs, peaks), "", note, "", "## Features built once per origin", "",
            "Every model's training and the pools read the data of an origin (`TrainingData.load`). What each "
            "modality builds for an origin is built once, by `build_training_data`, and stored; before, it was "
            "rebuilt from `staged/` at every load. Same runs as above: loads counted, an origin's build timed once "
            "per origin.", "", *feature_table(features)]


# the DAG's tasks by stage, in the DAG's order (a task matching no prefix is in no stage; the whole run covers it)
DAG_STAGES = {"plan and wait for landing": ("plan_run", "wait_for_landing"), "extract": ("extract_",),
              "build_training_data": ("build_training_data",), "train (every model)": ("train_",),
              "score_candidates": ("score_candidates",), "fusion fitting (every fit_<method>)": ("fit_",),
              "evaluate, fuse, gate, publish": ("evaluate", "fuse_recommendations", "quality_gate",
                                                "publish_recommendations")}
FUSION_STAGE = "fusion fitting (every fit_<method>)"


def dag_stage_spans(run: dict, task_instances: list[dict]) -> dict[str, float]:
    """Seconds from a stage's first task start to its last task end, by stage; ``whole run`` is the DAG run's own
    start to end (times as the Airflow API reports them)."""
    def seconds(start: str, end: str) -> float:
        return (dt.datetime.fromisoformat(end) - dt.datetime.fromisoformat(start)).total_seconds()

    spans: dict[str, float] = {}
    for stage, prefixes in DAG_STAGES.items():
        tasks = [ti for ti in task_instances
                 if ti["task_id"].startswith(prefixes) and ti.get("start_date") and ti.get("end_date")]
        if tasks:
            spans[stage] = seconds(min(ti["start_date"] for ti in tasks), max(ti["end_date"] for ti in tasks))
    spans["whole run"] = seconds(run["start_date"], run["end_date"])
    return spans


def dag_table(spans: list[dict[str, float]]) -> list[str]:
    """A row per stage: its span in each run, the median, and the median's share of the median run."""
    whole = statistics.median(s["whole run"] for s in spans)
    runs = " | ".join(f"run {i + 1} s" for i in range(len(spans)))
    lines = [f"| stage | {runs} | median s | share of the run |",
             "|---|" + "---|" * len(spans) + "---|---|"]
    for stage in [*DAG_STAGES, "whole run"]:
        values = [s.get(stage) for s in spans]
        if all(v is None for v in values):
            continue
        median = statistics.median(v for v in values if v is not None)
        cells = " | ".join("–" if v is None else f"{v:.1f}" for v in values)
        name = f"**{stage}**" if stage in (FUSION_STAGE, "whole run") else stage
        lines.append(f"| {name} | {cells} | {median:.1f} | {median / whole:.1%} |")
    return lines


def measure_runs(airflow, conf: dict, n_runs: int) -> list[dict[str, float]]:
    """``n_runs`` manual runs with ``conf`` on a running Airflow (``tests.integration.harness.AirflowInstance``), one
    after another; the stage spans of each (``dag_stage_spans``). A run that does not succeed fails the benchmark."""
    spans = []
    for _ in range(n_runs):
        response = airflow.api("POST", f"/api/v2/dags/{DAG_ID}/dagRuns", json={"logical_date": None, "conf": conf})
        if response.status_code != 200:
            raise RuntimeError(f"triggering the DAG failed: {response.text}")
        (run,), _ = airflow.wait_for_runs({response.json()["dag_run_id"]})
        if run["state"] != "success":
            raise RuntimeError(airflow.failure_report([run]))
        spans.append(dag_stage_spans(run, airflow.task_instances(run["dag_run_id"])))
        print(f"dag run {len(spans)}: {spans[-1]['whole run']:.1f} s", flush=True)
    return spans


def dag_runs(base: Path, n_runs: int) -> list[dict[str, float]]:
    """``n_runs`` runs of the default synthetic world (the default settings, the gate open) on a real Airflow."""
    from fusion_tasks.storage import DataRoot
    from fusion_tasks.synthetic import SyntheticSpec, generate
    from tests.integration.harness import running_airflow  # the project's one harness of a real Airflow

    spec = SyntheticSpec()

    def default_world(airflow) -> None:
        shutil.rmtree(airflow.data_root)
        generate(DataRoot(airflow.data_root), spec)

    with running_airflow(base, "speed", before_start=default_world) as airflow:
        return measure_runs(airflow, {"as_of_date": spec.end.isoformat(), "ndcg_floor": 0.0,
                                      "regression_tolerance": 1.0}, n_runs)


def dag_section(n_runs: int) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="fusionrec-dag-") as tmp:
        spans = dag_runs(Path(tmp), n_runs)
    return ["", "## Fusion fitting in DAG runs on a scheduler", "",
            f"The default synthetic world run by the DAG on a real Airflow (LocalExecutor, parallelism 4, the training "
            f"pool's 2 slots, SQLite metadata database), {n_runs} manual runs one after another with the default "
            f"settings, on {time.strftime('%Y-%m-%d')}. A stage's span is its first task's start to its last task's "
            "end; each task runs in its own process (its imports included) and a stage's tasks run side by side. "
            "Target: fusion fitting at most 15% of the DAG's wall time.", "", *dag_table(spans)]


if __name__ == "__main__":
    raise SystemExit(main())
