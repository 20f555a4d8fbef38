"""The pipeline's steps as plain functions, in the order the DAG runs them, and a local runner.

The DAG calls these one per task; ``run_all`` calls them in sequence (for the benchmark and for
a shell without a scheduler). Every step takes the data root and the run configuration.
"""

from __future__ import annotations

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


def run_all(config: RunConfig, *, publish_if_gate_passes: bool = True) -> dict[str, Any]:
    """Run every step for ``config.as_of_date`` in one process; returns the steps' manifests."""
    root = DataRoot(config.data_root)
    out: dict[str, Any] = {"extract": {m: extract(root, config, m) for m in config.modalities}}
    out["training_data"] = build_training_data(root, config)
    names = enabled_models(config)
    out["train"] = {name: models.train_model(root, config, name) for name in names}
    out["pools"] = build_pools(root, config, names)
    out["fusion"] = {m: fit_method(root, config, m) for m in config.methods}
    out["evaluation"] = evaluate_run(root, config)
    out["fused"] = fuse_recommendations(root, config)
    out["gate"] = quality_gate(root, config)
    if publish_if_gate_passes and out["gate"]["passed"]:
        out["published"] = publish(root, config)
    return out
