"""Backfill through a real scheduler, forward and backwards, and compare what each direction published.

Each direction gets its own Airflow and data root, with the same synthetic landing data and the same cheap run
configuration, so every date must publish the same table. The backfills are created before the services start
(see ``AirflowInstance.prepare`` on SQLite locking), then both Airflows execute them side by side.

Backfill dates are logical dates: the run for D has data interval [D, D+1) and run_id ``backfill__<D+1>``
(Airflow 3 names runs after ``run_after``); the DAG computes for ``as_of_date`` = D.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.integration.harness import (
    CHEAP_CONF,
    DAG_ID,
    STALL_SECONDS,
    TERMINAL,
    AirflowInstance,
    StallWatch,
    max_overlap,
    running_airflow,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FIRST = dt.date(2024, 2, 24)
LAST = dt.date(2024, 2, 28)  # 2024-02-29 is left to the trigger test
DATES = [FIRST + dt.timedelta(days=n) for n in range((LAST - FIRST).days + 1)]
MAX_ACTIVE_RUNS = 2


def _create_backfill(instance: AirflowInstance, *, backwards: bool) -> None:
    instance.cli("backfill", "create", "--dag-id", DAG_ID, "--from-date", FIRST.isoformat(), "--to-date",
                 LAST.isoformat(), "--dag-run-conf", json.dumps(CHEAP_CONF), "--max-active-runs",
                 str(MAX_ACTIVE_RUNS), *(["--run-backwards"] if backwards else []))


@pytest.fixture(scope="module")
def backfills(integration_tmp: Path) -> dict[str, dict[str, Any]]:
    """Both backfills, each in its own Airflow, executed at the same time; the instances are stopped after."""
    results: dict[str, dict[str, Any]] = {}
    with contextlib.ExitStack() as stack:
        instances = {
            direction: stack.enter_context(running_airflow(
                integration_tmp, f"backfill-{direction}",
                before_start=functools.partial(_create_backfill, backwards=direction == "backward")))
            for direction in ("forward", "backward")
        }
        most_running = dict.fromkeys(instances, 0)
        pending = dict(instances)
        watch = StallWatch()
        observed: dict[str, Any] = {}  # per direction: its runs and task logs at the last answer
        while pending:
            for direction, instance in list(pending.items()):
                answer = instance.poll(instance.dag_runs)
                if answer is None:  # the API server was too busy to answer: ask again at the next poll
                    continue
                runs = [run for run in answer if run["run_type"] == "backfill"]
                most_running[direction] = max(most_running[direction], sum(r["state"] == "running" for r in runs))
                if len(runs) == len(DATES) and all(run["state"] in TERMINAL for run in runs):
                    results[direction] = {"data_root": instance.data_root, "runs": runs,
                                          "most_running": most_running[direction],
                                          "failures": instance.failure_report(runs)}
                    del pending[direction]
                    observed.pop(direction, None)
                else:
                    observed[direction] = (len(runs), instance.activity(runs))
            if pending and not watch.moved((sorted(results), sorted(observed.items()))):
                states = {d: {r["dag_run_id"]: r["state"] for r in i.dag_runs()} for d, i in pending.items()}
                raise TimeoutError(f"backfills made no progress for {STALL_SECONDS}s: {states}\n"
                                   + "\n".join(i.logs_tail() for i in pending.values()))
            time.sleep(3)
    return results


def _logical_day(run: dict[str, Any]) -> dt.date:
    return dt.datetime.fromisoformat(run["logical_date"]).date()


@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_every_date_ran_once_and_succeeded(backfills, direction):
    result = backfills[direction]
    runs = result["runs"]
    assert sorted(_logical_day(r) for r in runs) == DATES
    assert all(r["conf"] == CHEAP_CONF for r in runs), [r["conf"] for r in runs]
    assert all(r["state"] == "success" for r in runs), result["failures"]


@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_runs_start_in_the_backfill_direction(backfills, direction):
    runs = sorted(backfills[direction]["runs"], key=lambda r: r["start_date"])
    started = [_logical_day(r) for r in runs]
    assert started == (DATES if direction == "forward" else DATES[::-1])


@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_never_more_than_max_active_runs_at_once(backfills, direction):
    result = backfills[direction]
    assert 1 <= result["most_running"] <= MAX_ACTIVE_RUNS
    assert max_overlap(result["runs"]) <= MAX_ACTIVE_RUNS


@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_each_date_is_published_exactly_once(backfills, direction):
    from fusion_tasks.storage import DataRoot, verify_version

    root = DataRoot(backfills[direction]["data_root"])
    assert root.published_dates("recommendations") == DATES
    assert root.published_dates("metrics") == DATES
    for day in DATES:
        for kind in ("recommendations", "metrics"):
            versions = [p for p in root.published_versions(kind, day).iterdir() if not p.name.startswith(".")]
            assert len(versions) == 1, (kind, day, versions)
            assert root.published(kind, day).resolve() == versions[0].resolve()
            assert verify_version(versions[0])
        config = root.read_published_metrics(day)["config"]
        assert config["as_of_date"] == day.isoformat()
        assert {key: config[key] for key in CHEAP_CONF} == CHEAP_CONF


def test_forward_and_backward_publish_identical_tables(backfills):
    from fusion_tasks.storage import DataRoot, file_sha256

    forward = DataRoot(backfills["forward"]["data_root"])
    backward = DataRoot(backfills["backward"]["data_root"])
    differing_bytes = []
    for day in DATES:
        ahead, behind = forward.read_recommendations(day), backward.read_recommendations(day)
        assert len(ahead) > 0
        pd.testing.assert_frame_equal(ahead, behind, check_exact=True, obj=f"recommendations {day}")
        if file_sha256(forward.recommendations_path(day)) != file_sha256(backward.recommendations_path(day)):
            differing_bytes.append(day)
        metrics_ahead, metrics_behind = forward.read_published_metrics(day), backward.read_published_metrics(day)
        gate_ahead, gate_behind = metrics_ahead.pop("gate"), metrics_behind.pop("gate")
        assert metrics_ahead == metrics_behind, day
        # the gate compares with the latest *published* earlier date, which depends on the order of the runs;
        # only its verdict has to agree
        assert (gate_ahead["passed"], gate_ahead["ndcg"]) == (gate_behind["passed"], gate_behind["ndcg"]), day
    assert differing_bytes == [], "same rows but different Parquet bytes"
