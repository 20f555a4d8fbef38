"""The fusionrec Airflow plugin: its FastAPI app over published metrics, and discovery by Airflow."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from fusion_tasks.storage import DataRoot, publish_version

REPO = Path(__file__).resolve().parents[2]
PLUGINS = REPO / "plugins"
AIRFLOW = Path(sys.executable).with_name("airflow")

DAY1 = dt.date(2024, 3, 1)
DAY2 = dt.date(2024, 3, 2)


def _load_plugin_module():
    spec = importlib.util.spec_from_file_location("fusion_plugin", PLUGINS / "fusion_plugin.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def plugin(tmp_path, monkeypatch):
    monkeypatch.setenv("FUSION_DATA_ROOT", str(tmp_path / "var"))
    return _load_plugin_module()


def _publish(root: DataRoot, day: dt.date, payload: dict | str) -> None:
    def writer(folder: Path) -> None:
        text = payload if isinstance(payload, str) else json.dumps(payload)
        (folder / "metrics.json").write_text(text)

    publish_version(root, day, {"metrics": writer})


@pytest.fixture()
def published(plugin, tmp_path):
    root = DataRoot(tmp_path / "var")
    _publish(root, DAY1, {
        "metrics": {
            "weighted_sum": {"ndcg@10": 0.12345, "recall@10": 0.2},
            "stacking": {"ndcg@10": 0.2, "recall@10": 0.3, "per_user": [17, 42]},
        },
        "top_users": ["u17", "u42"],
    })
    _publish(root, DAY2, {"metrics": {"weighted_sum": {"NDCG@10": 0.5, "coverage": float("nan")}}})
    return root


@pytest.fixture()
def client(plugin):
    with TestClient(plugin.app) as client:
        yield client


# the app ------------------------------------------------------------------------------------------
def test_dates_lists_published_dates(published, client):
    response = client.get("/dates")
    assert response.status_code == 200
    assert response.json() == {"dates": ["2024-03-01", "2024-03-02"]}


def test_dates_is_empty_without_data(client):
    response = client.get("/dates")
    assert response.status_code == 200
    assert response.json() == {"dates": []}


def test_metrics_of_a_date_are_aggregates_only(published, client):
    response = client.get("/metrics/2024-03-01")
    assert response.status_code == 200
    assert response.json() == {
        "ds": "2024-03-01",
        "metrics": {
            "weighted_sum": {"ndcg@10": 0.12345, "recall@10": 0.2},
            "stacking": {"ndcg@10": 0.2, "recall@10": 0.3},
        },
    }
    assert "u17" not in response.text and "top_users" not in response.text and "per_user" not in response.text


def test_non_finite_metrics_become_null(published, client):
    response = client.get("/metrics/2024-03-02")
    assert response.status_code == 200
    assert response.json()["metrics"] == {"weighted_sum": {"NDCG@10": 0.5, "coverage": None}}


def test_metrics_of_an_unpublished_date_is_404(published, client):
    response = client.get("/metrics/2024-03-03")
    assert response.status_code == 404
    assert "2024-03-03" in response.json()["detail"]


def test_metrics_with_a_malformed_date_is_rejected(published, client):
    assert client.get("/metrics/yesterday").status_code == 422


def test_republishing_replaces_the_served_metrics(published, client):
    _publish(published, DAY1, {"metrics": {"weighted_sum": {"ndcg@10": 0.9}}})
    assert client.get("/metrics/2024-03-01").json()["metrics"] == {"weighted_sum": {"ndcg@10": 0.9}}


def test_index_page_shows_ndcg_of_each_method_by_date(published, client):
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert "<th>stacking</th><th>weighted_sum</th>" in page  # methods sorted, one column each
    # newest first; a method missing on a date shows a dash
    assert page.index("2024-03-02") < page.index("2024-03-01")
    assert "<td>&ndash;</td><td>0.5000</td>" in page
    assert "<td>0.2000</td><td>0.1235</td>" in page
    assert "recall" not in page


def test_index_page_without_data(client):
    response = client.get("/")
    assert response.status_code == 200
    assert "No metrics published yet" in response.text


def test_index_page_survives_an_unreadable_metrics_file(published, client):
    _publish(published, DAY2, "{not json")
    response = client.get("/")
    assert response.status_code == 200
    assert "unreadable" in response.text and "0.1235" in response.text
    assert client.get("/metrics/2024-03-02").status_code == 500


@pytest.mark.parametrize("breakage", ["folder_in_place", "file_link_loop", "date_link_loop", "dangling_date_link"])
def test_one_unreadable_date_is_marked_and_the_others_stay_served(published, client, breakage):
    """A published date that cannot be read shows as unreadable; the page, the other dates and
    their metrics are still served (never a 500 for the whole page)."""
    version = published.published("metrics", DAY2).resolve()
    link = published.published("metrics", DAY2)
    if breakage == "folder_in_place":
        (version / "metrics.json").unlink()
        (version / "metrics.json").mkdir()
    elif breakage == "file_link_loop":
        (version / "metrics.json").unlink()
        os.symlink("metrics.json", version / "metrics.json")
    elif breakage == "date_link_loop":
        link.unlink()
        os.symlink(link.name, link)
    else:
        link.unlink()
        os.symlink(".versions/ds=2024-03-02/v-gone", link)
    page = client.get("/")
    assert page.status_code == 200
    assert "2024-03-02" in page.text and "unreadable" in page.text
    assert "0.1235" in page.text  # DAY1 still served
    assert client.get("/metrics/2024-03-01").status_code == 200
    broken = client.get("/metrics/2024-03-02")
    assert broken.status_code == 500 and "2024-03-02" in broken.json()["detail"]
    assert client.get("/dates").status_code == 200


def test_generated_docs_and_schema_are_not_served_without_login(client):
    for path in ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"):
        assert client.get(path).status_code == 404, path


def test_index_page_escapes_method_names(plugin, tmp_path, client):
    _publish(DataRoot(tmp_path / "var"), DAY1, {"metrics": {"<script>x</script>": {"ndcg_at_10": 0.1}}})
    page = client.get("/").text
    assert "<script>" not in page and "&lt;script&gt;" in page and "0.1000" in page


def test_links_carry_the_mount_prefix(published, plugin):
    """Mounted the way Airflow's API server mounts it, links and routes live under /fusionrec."""
    (entry,) = plugin.FusionRecPlugin.fastapi_apps
    parent = FastAPI()
    parent.mount(entry["url_prefix"], entry["app"])
    with TestClient(parent) as client:
        page = client.get("/fusionrec/").text
        assert 'href="/fusionrec/metrics/2024-03-01"' in page
        assert client.get("/fusionrec/metrics/2024-03-01").json()["ds"] == "2024-03-01"


