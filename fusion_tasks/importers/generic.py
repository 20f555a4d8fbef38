"""Import a user's CSV/Parquet table into the landing contract of one modality.

``import_table`` reads one file, renames its columns with a mapping (``{"source": "schema_name"}``),
fills defaults the caller gives (``event_type``, ``valid_from``, ``edge_type``, ``weight``), checks
the columns against the modality's schema and writes landing partitions:

* behaviour: one partition per UTC day of ``timestamp``, from the first to the last event day,
  including a header-only file for each day in between with no events;
* content and social: each row goes into the partition of its own ``valid_from`` (so the partition
  date is never before a ``valid_from`` in it).

Files are named after the input (``<stem>.csv`` or ``<stem>.parquet``, the input's format) and are
written atomically; re-importing the same file name replaces its files and removes the ones it
wrote earlier into partitions it no longer covers. Row values are written through unchanged
(apart from ids as strings and ``valid_from`` as ``YYYY-MM-DD``): bad rows are the pipeline's to
quarantine. Only the columns the importer needs to place a row (``timestamp``, ``valid_from``)
must parse here.

Also home of ``write_partitions``, the partition writer the Ciao importer shares.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fusion_tasks import schemas
from fusion_tasks.modalities import get as get_modality
from fusion_tasks.progress import Progress
from fusion_tasks.storage import DataRoot, write_parquet

EPOCH = dt.date(1970, 1, 1)
TEXT_FORMATS = {".csv": ",", ".tsv": "\t", ".txt": None}  # None: the separator is sniffed from the header
FORMATS = (*TEXT_FORMATS, ".parquet")
SNIFFED_SEPARATORS = (",", "\t", ";", "|")
# Values for optional columns the source may lack: a behaviour event without a value counts once
# (ratings need their value, so a rating without one is refused); an item without a category is "unknown".
OPTIONAL_DEFAULTS = {"behavior": {"value": "1"}, "content": {"category": "unknown"}}
PROGRESS_MIN_PARTITIONS = 100  # write_partitions reports progress on stderr from this many files on


# Partition writing (shared with the Ciao importer) ---------------------------------------------
def write_partitions(root: DataRoot, modality: str, frame: pd.DataFrame, days: np.ndarray, name: str, *,
                     fmt: str = "csv", fill_range: tuple[dt.date, dt.date] | None = None) -> dict[str, Any]:
    """Write ``frame`` split by ``days`` into ``landing/<modality>/date=D/<name>.<fmt>``.

    ``days`` holds one day per row as integer days since 1970-01-01. With ``fill_range=(first,
    last)`` every day of that closed range gets a file, header-only when it has no rows (rows
    outside the range raise ``ValueError``). Each file is written atomically (temp name + rename).
    Afterwards files named ``<name>.csv|.parquet`` in other partitions of the modality (left by an
    earlier run) are deleted, and partitions left empty are removed, so reruns are idempotent.

    Returns ``{"files": n, "first_day", "last_day", "empty_days": n, "stale_files_removed": n}``.
    """
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"fmt must be 'csv' or 'parquet', got {fmt!r}")
    days = np.asarray(days, dtype="int64")
    if len(days) != len(frame):
        raise ValueError("days must hold one day per row")
    order = np.argsort(days, kind="stable")
    frame = frame.iloc[order].reset_index(drop=True)
    days = days[order]
    present, starts = np.unique(days, return_index=True)
    ends = np.append(starts[1:], len(days)).astype("int64")
    spans = {int(d): (int(s), int(e)) for d, s, e in zip(present, starts, ends, strict=True)}
    if fill_range is not None:
        lo, hi = (_day_number(d) for d in fill_range)
        if len(present) and (present[0] < lo or present[-1] > hi):
            raise ValueError(f"rows fall outside the partition range {fill_range[0]}..{fill_range[1]}")
        all_days = list(range(lo, hi + 1))
    else:
        all_days = [int(d) for d in present]

    render = _csv_renderer(frame) if fmt == "csv" else None
    written: set[Path] = set()
    empty = 0
    progress = (Progress(len(all_days), "partitions", label=f"import {modality} {name}")
                if len(all_days) >= PROGRESS_MIN_PARTITIONS else None)
    for number in all_days:
        day = EPOCH + dt.timedelta(days=number)
        path = root.landing_day(modality, day) / f"{name}.{fmt}"
        start, end = spans.get(number, (0, 0))
        empty += start == end
        if render is not None:
            _write_text(path, render(start, end))
        else:
            write_parquet(frame.iloc[start:end], path)
        written.add(path)
        if progress is not None:
            progress.advance(detail=day.isoformat())
    removed = remove_stale(root, modality, name, keep=written)
    return {
        "files": len(written),
        "first_day": (EPOCH + dt.timedelta(days=all_days[0])).isoformat() if all_days else None,
        "last_day": (EPOCH + dt.timedelta(days=all_days[-1])).isoformat() if all_days else None,
        "empty_days": empty,
        "stale_files_removed": removed,
    }


def remove_stale(root: DataRoot, modality: str, name: str, keep: Iterable[Path]) -> int:
    """Delete ``<name>.csv|.parquet`` in the modality's partitions unless in ``keep``; drop empty partitions."""
    keep = {Path(p) for p in keep}
    base = root.landing(modality)
    removed = 0
    if not base.is_dir():
        return 0
    for part in base.iterdir():
        if not part.is_dir() or not part.name.startswith("date="):
            continue
        for ext in FORMATS:
            path = part / f"{name}{ext}"
            if path.exists() and path not in keep:
                path.unlink()
                removed += 1
        if not any(part.iterdir()):
            part.rmdir()
    return removed


