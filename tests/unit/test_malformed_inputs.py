"""Malformed landing files against the synthetic world: each case has one expected outcome.

* ``error``: the extract raises an ``InputDataError`` (the DAG fails it without retry) whose message
  names the file (or the delivery), the column where there is one and the reason; nothing is staged
  for D and the table published before is unchanged;
* ``quarantine``: the bad rows are set aside with their reason and counted, the rest is staged;
* ``accepted``: what a well-behaved writer produces is read as valid data.

The world is written by ``fusion_tasks.synthetic``; each case copies it and writes real files into
the landing partition of D (the last synthetic day). A few cases run through ``airflow dags test``
in ``tests/dags/test_dag_failures.py``.
"""

from __future__ import annotations

import codecs
import dataclasses
import datetime as dt
import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fusion_tasks import modalities
from fusion_tasks.config import RunConfig
from fusion_tasks.schemas import (
    DataQualityError,
    InputDataError,
    SchemaDriftError,
    UnreadableFileError,
    UnsupportedTypeError,
    VolumeAnomalyError,
)
from fusion_tasks.storage import DataRoot, publish_version, read_parquet, write_parquet
from fusion_tasks.synthetic import SyntheticSpec, generate

SPEC = SyntheticSpec(n_days=30, n_users=50, n_items=70, malformed_rows_per_day=0.0)
D = SPEC.end
PREVIOUS = D - dt.timedelta(days=1)
BEHAVIOR = ["user_id", "item_id", "event_type", "value", "timestamp"]


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> DataRoot:
    """The synthetic world with a table published for the day before D."""
    root = DataRoot(tmp_path_factory.mktemp("world"))
    generate(root, SPEC)
    recs = pd.DataFrame({"user_id": ["u0001", "u0001"], "item_id": ["i0001", "i0002"], "rank": [1, 2],
                         "score": [2.0, 1.0]})
    publish_version(root, PREVIOUS, {
        "recommendations": lambda f: write_parquet(recs, f / "recommendations.parquet"),
        "metrics": lambda f: (f / "metrics.json").write_text('{"metrics": {}}'),
    })
    return root


@pytest.fixture(scope="module")
def baseline(template, tmp_path_factory) -> dict[str, dict[str, Any]]:
    """The manifests of an untouched copy: cases compare their counts with these."""
    root = copy_world(template, tmp_path_factory.mktemp("baseline"))
    return {m: modalities.get(m).extract(root, RunConfig(as_of_date=D, data_root=root.root))
            for m in ("behavior", "content", "social")}


def copy_world(template: DataRoot, where: Path) -> DataRoot:
    target = where / "data"
    shutil.copytree(template.root, target, symlinks=True)
    return DataRoot(target)


