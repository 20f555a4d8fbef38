"""What a modality is, and the one extractor they all share."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import fcntl
import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fusion_tasks.config import RunConfig
from fusion_tasks.schemas import DataQualityError, Schema, read_landing_file, validate_rows
from fusion_tasks.storage import DataRoot, read_json, write_json, write_parquet


@dataclasses.dataclass(frozen=True)
class Vocabulary:
    """The shared id space of one as-of date: row ``i`` of every user matrix is ``users[i]``."""

    users: np.ndarray
    items: np.ndarray

    def user_index(self, ids: pd.Series) -> np.ndarray:
        return _lookup(self.users, ids)

    def item_index(self, ids: pd.Series) -> np.ndarray:
        return _lookup(self.items, ids)


def _lookup(sorted_ids: np.ndarray, ids: pd.Series) -> np.ndarray:
    values = ids.astype(str).to_numpy()
    pos = np.searchsorted(sorted_ids, values)
    pos = np.clip(pos, 0, max(len(sorted_ids) - 1, 0))
    found = sorted_ids[pos] == values if len(sorted_ids) else np.zeros(len(values), bool)
    return np.where(found, pos, -1)


@dataclasses.dataclass(frozen=True)
class Modality:
    """One kind of data.

    ``time_column`` is the column that says since when a row is true (an event's timestamp, a
    version's ``valid_from``); a run for date D keeps rows with ``time_column`` on or before D.
    ``daily`` modalities must deliver a landing partition for every date (it may be empty).
    ``id_columns`` maps columns to the vocabulary they feed (``user`` or ``item``).
    ``build_features(staged, vocab, origin, config)`` turns the staged history into arrays
    aligned with the vocabulary, using only rows true by ``origin``.
    ``profile_column`` is the categorical column whose distribution is watched for drift.
    """

    name: str
    schema: Schema
    time_column: str
    daily: bool
    id_columns: dict[str, str]
    build_features: Callable[[pd.DataFrame, Vocabulary, dt.date, RunConfig], dict[str, Any]]
    profile_column: str

    def extract(self, root: DataRoot, config: RunConfig) -> dict[str, Any]:
        """Validate every landing file up to the as-of date and stage the history as of that date.

        Writes ``staged/<name>/ds=D/data.parquet``, the rejected rows to
        ``quarantine/<name>/ds=D/rows.parquet`` and a manifest with counts and drift against
        the previous staged date. Raises ``FileNotFoundError`` when a required landing file is
        missing, ``SchemaDriftError`` when a file's columns are wrong, and ``DataQualityError``
        when the rejected share is above ``config.max_quarantine_share``.
        """
        day = config.as_of_date
        files = [(d, path) for d, path in root.landing_files(self.name) if d <= day]
        if not files:
            raise FileNotFoundError(f"{root.landing(self.name)}: no {self.name} landing files on or before {day}")
        if self.daily and files[-1][0] != day:
            raise FileNotFoundError(
                f"{root.landing_day(self.name, day)}: the {self.name} landing partition for {day} is missing "
                "(an empty file is a valid empty day; a missing one means the upstream delivery did not arrive)"
            )
        valid, rejected, per_file = _read_landing(root, self.name, self.schema, files)
        total = len(valid) + len(rejected)

        cutoff = end_of_day(day)
        times = valid[self.time_column]
        if getattr(times.dt, "tz", None) is None:
            times = times.dt.tz_localize("UTC")
        future = times >= cutoff
        staged = valid.loc[~future].sort_values(
            [self.time_column, *self.id_columns]).reset_index(drop=True)

        reasons = rejected["reject_reason"].value_counts().sort_index().to_dict() if len(rejected) else {}
        share = len(rejected) / total if total else 0.0
        write_parquet(rejected, root.quarantine(self.name, day))
        if share > config.max_quarantine_share:
            raise DataQualityError(
                f"{self.name} as of {day}: {len(rejected)} of {total} rows ({share:.1%}) rejected, above the "
                f"limit of {config.max_quarantine_share:.1%}; reasons {reasons}; files with rejects "
                f"{[f['file'] for f in per_file if f['rejected']]}; rows kept in {root.quarantine(self.name, day)}"
            )
        write_parquet(staged, root.staged(self.name, day))
        profile = self._profile(staged, day)
        manifest = {
            "modality": self.name,
            "schema_version": self.schema.version,
            "as_of_date": day.isoformat(),
            "files_read": len(files),
            "rows_read": total,
            "rows_staged": len(staged),
            "rows_after_as_of": int(future.sum()),
            "rows_quarantined": len(rejected),
            "quarantine_reasons": reasons,
            "quarantine_share": share,
            "profile": profile,
            "drift": self._drift(root, day, profile),
            "staged_path": str(root.staged(self.name, day)),
            "quarantine_path": str(root.quarantine(self.name, day)),
        }
        write_json(root.staged_manifest(self.name, day), manifest)
        return manifest

    def _profile(self, staged: pd.DataFrame, day: dt.date) -> dict[str, Any]:
        times = staged[self.time_column]
        if getattr(times.dt, "tz", None) is None:
            times = times.dt.tz_localize("UTC")
        on_day = (times >= end_of_day(day - dt.timedelta(days=1))).sum()
        shares = staged[self.profile_column].fillna("<null>").value_counts(normalize=True)
        return {"rows": len(staged), "rows_on_day": int(on_day),
                "distribution": {str(k): round(float(v), 6) for k, v in shares.sort_index().items()}}

    def _drift(self, root: DataRoot, day: dt.date, profile: dict[str, Any]) -> dict[str, Any] | None:
        earlier = [d for d in root.staged_dates(self.name) if d < day
                   and root.staged_manifest(self.name, d).is_file()]
        if not earlier:
            return None
        before = read_json(root.staged_manifest(self.name, earlier[-1]))["profile"]
        keys = set(before["distribution"]) | set(profile["distribution"])
        tvd = 0.5 * sum(abs(before["distribution"].get(k, 0.0) - profile["distribution"].get(k, 0.0)) for k in keys)
        return {
            "previous_date": earlier[-1].isoformat(),
            "rows_change": profile["rows"] - before["rows"],
            "rows_on_day_previous": before["rows_on_day"],
            "rows_on_day": profile["rows_on_day"],
            f"{self.profile_column}_total_variation": round(tvd, 6),
        }


def end_of_day(day: dt.date) -> pd.Timestamp:
    """The first instant after ``day`` (UTC): rows strictly before it are true as of ``day``."""
    return pd.Timestamp(day + dt.timedelta(days=1), tz="UTC")


# The per-file landing cache ------------------------------------------------------------------------
# Reading and validating every landing file again for every date dominates extraction when there are
# thousands of small daily files. Each file is therefore validated once, exactly as before (one
# ``read_landing_file`` + ``validate_rows`` per file), and its valid and rejected rows are kept under
# ``staged/_cache/<modality>/``, keyed by the file's path, size, inode, mtime and ctime and the schema
# (name, version, columns): a file rewritten in place or replaced by a rename, even with the same size
# and a preserved mtime, is read again. A run for date D reassembles the rows of its files in (date,
# name, row) order, so the staged history is identical to reading the files one by one, whatever dates
# ran before. Bump CACHE_VERSION whenever ``read_landing_file`` or ``validate_rows`` change what they
# return for the same file.
CACHE_VERSION = 2
_FILE, _ROW = "_cache_file", "_cache_row"


def _read_landing(root: DataRoot, name: str, schema: Schema,
                  files: list[tuple[dt.date, Path]]) -> tuple[pd.DataFrame, pd.DataFrame, list[dict[str, Any]]]:
    """The valid rows (with ``landed``), the rejected rows (with ``source_file``) and per-file counts
    of ``files``, in file order; the same frames as validating each file in turn."""
    folder = root.landing_cache(name)
    signature = {"cache_version": CACHE_VERSION, "schema": [schema.name, schema.version, schema.names]}
    wanted = []
    for landed, path in files:
        stat = path.stat()
        key = [stat.st_size, stat.st_ino, stat.st_mtime_ns, stat.st_ctime_ns]
        wanted.append((landed, path, str(path.relative_to(root.root)), key))
    with _locked(folder):
        index, valid_all, rejected_all = _load_cache(folder, signature)
        stale = [(landed, path, rel, key) for landed, path, rel, key in wanted
                 if index.get(rel, {}).get("key") != key]
        if stale:
            new_valid, new_rejected = [], []
            for _, path, rel, key in stale:
                raw = read_landing_file(path, schema)
                valid, rejected = validate_rows(raw, schema)
                rejected["source_file"] = rel
                new_valid.append(valid.assign(**{_FILE: rel, _ROW: np.arange(len(valid), dtype="int64")}))
                new_rejected.append(rejected.assign(**{_FILE: rel, _ROW: np.arange(len(rejected), dtype="int64")}))
                index[rel] = {"key": key, "rows": len(raw), "rejected": len(rejected)}
            on_disk = {str(p.relative_to(root.root)) for _, p in root.landing_files(name)}
            replaced = {rel for _, _, rel, _ in stale}
            index = {rel: entry for rel, entry in index.items() if rel in on_disk}
            keep = set(index) - replaced
            valid_all = pd.concat([valid_all.loc[valid_all[_FILE].isin(keep)], *new_valid], ignore_index=True)
            rejected_all = pd.concat([rejected_all.loc[rejected_all[_FILE].isin(keep)], *new_rejected],
                                     ignore_index=True)
            _save_cache(folder, signature, index, valid_all, rejected_all)
    order = {rel: i for i, (_, _, rel, _) in enumerate(wanted)}
    landed_of = {rel: landed for landed, _, rel, _ in wanted}
    reference_valid, reference_rejected = validate_rows(
        pd.DataFrame({c: pd.Series([], dtype=object) for c in schema.names}), schema)
    reference_valid["landed"] = pd.Timestamp(files[0][0])
    reference_rejected["source_file"] = ""

    def select(frame: pd.DataFrame, reference: pd.DataFrame, with_landed: bool) -> pd.DataFrame:
        position = frame[_FILE].map(order)
        chosen = frame.loc[position.notna()]
        chosen = chosen.iloc[np.lexsort((chosen[_ROW].to_numpy(), position[position.notna()].to_numpy()))]
        out = chosen.drop(columns=[_FILE, _ROW]).reset_index(drop=True)
        if with_landed:
            out["landed"] = pd.to_datetime(chosen[_FILE].map(landed_of).to_numpy())
        return _restore_dtypes(out.reindex(columns=reference.columns), reference, schema)

    per_file = [{"file": rel, "rows": index[rel]["rows"], "rejected": index[rel]["rejected"]}
                for _, _, rel, _ in wanted]
    return select(valid_all, reference_valid, True), select(rejected_all, reference_rejected, False), per_file


def _restore_dtypes(frame: pd.DataFrame, reference: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    vectors = {c.name for c in schema.columns if c.kind == "vector"}
    for column in frame.columns:
        if column in vectors and reference[column].dtype == object:
            frame[column] = pd.Series([None if v is None or (isinstance(v, float) and np.isnan(v)) else
                                       (v.tolist() if isinstance(v, np.ndarray) else v)
                                       for v in frame[column].tolist()], index=frame.index, dtype="object")
        elif frame[column].dtype != reference[column].dtype:
            frame[column] = frame[column].astype(reference[column].dtype)
    return frame


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _load_cache(folder: Path, signature: dict[str, Any]) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame]:
    """The cached index and frames, or empty ones when absent, unreadable or of another schema."""
    empty = pd.DataFrame({_FILE: pd.Series([], dtype=object), _ROW: pd.Series([], dtype="int64")})
    try:
        meta = json.loads((folder / "index.json").read_text())
        if meta.get("signature") != json.loads(json.dumps(signature)):
            return {}, empty, empty
        valid = pd.read_parquet(folder / meta["valid"])
        rejected = pd.read_parquet(folder / meta["rejected"])
    except (OSError, ValueError, KeyError):
        return {}, empty, empty
    return meta["files"], valid, rejected


def _save_cache(folder: Path, signature: dict[str, Any], index: dict[str, Any],
                valid: pd.DataFrame, rejected: pd.DataFrame) -> None:
    """Write new data files, then switch ``index.json`` to them atomically, then drop the old ones."""
    tag = uuid.uuid4().hex[:12]
    names = {"valid": f"valid-{tag}.parquet", "rejected": f"rejected-{tag}.parquet"}
    write_parquet(valid, folder / names["valid"])
    write_parquet(rejected.astype({c: "string" for c in rejected.columns if c not in (_FILE, _ROW)}),
                  folder / names["rejected"])
    write_json(folder / "index.json", {"signature": signature, "files": index, **names})
    for old in folder.glob("*.parquet"):
        if old.name not in names.values():
            with contextlib.suppress(OSError):
                os.remove(old)
