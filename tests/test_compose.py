"""docker-compose.yaml and Dockerfile: checked offline (no Docker engine on CI machines)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
COMPOSE = REPO / "docker-compose.yaml"
DOCKERFILE = REPO / "Dockerfile"

AIRFLOW_SERVICES = (
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
)
LONG_RUNNING = ("postgres", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer")
REQUIRED_MOUNTS = {
    "/opt/airflow/dags": REPO / "dags",
    "/opt/airflow/plugins": REPO / "plugins",
    "/opt/airflow/fusion_tasks": REPO / "fusion_tasks",
}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict) -> dict:
    return compose["services"]


def _interpolate(text: str) -> str:
    """Compose-style ``${VAR:-default}`` / ``${VAR}`` with an empty environment (defaults only)."""
    return re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::?-([^}]*))?\}", lambda m: m.group(1) or "", text)


def _mounts(service: dict) -> list[tuple[str, str, str]]:
    """(source, target, mode) of every short-syntax volume of a service, interpolated with defaults."""
    out = []
    for entry in service.get("volumes", []):
        assert isinstance(entry, str), f"long volume syntax not expected here: {entry!r}"
        parts = _interpolate(entry).split(":")
        assert len(parts) in (2, 3), entry
        out.append((parts[0], parts[1], parts[2] if len(parts) == 3 else "rw"))
    return out


def _check_jsonschema() -> str | None:
    beside = Path(sys.executable).with_name("check-jsonschema")
    return str(beside) if beside.exists() else shutil.which("check-jsonschema")


def _validate(path: Path) -> subprocess.CompletedProcess:
    exe = _check_jsonschema()
    if exe is None:
        pytest.skip("check-jsonschema is not installed (pip install check-jsonschema==0.39.0)")
    return subprocess.run(
        [exe, "--builtin-schema", "vendor.compose-spec", str(path)], capture_output=True, text=True, timeout=120
    )


# schema -------------------------------------------------------------------------------------------
def test_compose_file_validates_against_the_compose_spec():
    result = _validate(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_rejects_a_broken_compose_file(tmp_path):
    """The validator is not a no-op: a misspelt depends_on condition must fail it."""
    broken = COMPOSE.read_text().replace("condition: service_completed_successfully", "condition: finished", 1)
    assert broken != COMPOSE.read_text()
    (tmp_path / "docker-compose.yaml").write_text(broken)
    result = _validate(tmp_path / "docker-compose.yaml")
    assert result.returncode != 0, result.stdout


# services -----------------------------------------------------------------------------------------
def test_required_services_exist(services):
    assert set(services) == {"postgres", "fusionrec-db", *AIRFLOW_SERVICES}
    assert services["postgres"]["image"] == services["fusionrec-db"]["image"] == "postgres:15"
    assert services["airflow-apiserver"]["command"] == "api-server"
    assert services["airflow-scheduler"]["command"] == "scheduler"
    assert services["airflow-dag-processor"]["command"] == "dag-processor"
    assert services["airflow-triggerer"]["command"] == "triggerer"
    assert "8080:8080" in services["airflow-apiserver"]["ports"]


def test_every_airflow_service_shares_image_environment_and_mounts(compose, services):
    common = compose["x-airflow-common"]
    for name in AIRFLOW_SERVICES:
        service = services[name]
        assert service["image"] == common["image"], name
        assert service["build"] == {"context": ".", "dockerfile": "Dockerfile"}, name
        # PyYAML hands out the anchored mapping itself for an alias: proves the anchor is used, not a copy.
        assert service["environment"] is common["environment"], name
        targets = {target: source for source, target, _ in _mounts(service)}
        for target, host in REQUIRED_MOUNTS.items():
            assert target in targets, f"{name} does not mount {target}"
            assert (REPO / targets[target]).resolve() == host, name
        assert re.search(rf"^  {name}:\n    <<: \*airflow-common$", COMPOSE.read_text(), re.M), name


def test_environment_runs_local_executor_on_postgres_psycopg2(compose, services):
    env = compose["x-airflow-common"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    url = _interpolate(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    assert url.startswith("postgresql+psycopg2://"), url
    match = re.match(r"postgresql\+psycopg2://([^:]+):([^@]*)@([^:/]+):(\d+)/(\w+)$", url)
    assert match, url
    user, password, host, port, db = match.groups()
    pg_env = {k: _interpolate(str(v)) for k, v in services["postgres"]["environment"].items()}
    assert (user, password, db) == (pg_env["POSTGRES_USER"], pg_env["POSTGRES_PASSWORD"], pg_env["POSTGRES_DB"])
    assert host == "postgres" and port == "5432"
    assert env["AIRFLOW__CORE__AUTH_MANAGER"].endswith("simple_auth_manager.SimpleAuthManager")


def test_execution_api_url_points_at_the_api_server_service(compose, services):
    url = compose["x-airflow-common"]["environment"]["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]
    match = re.match(r"http://([\w-]+):(\d+)/execution/$", url)
    assert match, url
    host, port = match.groups()
    assert host in services and services[host]["command"] == "api-server"
    assert any(p.endswith(f":{port}") for p in services[host]["ports"])


def test_project_paths_inside_the_containers(compose, services):
    env = compose["x-airflow-common"]["environment"]
    assert env["PYTHONPATH"] == "/opt/airflow"
    mounts = {target: (source, mode) for source, target, mode in _mounts(services["airflow-scheduler"])}
    data_source, _ = mounts[env["FUSION_DATA_ROOT"]]
    assert data_source in compose["volumes"], "the data root should be a declared named volume"
    ciao_source, ciao_mode = mounts[env["FUSION_CIAO_DIR"]]
    assert ciao_mode == "ro"
    assert ciao_source == "../shared/data/ciao"
    assert "${FUSION_CIAO_DIR:-../shared/data/ciao}:/opt/airflow/ciao:ro" in COMPOSE.read_text()


def test_init_migrates_and_creates_the_training_pool(services):
    init = services["airflow-init"]
    script = " ".join(init["command"]) if isinstance(init["command"], list) else init["command"]
    assert "airflow db migrate" in script
    assert re.search(r'airflow pools set fusion_training 2 "training tasks"', script)
    assert script.index("db migrate") < script.index("pools set")
    assert 'python -m fusion_tasks db migrate --url "$${AIRFLOW_CONN_FUSIONREC_DB}"' in COMPOSE.read_text()
    assert init["depends_on"] == {"postgres": {"condition": "service_healthy"},
                                  "fusionrec-db": {"condition": "service_healthy"}}


def test_the_database_sink_is_its_own_postgres_through_an_airflow_connection(compose, services):
    """The recommendations go to the fusionrec-db service's database, never to Airflow's metadata database."""
    env = compose["x-airflow-common"]["environment"]
    url = _interpolate(env["AIRFLOW_CONN_FUSIONREC_DB"])
    match = re.match(r"postgresql://([^:]+):([^@]*)@([^:/]+):(\d+)/(\w+)$", url)
    assert match, url
    user, password, host, port, db = match.groups()
    sink_env = {k: _interpolate(str(v)) for k, v in services["fusionrec-db"]["environment"].items()}
    assert (user, password, db) == (sink_env["POSTGRES_USER"], sink_env["POSTGRES_PASSWORD"], sink_env["POSTGRES_DB"])
    assert host == "fusionrec-db" and port == "5432"
    assert url != _interpolate(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]).replace("+psycopg2", "")
    assert env["FUSION_DATABASE_CONN_ID"] == "fusionrec_db"  # the RunConfig's and the DAG param's default
    for name in AIRFLOW_SERVICES[1:]:
        assert services[name]["depends_on"]["fusionrec-db"] == {"condition": "service_healthy"}, name


def test_dependencies_wait_for_health_and_init(services):
    for name in AIRFLOW_SERVICES[1:]:
        deps = services[name]["depends_on"]
        assert deps["postgres"] == {"condition": "service_healthy"}, name
        assert deps["airflow-init"] == {"condition": "service_completed_successfully"}, name
    for name, service in services.items():
        for dep, spec in service.get("depends_on", {}).items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            if spec["condition"] == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep} to be healthy; it has no check"
    for name in LONG_RUNNING:
        test = services[name]["healthcheck"]["test"]
        assert test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, name
    assert services["airflow-scheduler"]["environment"]["AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"] == "true"


def test_every_repo_host_path_mounted_exists(compose, services):
    named = set(compose.get("volumes") or {})
    checked = 0
    for name, service in services.items():
        for source, target, _ in _mounts(service):
            if not source.startswith((".", "/", "~")):
                assert source in named, f"{name}: named volume {source} is not declared"
                continue
            host = (REPO / os.path.expanduser(source)).resolve()
            if host.is_relative_to(REPO):
                assert host.exists(), f"{name} mounts {host} (-> {target}), which does not exist"
                checked += 1
    assert checked >= len(AIRFLOW_SERVICES) * len(REQUIRED_MOUNTS)


# Dockerfile ---------------------------------------------------------------------------------------
def _dockerfile_instructions() -> list[str]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _pin(name: str, path: Path) -> str:
    for line in path.read_text().splitlines():
        match = re.match(rf"{re.escape(name)}==(\S+)", line.strip(), re.I)
        if match:
            return match.group(1)
    raise AssertionError(f"{name} is not pinned in {path.name}")


def test_dockerfile_base_image_matches_the_pinned_airflow():
    base = next(line for line in _dockerfile_instructions() if line.startswith("FROM "))
    match = re.fullmatch(r"FROM apache/airflow:(\S+)-python(3\.\d+)", base)
    assert match, base
    assert match.group(1) == _pin("apache-airflow", REPO / "requirements.txt")
    assert match.group(1) == _pin("apache-airflow", REPO / "constraints.txt")
    assert match.group(2) == "3.11"


def test_dockerfile_installs_requirements_with_constraints():
    lines = _dockerfile_instructions()
    copies = {tuple(line.split()[1:]) for line in lines if line.startswith("COPY ")}
    assert ("requirements.txt", "/requirements.txt") in copies
    assert ("constraints.txt", "/constraints.txt") in copies
    installs = [line for line in lines if line.startswith("RUN ") and "pip install" in line]
    assert len(installs) == 1, installs
    args = installs[0].split()
    assert args[args.index("-r") + 1] == "/requirements.txt"
    assert args[args.index("-c") + 1] == "/constraints.txt"
    assert "--no-cache-dir" in args
    # the metadata database is PostgreSQL: its provider is a pinned requirement like every other
    assert _pin("apache-airflow-providers-postgres", REPO / "requirements.txt") == \
        _pin("apache-airflow-providers-postgres", REPO / "constraints.txt")
    assert (REPO / "requirements.txt").is_file() and (REPO / "constraints.txt").is_file()