def test_aggregate_metrics_is_defensive(plugin):
    assert plugin.aggregate_metrics(None) == {}
    assert plugin.aggregate_metrics({"metrics": [1, 2]}) == {}
    assert plugin.aggregate_metrics({"metrics": {"a": 1.0, "b": {"x": True, "y": "s", "z": 2}}}) == {"b": {"z": 2}}
    assert plugin.aggregate_metrics({"metrics": {"b": {"x": math.inf}}}) == {"b": {"x": None}}


# the plugin in Airflow ----------------------------------------------------------------------------
def test_plugin_module_import_is_cheap():
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import fusion_plugin; "
        "print(sorted(m for m in ('fastapi', 'pandas', 'fusion_tasks.storage') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code, str(PLUGINS)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def _airflow_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update({
        "AIRFLOW_HOME": str(tmp_path / "airflow_home"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PLUGINS),
        "AIRFLOW__CORE__DAGS_FOLDER": str(tmp_path / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "FUSION_DATA_ROOT": str(tmp_path / "var"),
        "PYTHONPATH": str(REPO),
    })
    return env


def test_airflow_discovers_the_plugin(tmp_path):
    """``airflow plugins`` lists it (about 1.5 s; no ``airflow db migrate`` needed)."""
    assert AIRFLOW.exists(), f"no airflow executable next to {sys.executable}"
    result = subprocess.run([str(AIRFLOW), "plugins", "--output", "json"], env=_airflow_env(tmp_path),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    plugins = {p["name"]: p for p in json.loads(result.stdout)}
    assert "fusionrec" in plugins, result.stdout
    (app,) = plugins["fusionrec"]["fastapi_apps"]
    assert app["url_prefix"] == "/fusionrec"
    assert app["name"] == "fusionrec published outputs"
    assert plugins["fusionrec"]["source"].endswith("fusion_plugin.py")


def test_airflow_api_server_mounts_the_app(tmp_path):
    """Airflow's own ``init_plugins`` mounts the app, and it answers under /fusionrec."""
    _publish(DataRoot(tmp_path / "var"), DAY1, {"metrics": {"stacking": {"ndcg@10": 0.25}}})
    code = (
        "from fastapi import FastAPI; from fastapi.testclient import TestClient\n"
        "from airflow.api_fastapi.app import init_plugins\n"
        "app = FastAPI(); init_plugins(app)\n"
        "with TestClient(app) as c:\n"
        "    print(c.get('/fusionrec/dates').text); print(c.get('/fusionrec/metrics/2024-03-01').text)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], env=_airflow_env(tmp_path),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    dates, metrics = result.stdout.strip().splitlines()[-2:]
    assert json.loads(dates) == {"dates": ["2024-03-01"]}
    assert json.loads(metrics) == {"ds": "2024-03-01", "metrics": {"stacking": {"ndcg@10": 0.25}}}
