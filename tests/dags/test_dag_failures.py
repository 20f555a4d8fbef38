"""What a user sees when a run must not publish: bad data stops extraction without retrying, and
a candidate below the quality floor is not published while the previous date stays published."""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from fusion_tasks.storage import DataRoot, file_sha256
from fusion_tasks.synthetic import SyntheticSpec, generate

pytestmark = pytest.mark.slow

PROJECT = Path(__file__).resolve().parents[2]
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
SPEC = SyntheticSpec(n_days=60, n_users=80, n_items=120)
CHEAP = {"holdout_days": 7, "validation_days": 7, "n_folds": 2, "candidates_per_model": 20}
GOOD_DAY, FLOOR_DAY, BAD_DAY = dt.date(2024, 2, 22), dt.date(2024, 2, 26), dt.date(2024, 2, 29)
UNDELIVERED_DAY = dt.date(2024, 3, 10)  # after the synthetic world's last day: no landing partition
SINK_DOWN_DAY = dt.date(2024, 2, 20)  # a day no other test of this module runs
# a postgres connection nothing listens on (port 1): the database sink is unreachable
DEAD_DB = "postgresql://fusionrec:pw-d3adbeef@127.0.0.1:1/fusionrec?connect_timeout=3"


class Airflow:
    def __init__(self, home: Path, root: DataRoot) -> None:
        self.home = home
        self.env = {**os.environ, "AIRFLOW_HOME": str(home), "FUSION_DATA_ROOT": str(root.root),
                    "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT / "dags"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                    "AIRFLOW_CONN_DEAD_DB": DEAD_DB}

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        out = subprocess.run([AIRFLOW, *args], env=self.env, capture_output=True, text=True, timeout=900)
        if check:
            assert out.returncode == 0, f"airflow {' '.join(args)}:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
        return out

    def run(self, day: dt.date, conf: dict) -> dict[str, dict]:
        """``airflow dags test`` for a day; returns {task_id: task instance} of that run."""
        out = self("dags", "test", "multimodal_fusion", day.isoformat(), "-c", json.dumps(conf), check=False)
        runs = _json(self("dags", "list-runs", "multimodal_fusion", "-o", "json").stdout)
        [run] = [r for r in runs if r["logical_date"].startswith(day.isoformat())]
        states = _json(self("tasks", "states-for-dag-run", "multimodal_fusion", run["run_id"], "-o", "json").stdout)
        return {"run": run, "output": out.stdout + out.stderr, **{t["task_id"]: t for t in states}}


    def tries(self, run_id: str, task_id: str) -> int:
        """How many times a task instance ran (the metadata DB is SQLite here)."""
        with sqlite3.connect(self.home / "airflow.db") as db:
            [(tries,)] = db.execute("SELECT try_number FROM task_instance WHERE run_id = ? AND task_id = ?",
                                    (run_id, task_id)).fetchall()
            history = db.execute("SELECT COUNT(*) FROM task_instance_history WHERE run_id = ? AND task_id = ?",
                                 (run_id, task_id)).fetchone()[0]
        return max(tries, history + 1)

    def task_log(self, run_id: str, task_id: str) -> str:
        """Every log file of a task instance of a run (all its tries), concatenated."""
        folder = self.home / "logs" / "dag_id=multimodal_fusion" / f"run_id={run_id}" / f"task_id={task_id}"
        return "\n".join(p.read_text(errors="replace") for p in sorted(folder.rglob("*.log")))


def _json(text: str):
    start = min(i for i in (text.find("[{"), text.find("[]")) if i >= 0)
    return json.loads(text[start:].splitlines()[0])


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = DataRoot(tmp_path_factory.mktemp("data"))
    generate(root, SPEC)
    airflow = Airflow(tmp_path_factory.mktemp("airflow"), root)
    airflow("db", "migrate")
    airflow("pools", "set", "fusion_training", "2", "model training")
    good = airflow.run(GOOD_DAY, CHEAP)
    return root, airflow, good


def test_a_good_date_publishes(world):
    root, _, good = world
    assert good["run"]["state"] == "success"
    assert root.published_dates("recommendations") == [GOOD_DAY]
    # the gate's decision is one sentence in the log, with the numbers and the floor
    assert "quality gate passed: " in good["output"]
    assert "is at or above the floor 0.0050" in good["output"]
    assert "'reason': None" not in good["output"]


def test_a_date_whose_partition_never_landed_fails_once_in_the_sensor_naming_the_folder(world):
    root, airflow, _ = world
    tasks = airflow.run(UNDELIVERED_DAY, CHEAP)
    assert tasks["run"]["state"] == "failed"
    assert tasks["plan_run"]["state"] == "success"
    assert tasks["wait_for_landing"]["state"] == "failed"
    assert airflow.tries(tasks["run"]["run_id"], "wait_for_landing") == 1  # past its deadline: no blind retries
    assert tasks["extract_behavior"]["state"] == "upstream_failed"
    folder = str(root.landing_day("behavior", UNDELIVERED_DAY))
    assert f"the landing partition for {UNDELIVERED_DAY} is missing: {folder}" in tasks["output"]
    assert "did not arrive" in tasks["output"]


def test_a_misspelled_conf_key_fails_plan_run_at_once(world):
    _, airflow, _ = world
    tasks = airflow.run(dt.date(2024, 2, 24), {**CHEAP, "top_kk": 5})
    assert tasks["run"]["state"] == "failed"
    assert tasks["plan_run"]["state"] == "failed"
    assert airflow.tries(tasks["run"]["run_id"], "plan_run") == 1
    assert "unknown keys in the run's conf: ['top_kk']" in tasks["output"]


def test_below_the_floor_the_gate_fails_and_nothing_is_published(world):
    root, airflow, _ = world
    tasks = airflow.run(FLOOR_DAY, {**CHEAP, "ndcg_floor": 0.99})
    assert tasks["run"]["state"] == "failed"
    assert tasks["quality_gate"]["state"] == "failed"
    assert tasks["publish_recommendations"]["state"] == "upstream_failed"
    assert root.published_dates("recommendations") == [GOOD_DAY]
    gate = json.loads((root.fused(FLOOR_DAY) / "gate.json").read_text())
    assert gate["kind"] == "floor" and "below the floor" in gate["reason"]


def test_an_unreachable_database_sink_fails_publishing_with_retries_and_every_sink_keeps_its_version(world):
    from fusion_tasks.sinks import Database

    root, airflow, _ = world
    embedded = Database.sqlite(root.serving_db())
    before = (root.current_version_id(GOOD_DAY), embedded.current(GOOD_DAY))
    tasks = airflow.run(SINK_DOWN_DAY, {**CHEAP, "database_conn_id": "dead_db"})
    assert tasks["run"]["state"] == "failed"
    assert tasks["publish_recommendations"]["state"] == "failed"
    log = tasks["output"] + airflow.task_log(tasks["run"]["run_id"], "publish_recommendations")
    assert "cannot connect to the database sink dead_db (postgresql://127.0.0.1:1/fusionrec)" in log
    assert "pw-d3adbeef" not in log  # the password never reaches the log
    tries = airflow.tries(tasks["run"]["run_id"], "publish_recommendations")
    assert tries > 1, tries  # a sink may come back: the task is retried (unlike a data error)
    assert root.published_dates("recommendations") == [GOOD_DAY]  # the files did not switch either
    assert (root.current_version_id(GOOD_DAY), embedded.current(GOOD_DAY)) == before
    assert before[1].version_id == before[0]  # the good day's sinks agree


def test_too_many_bad_rows_fail_extraction_without_retrying(world):
    root, airflow, _ = world
    landing = root.landing_day("behavior", BAD_DAY) / "events.csv"
    lines = landing.read_text().splitlines()
    header, rows = lines[0], lines[1:]
    broken = [",".join(["", *r.split(",")[1:]]) for r in rows[: max(len(rows) // 2, 1)]] + rows[len(rows) // 2:]
    # 2000 rows with a null user_id in one day: far above 5% of the history
    broken += [",i0001,view,1,2024-02-29T10:00:00Z"] * 2000
    landing.write_text("\n".join([header, *broken]) + "\n")
    tasks = airflow.run(BAD_DAY, CHEAP)
    assert tasks["run"]["state"] == "failed"
    assert tasks["extract_behavior"]["state"] == "failed"
    assert airflow.tries(tasks["run"]["run_id"], "extract_behavior") == 1  # AirflowFailException: no retry
    assert tasks["train_als"]["state"] == "upstream_failed"
    assert root.quarantine("behavior", BAD_DAY).is_file()
    assert root.published_dates("recommendations") == [GOOD_DAY]


# Malformed landing files through a real run: a clear error naming the file, no retry, and the
# table published before stays as it was (see tests/unit/test_malformed_inputs.py for every case).
CASE_DAYS = {"zero_byte_file": dt.date(2024, 2, 23), "latin1_file": dt.date(2024, 2, 24),
             "unquoted_separator": dt.date(2024, 2, 25), "half_the_day_bad": dt.date(2024, 2, 27)}


def _zero_bytes(path: Path, day: dt.date) -> str:
    path.write_bytes(b"")
    return "empty file (0 bytes, 0 rows)"


def _latin1(path: Path, day: dt.date) -> str:
    lines = path.read_text().splitlines()
    lines.insert(2, f"u0001,caf\u00e9,view,1,{day.isoformat()}T10:00:00Z")
    path.write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    return "not UTF-8 text: byte 0xe9 at line 3, column 'item_id'"


def _unquoted_separator(path: Path, day: dt.date) -> str:
    lines = path.read_text().splitlines()
    lines.insert(3, f"u0001,i0001,view,1,{day.isoformat()}T10:00:00Z,a,b")
    path.write_text("\n".join(lines) + "\n")
    return "an unquoted separator inside a field?"


def _half_bad(path: Path, day: dt.date) -> str:
    lines = path.read_text().splitlines()
    n = len(lines) - 1
    path.write_text("\n".join(lines + [f",i{i:04d},view,1,{day.isoformat()}T10:00:00Z" for i in range(n)]) + "\n")
    return "(50.0%) rejected, above the limit of 5.0%"


def _published_snapshot(root: DataRoot) -> dict[str, str]:
    out = {"dates": str(root.published_dates("recommendations"))}
    for kind in ("recommendations", "metrics"):
        folder = root.published(kind, GOOD_DAY).resolve()
        out.update({f"{kind}/{p.name}": file_sha256(p) for p in folder.iterdir()})
    return out


@pytest.mark.parametrize(("name", "breakage"), [("zero_byte_file", _zero_bytes), ("latin1_file", _latin1),
                                                ("unquoted_separator", _unquoted_separator),
                                                ("half_the_day_bad", _half_bad)],
                         ids=["zero_byte_file", "latin1_file", "unquoted_separator", "half_the_day_bad"])
def test_a_malformed_landing_file_fails_once_naming_it_and_keeps_the_published_table(world, name, breakage):
    root, airflow, _ = world
    day = CASE_DAYS[name]
    path = root.landing_day("behavior", day) / "events.csv"
    original = path.read_bytes()
    before = _published_snapshot(root)
    expected = breakage(path, day)
    try:
        tasks = airflow.run(day, CHEAP)
    finally:
        path.write_bytes(original)  # later runs read this day as history
    assert tasks["run"]["state"] == "failed"
    assert tasks["extract_behavior"]["state"] == "failed"
    assert airflow.tries(tasks["run"]["run_id"], "extract_behavior") == 1  # a data error: no retry
    assert tasks["build_training_data"]["state"] == "upstream_failed"
    log = airflow.task_log(tasks["run"]["run_id"], "extract_behavior") + tasks["output"]
    assert expected in log, log[-3000:]
    assert f"date={day.isoformat()}/events.csv" in log
    assert not root.staged("behavior", day).exists()
    assert _published_snapshot(root) == before


def test_native_parquet_timestamps_are_read_and_the_day_is_published(world):
    """A behaviour day written as Parquet with a native timestamp column is staged whole and published."""
    import pandas as pd

    root, airflow, _ = world
    day = dt.date(2024, 2, 28)
    csv = root.landing_day("behavior", day) / "events.csv"
    frame = pd.read_csv(csv, dtype=str, keep_default_na=False)
    frame = frame.loc[frame["user_id"].str.startswith("u") & (frame["event_type"] != "teleport")
                      & (frame["value"] != "n/a")]
    frame = frame.assign(value=frame["value"].astype(float), timestamp=pd.to_datetime(frame["timestamp"], utc=True))
    frame.to_parquet(csv.with_suffix(".parquet"), index=False)
    csv.unlink()
    tasks = airflow.run(day, {**CHEAP, "ndcg_floor": 0.0, "regression_tolerance": 1.0})
    assert tasks["run"]["state"] == "success", tasks["output"][-3000:]
    manifest = json.loads(root.staged_manifest("behavior", day).read_text())
    assert manifest["deliveries"]["files"] == [] or all(
        f["date"] != day.isoformat() for f in manifest["deliveries"]["files"])
    assert manifest["volume"]["rows_on_day"] == len(frame)
    assert day in root.published_dates("recommendations")
