"""The database sink: published recommendations as SQL tables, for applications that read them.

Tables (created and migrated by ``migrate``; ``SCHEMA_VERSION`` is the version this code needs)::

    recommendations   ds, user_id, item_id, rank, score, contribution_<group>..., method, version_id
                      primary key (ds, user_id, rank)
    published_runs    ds (primary key), version_id, method, row_count, checksum, published_at,
                      gate_decision, config (JSON), metrics (JSON)
    recommendations_latest   a view: the rows of the newest published ds
    fusionrec_schema  the applied migrations

The contribution columns follow the output contract: a modality registered after the tables were made gets its
``contribution_<modality>`` column (0 for the dates published before it) at the next ``migrate`` or publish.

A date is loaded and switched in **one transaction**: its old rows are deleted, the new ones inserted and its
``published_runs`` row replaced, then one commit. Readers (each statement in PostgreSQL, each transaction in
SQLite) see the old version or the new one, never a mix, never a partial date; a publisher killed mid-load
leaves nothing behind (its transaction is rolled back). Publishers of one date are serialised by the
database: ``BEGIN IMMEDIATE`` in SQLite, a transaction-scoped advisory lock per date in PostgreSQL.

Two dialects: SQLite (``Database.sqlite(path)``, the embedded default in the data root) and PostgreSQL
(``Database.postgres(url)``, or any DB-API connection factory such as an Airflow hook's ``get_conn``).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import datetime as dt
import hashlib
import io
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from fusion_tasks.contract import CONTRIBUTIONS
from fusion_tasks.sinks.base import CurrentVersion, PreparedLoad, Publication, Sink, SinkError, table_checksum

RECOMMENDATION_COLUMNS = ("ds", "user_id", "item_id", "rank", "score", *CONTRIBUTIONS, "method", "version_id")
RUN_COLUMNS = ("ds", "version_id", "method", "row_count", "checksum", "published_at", "gate_decision", "config",
               "metrics")
DIALECTS = ("sqlite", "postgresql")
TYPES = {
    "sqlite": {"date": "TEXT", "float": "REAL", "timestamp": "TEXT", "json": "TEXT"},
    "postgresql": {"date": "DATE", "float": "DOUBLE PRECISION", "timestamp": "TIMESTAMPTZ", "json": "TEXT"},
}
MIGRATE_HINT = "run `python -m fusion_tasks db migrate` (or `make db-migrate`) against it"


# the contribution columns of the first schema; later ones are added by ``Database.sync_contract``
FIRST_CONTRIBUTIONS = tuple(f"contribution_{g}" for g in ("behavior", "content", "social", "cross", "context"))
LATEST_VIEW = ("CREATE VIEW recommendations_latest AS SELECT * FROM recommendations "
               "WHERE ds = (SELECT MAX(ds) FROM published_runs)")


def _migration_1(types: dict[str, str]) -> list[str]:
    contributions = ",\n".join(f"    {c} {types['float']} NOT NULL" for c in FIRST_CONTRIBUTIONS)
    return [
        f"""CREATE TABLE recommendations (
    ds {types['date']} NOT NULL,
    user_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    rank INTEGER NOT NULL,
    score {types['float']} NOT NULL,
{contributions},
    method TEXT NOT NULL,
    version_id TEXT NOT NULL,
    PRIMARY KEY (ds, user_id, rank)
)""",
        f"""CREATE TABLE published_runs (
    ds {types['date']} PRIMARY KEY,
    version_id TEXT NOT NULL,
    method TEXT NOT NULL,
    row_count INTEGER NOT NULL,
    checksum TEXT NOT NULL,
    published_at {types['timestamp']} NOT NULL,
    gate_decision TEXT NOT NULL,
    config {types['json']} NOT NULL,
    metrics {types['json']} NOT NULL
)""",
    ]


def _migration_2(types: dict[str, str]) -> list[str]:
    return [
        "CREATE INDEX recommendations_by_user ON recommendations (user_id, ds)",
        LATEST_VIEW,
    ]


# version -> (what it does, its statements); append only: a released migration never changes
MIGRATIONS: dict[int, tuple[str, Callable[[dict[str, str]], list[str]]]] = {
    1: ("tables recommendations and published_runs", _migration_1),
    2: ("index by user, view recommendations_latest", _migration_2),
}
SCHEMA_VERSION = max(MIGRATIONS)


class SchemaVersionError(SinkError):
    """The database's schema is older (or newer) than the one this code reads and writes."""


