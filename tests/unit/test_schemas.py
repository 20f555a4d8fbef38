"""Row validation and column checks of ``fusion_tasks.schemas`` on hand-made frames and files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fusion_tasks.modalities import behavior, content, social
from fusion_tasks.schemas import SchemaDriftError, read_landing_file, validate_joined, validate_rows

OK_TIME = "2024-01-01T10:00:00Z"


def events(*rows: tuple[object, object, object, object, object]) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=["user_id", "item_id", "event_type", "value", "timestamp"])


def reasons(rejected: pd.DataFrame) -> dict[str, str]:
    """item_id -> reason; the tests give every row a distinct item_id as a tag."""
    return dict(zip(rejected["item_id"], rejected["reject_reason"], strict=True))


def test_behavior_rows_are_quarantined_with_their_first_reason() -> None:
    frame = events(
        ("u1", "ok", "view", "1", OK_TIME),
        ("", "null_user", "view", "1", OK_TIME),
        (None, "none_user", "view", "1", OK_TIME),
        ("u2", "teleport", "teleport", "1", OK_TIME),
        ("u3", "nan_value", "view", "n/a", OK_TIME),
        ("u4", "negative", "rating", "-1", OK_TIME),
        ("u5", "infinite", "purchase", "inf", OK_TIME),
        ("u6", "bad_time", "view", "1", "yesterday-ish"),
        ("", "two_problems", "teleport", "x", OK_TIME),  # first failing column wins
        ("u7", "epoch", "click", "2", "1704067200"),  # epoch seconds are a valid timestamp
    )
    valid, rejected = validate_rows(frame, behavior.SCHEMA)
    assert valid["item_id"].tolist() == ["ok", "epoch"]
    assert valid["value"].tolist() == [1.0, 2.0]
    assert valid["timestamp"].tolist() == [pd.Timestamp(OK_TIME), pd.Timestamp("2024-01-01T00:00:00Z")]
    assert str(valid["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert reasons(rejected) == {
        "null_user": "user_id: null",
        "none_user": "user_id: null",
        "teleport": "event_type: not an allowed value",
        "nan_value": "value: not a number or out of range",
        "negative": "value: not a number or out of range",
        "infinite": "value: not a number or out of range",
        "bad_time": "timestamp: not a timestamp",
        "two_problems": "user_id: null",
    }
    # the rejected rows keep their raw values (as strings), never coerced
    assert rejected.set_index("item_id").loc["nan_value", "value"] == "n/a"
    assert rejected.set_index("item_id").loc["bad_time", "timestamp"] == "yesterday-ish"
    assert len(valid) + len(rejected) == len(frame)


def test_zero_value_is_allowed_but_zero_social_weight_is_not() -> None:
    valid, rejected = validate_rows(events(("u1", "i1", "view", "0", OK_TIME)), behavior.SCHEMA)
    assert len(valid) == 1 and rejected.empty
    edges = pd.DataFrame({"src_user_id": ["a", "b", "c", "d"], "dst_user_id": ["b", "c", "d", "a"],
                          "edge_type": ["follow", "trust", "enemy", "friend"], "weight": ["0", "0.5", "1", "2"],
                          "valid_from": ["2024-01-01", "2024-01-01", "2024-01-01", "2024-13-01"]})
    valid, rejected = validate_rows(edges, social.SCHEMA)
    assert valid["src_user_id"].tolist() == ["b"]
    assert dict(zip(rejected["src_user_id"], rejected["reject_reason"], strict=True)) == {
        "a": "weight: not a number or out of range",
        "c": "edge_type: not an allowed value",
        "d": "valid_from: not a date",
    }


def test_content_optional_nullable_columns_and_vectors() -> None:
    frame = pd.DataFrame({"item_id": ["i1", "i2", "i3", "i4"], "valid_from": ["2024-01-01"] * 4,
                          "category": ["c1", None, "c2", "c3"], "brand": [None, "b", "b", "b"],
                          "price": ["", "3.5", "-2", "1"], "tags": [None, "x|y", "y", "z"],
                          "embedding": ["0.1 0.2", None, "0.5 0.5", "0.1 oops"]})
    valid, rejected = validate_rows(frame, content.SCHEMA)
    assert valid["item_id"].tolist() == ["i1", "i2"]
    assert np.isnan(valid.loc[0, "price"]) and valid.loc[1, "price"] == 3.5
    assert valid.loc[0, "embedding"] == pytest.approx([0.1, 0.2])
    assert dict(zip(rejected["item_id"], rejected["reject_reason"], strict=True)) == {
        "i3": "price: not a number or out of range",
        "i4": "embedding: not a vector of numbers",
    }


def write_csv(path: Path, frame: pd.DataFrame) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


def test_missing_column_raises_drift_naming_file_and_column(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "events.csv", events(("u1", "i1", "view", "1", OK_TIME)).drop(columns="value"))
    with pytest.raises(SchemaDriftError) as err:
        read_landing_file(path, behavior.SCHEMA)
    assert str(path) in str(err.value)
    assert "missing column(s) ['value']" in str(err.value)


def test_renamed_column_raises_drift_naming_both_names(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "renamed" / "events.csv",
                     events(("u1", "i1", "view", "1", OK_TIME)).rename(columns={"timestamp": "ts"}))
    with pytest.raises(SchemaDriftError) as err:
        read_landing_file(path, behavior.SCHEMA)
    message = str(err.value)
    assert str(path) in message
    assert "missing column(s) ['timestamp']" in message
    assert "unknown column(s) ['ts']" in message


def test_unknown_extra_column_in_parquet_raises_drift(tmp_path: Path) -> None:
    path = tmp_path / "events.parquet"
    events(("u1", "i1", "view", "1", OK_TIME)).assign(note="x").to_parquet(path, index=False)
    with pytest.raises(SchemaDriftError, match=r"unknown column\(s\) \['note'\]") as err:
        read_landing_file(path, behavior.SCHEMA)
    assert str(path) in str(err.value)


def test_optional_columns_may_be_absent_and_are_added_as_null(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "items.csv", pd.DataFrame({"item_id": ["i1"], "valid_from": ["2024-01-01"],
                                                           "category": ["c"]}))
    frame = read_landing_file(path, content.SCHEMA)
    assert list(frame.columns) == content.SCHEMA.names
    assert frame["brand"].isna().all() and frame["embedding"].isna().all()
    valid, rejected = validate_rows(frame, content.SCHEMA)
    assert len(valid) == 1 and rejected.empty


def test_csv_values_stay_raw_strings(tmp_path: Path) -> None:
    # ids with leading zeros must not become numbers
    path = write_csv(tmp_path / "events.csv", events(("007", "0042", "view", "1", OK_TIME)))
    frame = read_landing_file(path, behavior.SCHEMA)
    valid, _ = validate_rows(frame, behavior.SCHEMA)
    assert valid["user_id"].tolist() == ["007"]
    assert valid["item_id"].tolist() == ["0042"]


def test_validating_many_files_in_one_pass_equals_validating_each(tmp_path: Path) -> None:
    """``validate_joined`` gives each file's ``validate_rows``: rejects stay with their file, CSV and Parquet
    files (other column types) are not mixed, and a file of epoch milliseconds next to files of epoch
    seconds keeps its own unit."""
    frames = [
        events(("u1", "a", "view", "1", "1704067200"), ("u2", "b", "view", "1", "1704067260")),  # seconds
        events(("u1", "c", "view", "1", "1704067200000"), ("", "d", "view", "1", "1704067200000")),  # ms
        events(),
        events(("u3", "e", "teleport", "1", OK_TIME), ("u3", "f", "rating", "-2", "yesterday-ish")),
        events(("u4", "g", "click", "2", OK_TIME)),
    ]
    paths = []
    for i, frame in enumerate(frames):
        paths.append(tmp_path / f"{i}.csv")
        frame.to_csv(paths[-1], index=False)
    typed = events(("u5", "h", "view", "3", OK_TIME)).astype({"value": "float64"})
    typed["timestamp"] = pd.to_datetime(typed["timestamp"], utc=True)
    paths.insert(2, tmp_path / "typed.parquet")
    typed.to_parquet(paths[2])
    raws = [read_landing_file(path, behavior.SCHEMA) for path in paths]
    assert raws[2]["value"].dtype != raws[0]["value"].dtype
    valid, rejected, valid_file, rejected_file = validate_joined(raws, behavior.SCHEMA)
    assert len(valid) == len(valid_file) and len(rejected) == len(rejected_file)
    together = [(valid.loc[valid_file == i].reset_index(drop=True),
                 rejected.loc[rejected_file == i].reset_index(drop=True)) for i in range(len(raws))]
    for raw, (valid, rejected) in zip(raws, together, strict=True):
        alone_valid, alone_rejected = validate_rows(raw, behavior.SCHEMA)
        pd.testing.assert_frame_equal(valid, alone_valid, check_exact=True)
        pd.testing.assert_frame_equal(rejected, alone_rejected, check_exact=True)
    seconds, millis = together[0][0]["timestamp"], together[1][0]["timestamp"]
    assert seconds.iloc[0] == millis.iloc[0] == pd.Timestamp("2024-01-01T00:00:00Z")
    assert reasons(together[4][1]) == {"e": "event_type: not an allowed value",
                                       "f": "value: not a number or out of range"}
