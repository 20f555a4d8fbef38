"""Plain CSV landing files are split on commas instead of going through ``pandas.read_csv`` each: the same frame
and the same validation, file by file and joined, and anything that parser reads otherwise is still left to it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fusion_tasks import schemas
from fusion_tasks.modalities import behavior, content
from fusion_tasks.schemas import CsvRows, read_landing_file, read_landing_raw, validate_joined

HEADER = "user_id,item_id,event_type,value,timestamp\n"
PLAIN = {
    "rows": HEADER + "u1,i1,view,1,2024-01-01T10:00:00Z\nu2,i2,rating,4.5,1704067200\n",
    "no final newline": HEADER + "u1,i1,view,1,2024-01-01T10:00:00Z",
    "blank lines": HEADER + "\nu1,i1,view,1,2024-01-01\n\n\nu2,i2,click,,2024-01-02\n\n",
    "short rows and empty fields": HEADER + "u1,i1\n,,,,\nu3,,view\n u4 , i4 ,view, 2 ,2024-01-03 \n",
    "header only": HEADER,
    "bad values": HEADER + "u1,i1,teleport,x,yesterday\nu2,i2,view,-1,1704067200000\n",
    "columns in another order, spaced": " timestamp , value,item_id ,user_id,event_type\n2024-01-01,1,i1,u1,view\n",
}
NOT_PLAIN = {
    "quotes": HEADER + 'u1,"i,1",view,1,2024-01-01\n',
    "carriage returns": HEADER.replace("\n", "\r\n") + "u1,i1,view,1,2024-01-01\r\n",
    "a form feed": HEADER + "u1,i1\x0c,view,1,2024-01-01\n",
    "a line of blanks": HEADER + "   \nu1,i1,view,1,2024-01-01\n",
    "a row wider than the header": HEADER + "u1,i1,view,1,2024-01-01,extra\n",
    "a large file": HEADER + "u1,i1,view,1,2024-01-01\n" * (schemas.PLAIN_CSV_MAX_CHARS // 20),
}


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / f"{len(list(tmp_path.iterdir()))}-{''.join(c if c.isalnum() else '_' for c in name)}.csv"
    path.write_text(text, encoding="utf-8")
    return path


def by_pandas(path: Path, monkeypatch: pytest.MonkeyPatch) -> pd.DataFrame:
    with monkeypatch.context() as patched:
        patched.setattr(schemas, "_plain_csv_rows", lambda text, width: None)
        return read_landing_file(path, behavior.SCHEMA)


@pytest.mark.parametrize("name", sorted(PLAIN))
def test_a_plain_file_reads_as_pandas_reads_it(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, name, PLAIN[name])
    assert isinstance(read_landing_raw(path, behavior.SCHEMA), CsvRows)
    pd.testing.assert_frame_equal(read_landing_file(path, behavior.SCHEMA), by_pandas(path, monkeypatch))


@pytest.mark.parametrize("name", sorted(NOT_PLAIN))
def test_what_pandas_reads_otherwise_is_left_to_it(name: str, tmp_path: Path) -> None:
    assert isinstance(read_landing_raw(write(tmp_path, name, NOT_PLAIN[name]), behavior.SCHEMA), pd.DataFrame)


def test_files_validated_joined_as_one_frame_equal_each_file_validated_alone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs of plain files (two headers among them), a file left to pandas between them, and epoch units that
    differ by file (seconds in one, milliseconds in another): the same rows, reasons and files of rows."""
    texts = [PLAIN["rows"], PLAIN["bad values"], NOT_PLAIN["quotes"], PLAIN["blank lines"],
             PLAIN["columns in another order, spaced"], PLAIN["header only"], PLAIN["short rows and empty fields"],
             HEADER + "u9,i9,view,1,1704067200000\n"]
    paths = [write(tmp_path, f"{i}", text) for i, text in enumerate(texts)]
    raw = [read_landing_raw(path, behavior.SCHEMA) for path in paths]
    assert sum(isinstance(r, CsvRows) for r in raw) == len(texts) - 1
    fast = validate_joined(raw, behavior.SCHEMA)
    slow = validate_joined([by_pandas(path, monkeypatch) for path in paths], behavior.SCHEMA)
    for got, expected in zip(fast[:2], slow[:2], strict=True):
        pd.testing.assert_frame_equal(got, expected)
    for got, expected in zip(fast[2:], slow[2:], strict=True):
        np.testing.assert_array_equal(got, expected)
    assert set(fast[1]["item_id"].dropna()) >= {"i1", "i2"}  # the bad values were rejected, not dropped


def test_plain_content_files_with_their_optional_columns_or_without(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Absent optional columns are null, as pandas' path makes them; joined with files that have them."""
    texts = ["item_id,valid_from,category,tags\ni1,2024-01-01,Games,a:1|b:2\ni2,2024-01-01,,\n",
             "item_id,valid_from,category,brand,price,tags,embedding\ni3,2024-01-02,Toys,acme,9.5,,0.1 0.2\n",
             "item_id,valid_from,category\ni4,2024-01-03,Books\n"]
    paths = [write(tmp_path, f"content {i}", text) for i, text in enumerate(texts)]
    raw = [read_landing_raw(path, content.SCHEMA) for path in paths]
    assert all(isinstance(r, CsvRows) for r in raw)
    with monkeypatch.context() as patched:
        patched.setattr(schemas, "_plain_csv_rows", lambda text, width: None)
        expected = [read_landing_file(path, content.SCHEMA) for path in paths]
    for path, frame in zip(paths, expected, strict=True):
        pd.testing.assert_frame_equal(read_landing_file(path, content.SCHEMA), frame)
    fast, slow = validate_joined(raw, content.SCHEMA), validate_joined(expected, content.SCHEMA)
    pd.testing.assert_frame_equal(fast[0], slow[0])
    np.testing.assert_array_equal(fast[2], slow[2])
