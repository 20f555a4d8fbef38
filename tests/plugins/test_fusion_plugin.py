"""The fusionrec plugin: its dashboard JSON and routes over metrics the real pipeline published, its login
requirement inside Airflow's API server, and its discovery by Airflow."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from fusion_tasks import modalities
from fusion_tasks.config import RunConfig
from fusion_tasks.dashboard import dashboard_data
from fusion_tasks.fusion.base import group_of
from fusion_tasks.publish import CONTRIBUTIONS
from fusion_tasks.storage import DataRoot, publish_version, read_json

REPO = Path(__file__).resolve().parents[2]
PLUGINS = REPO / "plugins"
AIRFLOW = Path(sys.executable).with_name("airflow")

DAYS = (dt.date(2024, 2, 27), dt.date(2024, 2, 29))
pytestmark = pytest.mark.slow  # the pipeline fixture trains every model, TensorFlow's included

CHEAP = {"holdout_days": 7, "validation_days": 7, "n_folds": 2, "candidates_per_model": 20, "ndcg_floor": 0.0}


def _load_plugin_module():
    spec = importlib.util.spec_from_file_location("fusion_plugin", PLUGINS / "fusion_plugin.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def pipeline_root(tmp_path_factory) -> DataRoot:
    """Two dates run by the real pipeline (every step, publishing included) on a small synthetic world."""
    from fusion_tasks.pipeline import run_all
    from fusion_tasks.synthetic import SyntheticSpec, generate

    root = DataRoot(tmp_path_factory.mktemp("published"))
    generate(root, SyntheticSpec(n_days=60, n_users=80, n_items=120, malformed_rows_per_day=1.0))
    for day in DAYS:
        out = run_all(RunConfig(as_of_date=day, data_root=root.root, **CHEAP))
        assert "published" in out, out["gate"]
    return root


@pytest.fixture()
def plugin(pipeline_root, monkeypatch):
    monkeypatch.setenv("FUSION_DATA_ROOT", str(pipeline_root.root))
    return _load_plugin_module()


def _allow_all() -> None:
    """Stands in for Airflow's login check where no API server runs (that check is tested below)."""


@pytest.fixture()
def client(plugin):
    with TestClient(plugin.create_app(require_access=_allow_all)) as client:
        yield client


# the dashboard's JSON, against the files the pipeline wrote ----------------------------------------------


def test_every_published_number_reaches_the_dashboard(pipeline_root, client):
    data = client.get("/api/dashboard").json()
    assert data == json.loads(json.dumps(dashboard_data(pipeline_root)))
    assert data["dates"] == [day.isoformat() for day in DAYS]
    for i, day in enumerate(DAYS):
        published = pipeline_root.read_published_metrics(day)
        names = set(published["metrics"])
        assert set(data["base_models"]) == set(published["base_models"])
        assert set(data["methods"]) == names - set(published["base_models"])
        assert set(data["methods"]) >= set(published["fusion"])
        for metric in ("ndcg", "recall", "hit_rate", "coverage"):
            for name in names:
                value = data["metrics"][metric][name][i]
                assert value is not None, (metric, name, day)  # no dashes for a number the pipeline wrote
                assert value == pytest.approx(published["metrics"][name][metric])
        decision = data["decisions"][i]
        assert decision["chosen_method"] == published["chosen_method"]
        assert decision["passed"] is True and decision["ndcg"] == pytest.approx(published["gate"]["ndcg"])
        assert decision["decision"].startswith(f"quality gate passed: {published['chosen_method']} NDCG@10 ")
        for segment, table in published["segments"].items():
            for name, values in table.items():
                assert data["segments"][day.isoformat()][segment][name]["ndcg"] == pytest.approx(values["ndcg"])
    assert data["decisions"][1]["previous_date"] == DAYS[0].isoformat()
    assert data["unreadable"] == []


