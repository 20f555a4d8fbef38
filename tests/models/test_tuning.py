"""Per-run tuning of base models on the validation folds: the search, its record and its limits."""

from __future__ import annotations

import datetime as dt
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

from fusion_tasks import models
from fusion_tasks.config import RunConfig
from fusion_tasks.models import tuning
from fusion_tasks.models.base import BaseRecommender
from fusion_tasks.pipeline import extract
from fusion_tasks.storage import DataRoot, read_json
from fusion_tasks.synthetic import SyntheticSpec, generate
from fusion_tasks.training_data import TrainingData, build_training_data


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[DataRoot, RunConfig]:
    root = DataRoot(tmp_path_factory.mktemp("tuning"))
    spec = SyntheticSpec(n_days=70, n_users=80, n_items=120)
    generate(root, spec)
    config = RunConfig(as_of_date=spec.end, data_root=root.root, holdout_days=7, validation_days=7, n_folds=2,
                       candidates_per_model=20)
    for modality in config.modalities:
        extract(root, config, modality)
    build_training_data(root, config)
    return root, config


class Oracle(BaseRecommender):
    """Scores the fold's relevant items first when ``sharp`` is on (a known best setting)."""

    name = "oracle_for_tests"
    search_space: ClassVar[dict[str, tuple]] = {"sharp": (False, True), "noise": (1.0, 0.0)}
    relevant: ClassVar[dict[str, pd.DataFrame]] = {}

    def __init__(self, sharp: bool = False, noise: float = 1.0, random_state: int = 0) -> None:
        self.sharp = sharp
        self.noise = noise
        self.random_state = random_state

    def fit(self, data: TrainingData) -> Oracle:
        self.n_items_ = data.n_items
        self.relevant_ = self.relevant[data.origin_name]
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        rng = np.random.default_rng(self.random_state)
        out = rng.random((len(users), self.n_items_)).astype("float32") * self.noise
        if self.sharp:
            rel = self.relevant_.loc[self.relevant_["user_idx"].isin(users)]
            row = np.searchsorted(users, rel["user_idx"].to_numpy())
            out[row, rel["item_idx"].to_numpy()] += 10.0
        return out


def folds_of(root: DataRoot, config: RunConfig) -> list[tuning.Fold]:
    from fusion_tasks.training_data import load_relevance

    return [tuning.Fold(o, TrainingData.load(root, config, o), load_relevance(root, config, o))
            for o in config.origins() if o.startswith("fold")]


def test_the_coordinate_search_finds_the_known_best_setting(world) -> None:
    root, config = world
    folds = folds_of(root, config)
    Oracle.relevant = {f.name: f.relevance for f in folds}
    result = tuning.tune(Oracle, folds, 10, 60.0, lambda cls, params, origin: cls(**params))
    assert result.params == {"sharp": True, "noise": 1.0}  # noise 0 ties every item: no better
    assert [t["params"] for t in result.trials] == [
        {"sharp": False, "noise": 1.0}, {"sharp": True, "noise": 1.0}, {"sharp": True, "noise": 0.0}]
    scores = [t["fold_ndcg"] for t in result.trials]
    assert result.score == max(scores) and result.score > 0.9
    assert set(result.fitted) == {f.name for f in folds}


class Racer(Oracle):
    """``sharp`` is the known best; ``blunt`` (random scores) is clearly worse; ``twin`` scores like ``sharp``."""

    name = "racer_for_tests"
    search_space: ClassVar[dict[str, tuple]] = {"kind": ("sharp", "blunt", "twin")}
    fits: ClassVar[list[tuple[str, str]]] = []

    def __init__(self, kind: str = "sharp", random_state: int = 0) -> None:
        super().__init__(sharp=kind != "blunt", random_state=random_state)
        self.kind = kind

    def fit(self, data: TrainingData) -> Racer:
        self.fits.append((self.kind, data.origin_name))
        return super().fit(data)


def test_a_clearly_worse_setting_is_dropped_after_the_latest_fold_and_a_close_one_is_fitted_on_all(world) -> None:
    root, config = world
    folds = folds_of(root, config)
    Racer.relevant = {f.name: f.relevance for f in folds}
    Racer.fits.clear()
    result = tuning.tune(Racer, folds, 10, 60.0, lambda cls, params, origin: cls(**params))
    assert result.params == {"kind": "sharp"}
    assert Racer.fits == [("sharp", "fold1"), ("sharp", "fold2"), ("blunt", "fold1"),
                          ("twin", "fold1"), ("twin", "fold2")]  # fold1 is the latest fold
    sharp, blunt, twin = result.trials
    assert blunt["fold_ndcg"] is None and blunt["pruned"]["folds"] == ["fold1"]
    pruned = blunt["pruned"]
    assert pruned["difference"] + tuning.PRUNE_Z * pruned["se"] < 0 and pruned["ndcg"] < pruned["best_ndcg"]
    assert twin["fold_ndcg"] == sharp["fold_ndcg"] == result.score  # a tie does not replace the best