def _day_number(day: dt.date) -> int:
    return (day - EPOCH).days


def _csv_renderer(frame: pd.DataFrame):
    """A function ``(start, end) -> CSV text`` of rows ``start:end`` with the header.

    Renders the whole frame once and slices its lines (fast for thousands of partitions); falls
    back to ``to_csv`` per slice when a text value holds a line break (quoted multi-line fields).
    """
    header = frame.iloc[:0].to_csv(index=False, lineterminator="\n")
    text_columns = [c for c in frame.columns if frame[c].dtype == object or pd.api.types.is_string_dtype(frame[c])]
    multiline = any(frame[c].astype("string").str.contains(r"[\r\n]", regex=True).fillna(False).any()
                    for c in text_columns)
    if multiline:
        return lambda start, end: frame.iloc[start:end].to_csv(index=False, lineterminator="\n")
    body = frame.to_csv(index=False, header=False, lineterminator="\n")
    lines = body.split("\n")[:-1] if body else []
    if len(lines) != len(frame):  # defensive: never slice a misaligned rendering
        return lambda start, end: frame.iloc[start:end].to_csv(index=False, lineterminator="\n")
    return lambda start, end: header + "".join(line + "\n" for line in lines[start:end])


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
    os.replace(tmp, path)


# Parsing ------------------------------------------------------------------------------------
def parse_timestamps(raw: pd.Series) -> pd.Series:
    """Timestamps as the pipeline reads them (``fusion_tasks.schemas.parse_timestamps``: native
    timestamps, epoch seconds or milliseconds detected per column, ISO-8601 with any offset);
    NaT where unreadable."""
    return schemas.parse_timestamps(raw)[0]


def _day_numbers(stamps: pd.Series) -> np.ndarray:
    return (stamps.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[D]").astype("int64"))


def _unplaceable(mask: pd.Series, column: str, path: Path, raw: pd.Series) -> ValueError:
    rows = np.flatnonzero(mask.to_numpy())
    examples = [f"row {r}: {raw.iloc[r]!r}" for r in rows[:5]]
    return ValueError(f"{path}: {len(rows)} row(s) have a null or unparseable {column!r}, so they cannot be placed "
                      f"in a landing partition ({'; '.join(examples)})")


# The importer -------------------------------------------------------------------------------
def read_table(path: Path, sep: str | None = None) -> pd.DataFrame:
    """Read a text table (``.csv``, ``.tsv``, ``.txt``; all values as text, empty = null) or ``.parquet``.

    ``sep`` is the field separator of a text table; by default ``,`` for ``.csv``, a tab for ``.tsv``, and
    for ``.txt`` whichever of ``, TAB ; |`` splits the header line. A text table that reads as a single
    column whose name holds another separator raises ``ValueError`` suggesting ``--sep``.
    """
    path = Path(path)
    if path.suffix not in FORMATS:
        raise ValueError(f"{path}: expected one of {', '.join(FORMATS)} (got {path.suffix or 'no suffix'!r})")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: input file not found")
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    sep = sep or TEXT_FORMATS[path.suffix] or _sniff_separator(path)
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], sep=sep)
    if len(frame.columns) == 1:
        others = [s for s in SNIFFED_SEPARATORS if s != sep and s in str(frame.columns[0])]
        if others:
            shown = {"\t": "tab"}.get(others[0], others[0])
            raise ValueError(f"{path}: read with separator {sep!r} the file has one column {frame.columns[0]!r}; "
                             f"its fields look separated by {shown!r}: pass --sep {others[0]!r}")
    return frame


