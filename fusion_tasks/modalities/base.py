"""What a modality is, and the one extractor they all share."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
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
        valid_parts, rejected_parts, per_file = [], [], []
        for landed, path in files:
            raw = read_landing_file(path, self.schema)
            valid, rejected = validate_rows(raw, self.schema)
            valid["landed"] = pd.Timestamp(landed)
            rejected["source_file"] = str(path.relative_to(root.root))
            valid_parts.append(valid)
            rejected_parts.append(rejected)
            per_file.append({"file": str(path.relative_to(root.root)), "rows": len(raw),
                             "rejected": len(rejected)})
        valid = pd.concat(valid_parts, ignore_index=True)
        rejected = pd.concat(rejected_parts, ignore_index=True)
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
