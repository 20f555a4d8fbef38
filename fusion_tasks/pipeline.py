"""The pipeline's steps as plain functions, in the order the DAG runs them, and a local runner.

The DAG calls these one per task; ``run_all`` calls them in sequence (for the benchmark and for
a shell without a scheduler). Every step takes the data root and the run configuration.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

from fusion_tasks import modalities, models
from fusion_tasks.config import RunConfig
from fusion_tasks.evaluation.report import evaluate_run, quality_gate
from fusion_tasks.fusion.candidates import build_pools, enabled_models
from fusion_tasks.fusion.methods import fit_method
from fusion_tasks.publish import fuse_recommendations, publish
from fusion_tasks.storage import DataRoot
from fusion_tasks.training_data import build_training_data


def extract(root: DataRoot, config: RunConfig, modality: str) -> dict[str, Any]:
    return modalities.get(modality).extract(root, config)


class StageTimer:
    """Wall and CPU seconds (all threads of the process) per named stage."""

    def __init__(self) -> None:
        self.seconds: dict[str, dict[str, float]] = {}

    def __call__(self, stage: str, step: Callable[..., Any], *args: Any) -> Any:
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            return step(*args)
        finally:
            spent = self.seconds.setdefault(stage, {"wall": 0.0, "cpu": 0.0})
            spent["wall"] += time.perf_counter() - wall
            spent["cpu"] += time.process_time() - cpu


def landing_status(root: DataRoot, config: RunConfig, now: dt.datetime) -> dict[str, Any]:
    """Whether the landing partition of ``config.as_of_date`` is there for every selected daily modality.

    A daily modality (behaviour) needs a partition for D itself; it may still be on its way, so it is
    awaited until the end of D plus ``config.landing_wait_hours`` (UTC). Returns ``ready`` (all there),
    ``overdue`` (something is missing and the deadline has passed), ``missing`` (the partition folders
    that are absent), ``deadline`` (ISO-8601) and ``message``: one sentence for the task log.
    ``now`` must be timezone-aware.
    """
    day = config.as_of_date
    deadline = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC) + dt.timedelta(
        hours=config.landing_wait_hours)
    missing = []
    for name in config.modalities:
        if not modalities.get(name).daily:
            continue
        if not any(landed == day for landed, _ in root.landing_files(name)):
            missing.append(str(root.landing_day(name, day)))
    overdue = bool(missing) and now >= deadline
    if not missing:
        message = f"the landing partitions for {day} are there"
    elif overdue:
        message = (f"the landing partition for {day} is missing: {', '.join(missing)}; it was awaited until "
                   f"{deadline:%Y-%m-%d %H:%M} UTC (the end of {day} plus landing_wait_hours="
                   f"{config.landing_wait_hours:g}) and did not arrive. Deliver it (an empty file is a valid empty "
                   "day) and clear this task, or run a date that has data")
    else:
        message = (f"waiting for the landing partition of {day}: {', '.join(missing)} is not there yet; "
                   f"checking again until {deadline:%Y-%m-%d %H:%M} UTC (the end of {day} plus "
                   f"landing_wait_hours={config.landing_wait_hours:g})")
    return {"ready": not missing, "overdue": overdue, "missing": missing, "deadline": deadline.isoformat(),
            "message": message}


def run_all(config: RunConfig, *, publish_if_gate_passes: bool = True) -> dict[str, Any]:
    """Run every step for ``config.as_of_date`` in one process; returns the steps' manifests and
    ``seconds``: wall and CPU seconds per stage (``extract_<modality>``, ``train_<model>``,
    ``fit_<method>``, ...)."""
    root = DataRoot(config.data_root)
    timed = StageTimer()
    out: dict[str, Any] = {"extract": {m: timed(f"extract_{m}", extract, root, config, m) for m in config.modalities}}
    out["training_data"] = timed("build_training_data", build_training_data, root, config)
    names = enabled_models(config)
    out["train"] = {name: timed(f"train_{name}", models.train_model, root, config, name) for name in names}
    out["pools"] = timed("score_candidates", build_pools, root, config, names)
    out["fusion"] = {m: timed(f"fit_{m}", fit_method, root, config, m) for m in config.methods}
    out["evaluation"] = timed("evaluate", evaluate_run, root, config)
    out["fused"] = timed("fuse_recommendations", fuse_recommendations, root, config)
    out["gate"] = timed("quality_gate", quality_gate, root, config)
    if publish_if_gate_passes and out["gate"]["passed"]:
        out["published"] = timed("publish_recommendations", publish, root, config)
    out["seconds"] = timed.seconds
    return out
