"""Real data through the real DAG: the Ciao importer, then ``airflow dags test`` for one date."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fusion_tasks.config import default_ciao_dir
from fusion_tasks.storage import DataRoot

pytestmark = [pytest.mark.slow, pytest.mark.realdata]

PROJECT = Path(__file__).resolve().parents[2]
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
DAY = dt.date(2009, 1, 1)
# Ciao is sparse (~60 ratings a day): windows of 90 days; two years of history and a tuning budget of a
# minute per model keep the run short (the budget's early stop is exercised on real data too).
CONF = {"holdout_days": 90, "validation_days": 90, "n_folds": 2, "history_days": 730, "ndcg_floor": 0.0,
        "tuning_budget_seconds": 60}


@pytest.fixture(scope="module")
def ciao_run(tmp_path_factory):
    source = default_ciao_dir()
    if not (source / "rating_with_timestamp.mat").is_file():
        pytest.skip(f"Ciao data not found at {source}; set FUSION_CIAO_DIR")
    root = DataRoot(tmp_path_factory.mktemp("ciao"))
    home = tmp_path_factory.mktemp("airflow")
    env = {**os.environ, "AIRFLOW_HOME": str(home), "FUSION_DATA_ROOT": str(root.root),
           "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT / "dags"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}

    def run(*args: str) -> str:
        out = subprocess.run(list(args), env=env, capture_output=True, text=True, timeout=1800)
        assert out.returncode == 0, f"{' '.join(args)} failed:\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}"
        return out.stdout

    summary = json.loads(run(sys.executable, "-m", "fusion_tasks.importers", "ciao", "--source", str(source),
                             "--data-root", str(root.root), "--until", DAY.isoformat()))
    run(AIRFLOW, "db", "migrate")
    run(AIRFLOW, "pools", "set", "fusion_training", "2", "model training")
    run(AIRFLOW, "dags", "test", "multimodal_fusion", DAY.isoformat(), "-c", json.dumps(CONF))
    return root, summary


def test_ciao_date_is_published_with_sane_metrics(ciao_run):
    root, summary = ciao_run
    assert root.published_dates("recommendations") == [DAY]
    report = root.read_published_metrics(DAY)
    assert report["n_users_evaluated"] > 100
    for name, values in report["metrics"].items():
        assert 0.0 <= values["ndcg"] <= 1.0, name
        assert values["n_users"] == report["n_users_evaluated"]
    # on Ciao, anything personalised should at least match popularity within noise
    best = max(values["ndcg"] for values in report["metrics"].values())
    assert best >= report["metrics"]["popularity"]["ndcg"]
    assert summary["dropped_zero_ratings"] >= 0


def test_ciao_table_covers_every_user_with_finite_scores(ciao_run):
    root, _ = ciao_run
    table = root.read_recommendations(DAY)
    users = set(np.unique(table["user_id"]))
    assert len(users) > 5000
    assert (table.groupby("user_id").size() <= 10).all()
    assert np.isfinite(table.select_dtypes("number").to_numpy(dtype=float)).all()
    assert table["user_id"].str.startswith("u").all() and table["item_id"].str.startswith("i").all()
