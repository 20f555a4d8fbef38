"""Publishing to every sink: one version id and one row checksum in the files and the database (SQLite, and a
real PostgreSQL 15 server on loopback), reruns that replace a date exactly, an older schema that refuses with
how to migrate, an unreachable sink that leaves every sink at its previous version, a failure between two
commits repaired by the rerun, concurrent publishers, a SIGKILL in the middle of a load, and paired reads of
a date's table and metrics while it is republished.

The table published is the one the pipeline wrote for a small synthetic world (``fused/ds=D``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fusion_tasks.config import PROJECT_ROOT, RunConfig
from fusion_tasks.publish import publish
from fusion_tasks.sinks import Database, FileSink, SchemaVersionError, SinkError, table_checksum
from fusion_tasks.sinks.database import SCHEMA_VERSION, _OpenTransaction
from fusion_tasks.storage import DataRoot, read_parquet, write_parquet

DAY = dt.date(2024, 2, 27)
CHEAP = {"holdout_days": 7, "validation_days": 7, "n_folds": 2, "candidates_per_model": 20, "ndcg_floor": 0.0,
         "tune_models": False}


@pytest.fixture(scope="module")
def pipeline_root(tmp_path_factory) -> DataRoot:
    """One date run by the pipeline up to its gate, not published."""
    from fusion_tasks.pipeline import run_all
    from fusion_tasks.synthetic import SyntheticSpec, generate

    root = DataRoot(tmp_path_factory.mktemp("pipeline"))
    generate(root, SyntheticSpec(n_days=60, n_users=80, n_items=120))
    out = run_all(RunConfig(as_of_date=DAY, data_root=root.root, **CHEAP), publish_if_gate_passes=False)
    assert out["gate"]["passed"], out["gate"]
    return root


@pytest.fixture()
def root(pipeline_root: DataRoot, tmp_path: Path) -> DataRoot:
    """A copy of the run's features and fused outputs, with nothing published yet."""
    copy = DataRoot(tmp_path / "root")
    for part in ("features", "fused", "staged"):
        shutil.copytree(pipeline_root.root / part, copy.root / part)
    return copy


@pytest.fixture(scope="module")
def postgres() -> Iterator[object]:
    from tests.integration.postgres import running_postgres

    with running_postgres() as server:
        yield server


