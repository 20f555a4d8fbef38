"""``Modality.extract`` on a hand-made landing zone: quarantine, drift errors, missing days, as-of cut."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from fusion_tasks.config import RunConfig
from fusion_tasks.modalities import behavior, content, social
from fusion_tasks.schemas import DataQualityError, SchemaDriftError
from fusion_tasks.storage import DataRoot, read_json, read_parquet

D = dt.date(2024, 3, 10)
D1 = D - dt.timedelta(days=1)
COLUMNS = ["user_id", "item_id", "event_type", "value", "timestamp"]


def at(day: dt.date, time: str = "12:00:00") -> str:
    return f"{day.isoformat()}T{time}Z"


def land(root: DataRoot, modality: str, day: dt.date, rows: list[tuple], columns: list[str] = COLUMNS,
         name: str = "events.csv") -> Path:
    path = root.landing_day(modality, day) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=columns).to_csv(path, index=False)
    return path


def config(root: DataRoot, day: dt.date = D, share: float = 0.5) -> RunConfig:
    return RunConfig(as_of_date=day, data_root=root.root, max_quarantine_share=share)


DAY1 = [("u1", "i1", "view", "1", at(D1)), ("u1", "i2", "view", "1", at(D1)),
        ("u2", "i1", "click", "1", at(D1)), ("u2", "i3", "purchase", "1", at(D1))]
DAY2 = [("u3", "i1", "rating", "4", at(D)), ("u3", "i2", "rating", "5", at(D)),
        ("u1", "i3", "rating", "3", at(D)), ("u2", "i2", "view", "1", at(D))]


@pytest.fixture
def root(tmp_path: Path) -> DataRoot:
    return DataRoot(tmp_path / "data")


def test_quarantine_counts_per_reason_in_manifest_and_file(root: DataRoot) -> None:
    land(root, "behavior", D1, DAY1 + [("", "i9", "view", "1", at(D1))])
    bad_day = land(root, "behavior", D, DAY2 + [
        ("u1", "i9", "teleport", "1", at(D)),
        ("u1", "i9", "view", "n/a", at(D)),
        ("u1", "i9", "rating", "-3", at(D)),
        ("", "i9", "view", "1", at(D)),
    ])
    manifest = behavior.MODALITY.extract(root, config(root))
    assert manifest["rows_read"] == 13
    assert manifest["rows_staged"] == 8
    assert manifest["rows_quarantined"] == 5
    assert manifest["quarantine_reasons"] == {
        "event_type: not an allowed value": 1,
        "user_id: null": 2,
        "value: not a number or out of range": 2,
    }
    assert manifest["quarantine_share"] == pytest.approx(5 / 13)
    assert manifest["files_read"] == 2
    assert read_json(root.staged_manifest("behavior", D)) == manifest

    quarantined = read_parquet(root.quarantine("behavior", D))
    assert len(quarantined) == 5
    assert quarantined["reject_reason"].value_counts().to_dict() == manifest["quarantine_reasons"]
    assert set(quarantined["source_file"]) == {str(bad_day.relative_to(root.root)),
                                               str((root.landing_day("behavior", D1) / "events.csv")
                                                   .relative_to(root.root))}
    staged = read_parquet(root.staged("behavior", D))
    assert len(staged) == 8
    assert "i9" not in set(staged["item_id"])
    assert staged["timestamp"].is_monotonic_increasing


def test_too_many_rejects_raise_data_quality_error_naming_counts(root: DataRoot) -> None:
    land(root, "behavior", D, DAY2 + [("u1", "i9", "teleport", "1", at(D))])  # 1 of 5 = 20%
    with pytest.raises(DataQualityError) as err:
        behavior.MODALITY.extract(root, config(root, share=0.1))
    message = str(err.value)
    assert "1 of 5 rows" in message
    assert "20.0%" in message
    assert "event_type: not an allowed value" in message
    assert "date=2024-03-10/events.csv" in message
    assert not root.staged("behavior", D).exists()  # nothing staged for training
    assert len(read_parquet(root.quarantine("behavior", D))) == 1  # but the rejected rows are kept
    # exactly at the limit passes
    assert behavior.MODALITY.extract(root, config(root, share=0.2))["rows_quarantined"] == 1


def test_missing_column_in_an_old_file_raises_drift_naming_file_and_column(root: DataRoot) -> None:
    old = land(root, "behavior", D1, [row[:4] for row in DAY1], columns=COLUMNS[:4])
    land(root, "behavior", D, DAY2)
    with pytest.raises(SchemaDriftError) as err:
        behavior.MODALITY.extract(root, config(root))
    assert str(old) in str(err.value)
    assert "'timestamp'" in str(err.value)
    assert not root.staged("behavior", D).exists()


def test_renamed_column_raises_drift(root: DataRoot) -> None:
    land(root, "behavior", D1, DAY1)
    renamed = land(root, "behavior", D, DAY2, columns=["user_id", "item_id", "event_type", "rating", "timestamp"])
    with pytest.raises(SchemaDriftError) as err:
        behavior.MODALITY.extract(root, config(root))
    assert str(renamed) in str(err.value)
    assert "unknown column(s) ['rating']" in str(err.value)
    assert "missing column(s) ['value']" in str(err.value)


def test_missing_behavior_partition_for_the_date_raises_naming_the_path(root: DataRoot) -> None:
    land(root, "behavior", D1, DAY1)
    with pytest.raises(FileNotFoundError) as err:
        behavior.MODALITY.extract(root, config(root))
    assert str(root.landing_day("behavior", D)) in str(err.value)
    assert not root.staged("behavior", D).exists()


def test_no_landing_at_all_raises(root: DataRoot) -> None:
    with pytest.raises(FileNotFoundError, match="no behavior landing files"):
        behavior.MODALITY.extract(root, config(root))


def test_content_and_social_are_not_daily(root: DataRoot) -> None:
    land(root, "behavior", D, DAY2)  # social edges are checked against the users of the behaviour data
    land(root, "content", D1, [("i1", D1.isoformat(), "c1")], columns=["item_id", "valid_from", "category"],
         name="items.csv")
    land(root, "social", D1, [("u1", "u2", "follow", "1", D1.isoformat())],
         columns=["src_user_id", "dst_user_id", "edge_type", "weight", "valid_from"], name="edges.csv")
    assert content.MODALITY.extract(root, config(root))["rows_staged"] == 1
    assert social.MODALITY.extract(root, config(root))["rows_staged"] == 1


def test_header_only_day_is_a_valid_empty_day(root: DataRoot) -> None:
    land(root, "behavior", D1, DAY1)
    empty = land(root, "behavior", D, [])
    assert empty.read_text().strip() == ",".join(COLUMNS)
    manifest = behavior.MODALITY.extract(root, config(root))
    assert manifest["rows_staged"] == 4
    assert manifest["rows_quarantined"] == 0
    assert manifest["profile"]["rows_on_day"] == 0
    assert len(read_parquet(root.staged("behavior", D))) == 4


def test_rows_and_partitions_after_the_date_are_excluded(root: DataRoot) -> None:
    later = D + dt.timedelta(days=1)
    land(root, "behavior", D1, DAY1 + [("u9", "early_future", "view", "1", at(later))])
    land(root, "behavior", D, DAY2 + [
        ("u9", "last_second", "view", "1", at(D, "23:59:59")),
        ("u9", "midnight", "view", "1", at(later, "00:00:00")),
        ("u9", "tz_future", "view", "1", f"{D.isoformat()}T23:30:00-05:00"),  # 04:30 UTC the next day
    ])
    land(root, "behavior", later, [("u9", "next_day", "view", "1", at(later)),
                                   ("", "bad_next_day", "teleport", "x", at(later))])
    manifest = behavior.MODALITY.extract(root, config(root))
    staged = read_parquet(root.staged("behavior", D))
    assert "last_second" in set(staged["item_id"])
    assert not {"early_future", "midnight", "tz_future", "next_day"} & set(staged["item_id"])
    assert "u9" in set(staged["user_id"])
    assert manifest["files_read"] == 2
    assert manifest["rows_after_as_of"] == 3
    assert manifest["rows_staged"] == 9
    assert manifest["rows_quarantined"] == 0  # the later file is not even read
    assert staged["timestamp"].max() < pd.Timestamp(D + dt.timedelta(days=1), tz="UTC")


def test_content_versions_valid_after_the_date_are_excluded(root: DataRoot) -> None:
    later = (D + dt.timedelta(days=3)).isoformat()
    land(root, "content", D1, [("i1", D1.isoformat(), "c1"), ("i2", later, "c2")],
         columns=["item_id", "valid_from", "category"], name="items.csv")
    land(root, "content", D + dt.timedelta(days=1), [("i3", later, "c3")],
         columns=["item_id", "valid_from", "category"], name="items.csv")
    manifest = content.MODALITY.extract(root, config(root))
    staged = read_parquet(root.staged("content", D))
    assert staged["item_id"].tolist() == ["i1"]
    assert manifest["rows_after_as_of"] == 1


def test_drift_section_present_on_the_second_date(root: DataRoot) -> None:
    land(root, "behavior", D1, DAY1)
    land(root, "behavior", D, DAY2)
    first = behavior.MODALITY.extract(root, config(root, D1))
    assert first["drift"] is None
    assert first["profile"]["distribution"] == {"click": 0.25, "purchase": 0.25, "view": 0.5}
    second = behavior.MODALITY.extract(root, config(root, D))
    assert second["profile"]["distribution"] == {"click": 0.125, "purchase": 0.125, "rating": 0.375,
                                                 "view": 0.375}
    assert second["drift"] == {
        "previous_date": D1.isoformat(),
        "rows_change": 4,
        "rows_on_day_previous": 4,
        "rows_on_day": 4,
        # 0.5 * (|0.5-0.375| + |0.25-0.125| + |0.25-0.125| + |0-0.375|)
        "event_type_total_variation": pytest.approx(0.375),
    }


def test_landing_folder_with_a_stray_file_raises_naming_it(root: DataRoot) -> None:
    land(root, "behavior", D, DAY2)
    (root.landing("behavior") / ".hidden").mkdir()  # dot-names are ignored
    assert [d for d, _ in root.landing_files("behavior")] == [D]
    stray = root.landing("behavior") / "README.txt"
    stray.write_text("not a partition")
    with pytest.raises(ValueError, match="README.txt"):
        behavior.MODALITY.extract(root, config(root))
    stray.unlink()
    (root.landing("behavior") / "date=2024-02-30").mkdir()
    with pytest.raises(ValueError, match="date=2024-02-30"):
        behavior.MODALITY.extract(root, config(root))


def test_an_optional_modality_without_landing_data_is_staged_empty_and_every_model_still_fits(tmp_path):
    """A data set may lack a modality (no content, no ties, no embeddings): the run goes on without its signal."""
    import numpy as np

    from fusion_tasks import models
    from fusion_tasks.modalities import REGISTRY
    from fusion_tasks.training_data import TrainingData, build_training_data

    root = DataRoot(tmp_path)
    land(root, "behavior", D1, DAY1)
    land(root, "behavior", D, DAY2)
    cfg = RunConfig(as_of_date=D, data_root=root.root, holdout_days=1, validation_days=1, n_folds=1)
    for name, modality in REGISTRY.items():
        manifest = modality.extract(root, cfg)
        if name != "behavior":
            assert (manifest["files_read"], manifest["rows_staged"], manifest["rows_quarantined"]) == (0, 0, 0)
            assert read_parquet(root.staged(name, D)).empty
    build_training_data(root, cfg)
    data = TrainingData.load(root, cfg, "test")
    assert set(data.features) == set(REGISTRY)
    for name in models.REGISTRY:
        scores = models.get(name)().fit(data).score(np.arange(data.n_users))
        assert scores.shape == (data.n_users, data.n_items) and np.isfinite(scores).all(), name
