"""Latency of the per-user recommendations API under load: ``python -m bench.serving`` (``make bench-serving``).

One synthetic world (``--users`` users, ``--items`` items, ``--days`` days) goes through the whole pipeline
for its last date (``fusion_tasks.pipeline.run_all`` with cheap settings), which publishes it to the files
and to the data root's embedded SQLite database sink; the same date is then published into a PostgreSQL
server started on loopback (``publish`` with ``Database.postgres``).

For each backend a real ``airflow api-server`` (its own AIRFLOW_HOME and SQLite metadata database, the
project's plugins, ``--workers`` workers) serves ``GET /fusionrec/api/v1/recommendations/{user_id}?date=D&k=10``
to requests with a bearer token from ``POST /auth/token``. A few answers are first checked against the fused
table, then a warm-up; then ``--clients`` client threads, each with its own keep-alive ``httpx.Client``, send
``--requests`` requests each for random published users, and one client alone sends ``--solo-requests``.
Each measurement is repeated ``--repeats`` times; the table gives the median over the repeats of p50, p99,
mean latency and requests/s. Every answer must be 200: otherwise the bench exits 1 and keeps the server's log
in ``bench/out``. The clients share the machine's cores with the server. Written to ``bench/out/serving.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import glob
import json
import math
import os
import pwd
import random
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import psutil

from fusion_tasks.config import RunConfig

PROJECT = Path(__file__).resolve().parents[1]
OUT = PROJECT / "bench" / "out"
AIRFLOW = Path(sys.executable).with_name("airflow")
CHEAP_CONF = {"holdout_days": 7, "validation_days": 7, "n_folds": 2, "candidates_per_model": 20,
              "tune_models": False, "ndcg_floor": 0.0}
K = 10
ROUTE = "/fusionrec/api/v1/recommendations/"


@dataclasses.dataclass
class World:
    """The published date, its rows, every user's expected top-k item ids and the version in each database."""

    root: Path
    day: dt.date
    rows: int
    top: dict[str, list[str]]
    versions: dict[str, str]


@dataclasses.dataclass
class Server:
    url: str
    token: str
    log: Path


@dataclasses.dataclass
class Sample:
    """One measurement: each successful request's latency (s), the wall seconds of the burst, the failures."""

    latencies: list[float]
    seconds: float
    errors: list[str]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(command: list[str], *, env: dict[str, str] | None = None, timeout: float = 300) -> None:
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}:\n{done.stdout[-2000:]}\n"
                           f"{done.stderr[-2000:]}")


def build_world(base: Path, users: int, items: int, days: int) -> tuple[World, RunConfig]:
    """Generate the world and run the pipeline for its last date (publishing to the files and SQLite)."""
    from fusion_tasks.pipeline import run_all
    from fusion_tasks.storage import DataRoot, read_parquet
    from fusion_tasks.synthetic import SyntheticSpec, generate

    spec = SyntheticSpec(n_days=days, n_users=users, n_items=items)
    root = DataRoot(base / "data")
    generate(root, spec)
    config = RunConfig.from_dict({**CHEAP_CONF, "as_of_date": spec.end.isoformat(), "data_root": str(root.root)})
    out = run_all(config)
    if "published" not in out:
        raise RuntimeError(f"the quality gate refused {spec.end}: {out['gate']}")
    table = read_parquet(root.fused_recommendations(spec.end)).sort_values(["user_id", "rank"])
    top = {str(user): group["item_id"].astype(str).tolist()[:K] for user, group in table.groupby("user_id")}
    return World(root.root, spec.end, len(table), top, {"SQLite": out["published"]["version"]}), config


