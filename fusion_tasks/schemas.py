"""Versioned schemas, reading landing files, and row validation.

A schema lists the columns a landing file must have. Reading and validation have three outcomes:

* the *file* cannot be parsed (empty, not UTF-8, unparseable CSV, not Parquet):
  ``UnreadableFileError`` naming the file and where it breaks;
* the file's *shape* is wrong (a required column missing, an unknown or duplicated column, a column
  renamed, a Parquet type the column does not accept): ``SchemaDriftError`` naming the file and
  the columns, raised before any training;
* some *rows* are wrong (null or placeholder key, not a number, out of range, unknown category,
  unreadable time): they are set aside with a ``reject_reason`` and counted, never silently dropped.

All errors of the data derive from ``InputDataError`` (fail without retry); an ``OSError`` is the
machine's and is left as it is (retry).
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import io
import os
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


class InputDataError(ValueError):
    """The landing data is wrong: retrying cannot help, so the DAG fails such a task without retry.

    Every message names the file (or the modality and date), the column where there is one, the
    number of rows concerned and the reason. Errors of the machine (``OSError`` while reading)
    are not ``InputDataError`` and are retried.
    """


class SchemaDriftError(InputDataError):
    """A landing file's columns do not match the modality's schema."""


class UnsupportedTypeError(SchemaDriftError):
    """A Parquet column has a type its schema column does not accept (e.g. a struct for a number)."""


class UnreadableFileError(InputDataError):
    """A landing file cannot be parsed at all: empty, not UTF-8, not valid CSV, not valid Parquet."""


class DataQualityError(InputDataError):
    """Too many rows were rejected: the data is wrong, retrying will not help."""


class VolumeAnomalyError(DataQualityError):
    """A day's delivery is far outside the recent range of volumes, and the run is set to fail on it."""


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


# Reading ------------------------------------------------------------------------------------------
PARQUET_SUFFIX = ".parquet"


def read_landing_file(path: str | os.PathLike[str], schema: Schema) -> pd.DataFrame:
    """Read a CSV or Parquet landing file as raw values and check its columns.

    CSV: UTF-8 with or without a byte-order mark; values stay strings. Parquet: each column's type
    must fit its schema column (see ``PARQUET_TYPES``); native timestamps, dates and lists are
    kept as such for ``validate_rows``. Returns the schema's columns (absent optional ones as null).

    Raises ``UnreadableFileError`` (empty file, undecodable bytes, unparseable CSV, not Parquet),
    ``SchemaDriftError`` (missing, unknown, duplicate or renamed columns) and ``UnsupportedTypeError``
    (a Parquet type the column does not accept), each naming the file; ``OSError`` when the file
    cannot be read (the machine's fault: worth a retry).
    """
    raw = read_landing_raw(path, schema)
    return _csv_frame([raw], schema) if isinstance(raw, CsvRows) else raw


# what makes a CSV text not plain: quotes, NUL, and line breaks other than "\n" (str.splitlines, which finds the
# header line, splits on them; the pandas parser on some)
_NOT_PLAIN = re.compile('["\x00\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]')


# a larger CSV file is read by pandas: its per-call cost is then small beside the rows, and the rows of a batch of
# files held as Python strings (several times their text) stay bounded
PLAIN_CSV_MAX_CHARS = 32 * 2**10


@dataclasses.dataclass(frozen=True)
class CsvRows:
    """The rows of a small plain CSV landing file (no quotes, no carriage returns), split on commas: what
    ``pandas.read_csv`` would read from it, without paying its per-call cost for each of thousands of small files
    (``validate_joined`` makes one frame of many)."""

    columns: tuple[str, ...]  # the header, stripped
    rows: list[list[str]]  # padded to the header's width; "" is a missing value

    def __len__(self) -> int:
        return len(self.rows)


def read_landing_raw(path: str | os.PathLike[str], schema: Schema) -> pd.DataFrame | CsvRows:
    """``read_landing_file``'s values, as ``CsvRows`` for a plain CSV file (the same checks and errors)."""
    path = Path(path)
    if path.stat().st_size == 0:
        raise UnreadableFileError(
            f"{path}: empty file (0 bytes, 0 rows); a delivery without rows must still have a header "
            f"(CSV: the line {','.join(c.name for c in schema.columns if c.required)})")
    if path.name.endswith(PARQUET_SUFFIX):
        return _with_schema_columns(_read_parquet(path, schema), schema)
    text, header, lines = _csv_text(path, schema)
    rows = _plain_csv_rows(text, len(header)) if len(text) <= PLAIN_CSV_MAX_CHARS else None
    if rows is not None:
        return CsvRows(tuple(name.strip() for name in header), rows)
    return _with_schema_columns(_read_csv(path, text, header, lines), schema)


