"""The fusionrec plugin without published data: cheap to import, defensive, empty when nothing is published."""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from fusion_tasks.dashboard import dashboard_data
from fusion_tasks.storage import DataRoot

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"


def _load_plugin_module():
    spec = importlib.util.spec_from_file_location("fusion_plugin", PLUGINS / "fusion_plugin.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_nothing_published_gives_empty_series(tmp_path):
    data = dashboard_data(DataRoot(tmp_path))
    assert data["dates"] == [] and data["methods"] == [] and data["decisions"] == []


def test_aggregate_metrics_is_defensive():
    plugin = _load_plugin_module()
    assert plugin.aggregate_metrics(None) == {}
    assert plugin.aggregate_metrics({"metrics": [1, 2]}) == {}
    assert plugin.aggregate_metrics({"metrics": {"a": 1.0, "b": {"x": True, "y": "s", "z": 2}}}) == {"b": {"z": 2}}
    assert plugin.aggregate_metrics({"metrics": {"b": {"x": math.inf}}}) == {"b": {"x": None}}


def test_plugin_module_import_is_cheap():
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import fusion_plugin; "
        "print(sorted(m for m in ('fastapi', 'pandas', 'fusion_tasks.storage') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code, str(PLUGINS)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# triggers of the DAG ------------------------------------------------------------------------------------
def _echo_client():
    """An app that echoes the body it receives, behind the plugin's middleware (as the API server adds it)."""
    plugin = _load_plugin_module()
    app = FastAPI()

    @app.post("/api/v2/dags/{dag_id}/dagRuns")
    async def trigger(dag_id: str, request: Request) -> dict:
        return {"dag_id": dag_id, "body": await request.json()}

    app.add_middleware(plugin.TriggerLabelMiddleware)
    return TestClient(app)


def test_a_misspelled_conf_key_is_refused_at_trigger_time_naming_the_key():
    with _echo_client() as client:
        response = client.post("/api/v2/dags/multimodal_fusion/dagRuns",
                               json={"logical_date": None, "conf": {"as_of_date": "2024-04-29", "top_kk": 5}})
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert "'top_kk' (did you mean 'top_k'?)" in detail
    assert "candidates_per_model" in detail  # the allowed keys are listed


def test_a_run_is_labelled_with_the_date_it_computes():
    with _echo_client() as client:
        body = client.post("/api/v2/dags/multimodal_fusion/dagRuns",
                           json={"logical_date": None, "conf": {"as_of_date": "2024-04-29"}}).json()["body"]
        assert body["dag_run_id"].startswith("as_of_2024-04-29__manual__")
        assert body["note"] == "as of 2024-04-29"
        by_logical = client.post("/api/v2/dags/multimodal_fusion/dagRuns",
                                 json={"logical_date": "2024-03-01T00:00:00Z", "conf": {}}).json()["body"]
        assert by_logical["dag_run_id"].startswith("as_of_2024-03-01__manual__")
        chosen = client.post("/api/v2/dags/multimodal_fusion/dagRuns",
                             json={"logical_date": None, "dag_run_id": "mine", "note": "kept",
                                   "conf": {"as_of_date": "2024-04-29"}}).json()["body"]
        assert chosen["dag_run_id"] == "mine" and chosen["note"] == "kept"


def test_other_requests_pass_through_untouched():
    with _echo_client() as client:
        other = client.post("/api/v2/dags/other_dag/dagRuns", json={"conf": {"anything": 1}}).json()["body"]
        assert other == {"conf": {"anything": 1}}
        no_date = client.post("/api/v2/dags/multimodal_fusion/dagRuns",
                              json={"logical_date": None, "conf": {}}).json()["body"]
        assert no_date == {"logical_date": None, "conf": {}}  # plan_run fails it with its own message
        bad_date = client.post("/api/v2/dags/multimodal_fusion/dagRuns",
                               json={"logical_date": None, "conf": {"as_of_date": "not-a-date"}}).json()["body"]
        assert "dag_run_id" not in bad_date  # Airflow's param check refuses it with 400
