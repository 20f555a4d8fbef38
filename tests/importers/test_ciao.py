"""The Ciao importer on tiny synthetic MAT files, plus one test on the real data set."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import io as sio

from fusion_tasks.config import default_ciao_dir
from fusion_tasks.importers import import_ciao
from fusion_tasks.importers.__main__ import main
from fusion_tasks.modalities import REGISTRY
from fusion_tasks.schemas import read_landing_file, validate_rows
from fusion_tasks.storage import DataRoot


def unix(day: str) -> int:
    """Ciao-style time: 07:00 UTC of ``day``."""
    return int(pd.Timestamp(f"{day}T07:00:00Z").timestamp())


# user, item, category, rating, helpfulness, time
RATINGS = [
    (1, 10, 1, 4, 2, unix("2009-01-01")),
    (2, 10, 1, 5, 4, unix("2009-01-01")),
    (1, 11, 2, 3, 1, unix("2009-01-02")),
    (1, 10, 1, 2, 2, unix("2009-01-04")),  # re-rating: replaces (1, 10) of 2009-01-01
    (3, 12, 2, 0, 3, unix("2009-01-04")),  # zero rating: dropped, counted
    (3, 11, 1, 5, 5, unix("2009-01-05")),  # item 11 changes category (2 -> 1) and bucket
    (3, 11, 1, 1, 5, unix("2009-01-05")),  # same time tie: the later row wins
    (2, 13, 2, 4, 2, unix("2009-01-06")),
]
TRUST = [(1, 2), (2, 3), (3, 1), (1, 4), (2, 2)]  # user 4 never rates; (2, 2) is a self-loop


@pytest.fixture
def ciao_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "ciao"
    folder.mkdir()
    sio.savemat(folder / "rating_with_timestamp.mat", {"rating": np.array(RATINGS, dtype="float64")})
    sio.savemat(folder / "trustnetwork.mat", {"trustnetwork": np.array(TRUST, dtype="uint16")})
    (folder / "catalog_ciao.txt").write_bytes("1 DVDs\r\n2 Caf\xe9\r\n".encode("latin-1"))
    return folder


def landed(root: DataRoot, modality: str) -> pd.DataFrame:
    parts = [pd.read_csv(path, dtype=str, keep_default_na=False).assign(partition=day)
             for day, path in root.landing_files(modality)]
    return pd.concat(parts, ignore_index=True)


def test_behavior_dedup_zero_ratings_and_empty_days(ciao_dir: Path, tmp_path: Path) -> None:
    root = DataRoot(tmp_path / "data")
    summary = import_ciao(ciao_dir, root)
    assert summary["dropped_zero_ratings"] == 1
    assert summary["duplicates_removed"] == 2
    assert summary["behavior_events"] == 5
    days = [d for d, _ in root.landing_files("behavior")]
    assert days == [dt.date(2009, 1, d) for d in range(1, 7)]  # every day, 03 included
    empty = root.landing_day("behavior", dt.date(2009, 1, 3)) / "ciao.csv"
    assert empty.read_text() == "user_id,item_id,event_type,value,timestamp\n"

    events = landed(root, "behavior")
    assert list(events.columns[:5]) == ["user_id", "item_id", "event_type", "value", "timestamp"]
    pair = events.loc[(events["user_id"] == "u1") & (events["item_id"] == "i10")]
    assert pair[["value", "timestamp"]].values.tolist() == [["2.0", "2009-01-04T07:00:00Z"]]
    tie = events.loc[(events["user_id"] == "u3") & (events["item_id"] == "i11"), "value"]
    assert tie.tolist() == ["1.0"]
    assert "i12" not in set(events["item_id"])
    assert set(events["event_type"]) == {"rating"}
    assert (pd.to_datetime(events["timestamp"]).dt.date == events["partition"]).all()


def test_content_versions_never_before_first_rating(ciao_dir: Path, tmp_path: Path) -> None:
    root = DataRoot(tmp_path / "data")
    import_ciao(ciao_dir, root)
    content = landed(root, "content")
    assert (pd.to_datetime(content["valid_from"]).dt.date == content["partition"]).all()
    events = landed(root, "behavior")
    first = events.groupby("item_id")["partition"].min()
    assert (content["partition"].to_numpy() >= content["item_id"].map(first).to_numpy()).all()
    # item 10: only the 2009-01-01 rating of user 2 (user 1's moved to 01-04): help 4 -> bucket 4,
    # then on 01-04 mean (4 + 2) / 2 = 3 -> new version
    i10 = content.loc[content["item_id"] == "i10"]
    assert i10[["valid_from", "category", "tags"]].values.tolist() == [
        ["2009-01-01", "DVDs", "helpfulness:4|category:DVDs"],
        ["2009-01-04", "DVDs", "helpfulness:3|category:DVDs"],
    ]
    i11 = content.loc[content["item_id"] == "i11"]
    assert i11[["valid_from", "category", "tags"]].values.tolist() == [
        ["2009-01-02", "Café", "helpfulness:1|category:Café"],
        ["2009-01-05", "DVDs", "helpfulness:3|category:DVDs"],
    ]
    assert "i12" not in set(content["item_id"])  # only rated with a dropped zero


def test_trust_edges_valid_from_later_first_rating_day(ciao_dir: Path, tmp_path: Path) -> None:
    root = DataRoot(tmp_path / "data")
    summary = import_ciao(ciao_dir, root)
    social = landed(root, "social")
    # first days of the written events: u2 01-01, u1 01-02 (its 01-01 rating was replaced by the 01-04 one),
    # u3 01-05 (its 01-04 rating was a dropped zero); u4 never rates
    edges = {(r.src_user_id, r.dst_user_id): r.valid_from for r in social.itertuples()}
    assert edges == {("u1", "u2"): "2009-01-02", ("u2", "u3"): "2009-01-05", ("u3", "u1"): "2009-01-05"}
    assert set(social["edge_type"]) == {"trust"} and set(social["weight"]) == {"1.0"}
    assert summary["trust_edges_without_rated_user"] == 1
    assert summary["trust_self_loops_dropped"] == 1
    assert "later of the two users' first rating days" in summary["trust_dating"]


def test_landing_files_pass_the_pipeline_validation(ciao_dir: Path, tmp_path: Path) -> None:
    root = DataRoot(tmp_path / "data")
    import_ciao(ciao_dir, root)
    for name, modality in REGISTRY.items():
        for _, path in root.landing_files(name):
            valid, rejected = validate_rows(read_landing_file(path, modality.schema), modality.schema)
            assert rejected.empty, (path, rejected)


def test_until_is_idempotent_and_removes_stale_files(ciao_dir: Path, tmp_path: Path) -> None:
    root = DataRoot(tmp_path / "data")
    other = root.landing_day("behavior", dt.date(2009, 1, 6)) / "other.csv"
    other.parent.mkdir(parents=True)
    other.write_text("user_id,item_id,event_type,value,timestamp\n")
    import_ciao(ciao_dir, root)
    summary = import_ciao(ciao_dir, root, until=dt.date(2009, 1, 3))
    assert summary["ratings_after_until"] == 5
    assert summary["duplicates_removed"] == 0  # the re-rating of 01-04 is after until: 01-01 stays
    assert [d for d, _ in root.landing_files("behavior")] == [dt.date(2009, 1, d) for d in (1, 2, 3, 6)]
    assert other.exists()  # files of other sources are left alone
    assert not root.landing_day("content", dt.date(2009, 1, 5)).exists()
    social = landed(root, "social")
    assert social[["src_user_id", "dst_user_id", "valid_from"]].values.tolist() == [["u1", "u2", "2009-01-01"]]
    again = import_ciao(ciao_dir, root, until=dt.date(2009, 1, 3))
    assert again["partitions"]["behavior"]["stale_files_removed"] == 0
    first = {p: p.read_bytes() for _, p in root.landing_files("content")}
    import_ciao(ciao_dir, root, until=dt.date(2009, 1, 3))
    assert {p: p.read_bytes() for _, p in root.landing_files("content")} == first


def test_until_after_last_rating_writes_empty_days(ciao_dir: Path, tmp_path: Path) -> None:
    root = DataRoot(tmp_path / "data")
    import_ciao(ciao_dir, root, until=dt.date(2009, 1, 8))
    assert [d for d, _ in root.landing_files("behavior")][-1] == dt.date(2009, 1, 8)


def test_missing_file_is_named(ciao_dir: Path, tmp_path: Path) -> None:
    (ciao_dir / "trustnetwork.mat").unlink()
    with pytest.raises(FileNotFoundError, match="trustnetwork.mat"):
        import_ciao(ciao_dir, DataRoot(tmp_path / "data"))


def test_until_before_first_rating_raises(ciao_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no valid rating"):
        import_ciao(ciao_dir, DataRoot(tmp_path / "data"), until=dt.date(2008, 12, 31))


def test_cli_prints_summary(ciao_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["ciao", "--source", str(ciao_dir), "--data-root", str(tmp_path / "data"), "--until", "2009-01-04"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["last_day"] == "2009-01-04"
    assert summary["behavior_events"] == 3  # u1/i10 (re-rated on 01-04), u2/i10, u1/i11; zero dropped
    assert main(["ciao", "--source", str(tmp_path / "nowhere"), "--data-root", str(tmp_path / "data")]) == 2
    assert "rating_with_timestamp.mat" in capsys.readouterr().err


@pytest.mark.realdata
def test_real_ciao_until_2009_03_31(tmp_path: Path) -> None:
    source = default_ciao_dir()
    if not (source / "rating_with_timestamp.mat").is_file():
        pytest.skip(f"Ciao data not found at {source}; set FUSION_CIAO_DIR")
    root = DataRoot(tmp_path / "data")
    summary = import_ciao(source, root, until=dt.date(2009, 3, 31))
    # facts from SOURCE.md: 284,086 ratings, 7,375 users, 105,114 items, 111,781 trust edges,
    # ratings from 2000-05-30, 34 zero ratings and 1,436 duplicated pairs over the whole set
    assert summary["ratings_read"] == 284_086
    assert summary["trust_edges_read"] == 111_781
    assert summary["first_day"] == "2000-05-30" and summary["last_day"] == "2009-03-31"
    assert 0 < summary["users"] <= 7375 and 0 < summary["items"] <= 105_114
    assert summary["dropped_zero_ratings"] <= 34 and summary["duplicates_removed"] <= 1436
    kept = summary["ratings_read"] - summary["ratings_after_until"]
    assert summary["behavior_events"] == kept - summary["dropped_zero_ratings"] - summary["duplicates_removed"]
    n_days = (dt.date(2009, 3, 31) - dt.date(2000, 5, 30)).days + 1
    assert summary["partitions"]["behavior"]["files"] == n_days == len(root.landing_files("behavior"))
    assert summary["trust_edges_written"] + summary["trust_edges_without_rated_user"] == 111_781
    assert summary["items_with_content"] == summary["items"]