def _with_schema_columns(frame: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    for column in schema.columns:
        if column.name not in frame.columns:
            frame[column.name] = pd.Series([None] * len(frame), index=frame.index, dtype="object")
    return frame[schema.names]


def _csv_frame(parts: list[CsvRows], schema: Schema) -> pd.DataFrame:
    """One frame of the rows of ``parts`` (all with the same header), as ``pandas.read_csv(dtype=str)`` of each
    file joined in order would give: strings, "" missing; then the schema's columns, absent ones null."""
    rows = parts[0].rows if len(parts) == 1 else [row for part in parts for row in part.rows]
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(parts[0].columns)
    frame = pd.DataFrame({name: pd.Series(values, dtype=str).replace("", np.nan)
                          for name, values in zip(parts[0].columns, columns, strict=True)})
    return _with_schema_columns(frame, schema)


def _plain_csv_rows(text: str, width: int) -> list[list[str]] | None:
    """The data rows of a CSV text split on commas, blank lines skipped and short rows padded, as the pandas
    parser reads them; None when the text has anything that parser treats otherwise (quotes, carriage returns,
    other line breaks, lines of blanks, rows wider than the header), which is then left to it."""
    if _NOT_PLAIN.search(text):
        return None
    body = text.split("\n")[1:]
    rows = []
    for line in body:
        if not line:
            continue
        if line.isspace():
            return None
        fields = line.split(",")
        if len(fields) != width:
            if len(fields) > width:
                return None
            fields += [""] * (width - len(fields))
        rows.append(fields)
    return rows


def _csv_text(path: Path, schema: Schema) -> tuple[str, list[str], int]:
    """The text of a CSV landing file, its header and its number of lines, once its bytes decode, the header
    parses and names the schema's columns (else the error naming the file)."""
    data = path.read_bytes()
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise UnreadableFileError(_decode_problem(path, data, err, lines)) from None
    if not text.strip():
        raise UnreadableFileError(f"{path}: no header line (only blank lines, 0 rows)")
    header = next(csv.reader(io.StringIO(text.splitlines()[0])))
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise SchemaDriftError(f"{path}: duplicate column(s) {duplicates} in the header {header}")
    schema.check_columns([name.strip() for name in header] if header else [], str(path))
    return text, header, lines


def _read_csv(path: Path, text: str, header: list[str], lines: int) -> pd.DataFrame:
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_values=[""])
    except pd.errors.ParserError as err:
        raise UnreadableFileError(_csv_problem(path, text, header, err, lines)) from None
    except (pd.errors.EmptyDataError, ValueError) as err:
        raise UnreadableFileError(f"{path}: not parseable as CSV ({lines} lines): {err}") from None
    frame.columns = [str(name).strip() for name in frame.columns]
    return frame