def test_a_budget_too_small_for_the_default_fails_naming_the_model_and_the_budget(world) -> None:
    root, config = world
    folds = folds_of(root, config)
    Oracle.relevant = {f.name: f.relevance for f in folds}
    with pytest.raises(tuning.TuningBudgetError, match=r"tuning oracle_for_tests: .* budget of 1e-06 s"):
        tuning.tune(Oracle, folds, 10, 1e-6, lambda cls, params, origin: cls(**params))


def test_settings_over_the_budget_are_recorded_as_not_tried(world, monkeypatch) -> None:
    root, config = world
    folds = folds_of(root, config)
    Oracle.relevant = {f.name: f.relevance for f in folds}
    clock = iter(np.arange(0, 1000, 1.0))  # every reading of the clock is one second later
    monkeypatch.setattr(tuning.time, "perf_counter", lambda: float(next(clock)))
    result = tuning.tune(Oracle, folds, 10, 3.5, lambda cls, params, origin: cls(**params))
    assert result.params == {"sharp": False, "noise": 1.0}
    assert [t.get("skipped") for t in result.trials[1:]] == ["time budget", "time budget"]


@pytest.mark.parametrize("name", ["popularity", "social", "content"])
def test_train_model_records_the_tuning_and_reruns_reproduce_it(world, name: str) -> None:
    root, config = world
    first = models.train_model(root, config, name)
    again = models.train_model(root, config, name)
    assert first["tuning"]["chosen"] == again["tuning"]["chosen"]
    assert [t["fold_ndcg"] for t in first["tuning"]["trials"]] == [t["fold_ndcg"] for t in again["tuning"]["trials"]]
    space = models.get(name).search_space
    assert len(first["tuning"]["trials"]) == 1 + sum(len(v) - 1 for v in space.values())
    tried = [t["fold_ndcg"] for t in first["tuning"]["trials"] if t["fold_ndcg"] is not None]
    assert first["tuning"]["fold_ndcg"] == max(tried)
    chosen = first["tuning"]["chosen"]
    assert {k: first["params"][k] for k in chosen} == chosen
    saved = read_json(models.manifest_path(root, config, name))
    assert saved["tuning"]["chosen"] == chosen
    # the saved fits use the chosen setting at every origin
    for origin in config.origins():
        assert models.load_fitted(root, config, name, origin).get_params() == first["params"]


def test_tuning_reads_only_the_fold_windows(world, monkeypatch) -> None:
    root, config = world
    asked: list[str] = []
    real = models.load_relevance

    def spy(root_, config_, origin):
        asked.append(origin)
        return real(root_, config_, origin)

    monkeypatch.setattr(models, "load_relevance", spy)
    models.train_model(root, config, "popularity")
    assert sorted(asked) == ["fold1", "fold2"]  # never the holdout ("test") window


def test_tuning_can_be_switched_off_explicitly(world) -> None:
    root, config = world
    off = RunConfig.from_dict({**config.to_dict(), "tune_models": False})
    manifest = models.train_model(root, off, "popularity")
    assert manifest["tuning"]["skipped"] == "tune_models is off"
    assert manifest["params"] == models.get("popularity")().get_params()


def test_a_budget_of_zero_is_rejected_by_the_config() -> None:
    with pytest.raises(ValueError, match="tuning_budget_seconds must be > 0"):
        RunConfig(as_of_date=dt.date(2024, 1, 1), tuning_budget_seconds=0)


def test_item_knn_fitted_from_a_previous_fit_equals_a_fresh_fit(world) -> None:
    """Tuning fits item-kNN candidates from the best fit so far: the similarity is reused when neighbours and
    shrink are the same, pruned when the previous fit kept more neighbours with the same shrink, and the result is
    the fit ``fit`` would give either way."""
    root, config = world
    data = TrainingData.load(root, config, "fold1")
    knn = models.get("item_knn")
    for params in [{}, {"shrink": 100.0}, {"neighbours": 3}, {"half_life_days": 30.0}]:
        fresh = knn(**params).fit(data)
        for previous in (knn(**{**params, "half_life_days": 7.0}), knn(**{**params, "neighbours": 50}),
                         knn(**{**params, "neighbours": 400}), knn(**{**params, "neighbours": 2}),
                         knn(**{**params, "neighbours": 400, "shrink": 3.0})):
            started = knn(**params).fit_from(data, previous.fit(data))
            assert (started.similarity_ != fresh.similarity_).nnz == 0
            assert (started.history_ != fresh.history_).nnz == 0
        same = knn(**{**params, "half_life_days": 7.0}).fit(data)
        assert knn(**params).fit_from(data, same).similarity_ is same.similarity_  # reused, not recomputed
        other = knn(**{**params, "neighbours": 50}).fit(data)
        assert knn(**params).fit_from(data, other).similarity_ is not other.similarity_
