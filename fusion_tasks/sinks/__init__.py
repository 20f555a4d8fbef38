"""The registry of publish sinks. A new sink is a module with a ``Sink`` subclass imported here.

``files`` (the data root's published folders, the source of truth) and ``database`` (SQL tables an
application reads: SQLite embedded in the data root, or PostgreSQL) are built in.
"""

from __future__ import annotations

from fusion_tasks.sinks import database, files
from fusion_tasks.sinks.base import CurrentVersion, PreparedLoad, Publication, Sink, SinkError, table_checksum
from fusion_tasks.sinks.database import Database, DatabaseSink, SchemaVersionError
from fusion_tasks.sinks.files import FileSink

# the file sink first: it is the source of truth, and commits first
REGISTRY: dict[str, type[Sink]] = dict(sorted(Sink.registry.items(), key=lambda item: item[0] != FileSink.name))

__all__ = ["REGISTRY", "CurrentVersion", "Database", "DatabaseSink", "FileSink", "PreparedLoad", "Publication",
           "SchemaVersionError", "Sink", "SinkError", "database", "files", "table_checksum"]