_DATABASES = iter(range(10_000))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def db_url(request, tmp_path: Path) -> str:
    """A fresh, empty database of each dialect, as a URL the child processes can open too."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'serving.sqlite'}"
    import psycopg2

    server = request.getfixturevalue("postgres")
    name = f"fusionrec_{next(_DATABASES)}"
    admin = psycopg2.connect(f"postgresql://postgres@127.0.0.1:{server.port}/airflow")
    admin.autocommit = True
    admin.cursor().execute(f"CREATE DATABASE {name}")
    admin.close()
    return f"postgresql://postgres@127.0.0.1:{server.port}/{name}"


def open_db(url: str) -> Database:
    return Database.sqlite(url.removeprefix("sqlite:///")) if url.startswith("sqlite") else Database.postgres(url)


@pytest.fixture()
def db(db_url: str) -> Iterator[Database]:
    database = open_db(db_url)
    yield database
    database.close()


def config(root: DataRoot) -> RunConfig:
    return RunConfig(as_of_date=DAY, data_root=root.root, **CHEAP)


def keep_users(root: DataRoot, share: float) -> None:
    """Rewrite the fused table with the first ``share`` of its users (another valid table for D)."""
    path = root.fused(DAY) / "recommendations.parquet"
    table = read_parquet(path)
    users = sorted(table["user_id"].unique())
    write_parquet(table[table["user_id"].isin(users[: max(1, int(len(users) * share))])], path)


def stored_version_ids(db: Database) -> set[str]:
    with db.reading() as conn:
        return {row[0] for row in db.execute(conn, "SELECT DISTINCT version_id FROM recommendations "
                                                   "WHERE ds = ?", (DAY.isoformat(),)).fetchall()}


def assert_sinks_agree(root: DataRoot, db: Database, version: str | None = None) -> None:
    files, stored = FileSink(root).current(DAY), db.current(DAY)
    assert files is not None and files == stored
    assert version is None or files.version_id == version
    assert db.rows_checksum(DAY) == files.checksum == table_checksum(root.read_recommendations(DAY))
    assert stored_version_ids(db) == {files.version_id}


# one version everywhere -------------------------------------------------------------------------------------


def test_a_published_date_has_one_version_and_checksum_in_every_sink(root, db):
    out = publish(root, config(root), db)
    assert out["sinks"] == ["files", "database"] and out["repaired"] == []
    assert_sinks_agree(root, db, out["version"])
    table = root.read_recommendations(DAY)
    run = db.published_run(DAY)
    assert run["row_count"] == len(table) == out["rows"]
    assert run["method"] == out["method"] and run["gate_decision"].startswith("quality gate passed")
    assert run["metrics"] == json.loads(json.dumps(root.read_published_metrics(DAY), default=str))
    assert run["config"]["top_k"] == 10
    with db.reading() as conn:
        latest = db.execute(conn, "SELECT user_id, item_id, rank, score FROM recommendations_latest "
                                  "ORDER BY user_id, rank").fetchall()
    expected = table.sort_values(["user_id", "rank"])[["user_id", "item_id", "rank", "score"]]
    assert [tuple(row) for row in latest] == list(expected.itertuples(index=False, name=None))


def test_the_latest_view_shows_the_newest_published_date(root, db):
    earlier = DAY - dt.timedelta(days=1)
    for part in ("features", "fused"):
        shutil.copytree(root.root / part / f"ds={DAY}", root.root / part / f"ds={earlier}")
    publish(root, config(root), db)
    publish(root, RunConfig(as_of_date=earlier, data_root=root.root, **CHEAP), db)  # an older date, later
    with db.reading() as conn:
        dates = db.execute(conn, "SELECT DISTINCT ds FROM recommendations_latest").fetchall()
    assert [str(row[0]) for row in dates] == [DAY.isoformat()]
    assert db.published_dates() == [earlier, DAY]


def test_a_rerun_replaces_the_rows_of_its_date_exactly(root, db):
    first = publish(root, config(root), db)
    keep_users(root, 0.5)
    second = publish(root, config(root), db)
    assert second["version"] != first["version"] and second["rows"] < first["rows"]
    assert_sinks_agree(root, db, second["version"])
    assert db.published_run(DAY)["row_count"] == second["rows"]


# bad schema, unreachable sinks, failures between commits ----------------------------------------------------


def test_an_older_schema_refuses_and_says_how_to_migrate(root, db):
    db.migrate(target=1)
    with pytest.raises(SchemaVersionError, match=r"schema version 1, this fusionrec needs 2: run "
                                                 r"`python -m fusion_tasks db migrate`"):
        publish(root, config(root), db)
    assert root.published_dates("recommendations") == []  # nothing was switched in any sink
    assert db.migrate() == [2]
    assert_sinks_agree(root, db, publish(root, config(root), db)["version"])


def test_an_unreachable_database_leaves_every_sink_at_its_previous_version(root, db, tmp_path):
    before = publish(root, config(root), db)["version"]
    if db.dialect == "sqlite":
        (tmp_path / "not-a-folder").write_text("")
        dead = Database.sqlite(tmp_path / "not-a-folder" / "serving.sqlite")
    else:
        dead = Database.postgres("postgresql://postgres@127.0.0.1:1/fusionrec", connect_timeout=3)  # nobody on port 1
    keep_users(root, 0.5)
    with pytest.raises(SinkError, match="cannot connect to the database sink"):
        publish(root, config(root), dead)
    assert_sinks_agree(root, db, before)


def test_a_failure_between_two_commits_is_named_and_repaired_by_the_rerun(root, db, monkeypatch):
    before = publish(root, config(root), db)["version"]
    commit = _OpenTransaction.commit

    def fail_once(self):
        monkeypatch.setattr(_OpenTransaction, "commit", commit)
        self.abort()
        raise SinkError("the server went away")

    monkeypatch.setattr(_OpenTransaction, "commit", fail_once)
    keep_users(root, 0.5)
    with pytest.raises(SinkError, match=r"is current in \['files'\] but the database sink failed to commit .*rerun"):
        publish(root, config(root), db)
    assert FileSink(root).current(DAY).version_id != before == db.current(DAY).version_id  # detected state
    rerun = publish(root, config(root), db)
    assert rerun["repaired"] == ["database"]
    assert_sinks_agree(root, db, rerun["version"])


# processes: concurrent publishers, SIGKILL mid-load ---------------------------------------------------------

# A publisher in its own process. argv[1]: root, db url, share of users to keep, marker (optional: touch it
# after the first batch of the database load, then sleep until killed).
CHILD = r"""
import json, sys, time
from pathlib import Path
from fusion_tasks.config import RunConfig
from fusion_tasks.publish import publish
from fusion_tasks.sinks import Database, DatabaseSink
from tests.sinks.test_sinks import CHEAP, DAY, keep_users, open_db
from fusion_tasks.storage import DataRoot