def _decode_problem(path: Path, data: bytes, err: UnicodeDecodeError, lines: int) -> str:
    line = data.count(b"\n", 0, err.start) + 1
    start = data.rfind(b"\n", 0, err.start) + 1
    header = data.split(b"\n", 1)[0].decode("utf-8", "replace").strip().split(",")
    field = data[start:err.start].count(b",")
    where = f"column {header[field]!r}" if line > 1 and field < len(header) else f"field {field + 1}"
    hint = ("it starts with a UTF-16 byte-order mark" if data[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
            else "another encoding (e.g. Latin-1 or Windows-1252), or not text at all")
    return (f"{path}: not UTF-8 text: byte 0x{data[err.start]:02x} at line {line}, {where} "
            f"({lines} lines in the file; {hint}); landing CSV must be UTF-8, with or without a BOM")


def _csv_problem(path: Path, text: str, header: list[str], err: Exception, lines: int) -> str:
    ragged = []
    try:
        for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
            if number > 1 and row and len(row) > len(header):
                ragged.append((number, len(row)))
    except csv.Error:
        pass
    if ragged:
        shown = ", ".join(f"line {n} has {k}" for n, k in ragged[:5])
        return (f"{path}: not parseable as CSV: {len(ragged)} row(s) have more fields than the "
                f"{len(header)} columns of the header ({shown}): an unquoted separator inside a field? "
                f"Quote such fields (\"a,b\"). {lines} lines in the file")
    return f"{path}: not parseable as CSV ({lines} lines): {str(err).strip()} (an unbalanced quote?)"


# Parquet types each kind of column accepts; anything else is UnsupportedTypeError.
PARQUET_TYPES = {
    "key": "string, or integer ids (read as their decimal text)",
    "str": "string",
    "float": "integer, floating point, decimal or string",
    "date": "date, timestamp or string",
    "timestamp": "timestamp (with or without a time zone; naive is UTC), date, integer/float epoch, or string",
    "vector": "list of numbers, or a string of space-separated numbers",
}


def _read_parquet(path: Path, schema: Schema) -> pd.DataFrame:
    try:
        table = pq.read_table(str(path))
    except pa.ArrowInvalid as err:
        raise UnreadableFileError(f"{path}: not a readable Parquet file: {err}") from None
    except OSError as err:
        if err.errno is not None:  # the disk or the file system: worth a retry
            raise
        raise UnreadableFileError(f"{path}: not a readable Parquet file: {err}") from None
    names = table.column_names
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise SchemaDriftError(f"{path}: duplicate column(s) {duplicates}")
    schema.check_columns(names, str(path))
    out = {}
    for column in schema.columns:
        if column.name in names:
            out[column.name] = _arrow_to_series(table.column(column.name), column, path, table.num_rows)
    return pd.DataFrame(out, index=pd.RangeIndex(table.num_rows))


def _arrow_to_series(array: pa.ChunkedArray, column: Column, path: Path, n_rows: int) -> pd.Series:
    kind, kind_type = column.kind, array.type
    if pa.types.is_dictionary(kind_type):
        kind_type = kind_type.value_type
        array = pa.chunked_array([chunk.dictionary_decode() for chunk in array.chunks], type=kind_type)
    is_text = pa.types.is_string(kind_type) or pa.types.is_large_string(kind_type)
    is_int = pa.types.is_integer(kind_type)
    is_number = is_int or pa.types.is_floating(kind_type) or pa.types.is_decimal(kind_type)
    is_time = pa.types.is_timestamp(kind_type) or pa.types.is_date(kind_type)
    if pa.types.is_null(kind_type):
        return pd.Series([None] * n_rows, dtype="object")
    if kind in ("key", "str") and (is_text or (kind == "key" and is_int)):
        return pd.Series(array.cast(pa.string()).to_pylist(), dtype="object")
    if kind == "float" and (is_number or is_text):
        return array.cast(pa.float64()).to_pandas() if is_number else pd.Series(array.to_pylist(), dtype="object")
    if kind in ("date", "timestamp") and (is_time or is_text or (kind == "timestamp" and is_number)):
        if is_time:
            if pa.types.is_date(kind_type):
                array = array.cast(pa.timestamp("s"))
            unit_type = array.type
            # microseconds since the epoch, UTC (naive timestamps are UTC): no nanosecond overflow
            micros = array.cast(pa.timestamp(unit_type.unit, tz=unit_type.tz)).cast(pa.int64())
            factor = {"s": 1_000_000, "ms": 1_000, "us": 1, "ns": 0.001}[unit_type.unit]
            values = pd.Series(micros.to_numpy(zero_copy_only=False), dtype="float64") * factor
            stamps = pd.to_datetime(values.where(values.abs() < 9.2e15), unit="us", utc=True)
            return stamps
        return pd.Series(array.to_pylist(), dtype="object")
    if kind == "vector" and (is_text or ((pa.types.is_list(kind_type) or pa.types.is_large_list(kind_type)
                                           or pa.types.is_fixed_size_list(kind_type))
                                          and (pa.types.is_integer(kind_type.value_type)
                                               or pa.types.is_floating(kind_type.value_type)
                                               or pa.types.is_decimal(kind_type.value_type)))):
        return pd.Series(array.to_pylist(), dtype="object")
    raise UnsupportedTypeError(
        f"{path}: column {column.name!r} has Parquet type {array.type}, which a {kind} column does not accept "
        f"({n_rows} rows; accepted: {PARQUET_TYPES[kind]})")


# Row validation ----------------------------------------------------------------------------------
# Ids that upstream systems write when the id is missing; compared case-insensitively after stripping.
PLACEHOLDER_IDS = frozenset({"null", "none", "nan", "na", "n/a", "#n/a", "nil", "undefined", "unknown",
                             "missing", "-", "--", "?", "-1", "<null>", "(null)"})
# An epoch column is read in milliseconds when the median of its numbers is at least 1e11 (in seconds
# that is the year 5138; in milliseconds 1973), else in seconds.
EPOCH_MS_THRESHOLD = 1e11
# What fits datetime64[ns] (the staged dtype), with a margin
_MIN_TIME = pd.Timestamp("1678-01-01", tz="UTC")
_MAX_TIME = pd.Timestamp("2262-01-01", tz="UTC")


def validate_rows(frame: pd.DataFrame, schema: Schema) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Coerce each column to its kind and split rows into (valid, rejected).

    The rejected frame keeps the raw values as strings plus ``reject_reason`` (the first failed
    check, e.g. ``"user_id: null"`` or ``"value: not a number or out of range"``).
    """
    return _validate(frame, schema, None)[:2]


def validate_joined(frames: list[pd.DataFrame | CsvRows],
                    schema: Schema) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray, np.ndarray]:
    """``validate_rows`` of each frame (one per landing file, as ``read_landing_file`` or ``read_landing_raw``
    gives it), joined in frame order: the valid rows, the rejected rows, and the frame of each valid and each
    rejected row. The rows of frame ``i`` are those of its own ``validate_rows``, but the frames are validated in
    one pass per run of frames with the same column types (consecutive ``CsvRows`` with the same header make one
    frame), without paying pandas' per-call cost for each of thousands of small files. Every check is row by row
    except the epoch unit of number timestamps, which is still chosen per frame."""
    pieces = []  # (frame, the file of each row)
    start = 0
    while start < len(frames):
        stop = start + 1
        if isinstance(frames[start], CsvRows):
            while (stop < len(frames) and isinstance(frames[stop], CsvRows)
                   and frames[stop].columns == frames[start].columns):
                stop += 1
            frame = _csv_frame(frames[start:stop], schema)
        else:
            frame = frames[start]
        pieces.append((frame, np.repeat(np.arange(start, stop), [len(f) for f in frames[start:stop]])))
        start = stop
    parts = []
    start = 0
    while start < len(pieces):
        dtypes = list(pieces[start][0].dtypes)
        stop = start + 1
        while stop < len(pieces) and list(pieces[stop][0].dtypes) == dtypes:
            stop += 1
        groups = np.concatenate([files for _, files in pieces[start:stop]])
        joined = (pd.concat([frame for frame, _ in pieces[start:stop]], ignore_index=True) if stop - start > 1
                  else pieces[start][0])
        relative = groups - groups[0] if len(groups) else groups  # small ids, for the epoch unit per file
        valid, rejected, bad = _validate(joined.reset_index(drop=True), schema, relative)
        parts.append((valid, rejected, groups[~bad], groups[bad]))
        start = stop
    if not parts:
        valid, rejected, _ = _validate(pd.DataFrame({c: pd.Series([], dtype=object) for c in schema.names}),
                                       schema, None)
        return valid, rejected, np.zeros(0, np.int64), np.zeros(0, np.int64)
    if len(parts) == 1:
        return parts[0]
    return (pd.concat([p[0] for p in parts], ignore_index=True), pd.concat([p[1] for p in parts], ignore_index=True),
            np.concatenate([p[2] for p in parts]), np.concatenate([p[3] for p in parts]))


def _validate(frame: pd.DataFrame, schema: Schema,
              groups: np.ndarray | None) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """``validate_rows``, plus the rejected-row mask; ``groups`` (one id per row) are the frames whose
    number timestamps each get their own epoch unit."""
    reasons = pd.Series(None, index=frame.index, dtype="object")
    clean = {}
    for column in schema.columns:
        if column.kind == "timestamp":
            values, problems = _coerce_timestamp(frame[column.name], column, groups)
        else:
            values, problems = _COERCE[column.kind](frame[column.name], column)
        fresh = problems.notna() & reasons.isna()
        if fresh.any():
            reasons = reasons.where(~fresh, column.name + ": " + problems.astype("object"))
        clean[column.name] = values
    valid = pd.DataFrame(clean, index=frame.index)
    rejected_mask = reasons.notna()
    rejected = as_text(frame.loc[rejected_mask]).assign(reject_reason=reasons[rejected_mask].astype("string"))
    return (valid.loc[~rejected_mask].reset_index(drop=True), rejected.reset_index(drop=True),
            rejected_mask.to_numpy())


def as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Every column as nullable strings (lists as space-separated numbers): how rejected rows are kept."""
    out = {}
    for name in frame.columns:
        column = frame[name]
        if column.dtype == object:
            column = column.map(lambda v: " ".join(str(x) for x in v) if isinstance(v, (list, np.ndarray))
                                else v)
        out[name] = column.astype("string")
    return pd.DataFrame(out, index=frame.index)


def _problems(index: pd.Index) -> pd.Series:
    return pd.Series(None, index=index, dtype="object")


def _null_mask(raw: pd.Series) -> pd.Series:
    if raw.dtype != object and not pd.api.types.is_string_dtype(raw.dtype):
        return raw.isna()
    return raw.isna() | (raw.astype("string").str.strip() == "").fillna(False).astype(bool)


def _with_null(problems: pd.Series, null: pd.Series, column: Column) -> pd.Series:
    if not column.nullable:
        problems = problems.where(~null, "null")
    return problems


def _coerce_key(raw: pd.Series, column: Column) -> tuple[pd.Series, pd.Series]:
    values = raw.astype("string").str.strip()
    null = _null_mask(raw)
    problems = _problems(raw.index)
    placeholder = values.str.lower().isin(PLACEHOLDER_IDS).fillna(False).astype(bool) & ~null
    problems = problems.where(~placeholder, "placeholder for a missing id")
    return values, problems.where(~null, "null")


def _coerce_str(raw: pd.Series, column: Column) -> tuple[pd.Series, pd.Series]:
    values = raw.astype("string").str.strip()
    null = _null_mask(raw)
    values = values.mask(null)
    problems = _problems(raw.index)
    if column.allowed is not None:
        unknown = (~null & ~values.isin(column.allowed).fillna(False)).astype(bool)
        problems = problems.where(~unknown, "not an allowed value")
    return values, _with_null(problems, null, column)


def _coerce_float(raw: pd.Series, column: Column) -> tuple[pd.Series, pd.Series]:
    null = _null_mask(raw)
    values = pd.to_numeric(raw, errors="coerce").astype("float64")
    bad = pd.Series(~null.to_numpy() & ~np.isfinite(values.to_numpy(dtype="float64", na_value=np.nan)),
                    index=raw.index)
    if column.min_value is not None:
        below = values <= column.min_value if column.min_exclusive else values < column.min_value
        bad = bad | below.fillna(False)
    if column.max_value is not None:
        bad = bad | (values > column.max_value).fillna(False)
    problems = _problems(raw.index).where(~bad.astype(bool), "not a number or out of range")
    return values, _with_null(problems, null, column)


def _coerce_date(raw: pd.Series, column: Column) -> tuple[pd.Series, pd.Series]:
    null = _null_mask(raw)
    if pd.api.types.is_datetime64_any_dtype(raw.dtype):
        values = raw.dt.tz_convert("UTC") if raw.dt.tz is not None else raw.dt.tz_localize("UTC")
    else:
        values = pd.to_datetime(raw.astype("string"), errors="coerce", format="ISO8601", utc=True)
    values = values.where((values >= _MIN_TIME) & (values < _MAX_TIME))
    values = values.dt.tz_localize(None).dt.normalize().astype("datetime64[ns]")
    problems = _problems(raw.index).where(~(values.isna() & ~null), "not a date")
    return values, _with_null(problems, null, column)


def epoch_unit(numbers: pd.Series) -> str:
    """``"ms"`` when the median of the (finite) numbers is at least ``EPOCH_MS_THRESHOLD``, else ``"s"``."""
    finite = numbers[np.isfinite(numbers.to_numpy(dtype="float64", na_value=np.nan))]
    return "ms" if len(finite) and float(finite.abs().median()) >= EPOCH_MS_THRESHOLD else "s"


def parse_timestamps(raw: pd.Series, groups: np.ndarray | None = None) -> tuple[pd.Series, pd.Series]:
    """Timestamps as the pipeline reads them, as UTC ``datetime64[ns, UTC]`` with NaT where unreadable,
    and a reason for each unreadable non-null value (None elsewhere).

    Native timestamps are kept (naive ones are UTC); numbers are seconds or milliseconds since the
    epoch, the unit chosen once per column by ``epoch_unit``; text is ISO-8601 with any UTC offset
    (naive text is UTC). Values outside 1678..2261 are ``outside the supported range``. ``groups`` (one id
    per value) splits the column into parts that each get their own epoch unit (the landing files of a batch).
    """
    null = _null_mask(raw)
    problems = _problems(raw.index)
    if pd.api.types.is_datetime64_any_dtype(raw.dtype):
        values = raw.dt.tz_convert("UTC") if raw.dt.tz is not None else raw.dt.tz_localize("UTC")
    else:
        text = raw.astype("string").str.strip()
        numeric = pd.to_numeric(text.where(~null), errors="coerce").astype("float64")
        is_number = numeric.notna()
        seconds = numeric / _epoch_divisor(numeric, is_number, groups)
        in_range = seconds.between(_MIN_TIME.timestamp(), _MAX_TIME.timestamp())
        as_epoch = pd.to_datetime(seconds.where(in_range), unit="s", utc=True)
        as_text = pd.to_datetime(text.where(~is_number & ~null), utc=True, errors="coerce", format="ISO8601")
        values = as_epoch.where(is_number, as_text)
        problems = problems.where(~(is_number & ~in_range), "outside the supported range (an epoch in another unit?)")
    out_of_range = values.notna() & ~((values >= _MIN_TIME) & (values < _MAX_TIME))
    problems = problems.where(~(out_of_range & problems.isna()), "outside the supported range")
    values = values.where(~out_of_range).astype("datetime64[ns, UTC]")
    problems = problems.where(~(values.isna() & ~null & problems.isna()), "not a timestamp")
    return values, problems


def _epoch_divisor(numeric: pd.Series, is_number: pd.Series, groups: np.ndarray | None) -> float | np.ndarray:
    """1000 where ``epoch_unit`` of the numbers (of each group's numbers) says milliseconds, else 1."""
    if groups is None:
        return 1000.0 if epoch_unit(numeric[is_number]) == "ms" else 1.0
    numbers = numeric[is_number]
    finite = np.isfinite(numbers.to_numpy(dtype="float64", na_value=np.nan))
    medians = numbers[finite].abs().groupby(groups[is_number.to_numpy()][finite]).median()
    in_ms = np.zeros(int(groups.max()) + 1 if len(groups) else 0, dtype=bool)
    in_ms[medians.index.to_numpy(dtype="int64")] = medians.to_numpy() >= EPOCH_MS_THRESHOLD
    return np.where(in_ms[groups], 1000.0, 1.0)


def _coerce_timestamp(raw: pd.Series, column: Column,
                      groups: np.ndarray | None = None) -> tuple[pd.Series, pd.Series]:
    values, problems = parse_timestamps(raw, groups)
    return values, _with_null(problems, _null_mask(raw), column)


def _coerce_vector(raw: pd.Series, column: Column) -> tuple[pd.Series, pd.Series]:
    out: list[list[float] | None] = []
    problems: list[str | None] = []
    for value in raw.tolist():
        missing = value is None or (isinstance(value, float) and np.isnan(value))
        if missing or (isinstance(value, str) and not value.strip()):
            out.append(None)
            problems.append(None if column.nullable else "null")
            continue
        try:
            if isinstance(value, str):  # "0.1 0.2", "0.1,0.2" or "[0.1, 0.2]"
                value = value.strip().removeprefix("[").removesuffix("]").replace(",", " ").split()
            vec = np.asarray(value, dtype="float32")
            ok = vec.ndim == 1 and vec.size > 0 and bool(np.isfinite(vec).all())
        except (TypeError, ValueError):
            vec, ok = None, False
        out.append(vec.tolist() if ok else None)
        problems.append(None if ok else "not a vector of numbers")
    return (pd.Series(out, index=raw.index, dtype="object"),
            pd.Series(problems, index=raw.index, dtype="object"))


_COERCE: dict[str, Callable[[pd.Series, Column], tuple[pd.Series, pd.Series]]] = {
    "key": _coerce_key,
    "str": _coerce_str,
    "float": _coerce_float,
    "date": _coerce_date,
    "timestamp": _coerce_timestamp,
    "vector": _coerce_vector,
}
