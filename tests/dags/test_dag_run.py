"""One real end-to-end run of the DAG with ``airflow dags test`` on the built-in synthetic data."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fusion_tasks import models
from fusion_tasks.fusion import methods
from fusion_tasks.storage import DataRoot, verify_version
from fusion_tasks.synthetic import SyntheticSpec, generate

pytestmark = pytest.mark.slow

PROJECT = Path(__file__).resolve().parents[2]
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
DAY = dt.date(2024, 4, 29)


def _airflow(env: dict[str, str], *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    out = subprocess.run([AIRFLOW, *args], env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"airflow {' '.join(args)} failed:\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}"
    return out


def _runs(env: dict[str, str]) -> list[dict]:
    listing = _airflow(env, "dags", "list-runs", "multimodal_fusion", "-o", "json").stdout
    return json.loads(listing[listing.index("[{"):].splitlines()[0])


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory) -> tuple[DataRoot, dict[str, str]]:
    """Synthetic landing data and an Airflow home with the SQLite metadata database and the pool."""
    home = tmp_path_factory.mktemp("airflow")
    root = DataRoot(tmp_path_factory.mktemp("data"))
    generate(root, SyntheticSpec())
    env = {**os.environ, "AIRFLOW_HOME": str(home), "FUSION_DATA_ROOT": str(root.root),
           "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT / "dags"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    _airflow(env, "db", "migrate")
    _airflow(env, "pools", "set", "fusion_training", "2", "model training")
    return root, env


@pytest.fixture(scope="module")
def dag_run(airflow_env):
    root, env = airflow_env
    _airflow(env, "dags", "test", "multimodal_fusion", DAY.isoformat())
    return root, _runs(env)


def test_the_run_succeeds_and_publishes_one_complete_version(dag_run):
    root, runs = dag_run
    assert [r["state"] for r in runs] == ["success"]
    assert root.published_dates("recommendations") == [DAY]
    assert root.published_dates("metrics") == [DAY]
    for kind in ("recommendations", "metrics"):
        versions = list(root.published_versions(kind, DAY).iterdir())
        assert len(versions) == 1 and verify_version(versions[0])
        assert root.published(kind, DAY).resolve() == versions[0].resolve()


def test_published_table_keeps_the_output_contract(dag_run):
    root, _ = dag_run
    table = root.read_recommendations(DAY)
    report = root.read_published_metrics(DAY)
    k = report["k"]
    users = pd.read_parquet(root.features(DAY) / "users.parquet")["user_id"]
    items = set(pd.read_parquet(root.features(DAY) / "items.parquet")["item_id"])
    sizes = table.groupby("user_id").size()
    assert set(sizes.index) == set(users)  # every user in scope, cold ones included
    assert (sizes == k).all()
    assert not table.duplicated(["user_id", "rank"]).any()
    assert not table.duplicated(["user_id", "item_id"]).any()
    assert (table.sort_values(["user_id", "rank"]).groupby("user_id")["rank"].apply(list)
            .map(lambda r: r == list(range(1, k + 1)))).all()
    assert table["item_id"].isin(items).all()
    numbers = table.select_dtypes("number").to_numpy(dtype=float)
    assert np.isfinite(numbers).all()
    parts = table.filter(like="contribution_").sum(axis=1)  # stacking's intercept is in contribution_context
    assert np.allclose(parts, table["score"], atol=1e-6)
    # no user's past items are recommended back to them
    past = pd.read_parquet(root.staged("behavior", DAY), columns=["user_id", "item_id"]).drop_duplicates()
    assert len(table.merge(past, on=["user_id", "item_id"])) == 0


def test_every_modality_beats_popularity_and_fusion_beats_every_single_model(dag_run):
    root, _ = dag_run
    metrics = root.read_published_metrics(DAY)["metrics"]
    ndcg = {name: values["ndcg"] for name, values in metrics.items()}
    for model in ("als", "bpr", "item_knn", "ease", "content", "social"):
        assert ndcg[model] > ndcg["popularity"], (model, ndcg)
    best_single = max(ndcg[m] for m in models.REGISTRY)
    assert max(ndcg[m] for m in methods.REGISTRY) > best_single, ndcg
    for values in metrics.values():
        assert values["n_users"] > 200
        assert set(values) >= {"precision", "recall", "f1", "ndcg", "map", "hit_rate", "coverage"}


def test_metrics_record_the_chosen_weights_and_the_gate(dag_run):
    root, _ = dag_run
    report = root.read_published_metrics(DAY)
    weights = report["fusion"]["weighted_sum"]["weights"]
    assert set(weights) == set(models.REGISTRY)
    assert abs(sum(weights.values()) - 1) < 1e-4
    assert report["gate"]["passed"] is True
    assert report["chosen_method"] in methods.REGISTRY
    for name in models.REGISTRY:  # every base model's tuning: the chosen setting and every trial's fold score
        tuning = report["tuning"][name]
        assert tuning["fold_ndcg"] == max(t["fold_ndcg"] for t in tuning["trials"] if t["fold_ndcg"] is not None)
        assert {k: tuning["params"][k] for k in tuning["chosen"]} == tuning["chosen"]


def test_rerunning_the_date_replaces_the_version_with_identical_rows_and_no_orphans(airflow_env, dag_run):
    """``airflow dags test`` on a date that already ran clears its task instances and runs it again:
    the same data gives the same table, published as one new version, with nothing left over."""
    root, env = airflow_env
    before = root.read_recommendations(DAY)
    old = {kind: root.published(kind, DAY).resolve() for kind in ("recommendations", "metrics")}
    _airflow(env, "dags", "test", "multimodal_fusion", DAY.isoformat())
    assert [r["state"] for r in _runs(env)] == ["success"]  # the run of that date was replaced, not added
    # the same users, items, ranks and scores; a contribution is a float32 network output less its mean, and that
    # output can differ in its last bit between two processes (seen once: 0.00145412 against 0.00145410, a relative
    # difference above the default tolerance for a contribution near 0), so floats are compared to float32 precision
    pd.testing.assert_frame_equal(before, root.read_recommendations(DAY), check_exact=False, rtol=1e-5, atol=1e-6)
    for kind, previous in old.items():
        versions = list(root.published_versions(kind, DAY).iterdir())
        assert len(versions) == 1 and verify_version(versions[0])
        assert versions[0].resolve() != previous  # a new version, not the old one left in place
        assert not previous.exists()
        siblings = sorted(p.name for p in (root.root / "published" / kind).iterdir())
        assert siblings == [".versions", f"ds={DAY.isoformat()}"], siblings
