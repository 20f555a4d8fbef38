"""The registry of publish sinks. A new sink is one module ``fusion_tasks/sinks/<name>.py`` with one ``Sink``
subclass whose ``name`` is ``<name>`` (see ``fusion_tasks.catalogue``).

``files`` (the data root's published folders, the source of truth) and ``database`` (SQL tables an
application reads: SQLite embedded in the data root, or PostgreSQL) are built in.
"""

from __future__ import annotations

from fusion_tasks import catalogue
from fusion_tasks.sinks import database, files
from fusion_tasks.sinks.base import CurrentVersion, PreparedLoad, Publication, Sink, SinkError, table_checksum
from fusion_tasks.sinks.database import Database, DatabaseSink, SchemaVersionError
from fusion_tasks.sinks.files import FileSink

REGISTRY: dict[str, type[Sink]] = catalogue.load("sinks", Sink)  # the file sink first: it commits first

__all__ = ["REGISTRY", "CurrentVersion", "Database", "DatabaseSink", "FileSink", "PreparedLoad", "Publication",
           "SchemaVersionError", "Sink", "SinkError", "database", "files", "table_checksum"]