def _sniff_separator(path: Path) -> str:
    with open(path, encoding="utf-8", errors="replace") as handle:
        header = handle.readline()
    counts = {sep: header.count(sep) for sep in SNIFFED_SEPARATORS}
    best = max(counts, key=lambda sep: counts[sep])
    return best if counts[best] else ","


def _check_allowed(column: str, value: str, allowed: frozenset[str] | None, modality: str, option: str) -> None:
    if allowed is not None and value not in allowed:
        raise ValueError(f"{option} {value!r} is not a {modality} {column}; allowed: {', '.join(sorted(allowed))}")


def import_table(path: str | os.PathLike[str], root: DataRoot, modality: str, column_map: Mapping[str, str], *,
                 valid_from: dt.date | None = None, event_type: str | None = None, edge_type: str | None = None,
                 weight: float | None = None, name: str | None = None, sep: str | None = None) -> dict[str, Any]:
    """Import one CSV/TSV/text or Parquet file into ``landing/<modality>/`` of ``root``.

    ``column_map`` renames input columns to schema columns (``{"uid": "user_id"}``); columns that
    are neither mapped nor schema columns are ignored (listed in the summary). ``valid_from``
    (content, social), ``event_type`` (behaviour), ``edge_type`` and ``weight`` (social) fill the
    column when it is absent and its nulls when present. ``event_type`` and ``edge_type`` must be
    one of the schema's values (the message lists them). Optional columns the source lacks get
    ``OPTIONAL_DEFAULTS`` (a behaviour ``value`` of 1, refused for ``rating`` events; a content
    ``category`` of ``unknown``). ``sep`` is the separator of a text input (see ``read_table``).
    Output files are named ``name`` (default: the input's stem), as CSV for a text input and as
    Parquet for a Parquet input. The summary's ``unknown_values`` counts values of ``event_type`` /
    ``edge_type`` that the pipeline will quarantine.

    Returns a summary dict (rows, partitions, days, ignored columns, ...). Raises
    ``FileNotFoundError`` for a missing input, ``ValueError`` for an unknown modality, a mapping
    whose source is not in the file or whose target is not a schema column, required schema columns
    that are neither in the file nor mapped nor defaulted (naming them), or rows whose
    ``timestamp``/``valid_from`` cannot be parsed; ``SchemaDriftError`` (a ``ValueError``) if the
    final columns still do not fit the schema.
    """
    path = Path(path)
    try:
        schema = get_modality(modality).schema
    except KeyError as err:
        raise ValueError(str(err.args[0])) from None
    defaults = {"event_type": event_type, "valid_from": valid_from, "edge_type": edge_type, "weight": weight}
    for column, value in defaults.items():
        if value is not None and column not in schema.names:
            raise ValueError(f"a default for {column!r} does not apply to the {modality} modality")
    columns = {c.name: c for c in schema.columns}
    for column, option in (("event_type", "--event-type"), ("edge_type", "--edge-type")):
        if defaults[column] is not None:
            _check_allowed(column, defaults[column], columns[column].allowed, modality, option)
    frame = read_table(path, sep)

    missing_sources = [src for src in column_map if src not in frame.columns]
    if missing_sources:
        raise ValueError(f"{path}: mapped column(s) {missing_sources} not in the file (columns: {list(frame.columns)})")
    bad_targets = sorted({dst for dst in column_map.values() if dst not in schema.names})
    if bad_targets:
        raise ValueError(f"mapping target(s) {bad_targets} are not columns of {modality} (expected {schema.names})")
    kept_names = [column_map.get(c, c) for c in frame.columns]
    clashes = sorted({n for n in kept_names if n in schema.names and kept_names.count(n) > 1})
    if clashes:
        raise ValueError(f"{path}: more than one input column maps to {clashes}")
    frame = frame.rename(columns=dict(column_map))
    ignored = [c for c in frame.columns if c not in schema.names]
    frame = frame[[c for c in frame.columns if c in schema.names]].copy()

    filled = []
    for column, value in defaults.items():
        if value is None:
            continue
        text = value.isoformat() if isinstance(value, dt.date) else value
        if column not in frame.columns:
            frame[column] = text
        else:
            frame[column] = frame[column].where(frame[column].notna(), text)
        filled.append(column)
    for column, value in OPTIONAL_DEFAULTS.get(modality, {}).items():
        if column in frame.columns:
            continue
        if modality == "behavior" and column == "value" and "event_type" in frame.columns \
                and (frame["event_type"] == "rating").any():
            raise ValueError(f"{path}: {int((frame['event_type'] == 'rating').sum())} rating events but no 'value' "
                             "column: map the rating column with --map SOURCE=value")
        frame[column] = value
        filled.append(column)
    unknown_values = {}
    for column in ("event_type", "edge_type"):
        allowed = columns[column].allowed if column in columns else None
        if allowed is not None and column in frame.columns:
            counts = frame.loc[frame[column].notna() & ~frame[column].isin(allowed), column].value_counts()
            if len(counts):
                unknown_values[column] = {str(k): int(v) for k, v in counts.items()}

    missing = [c.name for c in schema.columns if c.required and c.name not in frame.columns]
    if missing:
        raise ValueError(
            f"{path}: required {modality} column(s) {missing} are not in the file and not mapped; "
            f"map them with --map SOURCE=TARGET (file columns after mapping: {list(frame.columns)})"
        )
    schema.check_columns(list(frame.columns), str(path))
    frame = frame[[c for c in schema.names if c in frame.columns]]
    for column in schema.columns:
        if column.kind == "key" and column.name in frame.columns:
            frame[column.name] = _keys_as_text(frame[column.name])

    if modality == "behavior":
        stamps = parse_timestamps(frame["timestamp"])
        if stamps.isna().any():
            raise _unplaceable(stamps.isna(), "timestamp", path, frame["timestamp"])
        days = _day_numbers(stamps)
        fill = (EPOCH + dt.timedelta(days=int(days.min())), EPOCH + dt.timedelta(days=int(days.max()))) \
            if len(days) else None
    else:
        parsed = pd.to_datetime(frame["valid_from"].astype("string"), errors="coerce", format="ISO8601", utc=True)
        if parsed.isna().any():
            raise _unplaceable(parsed.isna(), "valid_from", path, frame["valid_from"])
        days = _day_numbers(parsed)
        frame["valid_from"] = [(EPOCH + dt.timedelta(days=int(d))).isoformat() for d in days]
        fill = None

    out_name = name or path.stem
    fmt = "parquet" if path.suffix == ".parquet" else "csv"
    if len(frame) == 0:
        written = {"files": 0, "first_day": None, "last_day": None, "empty_days": 0,
                   "stale_files_removed": remove_stale(root, modality, out_name, keep=())}
    else:
        written = write_partitions(root, modality, frame, days, out_name, fmt=fmt, fill_range=fill)
    return {
        "input": str(path),
        "modality": modality,
        "data_root": str(root.root),
        "file_name": f"{out_name}.{fmt}",
        "rows": len(frame),
        "columns": list(frame.columns),
        "ignored_columns": ignored,
        "defaults_filled": filled,
        "unknown_values": unknown_values,
        **written,
    }


def _keys_as_text(values: pd.Series) -> pd.Series:
    """Ids as strings; integral floats (ints with nulls from Parquet) lose their ``.0``."""
    if pd.api.types.is_float_dtype(values):
        finite = values.dropna()
        if (finite == np.floor(finite)).all():
            values = values.astype("Int64")
    return values.astype("string").astype(object).where(values.notna(), None)