@contextlib.contextmanager
def postgres() -> Iterator[str]:
    """A PostgreSQL server on a free loopback port with an empty database ``fusionrec``; yields its URL.

    ``initdb`` refuses to run as root, so as root the server runs as the ``postgres`` system user.
    """
    on_path = shutil.which("pg_ctl")
    found = [str(Path(os.path.realpath(on_path)).parent)] if on_path else []
    found += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True)
    if not found:
        raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) not found: install postgresql")
    bin_dir = Path(found[0])
    folder = Path(tempfile.mkdtemp(prefix="fusionrec-serving-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(folder, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = folder / "data", free_port()
    try:
        run([*as_user, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "--encoding=UTF8",
             "--no-sync"])
        run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(folder / "server.log"), "-o",
             f"-p {port} -c listen_addresses=127.0.0.1 -k {folder} -c fsync=off", "-w", "-t", "60", "start"])
        run([*as_user, str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "fusionrec"])
        yield f"postgresql://postgres@127.0.0.1:{port}/fusionrec"
    finally:
        with contextlib.suppress(Exception):
            run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"], timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def api_server(home: Path, world: World, workers: int, extra_env: dict[str, str]) -> Iterator[Server]:
    """``airflow api-server`` on a free loopback port (metadata database migrated first), healthy and with a
    token; on exit its process group is sent SIGTERM, then SIGKILL with any descendant that left it."""
    home.mkdir(parents=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "FUSION_"))}
    env = {**inherited, "PATH": f"{AIRFLOW.parent}{os.pathsep}{inherited.get('PATH', '')}",
           "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT / "dags"),
           "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT / "plugins"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__API__HOST": "127.0.0.1", "AIRFLOW__API__PORT": str(port), "AIRFLOW__API__BASE_URL": url,
           "AIRFLOW__API__WORKERS": str(workers), "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
           "FUSION_DATA_ROOT": str(world.root), **extra_env}
    run([str(AIRFLOW), "db", "migrate"], env=env)
    log = home / "api-server.log"
    with open(log, "wb") as out:  # the child keeps its own descriptor
        proc = subprocess.Popen([str(AIRFLOW), "api-server"], env=env, cwd=home, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, process_group=0)
    try:
        deadline, last = time.monotonic() + 180, "no answer"
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"api-server not healthy (exit code {proc.returncode}, last: {last}):\n"
                                   + "\n".join(log.read_text(errors="replace").splitlines()[-30:]))
            with contextlib.suppress(httpx.HTTPError):
                response = httpx.get(f"{url}/api/v2/monitor/health", timeout=5)
                last = response.text
                if response.status_code == 200 and response.json()["metadatabase"]["status"] == "healthy":
                    break
            time.sleep(1)
        password = json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())["admin"]
        response = httpx.post(f"{url}/auth/token", json={"username": "admin", "password": password}, timeout=30)
        response.raise_for_status()
        yield Server(url, response.json()["access_token"], log)
    finally:
        descendants: list[psutil.Process] = []
        with contextlib.suppress(psutil.Error):
            descendants = psutil.Process(proc.pid).children(recursive=True)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=20)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        for child in descendants:
            with contextlib.suppress(psutil.Error):
                child.kill()
        proc.wait(timeout=10)


def client(server: Server) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}, timeout=60)


def check_answers(server: Server, world: World, backend: str, users: int = 20) -> list[str]:
    """A few sequential requests; the problems found: an answer that is not 200, not the user's top k of the
    fused table, or of another version than the one published to ``backend`` (so served by another database)."""
    problems = []
    with client(server) as http:
        for user in random.Random(0).sample(sorted(world.top), min(users, len(world.top))):
            response = http.get(ROUTE + quote(user, safe=""), params={"date": world.day.isoformat(), "k": K})
            if response.status_code != 200:
                problems.append(f"{user}: {response.status_code} {response.text[:300]}")
                continue
            body = response.json()
            got = [item["item_id"] for item in body["items"]]
            if (body["ds"], body["version"], got) != (world.day.isoformat(), world.versions[backend], world.top[user]):
                problems.append(f"wrong answer for {user}: ds {body['ds']}, version {body['version']}, items {got}; "
                                f"expected {world.day}, {world.versions[backend]}, {world.top[user]}")
    return problems


