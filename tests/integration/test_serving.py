"""Serving what is published, through real services: the per-user API behind the Airflow API server's login
(401 without a token, 200 with one from ``/auth/token``), the README's SQL and API examples run against what
the scheduler's run wrote, and the Asset a publish updates triggering the example consumer DAG.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.integration.harness import CHEAP_CONF, DAG_ID, AirflowInstance, running_airflow
from tests.integration.postgres import running_postgres

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PROJECT = Path(__file__).resolve().parents[2]
AS_OF = dt.date(2024, 2, 28)
EXPORT_DAG = "fusionrec_export"
API = "/fusionrec/api/v1"


def readme_blocks(language: str) -> list[str]:
    text = (PROJECT / "README.md").read_text()
    section = text[text.index("### Reading the recommendations"):]
    section = section[: section.index("\n## ")]
    return re.findall(rf"```{language}\n(.*?)```", section, re.S)


@pytest.fixture(scope="module")
def published(airflow: AirflowInstance) -> AirflowInstance:
    """One date triggered through the REST API and run by the scheduler, published to both sinks."""
    response = airflow.api("POST", f"/api/v2/dags/{DAG_ID}/dagRuns",
                           json={"logical_date": None, "conf": {"as_of_date": AS_OF.isoformat(), **CHEAP_CONF}})
    assert response.status_code == 200, response.text
    (run,), _ = airflow.wait_for_runs({response.json()["dag_run_id"]})
    assert run["state"] == "success", airflow.failure_report([run])
    return airflow


def test_the_api_needs_an_airflow_token_and_serves_the_published_rows(published):
    from fusion_tasks.storage import DataRoot

    root = DataRoot(published.data_root)
    table = root.read_recommendations(AS_OF)
    user = sorted(table["user_id"].unique())[0]
    path = f"{API}/recommendations/{user}?date={AS_OF}"
    anonymous = published._client.get(path)
    assert anonymous.status_code == 401, anonymous.text
    forged = published._client.get(path, headers={"Authorization": "Bearer not-a-token"})
    assert forged.status_code == 403 and forged.json() == {"detail": "Invalid JWT token"}  # Airflow's own answer
    assert published._client.get(f"{API}/openapi.json").status_code == 401
    response = published.api("GET", path)
    assert response.status_code == 200, response.text
    body = response.json()
    rows = table[table["user_id"] == user].sort_values("rank")
    assert body["ds"] == AS_OF.isoformat() and body["version"] == root.current_version_id(AS_OF)
    assert [item["item_id"] for item in body["items"]] == rows["item_id"].tolist()
    assert published.api("GET", f"{API}/recommendations/nobody").status_code == 404
    schema = published.api("GET", f"{API}/openapi.json").json()
    assert schema["servers"] == [{"url": "/fusionrec"}] and "/api/v1/recommendations/{user_id}" in schema["paths"]


def test_the_readme_examples_run_against_what_the_dag_published(published):
    from fusion_tasks.storage import DataRoot

    root = DataRoot(published.data_root)
    newest = max(root.published_dates("recommendations"))
    sql = readme_blocks("sql")
    assert len(sql) == 2
    with sqlite3.connect(root.serving_db()) as conn:
        latest = conn.execute(sql[0]).fetchall()
        runs = conn.execute(sql[1]).fetchall()
    table = root.read_recommendations(newest)
    expected = table[table["user_id"] == "u0001"].sort_values("rank")
    assert [row[1] for row in latest] == expected["item_id"].tolist() and latest
    assert runs[0][0] == newest.isoformat() and runs[0][1] == root.current_version_id(newest)

    [shell] = readme_blocks("bash")
    env = {**os.environ, "AIRFLOW_URL": published.url, "AIRFLOW_USER": "admin",
           "AIRFLOW_PASSWORD": published.password()}
    out = subprocess.run(["bash", "-euo", "pipefail", "-c", shell], env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    body = json.loads(out.stdout)
    assert body["ds"] == newest.isoformat() and len(body["items"]) == 3
    assert [item["item_id"] for item in body["items"]] == expected["item_id"].tolist()[:3]


# the Asset and its consumer --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def asset_airflow(integration_tmp: Path):
    """An Airflow whose scheduler creates Asset-triggered runs (its job schedule on); the producer stays paused
    and runs through ``airflow dags test``, so nothing is scheduled for it."""
    with running_postgres() as postgres, running_airflow(integration_tmp, "assets", database_url=postgres.url,
                                                         unpause=(EXPORT_DAG,), schedule_jobs=True) as instance:
        yield instance


def test_a_publish_triggers_the_consumer_dag_with_its_date_and_version(asset_airflow):
    import pandas as pd

    from fusion_tasks.sinks import Database
    from fusion_tasks.storage import DataRoot

    conf = json.dumps({"as_of_date": AS_OF.isoformat(), **CHEAP_CONF})
    asset_airflow.cli("dags", "test", DAG_ID, AS_OF.isoformat(), "-c", conf, timeout=900)
    root = DataRoot(asset_airflow.data_root)
    version = root.current_version_id(AS_OF)
    assert version is not None

    events = asset_airflow.api("GET", "/api/v2/assets/events", params={"limit": 10}).json()["asset_events"]
    [event] = [e for e in events if e["name"] == "fusionrec_recommendations"]
    assert event["extra"]["ds"] == AS_OF.isoformat() and event["extra"]["version"] == version
    db = Database.sqlite(root.serving_db())
    assert event["extra"]["checksum"] == db.current(AS_OF).checksum

    (run,), _ = asset_airflow.wait_for_runs(run_type="asset_triggered", count=1, dag_id=EXPORT_DAG)
    assert run["state"] == "success", asset_airflow.logs_tail()
    exported = pd.read_csv(root.export_path(AS_OF))
    table = root.read_recommendations(AS_OF)
    assert len(exported) == len(table) == event["extra"]["rows"]
    assert exported.sort_values(["user_id", "rank"])["item_id"].tolist() == \
        table.sort_values(["user_id", "rank"])["item_id"].tolist()
