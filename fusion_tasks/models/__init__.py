"""The registry of base recommenders, and the one function that trains a model for a run.

A new model is one module ``fusion_tasks/models/<name>.py`` with one ``BaseRecommender`` subclass whose
``name`` is ``<name>`` (see ``fusion_tasks.catalogue``); ``tests/models/test_contract.py`` runs it.
Every model is tuned per run on the validation folds (``fusion_tasks.models.tuning``) before it is
fitted at the test and final origins with the chosen setting.
"""

from __future__ import annotations

import time
from typing import Any

from fusion_tasks import catalogue
from fusion_tasks.config import RunConfig
from fusion_tasks.models.base import BaseRecommender
from fusion_tasks.models.tuning import Fold, TuningBudgetError, tune
from fusion_tasks.storage import DataRoot, read_json, write_json
from fusion_tasks.training_data import TrainingData, load_relevance

REGISTRY: dict[str, type[BaseRecommender]] = catalogue.load("models", BaseRecommender)


def get(name: str) -> type[BaseRecommender]:
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; registered: {sorted(REGISTRY)}") from None


def is_enabled(name: str, config: RunConfig) -> bool:
    """A model runs when every modality it needs was selected for the run."""
    return set(get(name).modalities) <= set(config.modalities)


def make(name: str, config: RunConfig, origin: str, params: dict[str, Any] | None = None) -> BaseRecommender:
    """A fresh model with ``params`` and its seed derived from the run (if it takes one)."""
    model = get(name)(**(params or {}))
    if "random_state" in model.get_params():
        model.random_state = config.seed_for(name, origin)
    return model


def train_model(root: DataRoot, config: RunConfig, name: str) -> dict[str, Any]:
    """Tune ``name`` on the validation folds, then fit it at every origin; save each fit under
    ``models/<name>/ds=D/origin=<origin>/``.

    Returns the manifest written beside the fits: origins, folders, fit seconds and the tuning
    (chosen setting, its fold NDCG@K, every setting tried). Raises ``ValueError`` if the model needs
    a modality the run did not select, ``TuningBudgetError`` if the budget cannot cover its default.
    """
    if not is_enabled(name, config):
        raise ValueError(f"model {name} needs modalities {get(name).modalities}; run has {config.modalities}")
    cls = get(name)
    origins = config.origins()
    folds = [Fold(o, TrainingData.load(root, config, o), load_relevance(root, config, o))
             for o in origins if o.startswith("fold")]
    started = time.perf_counter()
    missing = sorted({m for f in folds for m in cls.missing_data(f.data)})
    if config.tune_models and cls.search_space and not missing:
        result = tune(cls, folds, config.top_k, config.tuning_budget_seconds,
                      lambda _cls, params, origin: make(name, config, origin, params))
        params, fold_fits, tuning = result.params, result.fitted, result.summary()
    else:
        params = {}
        fold_fits = {f.name: make(name, config, f.name).fit(f.data) for f in folds}
        skipped = ("tune_models is off" if not config.tune_models else "no search space" if not cls.search_space
                   else f"no {' or '.join(missing)} data at a fold's origin")
        tuning = {"chosen": {}, "fold_ndcg": None, "trials": [], "skipped": skipped}
    tuning_seconds = time.perf_counter() - started
    fits = {}
    for origin in origins:
        t0 = time.perf_counter()
        model = fold_fits.get(origin) or make(name, config, origin, params).fit(TrainingData.load(root, config, origin))
        folder = model.save(root.model_dir(name, config.as_of_date, origin))
        fits[origin] = {"path": str(folder), "fit_seconds": round(time.perf_counter() - t0, 3)}
    manifest = {"model": name, "as_of_date": config.as_of_date.isoformat(), "params": model.get_params(),
                "tuning": tuning, "tuning_seconds": round(tuning_seconds, 3), "fits": fits}
    write_json(manifest_path(root, config, name), manifest)
    return manifest


def manifest_path(root: DataRoot, config: RunConfig, name: str):
    return root.model_manifest(name, config.as_of_date)


def load_tuning(root: DataRoot, config: RunConfig, name: str) -> dict[str, Any]:
    """What the run chose for ``name``: its parameters and the tuning record (see ``train_model``)."""
    manifest = read_json(manifest_path(root, config, name))
    return {"params": manifest["params"], **manifest["tuning"]}


def load_fitted(root: DataRoot, config: RunConfig, name: str, origin: str) -> BaseRecommender:
    return get(name).load(root.model_dir(name, config.as_of_date, origin))


__all__ = ["REGISTRY", "BaseRecommender", "TuningBudgetError", "get", "is_enabled", "load_fitted", "load_tuning",
           "make", "train_model"]
