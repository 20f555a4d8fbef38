"""Versioned schemas and row validation.

A schema lists the columns a landing file must have. Validation has two outcomes:

* the file's *shape* is wrong (a required column missing, an unknown column, a column renamed):
  ``SchemaDriftError`` naming the file and the columns, raised before any training;
* some *rows* are wrong (null key, not a number, out of range, unknown category): they are set
  aside with a ``reject_reason`` and counted, never silently dropped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pandas as pd


class SchemaDriftError(ValueError):
    """A landing file's columns do not match the modality's schema."""


class DataQualityError(ValueError):
    """Too many rows were rejected: the data is wrong, retrying will not help."""


@dataclasses.dataclass(frozen=True)
class Column:
    """One column: ``kind`` is ``key`` (non-null string id), ``str``, ``float``, ``date``,
    ``timestamp`` or ``vector`` (list of floats, or a space-separated string in CSV)."""

    name: str
    kind: str
    required: bool = True
    nullable: bool = False
    allowed: frozenset[str] | None = None
    min_value: float | None = None
    max_value: float | None = None
    min_exclusive: bool = False


@dataclasses.dataclass(frozen=True)
class Schema:
    name: str
    version: int
    columns: tuple[Column, ...]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def check_columns(self, found: list[str], source: str) -> None:
        """Raise ``SchemaDriftError`` when ``found`` does not fit this schema."""
        missing = [c.name for c in self.columns if c.required and c.name not in found]
        unknown = [name for name in found if name not in self.names]
        if missing or unknown:
            parts = []
            if missing:
                parts.append(f"missing column(s) {missing}")
            if unknown:
                parts.append(f"unknown column(s) {unknown}")
            raise SchemaDriftError(
                f"{source}: does not match schema {self.name} v{self.version}: {'; '.join(parts)} "
                f"(expected {self.names})"
            )


def read_landing_file(path, schema: Schema) -> pd.DataFrame:
    """Read a CSV or Parquet landing file as raw values (strings stay strings) and check its columns."""
    if str(path).endswith(".parquet"):
        frame = pd.read_parquet(path)
    else:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    schema.check_columns(list(frame.columns), str(path))
    for column in schema.columns:
        if column.name not in frame.columns:
            frame[column.name] = None
    return frame[schema.names]


def validate_rows(frame: pd.DataFrame, schema: Schema) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Coerce each column to its kind and split rows into (valid, rejected).

    The rejected frame keeps the raw values as strings plus ``reject_reason`` (the first failed
    check, e.g. ``"user_id: null"`` or ``"value: not a number"``).
    """
    reasons = pd.Series(pd.NA, index=frame.index, dtype="object")
    clean = {}
    for column in schema.columns:
        values, bad = _COERCE[column.kind](frame[column.name], column)
        reasons = _first_reason(reasons, bad, column, frame[column.name])
        clean[column.name] = values
    valid = pd.DataFrame(clean, index=frame.index)
    rejected_mask = reasons.notna()
    rejected = frame.loc[rejected_mask].astype("string").assign(reject_reason=reasons[rejected_mask])
    return valid.loc[~rejected_mask].reset_index(drop=True), rejected.reset_index(drop=True)


def _first_reason(reasons: pd.Series, bad: pd.Series, column: Column, raw: pd.Series) -> pd.Series:
    fresh = bad & reasons.isna()
    if not fresh.any():
        return reasons
    null = raw.isna() | (raw.astype("string").str.strip() == "")
    text = np.where(null[fresh], f"{column.name}: null", f"{column.name}: {_PROBLEM[column.kind]}")
    reasons = reasons.copy()
    reasons[fresh] = text
    return reasons


_PROBLEM = {
    "key": "null",
    "str": "not an allowed value",
    "float": "not a number or out of range",
    "date": "not a date",
    "timestamp": "not a timestamp",
    "vector": "not a vector of numbers",
}


def _null_mask(raw: pd.Series) -> pd.Series:
    return raw.isna() | (raw.astype("string").str.strip() == "")


def _coerce_key(raw: pd.Series, column: Column) -> tuple[pd.Series, pd.Series]:
    values = raw.astype("string").str.strip()
    return values, _null_mask(raw)


def _coerce_str(raw: pd.Series, column: Column) -> tuple[pd.Series, pd.Series]:
    values = raw.astype("string").str.strip()
    null = _null_mask(raw)
    values = values.mask(null)
    bad = null & (not column.nullable)
    if column.allowed is not None:
        bad = bad | (~null & ~values.isin(column.allowed).fillna(False))
    return values, bad.astype(bool)


def _coerce_float(raw: pd.Series, column: Column) -> tuple[pd.Series, pd.Series]:
    null = _null_mask(raw)
    values = pd.to_numeric(raw, errors="coerce").astype("float64")
    bad = (~null & ~np.isfinite(values.fillna(np.nan).to_numpy(dtype="float64", na_value=np.nan)))
    bad = pd.Series(bad, index=raw.index)
    if column.min_value is not None:
        below = values <= column.min_value if column.min_exclusive else values < column.min_value
        bad = bad | below.fillna(False)
    if column.max_value is not None:
        bad = bad | (values > column.max_value).fillna(False)
    if not column.nullable:
        bad = bad | null
    return values, bad.astype(bool)


def _coerce_date(raw: pd.Series, column: Column) -> tuple[pd.Series, pd.Series]:
    null = _null_mask(raw)
    values = pd.to_datetime(raw.astype("string"), errors="coerce", format="ISO8601").dt.normalize()
    if values.dt.tz is not None:
        values = values.dt.tz_localize(None)
    bad = (values.isna() & ~null) | (null & (not column.nullable))
    return values.astype("datetime64[ns]"), bad.astype(bool)


def _coerce_timestamp(raw: pd.Series, column: Column) -> tuple[pd.Series, pd.Series]:
    null = _null_mask(raw)
    numeric = pd.to_numeric(raw, errors="coerce")
    as_epoch = pd.to_datetime(numeric, unit="s", utc=True, errors="coerce")
    as_text = pd.to_datetime(raw.astype("string").where(numeric.isna()), utc=True, errors="coerce",
                             format="ISO8601")
    values = as_epoch.fillna(as_text).astype("datetime64[ns, UTC]")
    bad = values.isna() | null if not column.nullable else values.isna() & ~null
    return values, bad.astype(bool)


def _coerce_vector(raw: pd.Series, column: Column) -> tuple[pd.Series, pd.Series]:
    out: list[np.ndarray | None] = []
    bad: list[bool] = []
    for value in raw.tolist():
        missing = value is None or (isinstance(value, float) and np.isnan(value))
        if missing or (isinstance(value, str) and not value.strip()):
            out.append(None)
            bad.append(not column.nullable)
            continue
        try:
            vec = np.asarray(value.split() if isinstance(value, str) else value, dtype="float32")
            ok = vec.ndim == 1 and vec.size > 0 and bool(np.isfinite(vec).all())
        except (TypeError, ValueError):
            vec, ok = None, False
        out.append(vec.tolist() if ok else None)
        bad.append(not ok)
    return pd.Series(out, index=raw.index, dtype="object"), pd.Series(bad, index=raw.index)


_COERCE: dict[str, Callable[[pd.Series, Column], tuple[pd.Series, pd.Series]]] = {
    "key": _coerce_key,
    "str": _coerce_str,
    "float": _coerce_float,
    "date": _coerce_date,
    "timestamp": _coerce_timestamp,
    "vector": _coerce_vector,
}
