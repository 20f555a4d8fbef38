"""A real Airflow (scheduler + dag-processor + api-server, LocalExecutor) for the integration tests.

The metadata database is SQLite by default, or any SQLAlchemy URL (``database_url``): the shared instance
runs on a real PostgreSQL server (``postgres.py``), as docker-compose.yaml does.

Each instance gets its own AIRFLOW_HOME and FUSION_DATA_ROOT under a temporary folder, a free loopback port,
the pool ``fusion_training``, a small synthetic world (60 days, 80 users, 120 items) and a serialized,
unpaused DAG. The three processes share one process group (the ``set -m`` pattern): teardown signals the
whole group, then kills whatever survived, so no test leaves Airflow running. Every wait is bounded: waits
for runs by progress (``StallWatch``: no run changed state and no task log grew for ``STALL_SECONDS``),
not by the clock.

The scheduler's own schedule is switched off (``[scheduler] use_job_schedule = False``): unpausing the DAG
would otherwise create a scheduled run for "yesterday" (catchup=False, start_date 2000-01-01), whose
``wait_for_landing`` would wait hours for landing data that never comes. Backfills and manual triggers are
unaffected by that setting.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import psutil

PROJECT = Path(__file__).resolve().parents[2]
AIRFLOW = Path(sys.executable).with_name("airflow")
DAG_ID = "multimodal_fusion"
TRAINING_POOL = "fusion_training"

# A run of this size takes about a minute under Airflow; the defaults would take several. Scheduling, not
# quality, is under test here: small windows, and the base models at their defaults (no per-run tuning).
CHEAP_CONF: dict[str, Any] = {"holdout_days": 7, "validation_days": 7, "n_folds": 2, "candidates_per_model": 20,
                              "tune_models": False}
WORLD = {"n_days": 60, "n_users": 80, "n_items": 120}  # 2024-01-01 .. 2024-02-29
TERMINAL = {"success", "failed"}
STALL_SECONDS = 600  # a wait fails when nothing moved for this long: a busy machine slows runs, it does not stop them


class StallWatch:
    """A wait bounded by progress, not by the wall clock: ``moved(state)`` records what was seen and says
    whether anything changed within the last ``stall`` seconds."""

    def __init__(self, stall: float = STALL_SECONDS) -> None:
        self.stall = stall
        self.last: Any = None
        self.since = time.monotonic()

    def moved(self, state: Any) -> bool:
        if state != self.last:
            self.last, self.since = state, time.monotonic()
        return time.monotonic() - self.since <= self.stall


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"<{path} unreadable>"


class AirflowInstance:
    """One running Airflow; ``cli`` runs the airflow CLI against it, ``api`` calls its REST API."""

    def __init__(self, base: Path, name: str, database_url: str | None = None, *,
                 unpause: tuple[str, ...] = (DAG_ID,), schedule_jobs: bool = False) -> None:
        self.name = name
        self.home = base / f"{name}-airflow"
        self.data_root = base / f"{name}-data"
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.processes: list[subprocess.Popen] = []
        self.pgid: int | None = None
        self._token: str | None = None
        self.unpause = unpause
        self._client = httpx.Client(base_url=self.url, timeout=30)
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "FUSION_"))}
        self.env = {
            **inherited,
            "PATH": f"{AIRFLOW.parent}{os.pathsep}{inherited.get('PATH', '')}",
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__BASE_URL": self.url,
            "AIRFLOW__API__WORKERS": "1",
            # the scheduler's task-log server: its default port 8793 is taken by any other Airflow on the machine
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(_free_port()),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": str(schedule_jobs),
            "FUSION_DATA_ROOT": str(self.data_root),
            "TF_CPP_MIN_LOG_LEVEL": "2",
        }
        if database_url is not None:
            self.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = database_url

    # lifecycle ---------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Database, pool, synthetic data, the serialized and unpaused DAG, before any service starts.

        CLI commands that write to the metadata database run before the services on purpose: on SQLite,
        ``airflow backfill create`` next to a running scheduler, dag-processor and api-server failed with
        ``sqlite3.OperationalError: database is locked`` half-way, leaving a backfill with one of its runs.
        """
        from fusion_tasks.storage import DataRoot
        from fusion_tasks.synthetic import SyntheticSpec, generate

        self.home.mkdir(parents=True)
        generate(DataRoot(self.data_root), SyntheticSpec(**WORLD))
        self.cli("db", "migrate", timeout=180)
        self.cli("pools", "set", TRAINING_POOL, "2", "model training")
        self.cli("dags", "reserialize", timeout=180)
        for dag_id in self.unpause:
            self.cli("dags", "unpause", dag_id)

    def start(self, ready_timeout: float = 180) -> None:
        for component in ("scheduler", "dag-processor", "api-server"):
            with open(self.home / f"{component}.log", "wb") as log:  # the child keeps its own descriptor
                proc = subprocess.Popen(
                    [str(AIRFLOW), component], env=self.env, cwd=self.home, stdout=log, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, process_group=0 if self.pgid is None else self.pgid)
            if self.pgid is None:
                self.pgid = proc.pid
            self.processes.append(proc)
        self._wait_healthy(ready_timeout)

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            for proc in self.processes:
                if proc.poll() is not None:
                    raise RuntimeError(f"{proc.args} exited with {proc.returncode}:\n{self.logs_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                response = self._client.get("/api/v2/monitor/health", timeout=5)
                last = response.text
                if response.status_code == 200:
                    health = response.json()
                    if all(health.get(part, {}).get("status") == "healthy"
                           for part in ("metadatabase", "scheduler", "dag_processor")):
                        return
            time.sleep(1)
        raise TimeoutError(f"Airflow not healthy after {timeout}s (last: {last}):\n{self.logs_tail()}")

    def stop(self, grace: float = 20) -> None:
        """SIGTERM the process group, wait, SIGKILL the group and any descendant that left it."""
        if self.pgid is None:
            return
        pids = {proc.pid for proc in self.processes}
        for proc in self.processes:
            with contextlib.suppress(psutil.Error):
                pids.update(child.pid for child in psutil.Process(proc.pid).children(recursive=True))
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pgid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(proc.poll() is None for proc in self.processes):
            time.sleep(0.5)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pgid, signal.SIGKILL)
        for pid in pids:  # children that moved to their own group or session
            with contextlib.suppress(psutil.Error):
                psutil.Process(pid).kill()
        for proc in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        self.pgid = None
        self._client.close()

    def logs_tail(self, lines: int = 30) -> str:
        return "\n".join(f"--- {path.name}\n{_tail(path, lines)}" for path in sorted(self.home.glob("*.log")))

    # CLI and REST --------------------------------------------------------------------------------
    def cli(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        out = subprocess.run([str(AIRFLOW), *args], env=self.env, cwd=self.home, capture_output=True, text=True,
                             timeout=timeout)
        if check and out.returncode != 0:
            raise AssertionError(f"airflow {' '.join(args)} exited {out.returncode}:\n{out.stdout[-3000:]}\n"
                                 f"{out.stderr[-3000:]}")
        return out

    def password(self) -> str:
        users = json.loads((self.home / "simple_auth_manager_passwords.json.generated").read_text())
        return users["admin"]

    def token(self) -> str:
        if self._token is None:
            response = self._client.post("/auth/token", json={"username": "admin", "password": self.password()})
            assert response.status_code in (200, 201), response.text
            self._token = response.json()["access_token"]
        return self._token

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token()}", **kwargs.pop("headers", {})}
        return self._client.request(method, path, headers=headers, **kwargs)

    def dag_runs(self, dag_id: str = DAG_ID) -> list[dict[str, Any]]:
        response = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns", params={"limit": 100})
        assert response.status_code == 200, response.text
        return response.json()["dag_runs"]

    def task_instances(self, run_id: str) -> list[dict[str, Any]]:
        response = self.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}/taskInstances",
                            params={"limit": 100})
        assert response.status_code == 200, response.text
        return response.json()["task_instances"]

    def task_log(self, run_id: str, task_id: str, try_number: int = 1) -> str:
        """The task's log as text: from the REST API, else from the log files under AIRFLOW_HOME/logs."""
        response = self.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}/taskInstances/"
                                   f"{task_id}/logs/{try_number}", headers={"Accept": "application/json"},
                            params={"full_content": True})
        text = response.text if response.status_code == 200 else ""
        files = sorted((self.home / "logs").glob(f"dag_id={DAG_ID}/run_id={run_id}/task_id={task_id}/*"))
        return text + "".join(path.read_text(errors="replace") for path in files if path.is_file())

    def activity(self, runs: list[dict[str, Any]]) -> tuple:
        """What the runs have done so far: each run's state, and the task logs written (files and sizes, read
        from disk: a running task writes its log; reading it adds no load on the API server)."""
        logs = sorted((str(path), path.stat().st_size) for path in (self.home / "logs").glob("dag_id=*/**/*")
                      if path.is_file())
        return tuple(sorted((r["dag_run_id"], r["state"]) for r in runs)), tuple(logs)

    def poll(self, read: Callable[[], Any]) -> Any:
        """``read()``, or None when the API server did not answer in time (a busy machine: the next poll
        asks again, and ``StallWatch`` bounds the wait)."""
        try:
            return read()
        except httpx.TimeoutException:
            return None

    def wait_for_runs(self, run_ids: set[str] | None = None, *, run_type: str | None = None, count: int = 0,
                      stall: float = STALL_SECONDS, poll: float = 3,
                      dag_id: str = DAG_ID) -> tuple[list[dict[str, Any]], int]:
        """Poll until the selected runs (given ids, or ``count`` runs of ``run_type``) are all finished; fail
        when no run changed state and no task log grew for ``stall`` seconds.

        Returns the runs and the largest number of them seen in state ``running`` at one poll.
        """
        watch = StallWatch(stall)
        most_running = 0
        selected: list[dict[str, Any]] = []
        while True:
            runs = self.poll(lambda: self.dag_runs(dag_id))
            if runs is None:
                if not watch.moved(watch.last):
                    break
                time.sleep(poll)
                continue
            if run_ids is not None:
                selected = [r for r in runs if r["dag_run_id"] in run_ids]
            else:
                selected = [r for r in runs if r["run_type"] == run_type]
            most_running = max(most_running, sum(r["state"] == "running" for r in selected))
            expected = len(run_ids) if run_ids is not None else count
            if len(selected) >= expected and all(r["state"] in TERMINAL for r in selected):
                return selected, most_running
            if not watch.moved((len(selected), self.activity(selected))):
                break
            time.sleep(poll)
        states = {r["dag_run_id"]: r["state"] for r in selected}
        raise TimeoutError(f"runs made no progress for {stall:g}s: {states}\n{self.logs_tail()}")

    def failure_report(self, runs: list[dict[str, Any]]) -> str:
        """For every failed run: each failed task and the end of its log."""
        lines = []
        for run in runs:
            if run["state"] == "success":
                continue
            lines.append(f"run {run['dag_run_id']} is {run['state']}")
            for ti in self.task_instances(run["dag_run_id"]):
                if ti["state"] in ("failed", "upstream_failed", "up_for_retry"):
                    lines.append(f"  {ti['task_id']}: {ti['state']} (try {ti['try_number']})")
                    if ti["state"] != "upstream_failed":
                        log = self.task_log(run["dag_run_id"], ti["task_id"], max(ti["try_number"], 1))
                        lines.append("    " + log[-2500:].replace("\n", "\n    "))
        return "\n".join(lines)


