"""The generic table importer on tiny CSV/Parquet files."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest

from fusion_tasks.importers import import_table
from fusion_tasks.importers.__main__ import main
from fusion_tasks.modalities import REGISTRY
from fusion_tasks.schemas import read_landing_file, validate_rows
from fusion_tasks.storage import DataRoot


def events_csv(tmp_path: Path) -> Path:
    path = tmp_path / "clicks.csv"
    pd.DataFrame({
        "uid": ["7", "8", "7"],
        "sku": ["a", "b", "c"],
        "score": ["1", "2", "3"],
        "when": ["2024-03-01T10:00:00Z", "1709596800", "2024-03-01T23:30:00-05:00"],  # 03-05; 03-02 UTC
        "note": ["x", "y", "z"],
    }).to_csv(path, index=False)
    return path


MAPPING = {"uid": "user_id", "sku": "item_id", "score": "value", "when": "timestamp"}


def test_behavior_daily_partitions_with_empty_days(tmp_path: Path) -> None:
    root = DataRoot(tmp_path / "data")
    summary = import_table(events_csv(tmp_path), root, "behavior", MAPPING, event_type="rating")
    assert summary["ignored_columns"] == ["note"]
    assert summary["defaults_filled"] == ["event_type"]
    files = root.landing_files("behavior")
    assert [d for d, _ in files] == [dt.date(2024, 3, d) for d in range(1, 6)]
    assert all(p.name == "clicks.csv" for _, p in files)
    assert summary["empty_days"] == 2
    day2 = pd.read_csv(root.landing_day("behavior", dt.date(2024, 3, 2)) / "clicks.csv", dtype=str)
    assert day2.values.tolist() == [["7", "c", "rating", "3", "2024-03-01T23:30:00-05:00"]]
    empty = root.landing_day("behavior", dt.date(2024, 3, 3)) / "clicks.csv"
    assert empty.read_text() == "user_id,item_id,event_type,value,timestamp\n"
    schema = REGISTRY["behavior"].schema
    for _, path in files:
        _, rejected = validate_rows(read_landing_file(path, schema), schema)
        assert rejected.empty


def test_unmapped_required_column_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\['event_type'\]"):
        import_table(events_csv(tmp_path), DataRoot(tmp_path / "data"), "behavior", MAPPING)
    mapping = {k: v for k, v in MAPPING.items() if k != "when"}
    with pytest.raises(ValueError, match=r"\['timestamp'\]"):
        import_table(events_csv(tmp_path), DataRoot(tmp_path / "data"), "behavior", mapping, event_type="view")


def test_bad_mapping_and_defaults(tmp_path: Path) -> None:
    path, root = events_csv(tmp_path), DataRoot(tmp_path / "data")
    with pytest.raises(ValueError, match="not in the file"):
        import_table(path, root, "behavior", {**MAPPING, "nope": "value"}, event_type="view")
    with pytest.raises(ValueError, match="not columns of behavior"):
        import_table(path, root, "behavior", {**MAPPING, "note": "colour"}, event_type="view")
    with pytest.raises(ValueError, match="does not apply"):
        import_table(path, root, "behavior", MAPPING, event_type="view", valid_from=dt.date(2024, 1, 1))
    with pytest.raises(ValueError, match="unknown modality"):
        import_table(path, root, "weather", MAPPING)


def test_unparseable_timestamp_raises(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    pd.DataFrame({"user_id": ["1"], "item_id": ["2"], "event_type": ["view"], "value": ["1"],
                  "timestamp": ["yesterday"]}).to_csv(path, index=False)
    with pytest.raises(ValueError, match="unparseable 'timestamp'"):
        import_table(path, DataRoot(tmp_path / "data"), "behavior", {})


def test_content_parquet_rows_go_to_their_valid_from(tmp_path: Path) -> None:
    path = tmp_path / "items.parquet"
    pd.DataFrame({
        "id": [1, 2, 3],
        "since": ["2024-01-05", None, "2024-01-07T12:00:00"],
        "cat": ["books", "music", "books"],
        "vec": [[0.1, 0.2], None, [0.3, 0.4]],
    }).to_parquet(path)
    root = DataRoot(tmp_path / "data")
    summary = import_table(path, root, "content", {"id": "item_id", "since": "valid_from", "cat": "category",
                                                   "vec": "embedding"}, valid_from=dt.date(2024, 1, 1))
    assert summary["file_name"] == "items.parquet"
    found = {d: pd.read_parquet(p) for d, p in root.landing_files("content")}
    assert sorted(found) == [dt.date(2024, 1, 1), dt.date(2024, 1, 5), dt.date(2024, 1, 7)]
    for day, frame in found.items():
        assert (frame["valid_from"] == day.isoformat()).all()
        assert frame["item_id"].map(type).eq(str).all()
    assert found[dt.date(2024, 1, 1)]["item_id"].tolist() == ["2"]
    schema = REGISTRY["content"].schema
    for _, p in root.landing_files("content"):
        _, rejected = validate_rows(read_landing_file(p, schema), schema)
        assert rejected.empty


def test_social_defaults_and_rerun_replaces(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "follows.csv"
    pd.DataFrame({"a": ["1", "2"], "b": ["2", "3"], "day": ["2024-02-01", "2024-02-03"]}).to_csv(path, index=False)
    root = tmp_path / "data"
    args = ["generic", "--modality", "social", "--input", str(path), "--data-root", str(root),
            "--map", "a=src_user_id", "b=dst_user_id", "--map", "day=valid_from",
            "--edge-type", "follow", "--weight", "1"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["files"] == 2 and summary["rows"] == 2
    data = DataRoot(root)
    frame = pd.read_csv(data.landing_day("social", dt.date(2024, 2, 1)) / "follows.csv", dtype=str)
    assert frame.values.tolist() == [["1", "2", "follow", "1.0", "2024-02-01"]]

    pd.DataFrame({"a": ["1"], "b": ["2"], "day": ["2024-02-01"]}).to_csv(path, index=False)
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["stale_files_removed"] == 1
    assert [d for d, _ in data.landing_files("social")] == [dt.date(2024, 2, 1)]


def test_cli_reports_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["generic", "--modality", "behavior", "--input", str(tmp_path / "missing.csv"),
                 "--data-root", str(tmp_path / "data")])
    assert code == 2
    assert "missing.csv" in capsys.readouterr().err


# separators, optional columns, allowed values, progress ---------------------------------------------------
def _events(tmp_path: Path, name: str, sep: str) -> Path:
    path = tmp_path / name
    pd.DataFrame({"uid": ["7", "8"], "sku": ["a", "b"], "when": ["2024-03-01T10:00:00Z", "2024-03-02T10:00:00Z"],
                  "kind": ["click", "view"]}).to_csv(path, index=False, sep=sep)
    return path


@pytest.mark.parametrize(("name", "sep", "option"), [("clicks.tsv", "\t", None), ("clicks.txt", "|", None),
                                                     ("clicks.txt", ";", None), ("clicks.csv", ";", ";")])
def test_text_tables_with_other_separators(tmp_path: Path, name: str, sep: str, option: str | None) -> None:
    root = DataRoot(tmp_path / "data")
    summary = import_table(_events(tmp_path, name, sep), root, "behavior",
                           {"uid": "user_id", "sku": "item_id", "when": "timestamp", "kind": "event_type"}, sep=option)
    assert summary["rows"] == 2 and summary["file_name"] == "clicks.csv"  # landing files are CSV
    schema = REGISTRY["behavior"].schema
    valid = pd.concat([validate_rows(read_landing_file(p, schema), schema)[0]
                       for _, p in root.landing_files("behavior")])
    assert sorted(valid["event_type"]) == ["click", "view"]
    assert valid["value"].tolist() == [1.0, 1.0]  # no value column: each event counts once


def test_a_tab_separated_csv_gets_a_message_naming_sep(tmp_path: Path) -> None:
    path = _events(tmp_path, "clicks.csv", "\t")
    with pytest.raises(ValueError, match=r"separated by 'tab': pass --sep '\\t'"):
        import_table(path, DataRoot(tmp_path / "data"), "behavior", {"uid": "user_id"})


def test_ratings_without_a_value_column_are_refused(tmp_path: Path) -> None:
    path = _events(tmp_path, "ratings.tsv", "\t")
    with pytest.raises(ValueError, match="rating events but no 'value' column"):
        import_table(path, DataRoot(tmp_path / "data"), "behavior",
                     {"uid": "user_id", "sku": "item_id", "when": "timestamp"}, event_type="rating")


def test_content_without_a_category_gets_unknown(tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    pd.DataFrame({"sku": ["a", "b"], "since": ["2024-03-01", "2024-03-02"]}).to_csv(path, index=False)
    root = DataRoot(tmp_path / "data")
    summary = import_table(path, root, "content", {"sku": "item_id", "since": "valid_from"})
    assert "category" in summary["defaults_filled"]
    schema = REGISTRY["content"].schema
    for _, landing in root.landing_files("content"):
        valid, rejected = validate_rows(read_landing_file(landing, schema), schema)
        assert rejected.empty and valid["category"].tolist() == ["unknown"]


def test_unknown_event_and_edge_types_are_refused_with_the_allowed_values(tmp_path: Path) -> None:
    path = events_csv(tmp_path)
    root = DataRoot(tmp_path / "data")
    with pytest.raises(ValueError, match="--event-type 'clik' is not a behavior event_type; allowed: click, "
                                         "purchase, rating, view"):
        import_table(path, root, "behavior", MAPPING, event_type="clik")
    edges = tmp_path / "edges.csv"
    pd.DataFrame({"a": ["u1"], "b": ["u2"]}).to_csv(edges, index=False)
    with pytest.raises(ValueError, match="--edge-type 'trsut' is not a social edge_type; allowed: follow, friend, "
                                         "trust"):
        import_table(edges, root, "social", {"a": "src_user_id", "b": "dst_user_id"}, edge_type="trsut",
                     weight=1.0, valid_from=dt.date(2024, 3, 1))
    assert root.landing_files("behavior") == [] and root.landing_files("social") == []


def test_unknown_values_in_the_file_are_counted_for_the_pipeline_to_quarantine(tmp_path: Path) -> None:
    path = tmp_path / "edges.csv"
    pd.DataFrame({"a": ["u1", "u2", "u3"], "b": ["u2", "u3", "u1"], "t": ["trust", "trsut", "trsut"]}).to_csv(
        path, index=False)
    summary = import_table(path, DataRoot(tmp_path / "data"), "social",
                           {"a": "src_user_id", "b": "dst_user_id", "t": "edge_type"}, weight=1.0,
                           valid_from=dt.date(2024, 3, 1))
    assert summary["unknown_values"] == {"edge_type": {"trsut": 2}}


def test_a_long_import_reports_progress_with_count_and_time_left(tmp_path: Path, capsys) -> None:
    path = tmp_path / "year.csv"
    days = pd.date_range("2023-01-01", "2023-12-31", freq="D", tz="UTC")
    pd.DataFrame({"uid": "u1", "sku": "i1", "when": days.strftime("%Y-%m-%dT12:00:00Z")}).to_csv(path, index=False)
    summary = import_table(path, DataRoot(tmp_path / "data"), "behavior",
                           {"uid": "user_id", "sku": "item_id", "when": "timestamp"}, event_type="view")
    assert summary["files"] == 365
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("import behavior year: 1/365 partitions (0%)") and "left" in lines[0]
    assert lines[-1].startswith("import behavior year: 365/365 partitions (100%)") and lines[-1].endswith(
        "done (2023-12-31)")