def measure(server: Server, world: World, clients: int, requests: int, seed: int) -> Sample:
    """``clients`` threads, released together, each sending ``requests`` requests for random users
    (after one unmeasured request that opens its connection)."""
    users = sorted(world.top)
    params = {"date": world.day.isoformat(), "k": K}
    latencies: list[float] = []  # list.append is atomic
    errors: list[str] = []
    start = threading.Barrier(clients + 1, timeout=120)

    def one(http: httpx.Client, user: str) -> float | None:
        began = time.perf_counter()
        try:
            response = http.get(ROUTE + quote(user, safe=""), params=params)
        except httpx.HTTPError as err:
            errors.append(f"{user}: {type(err).__name__}: {err}")
            return None
        spent = time.perf_counter() - began
        if response.status_code != 200:
            errors.append(f"{user}: {response.status_code} {response.text[:300]}")
            return None
        return spent

    def loop(n: int) -> None:
        rng = random.Random(seed * 1000 + n)
        with client(server) as http:
            one(http, rng.choice(users))
            start.wait()
            for _ in range(requests):
                spent = one(http, rng.choice(users))
                if spent is not None:
                    latencies.append(spent)

    threads = [threading.Thread(target=loop, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    return Sample(latencies, time.perf_counter() - began, errors)


def summary(samples: list[Sample]) -> dict[str, float]:
    """Per sample p50, p99, mean (ms) and requests/s; the median of each over the samples; errors summed.
    A sample without one successful request counts as NaN."""
    per = [{"p50": statistics.median(s.latencies) * 1e3, "p99": statistics.quantiles(s.latencies, n=100)[98] * 1e3,
            "mean": statistics.fmean(s.latencies) * 1e3, "rps": len(s.latencies) / s.seconds}
           if len(s.latencies) > 1 else dict.fromkeys(("p50", "p99", "mean", "rps"), math.nan) for s in samples]
    out = {key: statistics.median(p[key] for p in per) for key in per[0]}
    out["errors"] = sum(len(s.errors) for s in samples)
    return out


Measured = list[tuple[int, int, dict[str, float]]]


def bench_backend(server: Server, world: World, backend: str, args: argparse.Namespace) -> tuple[Measured, list[str]]:
    """Check, warm up, then alternate the single client and the loaded measurement ``--repeats`` times.
    Returns (clients, requests per measurement, summary) per concurrency, and every failed request."""
    errors = check_answers(server, world, backend) + measure(server, world, args.clients, 5, 0).errors  # warm-up
    plan = ((1, args.solo_requests), (args.clients, args.requests))
    samples: dict[int, list[Sample]] = {clients: [] for clients, _ in plan}
    for repeat in range(1, args.repeats + 1):
        for clients, requests in plan:
            samples[clients].append(measure(server, world, clients, requests, repeat))
            errors += samples[clients][-1].errors
            print(f"{clients} client(s), repeat {repeat}: {len(samples[clients][-1].latencies)} answers", flush=True)
    return [(clients, clients * requests, summary(samples[clients])) for clients, requests in plan], errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--items", type=int, default=1500)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients of the loaded measurement")
    parser.add_argument("--requests", type=int, default=40, help="requests per client under load")
    parser.add_argument("--solo-requests", type=int, default=400, help="requests of the single client")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1, help="api-server workers")
    parser.add_argument("--out", type=Path, default=OUT / "serving.md")
    args = parser.parse_args(argv)

    from fusion_tasks.publish import publish
    from fusion_tasks.sinks.database import Database
    from fusion_tasks.storage import DataRoot

    base = Path(tempfile.mkdtemp(prefix="fusionrec-serving-"))
    rows: list[str] = []
    failures: list[str] = []
    try:
        started = time.perf_counter()
        world, config = build_world(base, args.users, args.items, args.days)
        print(f"pipeline: {world.day}, {world.rows} rows, {len(world.top)} users in "
              f"{time.perf_counter() - started:.0f}s", flush=True)
        with postgres() as url:
            database = Database.postgres(url)
            world.versions["PostgreSQL"] = publish(DataRoot(world.root), config, database)["version"]
            database.close()
            load = os.getloadavg()[0]
            for backend, env in (("SQLite", {}), ("PostgreSQL", {"AIRFLOW_CONN_FUSIONREC_DB": url})):
                print(f"{backend}:", flush=True)
                with api_server(base / f"{backend.lower()}-airflow", world, args.workers, env) as server:
                    measured, errors = bench_backend(server, world, backend, args)
                    if errors:
                        kept = OUT / f"serving-{backend.lower()}-api-server.log"
                        kept.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copyfile(server.log, kept)
                        failures.append(f"{backend}: {len(errors)} failed requests, first: {errors[0]} (log: {kept})")
                rows += [f"| {backend} | {clients} | {requests} | {r['p50']:.1f} | {r['p99']:.1f} | {r['mean']:.1f} | "
                         f"{r['rps']:.0f} | {r['errors']:.0f} |" for clients, requests, r in measured]
    finally:
        shutil.rmtree(base, ignore_errors=True)

    command = " ".join(["python -m bench.serving", *(sys.argv[1:] if argv is None else argv)])
    lines = [
        "# Latency of the per-user recommendations API",
        "",
        f"`{command}` on {time.strftime('%Y-%m-%d')}: {os.cpu_count()} cores (load average "
        f"{load:.1f} when the measurements began), `airflow api-server` with {args.workers} worker(s) on loopback, "
        f"`GET {ROUTE}{{user_id}}?date={world.day}&k={K}` for random users of the published date {world.day} "
        f"({len(world.top)} users, {world.rows} rows; synthetic world of {args.days} days, {args.users} users, "
        f"{args.items} items), bearer token auth. Loaded: {args.clients} client threads x {args.requests} requests; "
        f"single client: {args.solo_requests} requests; each with its own keep-alive connection, on the same "
        f"machine as the server. Median over {args.repeats} repeats of each statistic; errors summed.",
        "",
        "| backend | clients | requests per repeat | p50 ms | p99 ms | mean ms | requests/s | errors |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))
    for failure in failures:
        print(failure, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
