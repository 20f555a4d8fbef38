"""Synthetic regimes as known-answer tests: the fusion adapts to whichever modality carries the signal.

Each regime is a world where one kind of data drives what users do (``SyntheticSpec.regime``). A fixed
recipe would weigh the modalities the same way everywhere; the fusion, tuned on each run's own
validation folds, must put the dominant modality first and publish a table at least as good as the
best single base model on the holdout.

A modality's weight is measured on the holdout pool by what the published method loses without it:
the NDCG@K of the fused scores minus that of the fused scores less the modality's contribution
(its terms in the additive decomposition that the published table carries).
"""

from __future__ import annotations

import pandas as pd
import pytest

from fusion_tasks import modalities, models
from fusion_tasks.config import RunConfig
from fusion_tasks.fusion import methods
from fusion_tasks.fusion.base import pool_ndcg
from fusion_tasks.fusion.candidates import load_pool
from fusion_tasks.pipeline import run_all
from fusion_tasks.storage import DataRoot
from fusion_tasks.synthetic import REGIMES, SyntheticSpec, generate
from fusion_tasks.training_data import load_relevance

pytestmark = pytest.mark.slow

MODALITY_GROUPS = tuple(modalities.REGISTRY)


def modality_weight(root: DataRoot, config: RunConfig, chosen: str) -> pd.Series:
    pool = load_pool(root, config, "test")
    n_relevant = load_relevance(root, config, "test").groupby("user_idx").size()
    fitted = methods.load_fitted_methods(root, config)[chosen]
    scores = methods.fused_scores(chosen, fitted, pool)
    parts = methods.contributions(chosen, fitted, pool)
    full = pool_ndcg(pool, scores, n_relevant, config.top_k)
    return pd.Series({g: full - pool_ndcg(pool, scores - parts[f"contribution_{g}"].to_numpy(), n_relevant,
                                          config.top_k) for g in MODALITY_GROUPS})


@pytest.fixture(scope="module", params=sorted(REGIMES))
def regime(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = DataRoot(tmp_path_factory.mktemp(f"regime-{request.param}"))
    spec = SyntheticSpec.regime(request.param, n_users=400, n_items=400, n_days=90)
    generate(root, spec)
    config = RunConfig(as_of_date=spec.end, data_root=root.root, ndcg_floor=0.0)
    out = run_all(config)
    return {"name": request.param, "out": out, "root": root, "config": config}


def test_the_published_fusion_is_at_least_as_good_as_the_best_single_model(regime: dict) -> None:
    """Where one modality carries all the signal, its model alone is close to the best possible, so
    the fusion must match it: at least its holdout NDCG less one standard error of that NDCG (the
    fusion's method is chosen on the folds, and the holdout has a few hundred users)."""
    metrics = regime["out"]["evaluation"]["metrics"]
    chosen = regime["out"]["evaluation"]["chosen_method"]
    best = max((m for m in models.REGISTRY if m in metrics), key=lambda m: metrics[m]["ndcg"])
    floor = metrics[best]["ndcg"] - metrics[best]["ndcg_se"]
    assert metrics[chosen]["ndcg"] >= floor, (chosen, best, {m: round(v["ndcg"], 4) for m, v in metrics.items()})


# regimes whose dominant modality is not a robust known answer, and why (bench/NOTES.md, "Quality on other worlds")
NOT_ROBUST = {
    "cold_start": "category tastes, the signal of this world, are also what co-occurrence shows for its warm half, "
                  "so behaviour and content move the rankings about as much: deep fusion's contributions put "
                  "content first on seeds 1 and 2, behaviour on seeds 3 and 11, and social on seed 7 (this world)",
}


def test_the_dominant_modality_moves_the_published_rankings_most(regime: dict) -> None:
    weight = modality_weight(regime["root"], regime["config"], regime["out"]["evaluation"]["chosen_method"])
    if weight.idxmax() != REGIMES[regime["name"]].dominant and regime["name"] in NOT_ROBUST:
        pytest.xfail(f"{NOT_ROBUST[regime['name']]}: {weight.round(4).to_dict()}")
    assert weight.idxmax() == REGIMES[regime["name"]].dominant, weight.round(4).to_dict()


@pytest.mark.parametrize("modality", [m for m in modalities.REGISTRY if m in REGIMES and m != "behavior"])
def test_where_only_a_modality_carries_signal_its_model_beats_popularity_and_the_behaviour_models(
        regime: dict, modality: str) -> None:
    if regime["name"] != modality:
        pytest.skip(f"the {modality} model's known answer is in the {modality} regime")
    metrics = regime["out"]["evaluation"]["metrics"]
    behaviour = [m for m in models.REGISTRY if models.get(m).modalities == ("behavior",)]
    ndcg = {m: round(metrics[m]["ndcg"], 4) for m in (modality, *behaviour)}
    assert metrics[modality]["ndcg"] > max(metrics[m]["ndcg"] for m in behaviour), ndcg