def test_modality_shares_are_those_of_the_published_table(pipeline_root, client):
    data = client.get("/api/dashboard").json()
    for i, day in enumerate(DAYS):
        table = pipeline_root.read_recommendations(day)
        magnitude = table[CONTRIBUTIONS].abs().sum()
        for column in CONTRIBUTIONS:
            group = column.removeprefix("contribution_")
            assert data["contribution_share"][group][i] == pytest.approx(magnitude[column] / magnitude.sum())
        assert sum(data["contribution_share"][g][i] for g in data["contribution_share"]) == pytest.approx(1.0)
        assert max(data["contribution_share"][g][i] for g in data["contribution_share"]) > 0
        published = pipeline_root.read_published_metrics(day)
        if published["chosen_method"] == "weighted_sum":
            used = {group_of(name) for name, weight in published["fusion"]["weighted_sum"]["weights"].items()
                    if weight > 0}
            for group in set(modalities.REGISTRY) - used:  # a modality given no weight has no share
                assert data["contribution_share"][group][i] == 0.0


def test_quarantined_rows_are_those_of_the_staged_manifests(pipeline_root, client):
    data = client.get("/api/dashboard").json()
    assert set(data["quarantine"]) == set(modalities.REGISTRY)
    for i, day in enumerate(DAYS):
        for modality, counts in data["quarantine"].items():
            manifest = read_json(pipeline_root.staged_manifest(modality, day))
            assert counts[i] == manifest["rows_quarantined"]
    assert data["quarantine"]["behavior"][1] > 0  # the world has malformed rows every day


def test_names_come_from_the_files(pipeline_root, tmp_path, monkeypatch, plugin):
    """A fusion method or base model the dashboard has never heard of shows up, and a missing one is null."""
    root = DataRoot(tmp_path)
    payload = pipeline_root.read_published_metrics(DAYS[1])
    payload["metrics"]["graph_fusion"] = dict(payload["metrics"][payload["chosen_method"]], ndcg=0.5)
    payload["base_models"] = [*payload["base_models"], "graph"]
    payload["metrics"]["graph"] = dict(payload["metrics"][payload["base_models"][0]], ndcg=0.01)
    publish_version(root, DAYS[1], {"metrics": lambda folder: (folder / "metrics.json").write_text(
        json.dumps(payload))})
    publish_version(root, DAYS[0], {"metrics": lambda folder: (folder / "metrics.json").write_text(
        json.dumps(pipeline_root.read_published_metrics(DAYS[0])))})
    data = dashboard_data(root)
    assert "graph_fusion" in data["methods"] and "graph" in data["base_models"]
    assert data["metrics"]["ndcg"]["graph_fusion"] == [None, 0.5]
    assert data["metrics"]["ndcg"]["graph"] == [None, 0.01]


def test_an_unreadable_metrics_file_is_listed_not_fatal(pipeline_root, tmp_path):
    root = DataRoot(tmp_path)
    publish_version(root, DAYS[0], {"metrics": lambda folder: (folder / "metrics.json").write_text("{not json")})
    publish_version(root, DAYS[1], {"metrics": lambda folder: (folder / "metrics.json").write_text(
        json.dumps(pipeline_root.read_published_metrics(DAYS[1])))})
    data = dashboard_data(root)
    assert data["unreadable"] == [DAYS[0].isoformat()]
    assert data["dates"] == [DAYS[1].isoformat()]


@pytest.mark.parametrize("breakage", ["folder_in_place", "file_link_loop", "date_link_loop", "dangling_date_link"])
def test_one_unreadable_date_is_marked_and_the_others_stay_served(pipeline_root, tmp_path, monkeypatch, plugin,
                                                                 breakage):
    """A published date that cannot be read shows as unreadable; the dashboard, the other date and its
    metrics are still served (never a 500 for the whole page)."""
    import shutil

    root = DataRoot(tmp_path / "copy")
    shutil.copytree(pipeline_root.root / "published", root.root / "published", symlinks=True)
    monkeypatch.setenv("FUSION_DATA_ROOT", str(root.root))
    broken_day = DAYS[1]
    link = root.published("metrics", broken_day)
    version = link.resolve()
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
        os.symlink(".versions/ds=gone/v-gone", link)
    with TestClient(plugin.create_app(require_access=_allow_all)) as client:
        data = client.get("/api/dashboard")
        assert data.status_code == 200
        assert data.json()["unreadable"] == [broken_day.isoformat()]
        assert data.json()["dates"] == [DAYS[0].isoformat()]
        assert client.get(f"/metrics/{DAYS[0].isoformat()}").status_code == 200
        broken = client.get(f"/metrics/{broken_day.isoformat()}")
        assert broken.status_code == 500 and broken_day.isoformat() in broken.json()["detail"]
        assert "Traceback" not in broken.text and str(tmp_path) not in broken.text


