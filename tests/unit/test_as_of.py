"""The as-of property: what lands after date D (later partitions, future rows inside D's files,
content and ties valid after D) changes nothing published for D; and a rerun repeats exactly."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pandas as pd
import pytest

from fusion_tasks.config import RunConfig
from fusion_tasks.pipeline import run_all
from fusion_tasks.storage import DataRoot, read_parquet
from fusion_tasks.synthetic import SyntheticSpec, generate

pytestmark = pytest.mark.slow

SPEC = SyntheticSpec(n_days=70, n_users=80, n_items=120)
D = SPEC.start + dt.timedelta(days=59)
LATER = D + dt.timedelta(days=1)


def config(root: DataRoot) -> RunConfig:
    return RunConfig(as_of_date=D, data_root=root.root, holdout_days=7, validation_days=7, n_folds=2,
                     candidates_per_model=20)


def append_rows(path: Path, rows: list[dict[str, str]]) -> None:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    pd.concat([frame, pd.DataFrame(rows)], ignore_index=True).to_csv(path, index=False)


def add_future(root: DataRoot) -> None:
    """Rows that are not true by D, placed in partitions up to D."""
    day_file = root.landing_day("behavior", D) / "events.csv"
    append_rows(day_file, [
        {"user_id": "u0001", "item_id": "i0002", "event_type": "purchase", "value": "1",
         "timestamp": f"{LATER.isoformat()}T00:00:00Z"},
        {"user_id": "u0003", "item_id": "i0004", "event_type": "rating", "value": "5",
         "timestamp": f"{D.isoformat()}T22:00:00-05:00"},  # 03:00 UTC on D + 1
        {"user_id": "u9999", "item_id": "i9999", "event_type": "click", "value": "1",
         "timestamp": f"{LATER.isoformat()}T08:00:00Z"},  # a user and an item from the future
    ])
    content_dir = root.landing_day("content", D)
    content_dir.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"item_id": ["i9998", "i0005"], "valid_from": [LATER.isoformat()] * 2,
                  "category": ["category_1", "category_7"], "brand": ["b1", "b2"], "price": ["9.5", "1"],
                  "tags": ["t1_0|t1_1", "t7_0"]}).to_csv(content_dir / "late_items.csv", index=False)
    social_dir = root.landing_day("social", D)
    social_dir.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"src_user_id": ["u0000", "u9997"], "dst_user_id": ["u0001", "u0000"], "edge_type": ["friend"] * 2,
                  "weight": ["1", "1"], "valid_from": [LATER.isoformat()] * 2}).to_csv(
        social_dir / "late_edges.csv", index=False)
    # and a future partition with a new item's content
    later_dir = root.landing_day("content", LATER)
    later_dir.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"item_id": ["i9996"], "valid_from": [LATER.isoformat()], "category": ["category_2"]}).to_csv(
        later_dir / "items.csv", index=False)


def drop_after(root: DataRoot, day: dt.date) -> None:
    for modality in ("behavior", "content", "social"):
        for landed, path in root.landing_files(modality):
            if landed > day:
                shutil.rmtree(path.parent, ignore_errors=True)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, DataRoot]:
    base = tmp_path_factory.mktemp("as_of")
    full = DataRoot(base / "full")
    generate(full, SPEC)  # 70 days: ten days after D
    assert any(d > D for d, _ in full.landing_files("behavior"))
    cut = DataRoot(base / "cut")
    shutil.copytree(full.landing("behavior").parent, cut.root / "landing")
    drop_after(cut, D)
    again = DataRoot(base / "again")
    shutil.copytree(cut.root / "landing", again.root / "landing")
    add_future(full)
    out = {}
    for name, root in (("cut", cut), ("full", full), ("again", again)):
        result = run_all(config(root))
        assert result["gate"]["passed"], result["gate"]
        out[name] = root
    return out


def published(root: DataRoot) -> pd.DataFrame:
    return root.read_recommendations(D)


def test_future_rows_are_really_there_and_excluded_from_staging(runs: dict[str, DataRoot]) -> None:
    full, cut = runs["full"], runs["cut"]
    for modality in ("behavior", "content", "social"):
        pd.testing.assert_frame_equal(read_parquet(full.staged(modality, D)), read_parquet(cut.staged(modality, D)))
    assert (full.features(D) / "users.parquet").read_bytes() == (cut.features(D) / "users.parquet").read_bytes()
    assert (full.features(D) / "items.parquet").read_bytes() == (cut.features(D) / "items.parquet").read_bytes()
    items = set(read_parquet(full.features(D) / "items.parquet")["item_id"])
    assert not {"i9999", "i9998", "i9996"} & items
    assert "u9999" not in set(read_parquet(full.features(D) / "users.parquet")["user_id"])


def test_published_recommendations_ignore_everything_after_the_date(runs: dict[str, DataRoot]) -> None:
    with_future, without = published(runs["full"]), published(runs["cut"])
    assert len(without) > 0
    pd.testing.assert_frame_equal(with_future, without, check_exact=True)
    metrics_full = runs["full"].read_published_metrics(D)
    metrics_cut = runs["cut"].read_published_metrics(D)
    assert metrics_full["metrics"] == metrics_cut["metrics"]
    assert metrics_full["chosen_method"] == metrics_cut["chosen_method"]


def test_two_runs_into_empty_roots_publish_identical_rows(runs: dict[str, DataRoot]) -> None:
    first, second = published(runs["cut"]), published(runs["again"])
    pd.testing.assert_frame_equal(first, second, check_exact=True)
    assert (runs["cut"].fused(D) / "weighted_sum.json").read_text() == (
        runs["again"].fused(D) / "weighted_sum.json").read_text()
    assert runs["cut"].read_published_metrics(D)["metrics"] == runs["again"].read_published_metrics(D)["metrics"]
