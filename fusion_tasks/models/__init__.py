"""The registry of base recommenders, and the one function that trains a model for a run.

A new model subclasses ``BaseRecommender``, passes ``tests/models/test_contract.py`` and is listed here.
"""

from __future__ import annotations

import time
from typing import Any

from fusion_tasks.config import RunConfig
from fusion_tasks.models.als import ALSRecommender
from fusion_tasks.models.base import BaseRecommender
from fusion_tasks.models.content import ContentRecommender
from fusion_tasks.models.deep import DeepFusionRecommender
from fusion_tasks.models.ease import EASERecommender
from fusion_tasks.models.item_knn import ItemKNNRecommender
from fusion_tasks.models.popularity import PopularityRecommender
from fusion_tasks.models.social import SocialRecommender
from fusion_tasks.storage import DataRoot, write_json
from fusion_tasks.training_data import TrainingData

REGISTRY: dict[str, type[BaseRecommender]] = {
    cls.name: cls
    for cls in (PopularityRecommender, ALSRecommender, ItemKNNRecommender, EASERecommender, ContentRecommender,
                SocialRecommender, DeepFusionRecommender)
}


def get(name: str) -> type[BaseRecommender]:
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; registered: {sorted(REGISTRY)}") from None


def is_enabled(name: str, config: RunConfig) -> bool:
    """A model runs when every modality it needs was selected for the run."""
    return set(get(name).modalities) <= set(config.modalities)


def make(name: str, config: RunConfig, origin: str) -> BaseRecommender:
    """A fresh model with its seed derived from the run (if it takes one)."""
    cls = get(name)
    model = cls()
    if "random_state" in model.get_params():
        model.random_state = config.seed_for(name, origin)
    return model


def train_model(root: DataRoot, config: RunConfig, name: str) -> dict[str, Any]:
    """Fit ``name`` at every origin of the run and save each fit under ``models/<name>/ds=D/``.

    Returns a manifest (origins, folders, fit seconds). Raises ``ValueError`` if the model needs a
    modality the run did not select.
    """
    if not is_enabled(name, config):
        raise ValueError(f"model {name} needs modalities {get(name).modalities}; run has {config.modalities}")
    fits = {}
    for origin in config.origins():
        data = TrainingData.load(root, config, origin)
        started = time.perf_counter()
        model = make(name, config, origin).fit(data)
        seconds = time.perf_counter() - started
        folder = model.save(root.model_dir(name, config.as_of_date, origin))
        fits[origin] = {"path": str(folder), "fit_seconds": round(seconds, 3)}
    manifest = {"model": name, "as_of_date": config.as_of_date.isoformat(), "fits": fits}
    write_json(root.model_dir(name, config.as_of_date, "final").parent / "manifest.json", manifest)
    return manifest


def load_fitted(root: DataRoot, config: RunConfig, name: str, origin: str) -> BaseRecommender:
    return get(name).load(root.model_dir(name, config.as_of_date, origin))


__all__ = ["REGISTRY", "BaseRecommender", "get", "is_enabled", "load_fitted", "make", "train_model"]