def test_generated_docs_and_schema_are_not_served(client):
    for path in ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"):
        assert client.get(path).status_code == 404, path


def test_no_user_or_item_id_leaves(pipeline_root, client):
    text = client.get("/api/dashboard").text + client.get(f"/metrics/{DAYS[1]}").text
    table = pipeline_root.read_recommendations(DAYS[1])
    for user in table["user_id"].unique()[:20]:
        assert f'"{user}"' not in text
    for item in table["item_id"].unique()[:20]:
        assert f'"{item}"' not in text


# the other routes ------------------------------------------------------------------------------------
def test_dates_and_metrics_of_a_date(pipeline_root, client):
    assert client.get("/dates").json() == {"dates": [day.isoformat() for day in DAYS]}
    body = client.get(f"/metrics/{DAYS[0]}").json()
    published = pipeline_root.read_published_metrics(DAYS[0])
    assert body["ds"] == DAYS[0].isoformat()
    chosen = published["chosen_method"]
    assert body["metrics"][chosen]["ndcg"] == pytest.approx(published["metrics"][chosen]["ndcg"])
    assert client.get("/metrics/2024-03-03").status_code == 404
    assert client.get("/metrics/yesterday").status_code == 422


# the per-user API (v1), read from the database sink the pipeline wrote ---------------------------------------


def _a_user(pipeline_root, day):
    table = pipeline_root.read_recommendations(day)
    user = sorted(table["user_id"].unique())[3]
    return user, table[table["user_id"] == user].sort_values("rank")


def test_a_users_recommendations_are_the_published_rows_with_their_explanations(pipeline_root, client):
    user, rows = _a_user(pipeline_root, DAYS[1])
    body = client.get(f"/api/v1/recommendations/{user}").json()  # default: the newest published date
    assert body["ds"] == DAYS[1].isoformat() and body["user_id"] == user and body["k"] == 10
    assert body["version"] == pipeline_root.current_version_id(DAYS[1])
    assert body["method"] == pipeline_root.read_published_metrics(DAYS[1])["chosen_method"]
    assert [i["item_id"] for i in body["items"]] == rows["item_id"].tolist()
    assert [i["rank"] for i in body["items"]] == rows["rank"].tolist()
    for item, (_, row) in zip(body["items"], rows.iterrows(), strict=True):
        assert item["score"] == pytest.approx(row["score"])
        assert sum(item["contributions"].values()) == pytest.approx(row["score"], abs=1e-6)
        for column in CONTRIBUTIONS:
            assert item["contributions"][column.removeprefix("contribution_")] == pytest.approx(row[column])
        main = max(item["explanation"]["shares"], key=item["explanation"]["shares"].get)
        assert item["explanation"]["main"] == main
        assert item["explanation"]["text"].startswith(("mostly because of ", "because of "))
    older = client.get(f"/api/v1/recommendations/{user}", params={"date": DAYS[0].isoformat(), "k": 3}).json()
    _, rows_then = _a_user(pipeline_root, DAYS[0])
    assert older["ds"] == DAYS[0].isoformat() and [i["item_id"] for i in older["items"]] == \
        rows_then["item_id"].tolist()[:3]
    assert client.get(f"/api/v1/users/{user}/dates").json() == {"dates": [d.isoformat() for d in DAYS]}
    assert client.get("/api/v1/dates").json() == {"dates": [d.isoformat() for d in DAYS]}
    metrics = client.get(f"/api/v1/metrics/{DAYS[0]}").json()
    assert metrics["metrics"] == client.get(f"/metrics/{DAYS[0]}").json()["metrics"]