args = json.loads(sys.argv[1])
root = DataRoot(args["root"])
if args["share"] < 1:
    keep_users(root, args["share"])
db = open_db(args["url"])
if args.get("marker"):
    def hang(rows):
        Path(args["marker"]).write_text(str(rows))
        time.sleep(600)
    import fusion_tasks.publish as p
    original = p.build_sinks
    p.build_sinks = lambda names, root, database: [
        DatabaseSink(database, batch_rows=50, on_progress=hang) if s.name == "database" else s
        for s in original(names, root, database)]
out = publish(root, RunConfig(as_of_date=DAY, data_root=root.root, **CHEAP), db)
print(json.dumps(out))
"""


def start_publisher(root: DataRoot, url: str, share: float = 1.0, marker: Path | None = None) -> subprocess.Popen:
    args = {"root": str(root.root), "url": url, "share": share, "marker": str(marker) if marker else None}
    return subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(args)], cwd=PROJECT_ROOT,
                            env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for(marker: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if proc.poll() is not None:
            raise AssertionError(f"publisher exited {proc.returncode} before the marker:\n{proc.stderr.read()}")
        assert time.monotonic() < deadline, "publisher never reached the marker"
        time.sleep(0.05)


def test_concurrent_publishers_of_one_date_end_with_one_complete_version(root, db, db_url, tmp_path):
    """Two publishers of one data root take turns (the date's lock); two of separate data roots writing one
    database are serialised by the database itself. Either way the database ends with one whole version."""
    other = DataRoot(tmp_path / "other")
    for part in ("features", "fused", "staged"):
        shutil.copytree(root.root / part, other.root / part)
    procs = [start_publisher(root, db_url, 1.0), start_publisher(root, db_url, 0.5),
             start_publisher(other, db_url, 0.3)]
    outs = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr
        outs.append(json.loads(stdout.strip().splitlines()[-1]))
    current = db.current(DAY)
    assert current.version_id in {out["version"] for out in outs}
    assert db.rows_checksum(DAY) == current.checksum and stored_version_ids(db) == {current.version_id}
    assert db.published_run(DAY)["row_count"] == next(o["rows"] for o in outs if o["version"] == current.version_id)
    files = FileSink(root).current(DAY)
    assert files.checksum == table_checksum(root.read_recommendations(DAY))


def test_a_publisher_killed_mid_load_leaves_the_previous_version_readable(root, db, db_url, tmp_path):
    before = publish(root, config(root), db)["version"]
    marker = tmp_path / "loading.marker"
    proc = start_publisher(root, db_url, 0.5, marker)
    wait_for(marker, proc)
    assert int(marker.read_text()) == 50  # one batch of the new version is in the database's open transaction
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert_sinks_agree(root, db, before)  # no sink switched: the database load came before any commit
    deadline = time.monotonic() + 60
    while True:  # PostgreSQL ends the dead client's session (and its advisory lock) once it sees the socket close
        try:
            after = publish(root, config(root), db)
            break
        except SinkError:
            assert time.monotonic() < deadline
            time.sleep(0.5)
    assert_sinks_agree(root, db, after["version"])


# paired reads -----------------------------------------------------------------------------------------------


def test_a_reader_never_pairs_the_table_of_one_version_with_the_metrics_of_another(root, db):
    """Republishing in a loop, alternating two tables of D; a version's metrics carry its own table's checksum,
    so a paired read that mixed two versions would show a checksum that is not its table's."""
    publish(root, config(root), db)
    full = read_parquet(root.fused(DAY) / "recommendations.parquet")
    keep_users(root, 0.5)
    half = read_parquet(root.fused(DAY) / "recommendations.parquet")
    assert table_checksum(full) != table_checksum(half)
    stop = threading.Event()
    failures: list[BaseException] = []

    def republish() -> None:
        try:
            for n in range(10_000):
                if stop.is_set():
                    return
                write_parquet(half if n % 2 else full, root.fused(DAY) / "recommendations.parquet")
                publish(root, config(root), db)
        except BaseException as err:  # noqa: BLE001 - reported by the main thread
            failures.append(err)

    thread = threading.Thread(target=republish)
    thread.start()
    reads, versions = 0, set()
    try:
        deadline = time.monotonic() + 60
        while reads < 300 and time.monotonic() < deadline:
            version, table, metrics = root.read_published_version(DAY)
            assert metrics["published_table"]["checksum"] == table_checksum(table), (reads, version)
            run = db.published_run(DAY)
            assert run["metrics"]["published_table"]["checksum"] == run["checksum"]
            assert run["row_count"] == run["metrics"]["published_table"]["rows"]
            versions.add(version)
            reads += 1
    finally:
        stop.set()
        thread.join(timeout=120)
    assert not failures, failures
    assert reads >= 50 and len(versions) > 2  # the reads did overlap republishing


# the command line -------------------------------------------------------------------------------------------


def test_the_command_line_migrates_reports_and_queries_the_embedded_database(root, capsys):
    from fusion_tasks.__main__ import main

    db = Database.sqlite(root.serving_db())
    db.migrate(target=1)
    assert main(["--data-root", str(root.root), "db", "status"]) == 0
    assert "schema version 1 (this fusionrec needs 2)" in capsys.readouterr().out
    assert main(["--data-root", str(root.root), "db", "migrate"]) == 0
    assert "schema version 2 (applied 2)" in capsys.readouterr().out
    assert main(["--data-root", str(root.root), "db", "latest"]) == 1
    assert "nothing published" in capsys.readouterr().err
    version = publish(root, config(root), db)["version"]
    assert main(["--data-root", str(root.root), "db", "status"]) == 0
    assert f"{DAY}  version {version}" in capsys.readouterr().out
    assert main(["--data-root", str(root.root), "db", "latest", "--limit", "3"]) == 0
    out = capsys.readouterr().out.splitlines()
    table = root.read_recommendations(DAY)
    first = sorted(table["user_id"].unique())[0]
    expected = table[table["user_id"] == first].sort_values("rank")["item_id"].tolist()[:3]
    assert "FROM recommendations_latest" in out[1]
    assert [line.split()[3] for line in out[3:]] == expected


def test_a_contribution_column_new_to_the_contract_is_added_and_older_dates_read_zero(root, db, monkeypatch):
    """A modality registered after a database was made: the next publish adds its column, and the latest view
    shows it (PostgreSQL fixes a view's columns when the view is made)."""
    from fusion_tasks.sinks import database as module

    publish(root, config(root), db)
    extra = "contribution_newcomer"
    monkeypatch.setattr(module, "CONTRIBUTIONS", [*module.CONTRIBUTIONS, extra])
    with db.transaction(write=True) as conn:
        assert db.sync_contract(conn) == [extra]
        assert db.sync_contract(conn) == []
    with db.reading() as conn:
        cursor = db.execute(conn, f"SELECT {extra} FROM recommendations_latest")
        values = {row[0] for row in cursor.fetchall()}
    assert values == {0}


def test_first_migrations_racing_on_an_empty_database_all_succeed(db_url):
    """Publishers that start together on an empty database each migrate it: the migrations and the columns
    added after the first schema are applied once, and none of the racers fails."""
    databases = [open_db(db_url) for _ in range(4)]
    start, errors = threading.Barrier(len(databases)), []

    def migrate(database: Database) -> None:
        start.wait()
        try:
            database.migrate()
        except Exception as err:  # noqa: BLE001 - reported by the assertion below
            errors.append(err)

    threads = [threading.Thread(target=migrate, args=(database,)) for database in databases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    try:
        assert errors == []
        with databases[0].transaction(write=True) as conn:
            assert databases[0].sync_contract(conn) == []
        assert databases[0].schema_version() == SCHEMA_VERSION
    finally:
        for database in databases:
            database.close()


def test_a_migration_in_progress_is_never_seen_half_done(db_url, monkeypatch):
    """A publisher that reads the schema while another migrates an empty database sees no schema or all of it,
    never the first migration alone (which it would refuse as an older schema)."""
    from fusion_tasks.sinks import database as database_module

    description, statements = database_module.MIGRATIONS[SCHEMA_VERSION]

    def slow_statements(types):  # called inside the migrating transaction, after the earlier migrations
        time.sleep(1.5)
        return statements(types)

    monkeypatch.setitem(database_module.MIGRATIONS, SCHEMA_VERSION, (description, slow_statements))
    migrator, reader = open_db(db_url), open_db(db_url)
    seen: set[int] = set()
    thread = threading.Thread(target=migrator.migrate)
    try:
        thread.start()
        while thread.is_alive():
            seen.add(reader.schema_version())
            time.sleep(0.05)
        thread.join()
        seen.add(reader.schema_version())
        assert seen <= {0, SCHEMA_VERSION} and SCHEMA_VERSION in seen, seen
    finally:
        migrator.close()
        reader.close()