@dataclasses.dataclass
class Database:
    """A DB-API connection factory and its dialect; ``location`` names it in messages (no password)."""

    connect: Callable[[], Any]
    dialect: str
    location: str

    def __post_init__(self) -> None:
        if self.dialect not in DIALECTS:
            raise ValueError(f"unknown database dialect {self.dialect!r}; expected one of {DIALECTS}")
        self._local = threading.local()

    # construction -------------------------------------------------------------------------------
    @classmethod
    def sqlite(cls, path: str | Path) -> Database:
        path = Path(path)

        def connect() -> sqlite3.Connection:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout=60000")
            _use_wal(conn)
            return conn

        return cls(connect, "sqlite", str(path))

    @classmethod
    def postgres(cls, url: str, **connect_kwargs: Any) -> Database:
        """A PostgreSQL database by URL (``postgresql://user:password@host:port/dbname``; psycopg2)."""
        from urllib.parse import urlsplit

        import psycopg2

        parts = urlsplit(url)
        location = f"postgresql://{parts.hostname}:{parts.port or 5432}{parts.path}"
        return cls(lambda: psycopg2.connect(url, **connect_kwargs), "postgresql", location)

    # connections --------------------------------------------------------------------------------
    def _open(self) -> Any:
        try:
            return self.connect()
        except Exception as err:  # noqa: BLE001 - every driver has its own error classes
            raise SinkError(f"cannot connect to the database sink {self.location}: "
                            f"{type(err).__name__}: {str(err).strip()}") from err

    @contextlib.contextmanager
    def transaction(self, *, write: bool) -> Iterator[Any]:
        """A connection inside one transaction: committed when the block succeeds, rolled back otherwise.

        SQLite: ``BEGIN IMMEDIATE`` for writes (one writer at a time; readers go on from the WAL).
        """
        conn = self._open()
        try:
            if self.dialect == "sqlite":
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            yield conn
            conn.commit()
        except BaseException:
            with contextlib.suppress(Exception):
                conn.rollback()
            raise
        finally:
            with contextlib.suppress(Exception):
                conn.close()

    @contextlib.contextmanager
    def reading(self) -> Iterator[Any]:
        """A connection for reads, kept per thread (an API server's worker threads reuse theirs)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._open()
            if self.dialect == "postgresql":
                conn.autocommit = True  # one statement, one snapshot; no transaction left idle
            self._local.conn = conn
        try:
            yield conn
        except Exception as err:  # a broken connection is dropped; the next read opens a new one
            with contextlib.suppress(Exception):
                conn.close()
            self._local.conn = None
            if isinstance(err, (SinkError, AssertionError)):
                raise
            raise SinkError(f"reading the database sink {self.location} failed: {type(err).__name__}: "
                            f"{str(err).strip()}") from err

    def sql(self, text: str) -> str:
        """Statements are written with ``?`` placeholders; psycopg takes ``%s``."""
        return text if self.dialect == "sqlite" else text.replace("?", "%s")

    def execute(self, conn: Any, text: str, params: tuple = ()) -> Any:
        cursor = conn.cursor()
        cursor.execute(self.sql(text), params)
        return cursor

    # schema -------------------------------------------------------------------------------------
    def schema_version(self, conn: Any | None = None) -> int:
        """The newest applied migration; 0 for an empty database."""
        if conn is None:
            with self.reading() as reader:
                return self.schema_version(reader)
        if self.dialect == "sqlite":
            exists = self.execute(conn, "SELECT 1 FROM sqlite_master WHERE name = 'fusionrec_schema'").fetchone()
        else:
            exists = self.execute(conn, "SELECT to_regclass('fusionrec_schema')").fetchone()[0]
        if not exists:
            return 0
        row = self.execute(conn, "SELECT MAX(version) FROM fusionrec_schema").fetchone()
        return int(row[0] or 0)

    def migrate(self, target: int = SCHEMA_VERSION) -> list[int]:
        """Apply the migrations after the current version up to ``target``, all in one transaction (under the
        schema lock in PostgreSQL), so that a concurrent publisher sees the schema before or after them,
        never half-migrated. Returns the versions applied."""
        applied: list[int] = []
        if target < min(MIGRATIONS):
            return applied
        with self.transaction(write=True) as conn:
            if self.dialect == "postgresql":
                self.execute(conn, "SELECT pg_advisory_xact_lock(?)", (_lock_key("schema"),))
            self.execute(conn, "CREATE TABLE IF NOT EXISTS fusionrec_schema (version INTEGER PRIMARY KEY, "
                               "description TEXT NOT NULL, applied_at TEXT NOT NULL)")
            current = self.schema_version(conn)
            for version in sorted(MIGRATIONS):
                if version > target:
                    break
                if current >= version:
                    continue
                description, statements = MIGRATIONS[version]
                for statement in statements(TYPES[self.dialect]):
                    self.execute(conn, statement)
                self.execute(conn, "INSERT INTO fusionrec_schema (version, description, applied_at) VALUES (?, ?, ?)",
                             (version, description, dt.datetime.now(dt.UTC).isoformat()))
                applied.append(version)
            if target >= SCHEMA_VERSION:
                self.sync_contract(conn)
        return applied

    def sync_contract(self, conn: Any) -> list[str]:
        """Add the contract's contribution columns the table lacks (0 for rows already there), and rebuild
        the latest view over them (PostgreSQL fixes a view's columns when it is made). Returns those added.

        Concurrent publishers may both find a column missing: in PostgreSQL the one that adds it first holds
        the schema lock, and the other looks again once it has it (SQLite's writers are serial already)."""
        missing = self._missing_contributions(conn)
        if missing and self.dialect == "postgresql":
            self.execute(conn, "SELECT pg_advisory_xact_lock(?)", (_lock_key("schema"),))
            missing = self._missing_contributions(conn)
        for column in missing:
            self.execute(conn, f"ALTER TABLE recommendations ADD COLUMN {column} {TYPES[self.dialect]['float']} "
                               "NOT NULL DEFAULT 0")
        if missing:
            self.execute(conn, "DROP VIEW recommendations_latest")
            self.execute(conn, LATEST_VIEW)
        return missing

    def _missing_contributions(self, conn: Any) -> list[str]:
        if self.dialect == "sqlite":
            present = {row[1] for row in self.execute(conn, "PRAGMA table_info(recommendations)").fetchall()}
        else:
            present = {row[0] for row in self.execute(
                conn, "SELECT column_name FROM information_schema.columns WHERE table_name = 'recommendations' "
                      "AND table_schema = current_schema()").fetchall()}
        return [c for c in CONTRIBUTIONS if c not in present]

    def check_schema(self, conn: Any) -> None:
        version = self.schema_version(conn)
        if version != SCHEMA_VERSION:
            newer = version > SCHEMA_VERSION
            raise SchemaVersionError(
                f"the database sink {self.location} has schema version {version}, this fusionrec needs "
                f"{SCHEMA_VERSION}: " + ("it was migrated by a newer fusionrec; upgrade this one" if newer
                                          else MIGRATE_HINT))

    # reads --------------------------------------------------------------------------------------
    def current(self, day: dt.date) -> CurrentVersion | None:
        with self.reading() as conn:
            if self.schema_version(conn) == 0:
                return None
            row = self.execute(conn, "SELECT version_id, checksum FROM published_runs WHERE ds = ?",
                               (day.isoformat(),)).fetchone()
        return CurrentVersion(row[0], row[1]) if row else None

    def published_dates(self) -> list[dt.date]:
        with self.reading() as conn:
            if self.schema_version(conn) == 0:
                return []
            rows = self.execute(conn, "SELECT ds FROM published_runs ORDER BY ds").fetchall()
        return [_date(row[0]) for row in rows]

    def published_run(self, day: dt.date | None = None) -> dict[str, Any] | None:
        """The ``published_runs`` row of ``day`` (default: the newest), JSON columns decoded."""
        with self.reading() as conn:
            if day is None:
                cursor = self.execute(conn, f"SELECT {', '.join(RUN_COLUMNS)} FROM published_runs "
                                            "ORDER BY ds DESC LIMIT 1")
            else:
                cursor = self.execute(conn, f"SELECT {', '.join(RUN_COLUMNS)} FROM published_runs WHERE ds = ?",
                                      (day.isoformat(),))
            row = cursor.fetchone()
        if row is None:
            return None
        out = dict(zip(RUN_COLUMNS, row, strict=True))
        out["ds"] = _date(out["ds"])
        out["published_at"] = str(out["published_at"])
        out["config"] = json.loads(out["config"])
        out["metrics"] = json.loads(out["metrics"])
        return out

    def has_schema(self) -> bool:
        """True once the schema exists (remembered: a reader then skips the check)."""
        if not getattr(self, "_schema_seen", False):
            self._schema_seen = self.schema_version() > 0
        return self._schema_seen

    def user_recommendations(self, user_id: str, day: dt.date | None, k: int) -> tuple[dt.date, list[dict]] | None:
        """The top ``k`` rows of ``user_id`` for ``day`` (default: the newest published date), rank order,
        read in one statement (one snapshot); None when the user has no row that date."""
        if not self.has_schema():
            return None
        columns = ", ".join(f"r.{c}" for c in RECOMMENDATION_COLUMNS)
        where = "r.ds = ?" if day is not None else "r.ds = (SELECT MAX(ds) FROM published_runs)"
        params: tuple = (user_id, day.isoformat(), k) if day is not None else (user_id, k)
        with self.reading() as conn:
            rows = self.execute(conn, f"SELECT {columns} FROM recommendations r JOIN published_runs p "
                                      f"ON p.ds = r.ds AND p.version_id = r.version_id "
                                      f"WHERE r.user_id = ? AND {where} AND r.rank <= ? ORDER BY r.rank",
                                params).fetchall()
        if not rows:
            return None
        out = [dict(zip(RECOMMENDATION_COLUMNS, row, strict=True)) for row in rows]
        return _date(out[0]["ds"]), out

    def user_dates(self, user_id: str) -> list[dt.date]:
        if not self.has_schema():
            return []
        with self.reading() as conn:
            rows = self.execute(conn, "SELECT DISTINCT ds FROM recommendations WHERE user_id = ? ORDER BY ds",
                                (user_id,)).fetchall()
        return [_date(row[0]) for row in rows]

    def rows_checksum(self, day: dt.date) -> str | None:
        """``table_checksum`` of the rows stored for ``day`` (None when there are none)."""
        columns = ("user_id", "item_id", "rank", "score", *CONTRIBUTIONS)
        with self.reading() as conn:
            rows = self.execute(conn, f"SELECT {', '.join(columns)} FROM recommendations WHERE ds = ?",
                                (day.isoformat(),)).fetchall()
        if not rows:
            return None
        return table_checksum(pd.DataFrame(rows, columns=list(columns)))

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()
            self._local.conn = None


class DatabaseSink(Sink):
    """Loads a ``Publication`` into ``Database`` in one transaction (see the module's docstring).

    An empty database gets the schema first; a database at an older schema version refuses with
    ``SchemaVersionError`` saying how to migrate. ``batch_rows`` rows are sent per statement;
    ``on_progress(rows_loaded)`` is called after each batch.
    """

    name = "database"

    def __init__(self, database: Database, *, batch_rows: int = 20_000,
                 on_progress: Callable[[int], None] | None = None) -> None:
        self.database = database
        self.batch_rows = batch_rows
        self.on_progress = on_progress

    def current(self, day: dt.date) -> CurrentVersion | None:
        return self.database.current(day)

    def prepare(self, publication: Publication) -> PreparedLoad:
        db = self.database
        conn = db._open()
        try:
            if db.schema_version(conn) == 0:
                conn.rollback()
                db.migrate()
            if db.dialect == "sqlite":
                conn.execute("BEGIN IMMEDIATE")
            else:
                db.execute(conn, "SELECT pg_advisory_xact_lock(?)", (_lock_key(publication.ds.isoformat()),))
            db.check_schema(conn)
            db.sync_contract(conn)
            day = publication.ds.isoformat()
            db.execute(conn, "DELETE FROM recommendations WHERE ds = ?", (day,))
            self._insert(conn, publication)
            db.execute(conn, "DELETE FROM published_runs WHERE ds = ?", (day,))
            db.execute(conn, f"INSERT INTO published_runs ({', '.join(RUN_COLUMNS)}) VALUES "
                             f"({', '.join('?' * len(RUN_COLUMNS))})",
                       (day, publication.version_id, publication.method, publication.rows, publication.checksum,
                        publication.published_at.isoformat(), publication.gate_decision,
                        json.dumps(publication.config, sort_keys=True, default=str),
                        json.dumps(publication.metrics, sort_keys=True, default=str)))
        except BaseException as err:
            with contextlib.suppress(Exception):
                conn.rollback()
            with contextlib.suppress(Exception):
                conn.close()
            if isinstance(err, SinkError) or not isinstance(err, Exception):
                raise
            raise SinkError(f"loading {publication.ds} into the database sink {db.location} failed: "
                            f"{type(err).__name__}: {str(err).strip()}") from err
        return _OpenTransaction(conn, db.location)

    def _insert(self, conn: Any, publication: Publication) -> None:
        db = self.database
        frame = publication.table
        day = publication.ds.isoformat()
        columns = [frame[c].to_numpy() for c in ("user_id", "item_id", "rank", "score", *CONTRIBUTIONS)]
        rows = [(day, str(u), str(i), int(r), float(s), *(float(x) for x in rest), publication.method,
                 publication.version_id) for u, i, r, s, *rest in zip(*columns, strict=True)]
        cursor = conn.cursor()
        copy = getattr(cursor, "copy_expert", None)  # psycopg2: COPY is many times faster than INSERTs
        for start in range(0, len(rows), self.batch_rows):
            batch = rows[start:start + self.batch_rows]
            if copy is not None:
                buffer = io.StringIO()
                writer = csv.writer(buffer, lineterminator="\n")
                floats = slice(4, 5 + len(CONTRIBUTIONS))  # score and contributions, written exactly
                writer.writerows((*row[:4], *(repr(x) for x in row[floats]), *row[floats.stop:]) for row in batch)
                buffer.seek(0)
                copy(f"COPY recommendations ({', '.join(RECOMMENDATION_COLUMNS)}) FROM STDIN WITH (FORMAT csv)",
                     buffer)
            else:
                cursor.executemany(db.sql(f"INSERT INTO recommendations ({', '.join(RECOMMENDATION_COLUMNS)}) "
                                          f"VALUES ({', '.join('?' * len(RECOMMENDATION_COLUMNS))})"), batch)
            if self.on_progress is not None:
                self.on_progress(start + len(batch))


class _OpenTransaction(PreparedLoad):
    def __init__(self, conn: Any, location: str) -> None:
        self.conn, self.location = conn, location

    def commit(self) -> None:
        try:
            self.conn.commit()
        except Exception as err:
            raise SinkError(f"committing to the database sink {self.location} failed: "
                            f"{type(err).__name__}: {str(err).strip()}") from err
        finally:
            with contextlib.suppress(Exception):
                self.conn.close()

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.rollback()
        with contextlib.suppress(Exception):
            self.conn.close()


def _use_wal(conn: sqlite3.Connection, patience: float = 60.0) -> None:
    """Switch a SQLite file to write-ahead logging. The mode is kept in the file, so only the first openers
    switch it; their switch needs the file to themselves and answers "locked" at once, not after the busy
    timeout, when another opener holds it. Hence the retries."""
    deadline = time.monotonic() + patience
    while True:
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _lock_key(name: str) -> int:
    """A stable signed 64-bit key for PostgreSQL's advisory locks."""
    return int.from_bytes(hashlib.sha256(f"fusionrec:{name}".encode()).digest()[:8], "big", signed=True)


def _date(value: Any) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))