@pytest.mark.parametrize(("path", "status", "says"), [
    ("/api/v1/recommendations/nobody", 404, "no recommendations were published for user 'nobody'"),
    ("/api/v1/recommendations/u0003?date=2024-13-01", 422, "date"),
    ("/api/v1/recommendations/u0003?date=yesterday", 422, "date"),
    ("/api/v1/recommendations/u0003?date=2023-01-01", 404, "no recommendations for user 'u0003' on 2023-01-01"),
    ("/api/v1/recommendations/u0003?k=0", 422, "k"),
    ("/api/v1/recommendations/u0003?k=100000", 422, "k"),
    ("/api/v1/recommendations/" + "u" * 300, 422, "user_id"),
    ("/api/v1/recommendations/x'%20OR%20'1'='1", 404, "no recommendations were published for user"),
    ("/api/v1/recommendations/u0003%3B%20DROP%20TABLE%20recommendations", 404, "no recommendations"),
    ("/api/v1/recommendations/..%2F..%2F..%2Fetc%2Fpasswd", 404, ""),
    ("/api/v1/recommendations/%2e%2e/%2e%2e/serving/fusionrec.sqlite", 404, ""),
    ("/api/v1/users/nobody/dates", 404, "nobody"),
    ("/api/v1/metrics/2024-02-30", 422, ""),
])
def test_bad_requests_get_a_clear_4xx_without_internals(pipeline_root, client, path, status, says):
    response = client.get(path)
    assert response.status_code == status, response.text
    assert says in response.text
    assert "Traceback" not in response.text and str(pipeline_root.root) not in response.text
    assert "sqlite" not in response.text.lower() or "serving/fusionrec.sqlite" in path
    assert client.get("/api/v1/dates").json()["dates"] == [d.isoformat() for d in DAYS]  # the table is still there


def test_an_unavailable_database_is_a_503_without_its_location(plugin, client, monkeypatch, pipeline_root):
    from fusion_tasks.sinks import Database

    def refuse():
        raise OSError(f"could not open {pipeline_root.root}/serving/fusionrec.sqlite")

    monkeypatch.setattr(plugin, "_database", lambda: Database(refuse, "sqlite", str(pipeline_root.root)))
    response = client.get("/api/v1/recommendations/u0003")
    assert response.status_code == 503 and "unavailable" in response.json()["detail"]
    assert str(pipeline_root.root) not in response.text


def test_the_api_has_an_openapi_schema_behind_the_login(client, plugin):
    schema = client.get("/api/v1/openapi.json").json()
    assert {"/api/v1/recommendations/{user_id}", "/api/v1/users/{user_id}/dates", "/api/v1/dates",
            "/api/v1/metrics/{ds}"} <= set(schema["paths"])
    parameters = {p["name"] for p in schema["paths"]["/api/v1/recommendations/{user_id}"]["get"]["parameters"]}
    assert parameters == {"user_id", "date", "k"}
    parent = FastAPI()
    parent.mount(plugin.URL_PREFIX, plugin.create_app())
    with TestClient(parent) as anonymous:
        for path in ("/api/v1/openapi.json", "/api/v1/recommendations/u0003", "/api/v1/dates"):
            assert anonymous.get(plugin.URL_PREFIX + path).status_code == 401, path


def test_the_page_and_its_assets_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for asset in ("static/vendor/uPlot.iife.min.js", "static/vendor/uPlot.min.css", "static/dashboard.js",
                  "static/dashboard.css"):
        assert f'"{asset}"' in page.text, asset  # relative: works under any mount prefix or base URL
        assert client.get("/" + asset).status_code == 200, asset
    assert "cdn" not in page.text.lower() and "https://" not in page.text