def max_overlap(runs: list[dict[str, Any]]) -> int:
    """The largest number of runs whose [start_date, end_date] intervals overlap at one instant."""
    events = []
    for run in runs:
        if run.get("start_date") and run.get("end_date"):
            events.append((dt.datetime.fromisoformat(run["start_date"]), 1))
            events.append((dt.datetime.fromisoformat(run["end_date"]), -1))
    current = best = 0
    for _, step in sorted(events, key=lambda e: (e[0], e[1])):  # an end before a start at the same instant
        current += step
        best = max(best, current)
    return best


_LIVE: list[AirflowInstance] = []


@atexit.register
def _stop_leftovers() -> None:  # pragma: no cover - only when a fixture's teardown never ran
    for instance in list(_LIVE):
        instance.stop(grace=5)


@contextlib.contextmanager
def running_airflow(base: Path, name: str, before_start: Callable[[AirflowInstance], None] | None = None,
                    database_url: str | None = None, **options: Any) -> Iterator[AirflowInstance]:
    """Prepare, start and (always) stop one Airflow instance.

    ``before_start`` runs once the database, pool and DAG are ready but before any service starts: the place
    for CLI commands that write to the metadata database (see ``AirflowInstance.prepare``).
    """
    instance = AirflowInstance(base, name, database_url, **options)
    try:
        instance.prepare()
        if before_start is not None:
            before_start(instance)
        _LIVE.append(instance)
        instance.start()
        yield instance
    finally:
        instance.stop()
        if instance in _LIVE:
            _LIVE.remove(instance)
