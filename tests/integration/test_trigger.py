"""Manual runs through the REST API of a running Airflow: with as_of_date, without it, and with a bad param."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from tests.integration.harness import CHEAP_CONF, DAG_ID, AirflowInstance

pytestmark = [pytest.mark.integration, pytest.mark.slow]

AS_OF = dt.date(2024, 2, 29)
RUNS = f"/api/v2/dags/{DAG_ID}/dagRuns"


def _trigger(airflow: AirflowInstance, conf: dict[str, Any]) -> dict[str, Any]:
    response = airflow.api("POST", RUNS, json={"logical_date": None, "conf": conf})
    assert response.status_code == 200, response.text
    run = response.json()
    assert run["logical_date"] is None
    assert run["run_type"] == "manual"
    return run


def test_trigger_with_as_of_date_publishes_that_date(airflow):
    from fusion_tasks.storage import DataRoot

    run = _trigger(airflow, {"as_of_date": AS_OF.isoformat(), **CHEAP_CONF})
    (finished,), _ = airflow.wait_for_runs({run["dag_run_id"]})
    assert finished["state"] == "success", airflow.failure_report([finished])
    states = {ti["task_id"]: ti["state"] for ti in airflow.task_instances(run["dag_run_id"])}
    assert states["publish_recommendations"] == "success", states

    root = DataRoot(airflow.data_root)
    assert AS_OF in root.published_dates("recommendations")
    versions = [p for p in root.published_versions("recommendations", AS_OF).iterdir() if not p.name.startswith(".")]
    assert len(versions) == 1, versions
    table = root.read_recommendations(AS_OF)
    assert len(table) > 0 and table["rank"].max() <= 10
    config = root.read_published_metrics(AS_OF)["config"]
    assert config["as_of_date"] == AS_OF.isoformat()
    assert {key: config[key] for key in CHEAP_CONF} == CHEAP_CONF


def test_trigger_without_any_date_fails_in_plan_run(airflow):
    run = _trigger(airflow, {})
    (finished,), _ = airflow.wait_for_runs({run["dag_run_id"]})
    assert finished["state"] == "failed"
    states = {ti["task_id"]: ti for ti in airflow.task_instances(run["dag_run_id"])}
    plan = states.pop("plan_run")
    assert plan["state"] == "failed"
    assert plan["try_number"] == 1  # AirflowFailException: no retries for a run that cannot work
    assert {ti["state"] for ti in states.values()} == {"upstream_failed"}
    log = airflow.task_log(run["dag_run_id"], "plan_run", 1)
    assert "no logical date and no as_of_date" in log, log[-3000:]
    assert "AirflowFailException" in log


@pytest.mark.parametrize("conf", [
    {"as_of_date": AS_OF.isoformat(), "top_k": "abc"},
    {"as_of_date": AS_OF.isoformat(), "top_k": 0},
    {"as_of_date": AS_OF.isoformat(), "n_folds": 13},
    {"as_of_date": AS_OF.isoformat(), "modalities": ["behavior", "audio"]},
    {"as_of_date": "not-a-date"},
], ids=["top_k-string", "top_k-zero", "n_folds-too-many", "unknown-modality", "as_of_date-not-a-date"])
def test_trigger_with_a_bad_param_is_rejected_with_400(airflow, conf):
    before = {r["dag_run_id"] for r in airflow.dag_runs()}
    response = airflow.api("POST", RUNS, json={"logical_date": None, "conf": conf})
    assert response.status_code == 400, response.text
    bad_key = next(key for key in conf if key != "as_of_date") if len(conf) > 1 else "as_of_date"
    assert bad_key in response.json()["detail"]
    assert {r["dag_run_id"] for r in airflow.dag_runs()} == before  # no run was created


def test_params_are_documented_in_the_dag_details(airflow):
    from fusion_tasks.config import RunConfig

    response = airflow.api("GET", f"/api/v2/dags/{DAG_ID}/details")
    assert response.status_code == 200, response.text
    details = response.json()
    params = details["params"]
    expected = {"as_of_date", *RunConfig.defaults()}  # every run setting is a param
    assert {"sinks", "database_conn_id", "tune_models", "ties_of_unknown_users"} <= expected
    assert set(params) == expected
    undocumented = [name for name, param in params.items() if not (param.get("description") or "").strip()]
    assert undocumented == []
    assert params["as_of_date"]["schema"]["format"] == "date"
    assert "as_of_date" in (details.get("doc_md") or "")


def test_runs_are_recorded_in_the_postgresql_metadata_database(airflow):
    """The shared instance runs on PostgreSQL, like docker-compose.yaml: read its dag_run table directly."""
    import psycopg2

    url = airflow.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert url.startswith("postgresql+psycopg2://")
    run = _trigger(airflow, {})  # a run of its own, which fails at once: no date at all
    airflow.wait_for_runs({run["dag_run_id"]})
    api_runs = {r["dag_run_id"]: r["state"] for r in airflow.dag_runs()}
    assert run["dag_run_id"] in api_runs
    with psycopg2.connect(url.replace("postgresql+psycopg2://", "postgresql://")) as connection:
        with connection.cursor() as cursor:
            cursor.execute("SELECT run_id, state FROM dag_run WHERE dag_id = %s", (DAG_ID,))
            stored = dict(cursor.fetchall())
    assert stored == api_runs