def test_without_a_login_every_data_route_is_refused(plugin):
    """The real check (Airflow's ``requires_access_view``) refuses a request with no cookie and no token."""
    parent = FastAPI()
    parent.mount(plugin.URL_PREFIX, plugin.create_app())
    with TestClient(parent) as anonymous:
        for path in ("/fusionrec/api/dashboard", "/fusionrec/dates", f"/fusionrec/metrics/{DAYS[0]}"):
            assert anonymous.get(path).status_code == 401, path
        assert anonymous.get("/fusionrec/static/dashboard.js").status_code == 200  # code, no data


# the plugin in Airflow ----------------------------------------------------------------------------------

def _airflow_env(tmp_path: Path, data_root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update({
        "AIRFLOW_HOME": str(tmp_path / "airflow_home"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PLUGINS),
        "AIRFLOW__CORE__DAGS_FOLDER": str(tmp_path / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "FUSION_DATA_ROOT": str(data_root),
        "PYTHONPATH": str(REPO),
    })
    return env


def test_airflow_discovers_the_plugin_and_its_navigation_entry(tmp_path, pipeline_root):
    """``airflow plugins`` lists the app and the external view (no ``airflow db migrate`` needed)."""
    assert AIRFLOW.exists(), f"no airflow executable next to {sys.executable}"
    result = subprocess.run([str(AIRFLOW), "plugins", "--output", "json"],
                            env=_airflow_env(tmp_path, pipeline_root.root), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    plugins = {p["name"]: p for p in json.loads(result.stdout)}
    assert "fusionrec" in plugins, result.stdout
    (app,) = plugins["fusionrec"]["fastapi_apps"]
    assert app["url_prefix"] == "/fusionrec"
    (view,) = plugins["fusionrec"]["external_views"]
    assert view["destination"] == "nav" and view["href"] == "fusionrec/" and str(view["nav_top_level"]) == "True"
    assert plugins["fusionrec"]["source"].endswith("fusion_plugin.py")


API_SERVER_SCRIPT = """
import json, os
from fastapi.testclient import TestClient
from airflow.api_fastapi.app import create_app

out = {}
with TestClient(create_app()) as c:
    out["anonymous_json"] = c.get("/fusionrec/api/dashboard").status_code
    page = c.get("/fusionrec/", follow_redirects=False)
    out["anonymous_page"] = [page.status_code, page.headers.get("location")]
    home = os.environ["AIRFLOW_HOME"]
    password = json.load(open(home + "/simple_auth_manager_passwords.json.generated"))["admin"]
    token = c.post("/auth/token", json={"username": "admin", "password": password}).json()["access_token"]
    out["bearer_json"] = c.get("/fusionrec/api/dashboard", headers={"Authorization": "Bearer " + token}).json()
    c.cookies.set("_token", token)  # what the UI's login leaves in the browser
    out["cookie_page"] = c.get("/fusionrec/").status_code
    c.cookies.set("_token", "forged")
    out["forged_cookie"] = c.get("/fusionrec/api/dashboard").status_code
    plugins = c.get("/api/v2/plugins", headers={"Authorization": "Bearer " + token}).json()["plugins"]
    out["external_views"] = [v for p in plugins for v in p["external_views"]]
print("RESULT " + json.dumps(out))
"""


def test_inside_airflows_api_server_the_dashboard_is_behind_the_login(tmp_path, pipeline_root):
    env = _airflow_env(tmp_path, pipeline_root.root)
    migrate = subprocess.run([str(AIRFLOW), "db", "migrate"], env=env, capture_output=True, text=True, timeout=300)
    assert migrate.returncode == 0, migrate.stderr[-3000:]
    result = subprocess.run([sys.executable, "-c", API_SERVER_SCRIPT], env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(next(line for line in result.stdout.splitlines() if line.startswith("RESULT "))[7:])
    assert out["anonymous_json"] == 401
    status, location = out["anonymous_page"]
    assert status == 303 and location.startswith("/auth/login") and "fusionrec" in location
    assert out["bearer_json"] == json.loads(json.dumps(dashboard_data(pipeline_root)))
    assert out["cookie_page"] == 200
    assert out["forged_cookie"] in (401, 403)
    assert [v["name"] for v in out["external_views"]] == ["fusionrec"]
