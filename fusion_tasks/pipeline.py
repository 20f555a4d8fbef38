"""The pipeline's steps as plain functions, in the order the DAG runs them, and a local runner.

The DAG calls these one per task; ``run_all`` calls them in sequence (for the benchmark and for
a shell without a scheduler). Every step takes the data root and the run configuration.
"""

from __future__ import annotations

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
