"""Synthetic regimes as known-answer tests: the fusion adapts to whichever modality carries the signal.

Each regime is a world where one kind of data drives what users do (``SyntheticSpec.regime``). A fixed
recipe would weigh the modalities the same way everywhere; the fusion, tuned on each run's own
validation folds, must put the dominant modality first and publish a table at least as good as the
best single base model on the holdout.

A modality's weight in the published table is measured by how much it moves each user's ranking:
the spread (standard deviation) of its contribution over the user's published items, averaged over
users (a term constant within a user's list, such as the intercept, orders nothing).
"""

from __future__ import annotations

import pandas as pd
import pytest

from fusion_tasks import models
from fusion_tasks.config import RunConfig
from fusion_tasks.pipeline import run_all
from fusion_tasks.storage import DataRoot
from fusion_tasks.synthetic import SyntheticSpec, generate

pytestmark = pytest.mark.slow

MODALITY_GROUPS = ("behavior", "content", "social")
DOMINANT = {"behavior": "behavior", "content": "content", "social": "social"}


def ranking_weight(table: pd.DataFrame) -> pd.Series:
    columns = [f"contribution_{g}" for g in MODALITY_GROUPS]
    spread = table.groupby("user_id")[columns].std().mean()
    return spread.rename(lambda c: c.removeprefix("contribution_"))


@pytest.fixture(scope="module", params=["behavior", "content", "social", "cold_start"])
def regime(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = DataRoot(tmp_path_factory.mktemp(f"regime-{request.param}"))
    spec = SyntheticSpec.regime(request.param, n_users=200, n_items=300, n_days=90)
    generate(root, spec)
    out = run_all(RunConfig(as_of_date=spec.end, data_root=root.root, ndcg_floor=0.0))
    return {"name": request.param, "out": out, "table": root.read_recommendations(spec.end)}


def test_the_published_fusion_is_at_least_as_good_as_the_best_single_model(regime: dict) -> None:
    metrics = regime["out"]["evaluation"]["metrics"]
    chosen = regime["out"]["evaluation"]["chosen_method"]
    best_single = max(metrics[m]["ndcg"] for m in models.REGISTRY if m in metrics)
    assert metrics[chosen]["ndcg"] >= best_single, {m: round(v["ndcg"], 4) for m, v in metrics.items()}


def test_the_dominant_modality_moves_the_published_rankings_most(regime: dict) -> None:
    if regime["name"] not in DOMINANT:
        pytest.skip("cold start has no single dominant modality")
    weight = ranking_weight(regime["table"])
    assert weight.idxmax() == DOMINANT[regime["name"]], weight.round(4).to_dict()


def test_cold_users_lean_more_on_content_and_ties_than_warm_users(regime: dict) -> None:
    if regime["name"] != "cold_start":
        pytest.skip("only the cold-start regime has many cold users")
    ...
