"""What a modality is, and the one extractor they all share."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import fcntl
import functools
import json
import logging
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from fusion_tasks import arrays, catalogue
from fusion_tasks.config import RunConfig
from fusion_tasks.schemas import (
    DataQualityError,
    Schema,
    VolumeAnomalyError,
    as_text,
    read_landing_raw,
    validate_joined,
    validate_rows,
)
from fusion_tasks.storage import CACHE_INDEX_FILE, DataRoot, read_json, read_parquet, write_json, write_parquet

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Vocabulary:
    """The shared id space of one as-of date: row ``i`` of every user matrix is ``users[i]``."""

    users: np.ndarray
    items: np.ndarray

    def user_index(self, ids: pd.Series) -> np.ndarray:
        """The row of each user id (-1: not in the vocabulary)."""
        return _positions(ids, self._user_positions)

    def item_index(self, ids: pd.Series) -> np.ndarray:
        """The row of each item id (-1: not in the vocabulary)."""
        return _positions(ids, self._item_positions)

    def encode(self, codes: np.ndarray, distinct: pd.Index, kind: str) -> pd.Categorical:
        """Ids given as ``pd.factorize``'s ``codes`` into their ``distinct`` values (-1: missing), as a categorical
        of the vocabulary's ``kind`` (``user`` or ``item``) ids whose codes are the rows: a frame read for several
        origins is encoded once, and every later lookup reads the codes instead of hashing its strings again."""
        positions = self._user_positions if kind == "user" else self._item_positions
        rows = np.append(positions.get_indexer(distinct.astype(str)), -1)  # a code of -1 reads the last: missing
        return pd.Categorical.from_codes(rows[codes], categories=positions)

    # hash tables of the ids, built at the first lookup: a binary search over strings is about 20 times slower
    @functools.cached_property
    def _user_positions(self) -> pd.Index:
        return pd.Index(self.users)

    @functools.cached_property
    def _item_positions(self) -> pd.Index:
        return pd.Index(self.items)


def _positions(ids: pd.Series, positions: pd.Index) -> np.ndarray:
    if isinstance(ids.dtype, pd.CategoricalDtype) and ids.cat.categories.equals(positions):
        return ids.cat.codes.to_numpy().astype(np.intp)
    return positions.get_indexer(ids.astype(str).to_numpy())


def pair_keys(users: np.ndarray, items: np.ndarray, n_items: int) -> np.ndarray:
    """One int64 per (user, item) pair, ordered by user, then item."""
    return users.astype(np.int64) * n_items + items


def unique_pairs(users: np.ndarray, items: np.ndarray, n_items: int) -> pd.DataFrame:
    """The distinct (user_idx, item_idx) pairs, sorted."""
    user, item = np.divmod(arrays.unique(pair_keys(users, items, n_items)), n_items)
    return pd.DataFrame({"user_idx": user, "item_idx": item})


@dataclasses.dataclass(frozen=True)
class History:
    """What a run for D reads of one modality: every landing file up to D, validated.

    ``staged`` holds the rows true by D that passed every check (with ``landed`` and
    ``source_file``); ``rejected`` every rejected row (raw values as text, ``reject_reason``,
    ``source_file``); ``per_file`` the rows read per file, in (date, name) order.
    """

    files: list[tuple[dt.date, Path]]
    staged: pd.DataFrame
    rejected: pd.DataFrame
    per_file: list[dict[str, Any]]
    rows_after_as_of: int


@dataclasses.dataclass(frozen=True)
class Features:
    """What a modality builds for one origin, aligned to the run's vocabulary (row ``i`` of a per-user array is
    ``vocab.users[i]``, of a per-item array ``vocab.items[i]``). Each modality declares a subclass with typed,
    documented fields; a field is a numpy array, a scipy sparse matrix, a DataFrame or a JSON scalar, so that
    ``save`` / ``load`` store it without pickle (``.npz``, Parquet, JSON)."""

    def is_empty(self) -> bool:
        """Whether the modality had no data at all at this origin (its models then have nothing to say)."""
        return False

    def save(self, folder: Path, name: str) -> dict[str, Any]:
        """Write the fields into ``folder`` as ``<name>.npz`` and ``<name>.<field>.parquet``; returns the layout
        that ``load`` needs (JSON)."""
        arrays: dict[str, np.ndarray] = {}
        layout: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if sparse.issparse(value):
                value = sparse.csr_matrix(value)
                arrays |= {f"{field.name}.data": value.data, f"{field.name}.indices": value.indices,
                           f"{field.name}.indptr": value.indptr, f"{field.name}.shape": np.array(value.shape)}
                layout[field.name] = "sparse"
            elif isinstance(value, np.ndarray):
                arrays[field.name], layout[field.name] = value, "array"
            elif isinstance(value, pd.DataFrame):
                write_parquet(value, folder / f"{name}.{field.name}.parquet")
                layout[field.name] = "frame"
            else:
                layout[field.name] = {"scalar": value.item() if isinstance(value, np.generic) else value}
        np.savez(folder / f"{name}.npz", **arrays)
        return layout

    @classmethod
    def load(cls, folder: Path, name: str, layout: dict[str, Any]) -> Features:
        """The features ``save`` wrote, with the same types."""
        values: dict[str, Any] = {}
        with np.load(folder / f"{name}.npz", allow_pickle=False) as arrays:
            for key, kind in layout.items():
                if kind == "sparse":
                    values[key] = sparse.csr_matrix(
                        (arrays[f"{key}.data"], arrays[f"{key}.indices"], arrays[f"{key}.indptr"]),
                        shape=tuple(arrays[f"{key}.shape"]))
                elif kind == "array":
                    values[key] = arrays[key]
                elif kind == "frame":
                    values[key] = read_parquet(folder / f"{name}.{key}.parquet")
                else:
                    values[key] = kind["scalar"]
        return cls(**values)


# A rule over the history of a run: the reason each row is rejected (None: kept). Rules see only rows
# true by D that passed the per-file checks, and may depend on the run's settings or other rows.
RowRule = Callable[[pd.DataFrame, DataRoot, RunConfig], pd.Series]


@dataclasses.dataclass(frozen=True)
class Modality:
    """One kind of data.

    ``time_column`` is the column that says since when a row is true (an event's timestamp, a
    version's ``valid_from``); a run for date D keeps rows with ``time_column`` on or before D.
    ``daily`` modalities must deliver a landing partition for every date (it may be empty); their
    daily volume is watched for anomalies. ``id_columns`` maps columns to the vocabulary they feed
    (``user`` or ``item``). ``build_features(staged, vocab, origin, config)`` turns the staged history
    into ``features`` (the modality's ``Features`` subclass), using only rows true by ``origin``.
    ``profile_column`` is the categorical column whose distribution is watched for drift.
    ``row_rules`` quarantine rows for reasons that need more than the row itself (duplicates,
    dimensions, other modalities) or the run's settings; see ``RowRule``. ``reason`` completes the API's
    sentence "recommended because of ..." for an item this modality's models recommend.
    """

    name: str
    schema: Schema
    time_column: str
    daily: bool
    id_columns: dict[str, str]
    build_features: Callable[[pd.DataFrame, Vocabulary, dt.date, RunConfig], Features]
    features: type[Features]
    profile_column: str
    row_rules: tuple[RowRule, ...] = ()
    reason: str = ""

    def history(self, root: DataRoot, config: RunConfig) -> History:
        """Read and validate every landing file dated on or before D and apply every row rule.

        Raises ``FileNotFoundError`` when a required landing file is missing, and the
        ``InputDataError`` of a file that cannot be read or whose columns are wrong.
        """
        day = config.as_of_date
        files = [(d, path) for d, path in root.landing_files(self.name) if d <= day]
        if not files and (self.daily or self.name == catalogue.FIRST["modalities"]):
            raise FileNotFoundError(f"{root.landing(self.name)}: no {self.name} landing files on or before {day}")
        if not files:  # an optional modality this data set does not have: staged empty, it carries no signal
            log.warning("%s: no %s landing files on or before %s; the modality is staged empty and its models "
                        "score nothing", root.landing(self.name), self.name, day)
            valid, rejected = _empty_frames(self.schema)
            return History(files=[], staged=valid, rejected=rejected, per_file=[], rows_after_as_of=0)
        if self.daily and files[-1][0] != day:
            raise FileNotFoundError(
                f"{root.landing_day(self.name, day)}: the {self.name} landing partition for {day} is missing "
                "(an empty file is a valid empty day; a missing one means the upstream delivery did not arrive)"
            )
        valid, rejected, per_file = _read_landing(root, self.name, self.schema, files)
        future = _as_utc(valid[self.time_column]) >= end_of_day(day)
        kept = valid.loc[~future].reset_index(drop=True)
        rules: list[RowRule] = [_earliest_plausible(self.time_column), *self.row_rules]
        found = [rejected]
        for rule in rules:
            reasons = rule(kept, root, config)
            bad = reasons.notna().to_numpy()
            if bad.any():
                found.append(as_text(kept.loc[bad, self.schema.names]).assign(
                    reject_reason=reasons[bad].astype("string").to_numpy(),
                    source_file=kept.loc[bad, "source_file"].astype("string").to_numpy()))
                kept = kept.loc[~bad].reset_index(drop=True)
        rejected = pd.concat(found, ignore_index=True) if len(found) > 1 else rejected
        return History(files=files, staged=kept, rejected=rejected, per_file=per_file,
                       rows_after_as_of=int(future.sum()))

    def extract(self, root: DataRoot, config: RunConfig) -> dict[str, Any]:
        """Validate every landing file up to the as-of date and stage the history as of that date.

        Writes ``staged/<name>/ds=D/data.parquet``, the rejected rows to
        ``quarantine/<name>/ds=D/rows.parquet`` and a manifest with counts, the quarantine share
        of every delivery (landing file and landing day) with rejected rows, the day's volume
        against the recent range and drift against the previous staged date. Raises
        ``FileNotFoundError`` when a required landing file is missing (it may still arrive),
        ``SchemaDriftError`` / ``UnreadableFileError`` naming the file when a file's columns are
        wrong or it cannot be parsed, ``DataQualityError`` when the rejected share is above
        ``config.max_quarantine_share`` overall, for a landing file or for a landing day, and
        ``VolumeAnomalyError`` on a volume anomaly when ``config.fail_on_volume_anomaly``.
        """
        day = config.as_of_date
        history = self.history(root, config)
        rejected = history.rejected
        total = sum(f["rows"] for f in history.per_file)
        reasons = _reason_counts(rejected)
        share = len(rejected) / total if total else 0.0
        deliveries = _deliveries(history.per_file, rejected)
        write_parquet(rejected, root.quarantine(self.name, day))
        limit = config.max_quarantine_share
        over = [d for d in deliveries["files"] + deliveries["days"]
                if d["share"] > limit and d["rejected"] >= config.quarantine_min_rejected]
        if share > limit or over:
            named = over or sorted(deliveries["files"], key=lambda d: -d["rejected"])
            raise DataQualityError(self._quality_message(day, config, len(rejected), total, share, reasons, named,
                                                         root))
        volume = self._volume(history.per_file, day, config) if self.daily else None
        if volume and volume["anomaly"]:
            log.warning("%s", volume["reason"])
            if config.fail_on_volume_anomaly:
                raise VolumeAnomalyError(f"{volume['reason']}; the run is set to fail on volume anomalies "
                                         "(fail_on_volume_anomaly)")
        staged = history.staged.drop(columns="source_file").sort_values(
            [self.time_column, *self.id_columns]).reset_index(drop=True)
        write_parquet(staged, root.staged(self.name, day))
        profile = self._profile(staged, day)
        manifest = {
            "modality": self.name,
            "schema_version": self.schema.version,
            "as_of_date": day.isoformat(),
            "files_read": len(history.files),
            "rows_read": total,
            "rows_staged": len(staged),
            "rows_after_as_of": history.rows_after_as_of,
            "rows_quarantined": len(rejected),
            "quarantine_reasons": reasons,
            "quarantine_share": share,
            "deliveries": deliveries,
            "volume": volume,
            "profile": profile,
            "drift": self._drift(root, day, profile),
            "staged_path": str(root.staged(self.name, day)),
            "quarantine_path": str(root.quarantine(self.name, day)),
        }
        write_json(root.staged_manifest(self.name, day), manifest)
        return manifest

    def _quality_message(self, day: dt.date, config: RunConfig, n_rejected: int, total: int, share: float,
                         reasons: dict[str, int], over: list[dict[str, Any]], root: DataRoot) -> str:
        limit = config.max_quarantine_share
        parts = [f"{self.name} as of {day}: {n_rejected} of {total} rows ({share:.1%}) rejected overall "
                 f"(limit {limit:.1%}), reasons {reasons}"]
        for d in over[:10]:
            what = f"landing file {d['file']}" if "file" in d else f"landing day {d['date']}"
            above = f", above the limit of {limit:.1%}" if d["share"] > limit else ""
            parts.append(f"{what}: {d['rejected']} of {d['rows']} rows ({d['share']:.1%}) rejected{above}; "
                         f"reasons {d['reasons']}")
        if len(over) > 10:
            parts.append(f"and {len(over) - 10} more deliveries")
        parts.append(f"rows kept in {root.quarantine(self.name, day)}")
        return "; ".join(parts)

    def _volume(self, per_file: list[dict[str, Any]], day: dt.date, config: RunConfig) -> dict[str, Any]:
        """The rows delivered on D against the range of the previous ``volume_window_days`` deliveries."""
        by_day: dict[str, int] = {}
        for f in per_file:
            by_day[f["landed"]] = by_day.get(f["landed"], 0) + f["rows"]
        rows = by_day.get(day.isoformat(), 0)
        start = (day - dt.timedelta(days=config.volume_window_days)).isoformat()
        recent = [n for d, n in by_day.items() if start <= d < day.isoformat()]
        out: dict[str, Any] = {"rows_on_day": rows, "recent_days": len(recent),
                               "recent_min": min(recent) if recent else None,
                               "recent_max": max(recent) if recent else None,
                               "factor": config.volume_factor, "anomaly": False, "reason": None}
        if len(recent) < MIN_VOLUME_HISTORY:
            return out
        low, high = min(recent) / config.volume_factor, max(recent) * config.volume_factor
        if rows < low or rows > high:
            side = "below" if rows < low else "above"
            out["anomaly"] = True
            out["reason"] = (f"{self.name} volume anomaly on {day}: {rows} rows delivered, {side} the recent range "
                             f"{min(recent)}..{max(recent)} of the last {len(recent)} days by more than a factor "
                             f"{config.volume_factor:g}")
        return out

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


def _as_utc(times: pd.Series) -> pd.Series:
    return times.dt.tz_localize("UTC") if getattr(times.dt, "tz", None) is None else times


def _earliest_plausible(column: str) -> RowRule:
    def rule(staged: pd.DataFrame, root: DataRoot, config: RunConfig) -> pd.Series:
        earliest = pd.Timestamp(config.earliest_plausible_date, tz="UTC")
        early = (_as_utc(staged[column]) < earliest).to_numpy()
        return pd.Series(np.where(early, f"{column}: before the earliest plausible date "
                                         f"{config.earliest_plausible_date.isoformat()}", None),
                         index=staged.index, dtype="object")

    return rule


MIN_VOLUME_HISTORY = 7  # days of deliveries needed before a day's volume is judged


def _reason_counts(rejected: pd.DataFrame) -> dict[str, int]:
    if not len(rejected):
        return {}
    return {str(k): int(v) for k, v in rejected["reject_reason"].value_counts().sort_index().items()}


def _deliveries(per_file: list[dict[str, Any]], rejected: pd.DataFrame) -> dict[str, Any]:
    """Rows, rejected rows, share and reasons of each landing file and each landing day with rejects."""
    by_file = {rel: group for rel, group in rejected.groupby("source_file", sort=False)} if len(rejected) else {}
    files, days = [], {}
    for f in per_file:
        group = by_file.get(f["file"])
        n_rejected = 0 if group is None else len(group)
        day = days.setdefault(f["landed"], {"date": f["landed"], "rows": 0, "rejected": 0, "reasons": {}})
        day["rows"] += f["rows"]
        day["rejected"] += n_rejected
        if n_rejected:
            counts = _reason_counts(group)
            files.append({"file": f["file"], "date": f["landed"], "rows": f["rows"], "rejected": n_rejected,
                          "share": n_rejected / f["rows"] if f["rows"] else 1.0, "reasons": counts})
            for reason, n in counts.items():
                day["reasons"][reason] = day["reasons"].get(reason, 0) + n
    with_rejects = [dict(d, share=d["rejected"] / d["rows"] if d["rows"] else 1.0)
                    for d in days.values() if d["rejected"]]
    return {"n_files": len(per_file), "n_days": len(days), "files": files, "days": with_rejects,
            "max_file_share": max((f["share"] for f in files), default=0.0),
            "max_day_share": max((d["share"] for d in with_rejects), default=0.0)}


# The per-file landing cache ------------------------------------------------------------------------
# Reading and validating every landing file again for every date dominates extraction when there are
# thousands of small daily files. Each file is therefore validated once, exactly as before (one
# ``read_landing_raw`` per file, which leaves a small plain CSV file as split rows, and ``validate_joined``,
# which gives each file's ``validate_rows`` in one pass over many files), and its valid and rejected rows are kept under
# ``staged/_cache/<modality>/``, keyed by the file's path, size, inode, mtime and ctime and the schema
# (name, version, columns): a file rewritten in place or replaced by a rename, even with the same size
# and a preserved mtime, is read again. A run for date D reassembles the rows of its files in (date,
# name, row) order, so the staged history is identical to reading the files one by one, whatever dates
# ran before. Bump CACHE_VERSION whenever ``read_landing_file`` or ``validate_rows`` change what they
# return for the same file.
CACHE_VERSION = 3
_FILE, _ROW = "_cache_file", "_cache_row"
VALIDATE_BATCH_FILES = 2_000  # landing files read and validated together (bounds the memory of one batch)


def _row_in_file(file_of_row: np.ndarray) -> np.ndarray:
    """Each row's position among the rows of its file (rows of a file are consecutive)."""
    if not len(file_of_row):
        return np.zeros(0, dtype="int64")
    starts = np.r_[0, np.flatnonzero(np.diff(file_of_row)) + 1]
    return np.arange(len(file_of_row), dtype="int64") - np.repeat(starts, np.diff(np.r_[starts, len(file_of_row)]))


def _empty_frames(schema: Schema) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The valid and rejected frames of no rows, with the columns and types of real ones."""
    valid, rejected = validate_rows(pd.DataFrame({c: pd.Series([], dtype=object) for c in schema.names}), schema)
    valid["landed"] = pd.Series([], dtype="datetime64[ns]")
    valid["source_file"] = pd.Series([], dtype="string")
    rejected["source_file"] = pd.Series([], dtype="string")
    return valid, rejected


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
            for start in range(0, len(stale), VALIDATE_BATCH_FILES):
                chunk = stale[start:start + VALIDATE_BATCH_FILES]
                raws = [read_landing_raw(path, schema) for _, path, _, _ in chunk]
                valid, rejected, valid_file, rejected_file = validate_joined(raws, schema)
                rels = np.array([rel for _, _, rel, _ in chunk], dtype=object)
                rejected["source_file"] = rels[rejected_file]
                new_valid.append(valid.assign(**{_FILE: rels[valid_file], _ROW: _row_in_file(valid_file)}))
                new_rejected.append(rejected.assign(**{_FILE: rels[rejected_file],
                                                       _ROW: _row_in_file(rejected_file)}))
                n_rejected = np.bincount(rejected_file, minlength=len(chunk))
                for (_, _, rel, key), raw, n in zip(chunk, raws, n_rejected, strict=True):
                    index[rel] = {"key": key, "rows": len(raw), "rejected": int(n)}
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
        out = _restore_dtypes(out.reindex(columns=reference.columns), reference, schema)
        if with_landed:
            out["source_file"] = chosen[_FILE].to_numpy()
        return out

    per_file = [{"file": rel, "landed": landed_of[rel].isoformat(), "rows": index[rel]["rows"]}
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
        meta = json.loads((folder / CACHE_INDEX_FILE).read_text())
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
    write_json(folder / CACHE_INDEX_FILE, {"signature": signature, "files": index, **names})
    for old in folder.glob("*.parquet"):
        if old.name not in names.values():
            with contextlib.suppress(OSError):
                os.remove(old)
