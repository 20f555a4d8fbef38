"""Where every dataset lives, and how it is written.

This is the only module that knows the layout of the data root::

    landing/<modality>/date=YYYY-MM-DD/*.csv|*.parquet   what upstream systems drop
    landing/_<importer>.json                              what a generator or importer wrote there
    staged/<modality>/ds=D/data.parquet, manifest.json    validated history as of D
    staged/_cache/<modality>/index.json, *.parquet        each landing file's rows, validated once
    quarantine/<modality>/ds=D/rows.parquet               rejected rows, with a reason
    features/ds=D/users.parquet, items.parquet            the id vocabulary of D
    features/ds=D/relevance.parquet, manifest.json        each evaluation window's relevant pairs
    models/<model>/ds=D/origin=<name>/                    one fitted model: params.json, state.npz
    models/<model>/ds=D/manifest.json                     its tuning and fits
    fused/ds=D/pool_origin=<name>.parquet, pools.json     candidate pools
    fused/ds=D/<method>.json                              a fitted fusion method
    fused/ds=D/metrics.json, gate.json                    the holdout report and the quality gate
    fused/ds=D/recommendations.parquet                    the fused table, before publishing
    published/recommendations/ds=D -> .versions/...       the current version (atomic symlink)
    published/metrics/ds=D -> .versions/...               (both links name one version id)
    serving/fusionrec.sqlite                              the embedded database sink
    exports/ds=D/recommendations.csv                      what the example consumer DAG exports

Every path is a ``DataRoot`` method, except the files of a folder that its writer fills before the
folder is in place (a model folder, a published version) or that one module manages (the landing
cache): those are named by the ``*_FILE`` constants below.

Writes go to a temporary name first and are renamed into place, so a reader never sees half a
file. Publishing switches a symlink, so a reader sees the old version or the new one, never a mix.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

PUBLISHED_KINDS = ("recommendations", "metrics")
RECOMMENDATIONS_FILE = "recommendations.parquet"  # in a published recommendations version
METRICS_FILE = "metrics.json"  # in a published metrics version
MODEL_PARAMS_FILE = "params.json"  # in a model folder
MODEL_STATE_FILE = "state.npz"  # in a model folder
CACHE_INDEX_FILE = "index.json"  # in a modality's landing cache
T = TypeVar("T")


def ds(day: dt.date) -> str:
    """The partition name of a date: ``YYYY-MM-DD``."""
    return day.isoformat()


def write_json(path: Path, payload: Any) -> Path:
    """Write JSON atomically (temp file + rename); keys sorted so reruns are byte-identical."""
    text = json.dumps(payload, indent=2, sort_keys=True, default=_json_default) + "\n"
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return path


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


def write_parquet(frame: pd.DataFrame, path: Path) -> Path:
    """Write a frame atomically as one Parquet file (no index)."""
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)
    return path


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary sibling of ``path`` to write into; renamed onto ``path`` when the block succeeds.

    When the block raises (a full disk, a killed serialiser), the temporary file is removed and
    ``path`` keeps its previous content (or stays absent): nothing half-written is left behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def replace_folder(folder: Path, write: Callable[[Path], None]) -> Path:
    """Build a folder atomically: ``write(tmp)`` fills a temporary sibling, whose files are synced to
    disk before it replaces ``folder``; the parent is synced after.

    A reader sees the old folder or the new one, complete (also after a power loss). When ``write``
    or a sync raises (e.g. ``ENOSPC``, ``EIO``), the temporary folder is removed and ``folder`` is left
    as it was. Replacing a folder takes two renames (old aside, new in); a crash between them leaves
    ``folder`` absent, never partial.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".{folder.name}.{uuid.uuid4().hex}.tmp")
    tmp.mkdir()
    try:
        write(tmp)
        _fsync_tree(tmp)
        if folder.exists():
            old = folder.with_name(f".{folder.name}.{uuid.uuid4().hex}.old")
            os.rename(folder, old)
            os.rename(tmp, folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync(folder.parent)
    return folder


def read_parquet(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    """Read a Parquet file through one open handle.

    ``pd.read_parquet(path)`` may open a path more than once (footer, then row groups); through a
    symlink that is switched in between, those opens can land in two different versions. One
    handle pins one file.
    """
    with pa.OSFile(str(path), "rb") as handle:
        return pq.read_table(handle, columns=columns).to_pandas()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _json_default(value: Any) -> Any:
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


class DataRoot:
    """Paths of every layer under one root directory."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()

    # landing ---------------------------------------------------------------------------------
    def landing(self, modality: str | None = None) -> Path:
        """The landing folder of ``modality`` (all modalities: None)."""
        base = self.root / "landing"
        return base / modality if modality else base

    def landing_summary(self, importer: str) -> Path:
        """What ``importer`` (``synthetic``, ``ciao_import``) says it wrote into the landing folder."""
        return self.landing() / f"_{importer}.json"

    def landing_day(self, modality: str, day: dt.date) -> Path:
        return self.landing(modality) / f"date={ds(day)}"

    def landing_files(self, modality: str) -> list[tuple[dt.date, Path]]:
        """Every landing file of a modality with the date of its partition, sorted by (date, name).

        Raises ``ValueError`` naming the folder when a partition name is not ``date=YYYY-MM-DD``.
        """
        base = self.landing(modality)
        if not base.is_dir():
            return []
        found: list[tuple[dt.date, Path]] = []
        for part in sorted(base.iterdir()):
            if part.name.startswith("."):
                continue
            if not part.is_dir() or not part.name.startswith("date="):
                raise ValueError(f"{part}: landing partitions must be folders named date=YYYY-MM-DD")
            try:
                day = dt.date.fromisoformat(part.name.removeprefix("date="))
            except ValueError as err:
                raise ValueError(f"{part}: not a date partition ({err})") from None
            for file in sorted(part.iterdir()):
                if file.suffix in (".csv", ".parquet") and not file.name.startswith("."):
                    found.append((day, file))
        return found

    # staged, quarantine ----------------------------------------------------------------------
    def staged(self, modality: str, day: dt.date) -> Path:
        return self.root / "staged" / modality / f"ds={ds(day)}" / "data.parquet"

    def staged_manifest(self, modality: str, day: dt.date) -> Path:
        return self.staged(modality, day).with_name("manifest.json")

    def staged_dates(self, modality: str) -> list[dt.date]:
        return _partition_dates(self.root / "staged" / modality)

    def landing_cache(self, modality: str | None = None) -> Path:
        """The per-file cache of validated landing rows of ``modality`` (all modalities: None)."""
        base = self.root / "staged" / "_cache"
        return base / modality if modality else base

    def quarantine(self, modality: str, day: dt.date) -> Path:
        return self.root / "quarantine" / modality / f"ds={ds(day)}" / "rows.parquet"

    # features, models, fused -----------------------------------------------------------------
    def features(self, day: dt.date) -> Path:
        return self.root / "features" / f"ds={ds(day)}"

    def features_users(self, day: dt.date) -> Path:
        """The user ids of D's vocabulary, in index order."""
        return self.features(day) / "users.parquet"

    def features_items(self, day: dt.date) -> Path:
        """The item ids of D's vocabulary, in index order (D's catalogue)."""
        return self.features(day) / "items.parquet"

    def features_relevance(self, day: dt.date) -> Path:
        """The relevant (user, item) pairs of every evaluation window of D."""
        return self.features(day) / "relevance.parquet"

    def features_manifest(self, day: dt.date) -> Path:
        return self.features(day) / "manifest.json"

    def origin_features(self, day: dt.date, origin: str) -> Path:
        """What every modality built for one origin of D (``fusion_tasks.training_data.save_features``)."""
        return self.features(day) / f"origin={origin}"

    def model_dir(self, model: str, day: dt.date, origin: str) -> Path:
        return self.root / "models" / model / f"ds={ds(day)}" / f"origin={origin}"

    def model_manifest(self, model: str, day: dt.date) -> Path:
        """The tuning and fits of ``model`` for D, beside its ``origin=`` folders."""
        return self.root / "models" / model / f"ds={ds(day)}" / "manifest.json"

    def fused(self, day: dt.date) -> Path:
        return self.root / "fused" / f"ds={ds(day)}"

    def fused_pool(self, day: dt.date, origin: str) -> Path:
        """The candidate pool of one origin."""
        return self.fused(day) / f"pool_origin={origin}.parquet"

    def fused_pools(self, day: dt.date) -> Path:
        """The pools' manifest: models, rows and users per origin."""
        return self.fused(day) / "pools.json"

    def fused_method(self, day: dt.date, method: str) -> Path:
        """A fitted fusion method: its parameters and cross-validated NDCG."""
        return self.fused(day) / f"{method}.json"

    def fused_metrics(self, day: dt.date) -> Path:
        """The holdout report (``fusion_tasks.metrics_schema.EVALUATION_SCHEMA``), before publishing."""
        return self.fused(day) / "metrics.json"

    def fused_gate(self, day: dt.date) -> Path:
        """The quality gate's decision."""
        return self.fused(day) / "gate.json"

    def fused_recommendations(self, day: dt.date) -> Path:
        """The fused top-K table, before publishing."""
        return self.fused(day) / "recommendations.parquet"

    # published -------------------------------------------------------------------------------
    def published_dir(self, kind: str) -> Path:
        """The folder of every date's link (``ds=D``) of ``kind``."""
        _check_kind(kind)
        return self.root / "published" / kind

    def published(self, kind: str, day: dt.date) -> Path:
        """The path readers use: a symlink to the current version of ``kind`` for ``day``."""
        return self.published_dir(kind) / f"ds={ds(day)}"

    def published_versions(self, kind: str, day: dt.date) -> Path:
        return self.published_dir(kind) / ".versions" / f"ds={ds(day)}"

    def published_dates(self, kind: str = "metrics") -> list[dt.date]:
        """Dates with a current published version, sorted."""
        return [day for day in _partition_dates(self.published_dir(kind)) if self.published(kind, day).exists()]

    def recommendations_path(self, day: dt.date) -> Path:
        return self.published("recommendations", day) / RECOMMENDATIONS_FILE

    def metrics_path(self, day: dt.date) -> Path:
        return self.published("metrics", day) / METRICS_FILE

    def read_recommendations(self, day: dt.date) -> pd.DataFrame:
        return read_published(self, "recommendations", day, lambda f: read_parquet(f / RECOMMENDATIONS_FILE))

    def read_published_metrics(self, day: dt.date) -> dict[str, Any]:
        """The published metrics of ``day`` as written; ``fusion_tasks.metrics_schema.read_published_metrics``
        also checks them against their schema."""
        return read_published(self, "metrics", day, lambda f: read_json(f / METRICS_FILE))

    def read_published_version(self, day: dt.date, attempts: int = 50) -> tuple[str, pd.DataFrame, dict[str, Any]]:
        """(version id, recommendations, metrics) of the current version of ``day``, both of one version.

        Both links are resolved and their versions compared; a read caught between a publisher's two
        swaps (or its deletion of the old version) starts again. Raises ``FileNotFoundError`` when the
        date is not published.
        """
        for attempt in range(attempts):
            try:
                folders = {kind: self.published(kind, day).resolve(strict=True) for kind in PUBLISHED_KINDS}
                if folders["recommendations"].name == folders["metrics"].name:
                    table = read_parquet(folders["recommendations"] / RECOMMENDATIONS_FILE)
                    metrics = read_json(folders["metrics"] / METRICS_FILE)
                    if all(self.published(k, day).resolve() == f for k, f in folders.items()):
                        return version_id_of(folders["metrics"]), table, metrics
            except FileNotFoundError:
                if attempt == attempts - 1 or not self.published("metrics", day).is_symlink():
                    raise
            time.sleep(0.01)
        raise RuntimeError(f"the published version of {ds(day)} kept changing while it was read")

    def current_version_id(self, day: dt.date) -> str | None:
        """The version id the ``recommendations`` link of ``day`` points to, or None."""
        link = self.published("recommendations", day)
        try:
            return version_id_of(link.resolve(strict=True))
        except (FileNotFoundError, RuntimeError):
            return None

    def serving_db(self) -> Path:
        """The embedded database sink (SQLite) of this data root."""
        return self.root / "serving" / "fusionrec.sqlite"

    def export_path(self, day: dt.date) -> Path:
        """Where ``fusionrec_export`` writes a published date as CSV."""
        return self.root / "exports" / f"ds={ds(day)}" / "recommendations.csv"

    def latest_published_before(self, day: dt.date) -> dt.date | None:
        earlier = [d for d in self.published_dates("metrics") if d < day]
        return earlier[-1] if earlier else None

    @contextlib.contextmanager
    def publish_lock(self, day: dt.date) -> Iterator[None]:
        """An exclusive lock per date; the kernel releases it if the holder dies."""
        lock_path = self.root / "published" / ".locks" / f"ds={ds(day)}.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _check_kind(kind: str) -> None:
    if kind not in PUBLISHED_KINDS:
        raise ValueError(f"unknown published kind {kind!r}; expected one of {PUBLISHED_KINDS}")


def _partition_dates(base: Path) -> list[dt.date]:
    if not base.is_dir():
        return []
    days = []
    for part in base.iterdir():
        if part.name.startswith("ds="):
            with contextlib.suppress(ValueError):
                days.append(dt.date.fromisoformat(part.name.removeprefix("ds=")))
    return sorted(days)


# Atomic publishing ----------------------------------------------------------------------------
MANIFEST = "_MANIFEST.json"


def publish_version(root: DataRoot, day: dt.date, writers: dict[str, Any], *,
                    manifest_extra: dict[str, Any] | None = None,
                    attempt: str | None = None) -> dict[str, str]:
    """Publish one new version of every kind in ``writers`` for ``day``: ``stage_version`` then
    ``switch_version``, under the date's lock, so two publishers of one date take turns and the last one
    wins with one complete version. A publisher killed at any step leaves the previous version current;
    its staging folders are removed by the next publish. Readers use ``read_published`` for a consistent
    snapshot of one kind, ``DataRoot.read_published_version`` for the table and metrics of one version.

    Returns the version folder of each kind.
    """
    with root.publish_lock(day):
        staged = stage_version(root, day, writers, manifest_extra=manifest_extra, attempt=attempt)
        switch_version(root, day, staged)
    return {kind: str(folder) for kind, folder in staged.items()}


def stage_version(root: DataRoot, day: dt.date, writers: dict[str, Any], *,
                  manifest_extra: dict[str, Any] | None = None, attempt: str | None = None) -> dict[str, Path]:
    """Write a new version of every kind without making it visible; the caller holds the date's lock.

    ``writers[kind]`` is a callable ``(folder: Path) -> None`` that writes the files of that kind into an
    empty folder ``.versions/ds=D/v-<attempt>/``; then the manifest (``manifest_extra``, file sizes and
    sha256) is written and the folder and its files synced. Every kind of one call shares the attempt id:
    it is the version id. Returns the staged folder of each kind.
    """
    attempt = attempt or new_version_id()
    staged: dict[str, Path] = {}
    for kind, write in writers.items():
        staging = root.published_versions(kind, day) / f"v-{attempt}"
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
        write(staging)
        entries = {
            path.name: {"bytes": path.stat().st_size, "sha256": file_sha256(path)}
            for path in sorted(staging.iterdir())
        }
        write_json(staging / MANIFEST, {"ds": ds(day), "attempt": attempt, "files": entries,
                                        **(manifest_extra or {})})
        _fsync_tree(staging)
        staged[kind] = staging
    return staged


def switch_version(root: DataRoot, day: dt.date, staged: dict[str, Path]) -> None:
    """Make staged versions current: swap every kind's ``ds=D`` link (one ``rename`` each, back to back, so
    a reader of both kinds sees them disagree only between two renames and ``read_published_version``
    retries then), then delete every other version of the date. The caller holds the date's lock."""
    for kind, staging in staged.items():
        _swap_symlink(root.published(kind, day), staging)
    for kind, staging in staged.items():
        versions = root.published_versions(kind, day)
        for other in list(versions.iterdir()):  # listed first: the loop renames inside the folder
            if other != staging:
                # rename first: a reader of the old folder then finds it gone at once, never half-deleted
                trash = versions / f".trash-{uuid.uuid4().hex}"
                os.rename(other, trash)
                shutil.rmtree(trash, ignore_errors=True)
        # temporary links of a swap that was killed before its rename
        for stale in root.published(kind, day).parent.glob(f".{root.published(kind, day).name}.*.lnk"):
            stale.unlink(missing_ok=True)


def discard_version(staged: dict[str, Path]) -> None:
    """Remove staged folders that will not be switched in."""
    for staging in staged.values():
        shutil.rmtree(staging, ignore_errors=True)


def new_version_id() -> str:
    return uuid.uuid4().hex[:12]


def version_id_of(folder: Path) -> str:
    """The version id of a version folder (``v-<id>``)."""
    return Path(folder).name.removeprefix("v-")


def read_published(root: DataRoot, kind: str, day: dt.date, read: Callable[[Path], T], attempts: int = 5) -> T:
    """A snapshot read of the current version: resolve the ``ds=D`` link once and read every file
    from that folder. A publisher removes the previous version right after its swap, so a reader
    caught in between gets ``FileNotFoundError`` from its next open; it then starts again on the
    new version. Either way it never combines files of two versions.
    """
    link = root.published(kind, day)
    for attempt in range(attempts):
        folder = None
        try:
            # strict: the target may vanish between reading the link and checking it
            folder = link.resolve(strict=True)
            return read(folder)
        except FileNotFoundError:
            replaced = folder is None or not folder.exists()
            if attempt == attempts - 1 or not replaced or not link.is_symlink():
                raise
    raise AssertionError("unreachable")


def verify_version(folder: Path) -> bool:
    """True when a published folder has a manifest and every file matches its size and hash.

    A link is resolved once. Raises ``FileNotFoundError`` when the folder disappears while being
    checked (it was replaced by a newer version): use ``read_published`` to check the current one.
    """
    folder = Path(folder).resolve()
    try:
        manifest = read_json(folder / MANIFEST)
        for name, entry in manifest["files"].items():
            path = folder / name
            if path.stat().st_size != entry["bytes"] or file_sha256(path) != entry["sha256"]:
                return False
    except FileNotFoundError:
        if not folder.exists():
            raise
        return False
    return True


def _swap_symlink(link: Path, target: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.with_name(f".{link.name}.{uuid.uuid4().hex}.lnk")
    os.symlink(os.path.relpath(target, link.parent), tmp)
    os.replace(tmp, link)  # rename(2) is atomic: readers see the old or the new target
    _fsync(link.parent)


def _fsync_tree(folder: Path) -> None:
    """Flush every file and folder under ``folder`` to disk, the deepest first."""
    for parent, _folders, files in os.walk(folder, topdown=False):
        for name in files:
            _fsync(Path(parent) / name)
        _fsync(Path(parent))


def _fsync(path: Path) -> None:
    """Flush a file or a folder (its entries) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
