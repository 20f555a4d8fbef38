"""End-to-end quality and the published table's contract on the default synthetic data (one pipeline run)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from fusion_tasks import models
from fusion_tasks.config import RunConfig
from fusion_tasks.fusion.methods import REGISTRY as FUSION_METHODS
from fusion_tasks.metrics_schema import METRICS_SCHEMA_VERSION, read_published_metrics, validate_metrics
from fusion_tasks.pipeline import run_all
from fusion_tasks.publish import COLUMNS, CONTRIBUTIONS
from fusion_tasks.serving import published_metrics
from fusion_tasks.sinks import Database
from fusion_tasks.storage import DataRoot, read_json, read_parquet, verify_version
from fusion_tasks.synthetic import SyntheticSpec, generate

pytestmark = pytest.mark.slow

D = dt.date(2024, 4, 29)
# a behaviour model and the model of every other modality
MODALITY_MODELS = ("als", *(m for m in models.REGISTRY if models.get(m).group not in ("behavior", "cross")))


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = DataRoot(tmp_path_factory.mktemp("quality"))
    generate(root, SyntheticSpec())
    config = RunConfig(as_of_date=D, data_root=root.root)
    out = run_all(config)
    return {"root": root, "config": config, "out": out, "table": root.read_recommendations(D),
            "users": read_parquet(root.features(D) / "users.parquet")["user_id"],
            "items": read_parquet(root.features(D) / "items.parquet")["item_id"]}


def ndcg(run: dict, name: str) -> float:
    return run["out"]["evaluation"]["metrics"][name]["ndcg"]


def test_all_models_and_methods_were_evaluated(run: dict) -> None:
    assert set(run["out"]["evaluation"]["metrics"]) == set(models.REGISTRY) | set(FUSION_METHODS)
    assert run["out"]["gate"]["passed"]
    assert run["out"]["evaluation"]["n_users_evaluated"] > 50


@pytest.mark.parametrize("name", MODALITY_MODELS)
def test_every_modality_model_beats_popularity(run: dict, name: str) -> None:
    assert ndcg(run, name) > ndcg(run, "popularity"), {m: v["ndcg"] for m, v in
                                                      run["out"]["evaluation"]["metrics"].items()}


def test_best_fusion_beats_the_best_single_model(run: dict) -> None:
    best_fusion = max(ndcg(run, m) for m in FUSION_METHODS)
    best_single = max(ndcg(run, m) for m in models.REGISTRY)
    assert best_fusion > best_single


def test_published_table_is_the_chosen_methods_fused_table(run: dict) -> None:
    root = run["root"]
    for kind in ("recommendations", "metrics"):
        assert verify_version(root.published(kind, D))
    pd.testing.assert_frame_equal(run["table"], read_parquet(root.fused(D) / "recommendations.parquet"))
    assert root.read_published_metrics(D)["chosen_method"] == run["out"]["fused"]["method"]


def test_the_metrics_written_follow_their_schema(run: dict) -> None:
    """The holdout report, the published metrics and the database sink's copy, as the pipeline wrote them."""
    root = run["root"]
    validate_metrics(read_json(root.fused_metrics(D)), published=False)
    assert read_published_metrics(root, D)["schema_version"] == METRICS_SCHEMA_VERSION
    database = Database.sqlite(root.serving_db())
    try:
        assert published_metrics(database, D)["metrics"] == read_published_metrics(root, D)
    finally:
        database.close()


def test_published_table_contract(run: dict) -> None:
    table, k = run["table"], run["config"].top_k
    assert list(table.columns) == COLUMNS
    assert not table.isna().any().any()
    per_user = table.groupby("user_id")
    assert (per_user.size() <= k).all()
    for _, ranks in per_user["rank"]:
        assert sorted(ranks.tolist()) == list(range(1, len(ranks) + 1))
    assert not table.duplicated(["user_id", "item_id"]).any()
    assert table["item_id"].isin(set(run["items"])).all()
    assert table["user_id"].isin(set(run["users"])).all()
    numbers = table[["score", *CONTRIBUTIONS]].to_numpy(dtype="float64")
    assert np.isfinite(numbers).all()
    ordered = table.sort_values(["user_id", "rank"])
    assert (ordered.groupby("user_id")["score"].diff().dropna() <= 1e-9).all()


def test_contributions_add_up_to_the_score(run: dict) -> None:
    table = run["table"]
    np.testing.assert_allclose(table[CONTRIBUTIONS].sum(axis=1), table["score"], rtol=1e-6, atol=1e-6)


def test_every_user_in_scope_gets_k_recommendations(run: dict) -> None:
    table, k = run["table"], run["config"].top_k
    counts = table.groupby("user_id").size()
    assert set(counts.index) == set(run["users"])
    assert (counts == k).all()
    assert len(table) == k * len(run["users"])


def test_no_already_seen_items_are_recommended(run: dict) -> None:
    staged = read_parquet(run["root"].staged("behavior", D))
    seen = set(zip(staged["user_id"], staged["item_id"], strict=True))
    recommended = set(zip(run["table"]["user_id"], run["table"]["item_id"], strict=True))
    assert not seen & recommended