def published_snapshot(root: DataRoot) -> dict[str, str]:
    out = {}
    for path in sorted((root.root / "published").rglob("*")):
        if path.is_file() and ".locks" not in path.parts:
            out[str(path.relative_to(root.root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    out["dates"] = str(root.published_dates("recommendations"))
    return out


# Helpers that write landing files -----------------------------------------------------------------
def day_file(root: DataRoot, modality: str, name: str) -> Path:
    path = root.landing_day(modality, D) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def events_of_d(root: DataRoot) -> pd.DataFrame:
    return pd.read_csv(day_file(root, "behavior", "events.csv"), dtype=str, keep_default_na=False)


def replace_events(root: DataRoot, frame: pd.DataFrame | None = None, *, text: str | bytes | None = None,
                   name: str = "events.csv") -> Path:
    day_file(root, "behavior", "events.csv").unlink()
    path = day_file(root, "behavior", name)
    if text is not None:
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
    elif name.endswith(".parquet"):
        pq.write_table(frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(frame, preserve_index=False),
                       path)
    else:
        frame.to_csv(path, index=False)
    return path


def add_events(root: DataRoot, rows: list[dict[str, str]], name: str = "extra.csv") -> Path:
    path = day_file(root, "behavior", name)
    pd.DataFrame(rows, columns=BEHAVIOR).to_csv(path, index=False)
    return path


def event(user: str = "u0001", item: str = "i0001", kind: str = "view", value: str = "1",
          timestamp: str | None = None) -> dict[str, str]:
    return {"user_id": user, "item_id": item, "event_type": kind, "value": value,
            "timestamp": timestamp or f"{D.isoformat()}T09:00:00Z"}


def add_items(root: DataRoot, rows: list[dict[str, Any]], name: str = "extra_items.csv") -> Path:
    path = day_file(root, "content", name)
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def add_edges(root: DataRoot, rows: list[tuple[str, str, str, str]], name: str = "extra_edges.csv") -> Path:
    path = day_file(root, "social", name)
    pd.DataFrame([{"src_user_id": s, "dst_user_id": t, "edge_type": k, "weight": w, "valid_from": D.isoformat()}
                  for s, t, k, w in rows]).to_csv(path, index=False)
    return path


def known_users(root: DataRoot) -> list[str]:
    return sorted(events_of_d(root)["user_id"].unique())


# The cases --------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    modality: str
    write: Callable[[DataRoot], Any]
    outcome: str  # error | quarantine | accepted
    error: type[Exception] | None = None
    message: tuple[str, ...] = ()  # substrings of the error message ({file} is the file written)
    reason: str = ""  # quarantine reason
    count: int = 0  # rows quarantined for that reason
    check: Callable[[DataRoot, dict[str, Any]], None] | None = None
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)


def _events_to_parquet(root: DataRoot, timestamp: Callable[[pd.Series], pa.Array]) -> Path:
    frame = events_of_d(root)
    table = pa.table({"user_id": frame["user_id"], "item_id": frame["item_id"], "event_type": frame["event_type"],
                      "value": frame["value"].astype(float), "timestamp": timestamp(frame["timestamp"])})
    return replace_events(root, table, name="events.parquet")


def _stamps(raw: pd.Series) -> pd.Series:
    return pd.to_datetime(raw, utc=True)


def _staged_all_of_d(root: DataRoot, manifest: dict[str, Any]) -> None:
    """Every event of D's original file is staged with its timestamp on D."""
    staged = read_parquet(root.staged("behavior", D))
    on_d = staged.loc[staged["landed"] == pd.Timestamp(D)]
    assert manifest["rows_quarantined"] == 0
    assert len(on_d) == manifest["volume"]["rows_on_day"] > 0
    assert (on_d["timestamp"].dt.date == D).all()


def _staged_exactly(expected_rows: int) -> Callable[[DataRoot, dict[str, Any]], None]:
    def check(root: DataRoot, manifest: dict[str, Any]) -> None:
        assert manifest["rows_quarantined"] == 0
        assert manifest["rows_staged"] == expected_rows

    return check


def _ms_column(root: DataRoot) -> Path:
    frame = events_of_d(root)
    frame["timestamp"] = (_stamps(frame["timestamp"]).astype("int64") // 1_000_000).astype(str)
    return replace_events(root, frame)


def _offsets(root: DataRoot) -> Path:
    frame = events_of_d(root)
    stamps = _stamps(frame["timestamp"]).dt.tz_convert("Asia/Kolkata")
    frame["timestamp"] = stamps.dt.strftime("%Y-%m-%dT%H:%M:%S+05:30")
    return replace_events(root, frame)


def _bom(root: DataRoot) -> Path:
    text = day_file(root, "behavior", "events.csv").read_bytes()
    return replace_events(root, text=codecs.BOM_UTF8 + text)


def _latin1(root: DataRoot) -> Path:
    text = day_file(root, "behavior", "events.csv").read_text().splitlines()
    text.insert(3, "u0001,caf\u00e9,view,1," + D.isoformat() + "T10:00:00Z")
    return replace_events(root, text=("\n".join(text) + "\n").encode("latin-1"))


def _utf16(root: DataRoot) -> Path:
    return replace_events(root, text=day_file(root, "behavior", "events.csv").read_text().encode("utf-16"))


def _unquoted_separator(root: DataRoot) -> Path:
    lines = day_file(root, "behavior", "events.csv").read_text().splitlines()
    lines.insert(4, f"u0001,i0001,view,1,{D.isoformat()}T10:00:00Z,extra,field")
    return replace_events(root, text="\n".join(lines) + "\n")


def _unbalanced_quote(root: DataRoot) -> Path:
    lines = day_file(root, "behavior", "events.csv").read_text().splitlines()
    lines.insert(2, f'u0001,"i0001,view,1,{D.isoformat()}T10:00:00Z')
    return replace_events(root, text="\n".join(lines) + "\n")


def _half_the_day_bad(root: DataRoot) -> Path:
    frame = events_of_d(root)
    n = len(frame)
    bad = pd.DataFrame([event(user="", item=f"i{i:04d}") for i in range(n)], columns=BEHAVIOR)
    return replace_events(root, pd.concat([frame, bad], ignore_index=True))


def _struct_value(root: DataRoot) -> Path:
    frame = events_of_d(root)
    table = pa.table({c: frame[c] for c in BEHAVIOR if c != "value"}).append_column(
        "value", pa.array([{"amount": 1.0}] * len(frame)))
    return replace_events(root, table, name="events.parquet")


def _bool_event_type(root: DataRoot) -> Path:
    frame = events_of_d(root)
    table = pa.table({"user_id": frame["user_id"], "item_id": frame["item_id"],
                      "event_type": pa.array([True] * len(frame)), "value": frame["value"].astype(float),
                      "timestamp": frame["timestamp"]})
    return replace_events(root, table, name="events.parquet")


def _csv_named_parquet(root: DataRoot) -> Path:
    return replace_events(root, text=day_file(root, "behavior", "events.csv").read_bytes(), name="events.parquet")


def _truncated_parquet(root: DataRoot) -> Path:
    path = _events_to_parquet(root, lambda raw: pa.array(_stamps(raw)))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def _short_row(root: DataRoot) -> Path:
    path = day_file(root, "behavior", "extra.csv")
    path.write_text(",".join(BEHAVIOR) + "\nu0001,i0001,view\n")
    return path


def _header_only(root: DataRoot) -> Path:
    return replace_events(root, text=",".join(BEHAVIOR) + "\n")


def _ten_times(root: DataRoot) -> Path:
    frame = events_of_d(root)
    many = pd.concat([frame.assign(timestamp=frame["timestamp"].str.replace("Z", f".{k:03d}Z"))
                      for k in range(10)], ignore_index=True)
    return replace_events(root, many)


def _duplicates(root: DataRoot) -> Path:
    frame = events_of_d(root)
    return add_events(root, frame.iloc[:3].to_dict("records"))


def _content_embeddings(root: DataRoot, values: list[Any], fmt: str = "csv") -> Path:
    items = [f"i{i:04d}" for i in range(len(values))]
    frame = pd.DataFrame({"item_id": items, "valid_from": D.isoformat(), "category": "category_1",
                          "embedding": values})
    if fmt == "parquet":
        path = day_file(root, "content", "embeddings.parquet")
        pq.write_table(pa.table({"item_id": items, "valid_from": pa.array([D] * len(items), pa.date32()),
                                 "category": ["category_1"] * len(items),
                                 "embedding": pa.array(values, pa.list_(pa.float32()))}), path)
        return path
    return add_items(root, frame.to_dict("records"), name="embeddings.csv")


def _embeddings_check(dim: int, n: int) -> Callable[[DataRoot, dict[str, Any]], None]:
    def check(root: DataRoot, manifest: dict[str, Any]) -> None:
        staged = read_parquet(root.staged("content", D))
        with_embedding = staged.loc[staged["embedding"].notna()]
        assert len(with_embedding) == n
        assert {len(v) for v in with_embedding["embedding"]} == {dim}

    return check


def _edges_with_unknown_user(root: DataRoot) -> Path:
    users = known_users(root)
    return add_edges(root, [(users[0], "u9999", "follow", "1"), (users[1], "ghost", "trust", "1")])


def _self_ties(root: DataRoot) -> Path:
    users = known_users(root)
    return add_edges(root, [(u, u, "follow", "1") for u in users[:3]])


def _parquet_int_ids_and_categories(root: DataRoot) -> Path:
    frame = events_of_d(root)
    table = pa.table({"user_id": pa.array(frame["user_id"].str[1:].astype(int), pa.int64()),
                      "item_id": frame["item_id"],
                      "event_type": pa.array(frame["event_type"]).dictionary_encode(),
                      "value": pa.array(frame["value"].astype(int), pa.int32()),
                      "timestamp": frame["timestamp"]})
    return replace_events(root, table, name="events.parquet")


def _int_ids_check(root: DataRoot, manifest: dict[str, Any]) -> None:
    staged = read_parquet(root.staged("behavior", D))
    on_d = staged.loc[staged["landed"] == pd.Timestamp(D)]
    assert manifest["rows_quarantined"] == 0 and len(on_d) > 0
    assert on_d["user_id"].str.fullmatch(r"[0-9]+").all()  # "0007" became "7": ids as their decimal text


def _volume_flagged(root: DataRoot, manifest: dict[str, Any]) -> None:
    assert manifest["volume"]["anomaly"] is True
    assert "volume anomaly" in manifest["volume"]["reason"]
    assert manifest["rows_quarantined"] == 0


CASES = [
    # clear error, no retry
    Case("empty_zero_byte_file", "behavior", lambda r: replace_events(r, text=b""), "error",
         UnreadableFileError, ("{file}", "empty file (0 bytes, 0 rows)", "header")),
    Case("blank_lines_only", "behavior", lambda r: replace_events(r, text="\n\n"), "error",
         UnreadableFileError, ("{file}", "no header line")),
    Case("latin1_encoding", "behavior", _latin1, "error", UnreadableFileError,
         ("{file}", "not UTF-8", "byte 0xe9 at line 4", "column 'item_id'")),
    Case("utf16_encoding", "behavior", _utf16, "error", UnreadableFileError, ("{file}", "not UTF-8", "UTF-16")),
    Case("unquoted_separator_in_a_field", "behavior", _unquoted_separator, "error", UnreadableFileError,
         ("{file}", "1 row(s) have more fields than the 5 columns", "line 5 has 7", "unquoted separator")),
    Case("unbalanced_quote", "behavior", _unbalanced_quote, "error", UnreadableFileError,
         ("{file}", "not parseable as CSV", "unbalanced quote")),
    Case("csv_bytes_named_parquet", "behavior", _csv_named_parquet, "error", UnreadableFileError,
         ("{file}", "not a readable Parquet file")),
    Case("truncated_parquet", "behavior", _truncated_parquet, "error", UnreadableFileError,
         ("{file}", "not a readable Parquet file")),
    Case("parquet_struct_value", "behavior", _struct_value, "error", UnsupportedTypeError,
         ("{file}", "column 'value'", "struct", "rows")),
    Case("parquet_boolean_event_type", "behavior", _bool_event_type, "error", UnsupportedTypeError,
         ("{file}", "column 'event_type'", "bool")),
    Case("missing_column", "behavior",
         lambda r: replace_events(r, events_of_d(r).drop(columns="value")), "error", SchemaDriftError,
         ("{file}", "missing column(s) ['value']")),
    Case("renamed_column", "behavior",
         lambda r: replace_events(r, events_of_d(r).rename(columns={"timestamp": "ts"})), "error",
         SchemaDriftError, ("{file}", "missing column(s) ['timestamp']", "unknown column(s) ['ts']")),
    Case("duplicate_header_column", "behavior",
         lambda r: replace_events(r, text="user_id,item_id,event_type,value,value,timestamp\n"), "error",
         SchemaDriftError, ("{file}", "duplicate column(s) ['value']")),
    Case("semicolon_separated", "behavior",
         lambda r: replace_events(r, text=day_file(r, "behavior", "events.csv").read_text().replace(",", ";")),
         "error", SchemaDriftError, ("{file}", "unknown column(s)")),
    Case("half_the_day_bad", "behavior", _half_the_day_bad, "error", DataQualityError,
         ("landing file {file}", "(50.0%) rejected, above the limit", "'user_id: null'", "landing day")),
    Case("one_file_of_the_day_all_bad", "behavior",
         lambda r: add_events(r, [event(kind="teleport", item=f"i{i:04d}") for i in range(8)]), "error",
         DataQualityError, ("landing file {file}", "8 of 8 rows (100.0%)", "'event_type: not an allowed value'")),
    Case("empty_content_file", "content", lambda r: day_file(r, "content", "items.csv").write_bytes(b""),
         "error", UnreadableFileError, ("{file}", "empty file")),
    Case("social_file_in_latin1", "social",
         lambda r: day_file(r, "social", "edges.csv").write_bytes(
             "src_user_id,dst_user_id,edge_type,weight,valid_from\nJos\u00e9,u0001,follow,1,2024-01-30\n"
             .encode("latin-1")),
         "error", UnreadableFileError, ("{file}", "not UTF-8", "column 'src_user_id'")),
    Case("header_only_day_when_set_to_fail_on_volume", "behavior", _header_only, "error", VolumeAnomalyError,
         ("behavior volume anomaly on", "0 rows delivered, below the recent range"),
         settings={"fail_on_volume_anomaly": True}),
    # quarantine with its count
    Case("placeholder_ids", "behavior",
         lambda r: add_events(r, [event(user="NULL"), event(user="nan"), event(item="-1")]), "quarantine",
         reason="placeholder for a missing id", count=3),
    Case("null_item_id", "behavior", lambda r: add_events(r, [event(item=""), event(item="  ")]), "quarantine",
         reason="item_id: null", count=2),
    Case("value_not_a_number", "behavior", lambda r: add_events(r, [event(value="n/a"), event(value="1,5")]),
         "quarantine", reason="value: not a number or out of range", count=2),
    Case("negative_value", "behavior", lambda r: add_events(r, [event(kind="rating", value="-2")]), "quarantine",
         reason="value: not a number or out of range", count=1),
    Case("unknown_event_type", "behavior", lambda r: add_events(r, [event(kind="teleport")] * 2), "quarantine",
         reason="event_type: not an allowed value", count=2),
    Case("unparseable_timestamp", "behavior",
         lambda r: add_events(r, [event(timestamp="yesterday"), event(timestamp="2024-02-30T10:00:00Z")]),
         "quarantine", reason="timestamp: not a timestamp", count=2),
    Case("epoch_zero_timestamp", "behavior", lambda r: add_events(r, [event(timestamp="0")]), "quarantine",
         reason="timestamp: before the earliest plausible date 1995-01-01", count=1),
    Case("timestamp_in_1900", "behavior", lambda r: add_events(r, [event(timestamp="1900-01-01T00:00:00Z")]),
         "quarantine", reason="timestamp: before the earliest plausible date", count=1),
    Case("one_millisecond_value_in_a_seconds_column", "behavior",
         lambda r: add_events(r, [event(timestamp=str(int(pd.Timestamp(D, tz="UTC").timestamp()) + h * 3600))
                                  for h in range(1, 4)] + [event(timestamp="1706745600000")]),
         "quarantine", reason="timestamp: outside the supported range", count=1),
    Case("short_row_missing_fields", "behavior", _short_row,
         "quarantine", reason="value: null", count=1),
    Case("exact_duplicate_events", "behavior", _duplicates, "quarantine",
         reason="exact duplicate of an earlier event", count=3),
    Case("embedding_of_the_wrong_length", "content",
         lambda r: _content_embeddings(r, ["0.1 0.2 0.3"] * 4 + ["0.1 0.2"]), "quarantine",
         reason="embedding: wrong length (expected 3, the most common dimension)", count=1,
         check=_embeddings_check(3, 4)),
    Case("embedding_against_the_declared_dimension", "content",
         lambda r: _content_embeddings(r, ["0.1 0.2"] * 3 + ["0.1 0.2 0.3 0.4"]), "quarantine",
         reason="embedding: wrong length (expected 4, the declared dimension)", count=3,
         check=_embeddings_check(4, 1), settings={"embedding_dim": 4}),
    Case("embedding_not_numbers", "content", lambda r: _content_embeddings(r, ["0.1 x", "0.1 0.2"]),
         "quarantine", reason="embedding: not a vector of numbers", count=1),
    Case("content_bad_valid_from", "content",
         lambda r: add_items(r, [{"item_id": "i0001", "valid_from": "2024-13-01", "category": "c"}]),
         "quarantine", reason="valid_from: not a date", count=1),
    Case("content_negative_price", "content",
         lambda r: add_items(r, [{"item_id": "i0001", "valid_from": D.isoformat(), "category": "c",
                                  "price": "-3"}]),
         "quarantine", reason="price: not a number or out of range", count=1),
    Case("self_ties", "social", _self_ties, "quarantine", reason="self-tie", count=3),
    Case("edge_to_a_user_without_behaviour", "social", _edges_with_unknown_user, "quarantine",
         reason="dst_user_id: not a user of the behaviour data", count=2,
         settings={"ties_of_unknown_users": "quarantine"}),
    Case("edge_from_a_placeholder_id", "social",
         lambda r: add_edges(r, [("none", known_users(r)[0], "follow", "1")]), "quarantine",
         reason="src_user_id: placeholder for a missing id", count=1),
    Case("unknown_edge_type_and_zero_weight", "social",
         lambda r: add_edges(r, [(known_users(r)[0], known_users(r)[1], "enemy", "1"),
                                 (known_users(r)[1], known_users(r)[2], "follow", "0")]), "quarantine",
         reason="edge_type: not an allowed value", count=1),
    # accepted
    Case("parquet_native_utc_timestamps", "behavior",
         lambda r: _events_to_parquet(r, lambda raw: pa.array(_stamps(raw))), "accepted", check=_staged_all_of_d),
    Case("parquet_naive_nanosecond_timestamps", "behavior",
         lambda r: _events_to_parquet(r, lambda raw: pa.array(_stamps(raw).dt.tz_localize(None), pa.timestamp("ns"))),
         "accepted", check=_staged_all_of_d),
    Case("parquet_timestamps_in_another_time_zone", "behavior",
         lambda r: _events_to_parquet(r, lambda raw: pa.array(_stamps(raw).dt.tz_convert("America/New_York"))),
         "accepted", check=_staged_all_of_d),
    Case("parquet_millisecond_timestamps", "behavior",
         lambda r: _events_to_parquet(r, lambda raw: pa.array(_stamps(raw), pa.timestamp("ms", tz="UTC"))),
         "accepted", check=_staged_all_of_d),
    Case("parquet_integer_ids_and_dictionary_strings", "behavior", _parquet_int_ids_and_categories, "accepted",
         check=_int_ids_check),
    Case("csv_with_a_byte_order_mark", "behavior", _bom, "accepted", check=_staged_all_of_d),
    Case("epoch_milliseconds_column", "behavior", _ms_column, "accepted", check=_staged_all_of_d),
    Case("iso_timestamps_with_an_offset", "behavior", _offsets, "accepted", check=_staged_all_of_d),
    Case("duplicates_kept_when_set_to_keep", "behavior", _duplicates, "accepted",
         check=lambda r, m: (m["rows_quarantined"] == 0 or pytest.fail("quarantined")),
         settings={"duplicate_events": "keep"}),
    Case("header_only_day_is_flagged", "behavior", _header_only, "accepted", check=_volume_flagged),
    Case("ten_times_the_usual_volume_is_flagged", "behavior", _ten_times, "accepted", check=_volume_flagged),
    Case("parquet_embeddings_as_lists_and_dates", "content",
         lambda r: _content_embeddings(r, [[0.1, 0.2, 0.3]] * 3, fmt="parquet"), "accepted",
         check=_embeddings_check(3, 3)),
    Case("csv_embeddings_as_bracketed_lists", "content",
         lambda r: _content_embeddings(r, ["[0.1, 0.2]", "[0.3,0.4]", "0.5 0.6"]), "accepted",
         check=_embeddings_check(2, 3)),
]


def test_the_suite_covers_each_outcome():
    outcomes = [case.outcome for case in CASES]
    assert len(CASES) >= 30
    assert {o: outcomes.count(o) for o in set(outcomes)} == {"error": 19, "quarantine": 20, "accepted": 13}
    assert len({case.name for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_malformed_input(case: Case, template: DataRoot, baseline: dict[str, dict[str, Any]], tmp_path: Path):
    root = copy_world(template, tmp_path)
    before = published_snapshot(root)
    written = case.write(root)
    config = RunConfig(as_of_date=D, data_root=root.root, **case.settings)
    extractor = modalities.get(case.modality)
    if case.outcome == "error":
        with pytest.raises(case.error) as err:
            extractor.extract(root, config)
        assert isinstance(err.value, InputDataError)  # the DAG fails it without retry
        file = str(written) if isinstance(written, Path) else ""
        if isinstance(err.value, DataQualityError) and not isinstance(err.value, VolumeAnomalyError):
            file = str(written.relative_to(root.root))
        for part in case.message:
            assert part.format(file=file) in str(err.value), str(err.value)
        assert not root.staged(case.modality, D).exists()
        assert published_snapshot(root) == before
        return
    manifest = extractor.extract(root, config)
    assert root.staged(case.modality, D).is_file()
    assert published_snapshot(root) == before
    if case.outcome == "quarantine":
        before_count = baseline[case.modality]["quarantine_reasons"]
        new = {reason: n - before_count.get(reason, 0) for reason, n in manifest["quarantine_reasons"].items()}
        matching = {reason: n for reason, n in new.items() if case.reason in reason and n}
        assert sum(matching.values()) == case.count, manifest["quarantine_reasons"]
        rows = read_parquet(root.quarantine(case.modality, D))
        assert rows["reject_reason"].str.contains(case.reason, regex=False).sum() >= case.count
        assert set(rows["source_file"]) >= {str(written.relative_to(root.root))}
        [delivery] = [f for f in manifest["deliveries"]["files"] if f["file"] == str(written.relative_to(root.root))]
        assert delivery["rejected"] >= case.count
    elif case.check is not None:
        case.check(root, manifest)
    if case.check is not None and case.outcome == "quarantine":
        case.check(root, manifest)


def test_a_bad_day_cannot_hide_in_a_long_history(template: DataRoot, tmp_path: Path):
    """All history has far more rows than the bad day, so the overall share stays under the limit;
    the day's own share fails the run, and the manifest of a passing run reports each delivery."""
    root = copy_world(template, tmp_path)
    ok = modalities.get("behavior").extract(root, RunConfig(as_of_date=D, data_root=root.root))
    assert ok["deliveries"]["n_files"] == SPEC.n_days and ok["deliveries"]["files"] == []
    _half_the_day_bad(root)
    with pytest.raises(DataQualityError) as err:
        modalities.get("behavior").extract(root, RunConfig(as_of_date=D, data_root=root.root))
    message = str(err.value)
    overall = float(message.split("rows (")[1].split("%")[0])
    assert overall < 5.0
    assert f"landing day {D.isoformat()}" in message
    # below the limit per delivery, the manifest lists each delivery with rejects and its share
    manifest = modalities.get("behavior").extract(
        root, RunConfig(as_of_date=D, data_root=root.root, max_quarantine_share=0.6))
    [day] = manifest["deliveries"]["days"]
    assert day["date"] == D.isoformat() and day["share"] == pytest.approx(0.5)
    assert manifest["deliveries"]["max_file_share"] == pytest.approx(0.5)


def test_a_few_bad_rows_in_a_tiny_delivery_do_not_fail_it(template: DataRoot, tmp_path: Path):
    """One bad row of three is 33%: counted and listed, but a delivery fails on its own share only
    from ``quarantine_min_rejected`` rejected rows."""
    root = copy_world(template, tmp_path)
    path = add_events(root, [event(item="i0001"), event(item="i0002"), event(kind="teleport")])
    manifest = modalities.get("behavior").extract(root, RunConfig(as_of_date=D, data_root=root.root))
    [delivery] = manifest["deliveries"]["files"]
    assert delivery["file"] == str(path.relative_to(root.root)) and delivery["share"] == pytest.approx(1 / 3)
    with pytest.raises(DataQualityError, match="1 of 3 rows"):
        modalities.get("behavior").extract(root, RunConfig(as_of_date=D, data_root=root.root,
                                                           quarantine_min_rejected=1))


def test_a_read_error_of_the_machine_is_not_a_data_error(template: DataRoot, tmp_path: Path, monkeypatch):
    """An ``OSError`` while reading (a disk or network fault) stays an ``OSError``: the DAG retries it."""
    root = copy_world(template, tmp_path)
    real = Path.read_bytes

    def failing(self: Path) -> bytes:
        if self.name == "events.csv" and f"date={D.isoformat()}" in str(self):
            raise OSError(5, "Input/output error", str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", failing)
    with pytest.raises(OSError) as err:
        modalities.get("behavior").extract(root, RunConfig(as_of_date=D, data_root=root.root))
    assert not isinstance(err.value, InputDataError)


def test_wrong_embedding_length_keeps_every_other_items_embedding(template: DataRoot, tmp_path: Path):
    """The content feature matrix keeps the embedding block when one item's embedding is too short."""
    from fusion_tasks.modalities.base import Vocabulary
    from fusion_tasks.modalities.content import build_features

    root = copy_world(template, tmp_path)
    _content_embeddings(root, ["1 0 0"] * 4 + ["1 0"])
    config = RunConfig(as_of_date=D, data_root=root.root)
    modalities.get("content").extract(root, config)
    staged = read_parquet(root.staged("content", D))
    vocab = Vocabulary(users=np.array(["u0001"]), items=np.array(sorted(staged["item_id"].unique())))
    with_block = build_features(staged, vocab, D, config).matrix.shape[1]
    without = build_features(staged.assign(embedding=None), vocab, D, config).matrix.shape[1]
    assert with_block == without + 3
