"""The file sink: ``published/{recommendations,metrics}/ds=D`` under the data root, the source of truth.

The version folders and their manifests are ``fusion_tasks.storage``'s; this sink stages both kinds of a
``Publication`` under its version id and switches them in with two back-to-back renames.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from fusion_tasks.sinks.base import CurrentVersion, PreparedLoad, Publication, Sink
from fusion_tasks.storage import (
    MANIFEST,
    METRICS_FILE,
    RECOMMENDATIONS_FILE,
    DataRoot,
    discard_version,
    read_json,
    stage_version,
    switch_version,
    write_json,
    write_parquet,
)


class FileSink(Sink):
    """Parquet and JSON under the data root; readers go through ``DataRoot``. The caller holds the
    date's publish lock from ``prepare`` to ``commit``."""

    name = "files"

    def __init__(self, root: DataRoot) -> None:
        self.root = root

    def current(self, day: dt.date) -> CurrentVersion | None:
        version = self.root.current_version_id(day)
        if version is None:
            return None
        try:
            manifest = read_json(self.root.published("recommendations", day) / MANIFEST)
        except (OSError, ValueError):
            return None
        return CurrentVersion(version, str(manifest.get("checksum", "")))

    def prepare(self, publication: Publication) -> PreparedLoad:
        def recommendations(folder: Path) -> None:
            write_parquet(publication.table, folder / RECOMMENDATIONS_FILE)

        def metrics(folder: Path) -> None:
            write_json(folder / METRICS_FILE, publication.metrics)

        staged = stage_version(self.root, publication.ds, {"recommendations": recommendations, "metrics": metrics},
                               attempt=publication.version_id,
                               manifest_extra={"rows": publication.rows, "method": publication.method,
                                               "checksum": publication.checksum})
        return _StagedFiles(self.root, publication.ds, staged)


class _StagedFiles(PreparedLoad):
    def __init__(self, root: DataRoot, day: dt.date, staged: dict[str, Path]) -> None:
        self.root, self.day, self.staged = root, day, staged

    def commit(self) -> None:
        switch_version(self.root, self.day, self.staged)

    def abort(self) -> None:
        discard_version(self.staged)
