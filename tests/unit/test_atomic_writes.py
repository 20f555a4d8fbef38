"""Every write is atomic: a full disk in the middle of a write leaves the previous file or folder
as it was and no temporary file behind (JSON, Parquet, model artefacts)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fusion_tasks.models.base import BaseRecommender
from fusion_tasks.storage import read_json, read_parquet, replace_folder, write_json, write_parquet


def disk_full(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


class Tiny(BaseRecommender):
    name = "tiny"

    def __init__(self, alpha: float = 1.0) -> None:
        self.alpha = alpha

    def fit(self, data=None) -> Tiny:
        self.weights_ = np.arange(6, dtype="float32") * self.alpha
        self.n_seen_ = 3
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        return np.tile(self.weights_, (len(users), 1))


class TinyWithExtra(Tiny):
    """A model whose extra artefact (like a Keras file) fails halfway."""

    def _save_extra(self, folder: Path) -> None:
        (folder / "weights.h5").write_bytes(b"\x89HDF partial")
        disk_full()


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_full_disk_during_savez_keeps_the_previous_model(tmp_path, monkeypatch):
    folder = tmp_path / "models" / "tiny" / "origin=final"
    Tiny(alpha=1.0).fit().save(folder)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    def truncated_savez(path, **arrays):
        Path(path).write_bytes(b"PK\x03\x04 truncated")  # what a full disk leaves
        disk_full()

    monkeypatch.setattr(np, "savez", truncated_savez)
    with pytest.raises(OSError, match="No space left"):
        Tiny(alpha=2.0).fit().save(folder)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert leftovers(folder.parent) == []
    assert Tiny.load(folder).weights_.tolist() == [0, 1, 2, 3, 4, 5]


def test_full_disk_during_the_first_save_leaves_no_folder(tmp_path):
    folder = tmp_path / "models" / "tiny" / "origin=test"
    with pytest.raises(OSError):
        TinyWithExtra().fit().save(folder)
    assert not folder.exists()
    assert leftovers(folder.parent) == []


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("failure", ["extra_artefact", "sync"])
def test_a_failure_mid_save_keeps_the_previous_model_and_leaves_no_partial_folder(tmp_path, monkeypatch, failure):
    """Fails after every array and parameter of the new model is written: in its extra artefact (a Keras
    file, say), or when the new folder is synced to disk (EIO)."""
    folder = tmp_path / "models" / "tiny" / "ds=2024-04-29" / "origin=final"
    Tiny(alpha=1.0).fit().save(folder)
    before = snapshot(folder)
    if failure == "sync":
        real_fsync = os.fsync

        def failing_fsync(fd: int) -> None:
            if os.readlink(f"/proc/self/fd/{fd}").endswith(".tmp"):  # the new folder, not the parent
                raise OSError(errno.EIO, "Input/output error")
            real_fsync(fd)

        monkeypatch.setattr(os, "fsync", failing_fsync)
        model = Tiny(alpha=2.0).fit()
    else:
        model = TinyWithExtra(alpha=2.0).fit()
    with pytest.raises(OSError):
        model.save(folder)
    assert snapshot(folder) == before
    assert sorted(p.name for p in folder.parent.iterdir()) == ["origin=final"]
    assert Tiny.load(folder).weights_.tolist() == [0, 1, 2, 3, 4, 5]


def test_a_saved_folder_is_synced_before_it_is_renamed_into_place(tmp_path, monkeypatch):
    """Every file of the new folder and the folder itself reach the disk before the rename that makes it
    visible, and the parent (the rename) after it."""
    events: list[tuple[str, str]] = []
    real_fsync, real_rename = os.fsync, os.rename

    def fsync(fd: int) -> None:
        events.append(("fsync", Path(os.readlink(f"/proc/self/fd/{fd}")).name))
        real_fsync(fd)

    def rename(src, dst) -> None:
        events.append(("rename", Path(dst).name))
        real_rename(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "rename", rename)
    folder = tmp_path / "origin=final"
    Tiny().fit().save(folder)
    into_place = events.index(("rename", "origin=final"))
    synced = {name for kind, name in events[:into_place] if kind == "fsync"}
    assert {"params.json", "state.npz"} <= synced
    assert any(name.startswith(".origin=final.") and name.endswith(".tmp") for name in synced)
    assert ("fsync", tmp_path.name) in events[into_place:]


def test_save_replaces_the_folder_as_a_whole(tmp_path):
    folder = tmp_path / "m"
    Tiny(alpha=1.0).fit().save(folder)
    (folder / "stale.bin").write_bytes(b"from an older version")
    Tiny(alpha=3.0).fit().save(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["params.json", "state.npz"]
    assert Tiny.load(folder).weights_.tolist() == [0, 3, 6, 9, 12, 15]
    assert leftovers(tmp_path) == []


def test_full_disk_during_json_and_parquet_writes_keeps_the_previous_file(tmp_path, monkeypatch):
    path_json = write_json(tmp_path / "manifest.json", {"v": 1})
    path_pq = write_parquet(pd.DataFrame({"a": [1, 2]}), tmp_path / "data.parquet")

    def partial_dump(self, path, *args, **kwargs):
        Path(path).write_bytes(b"PAR1 partial")
        disk_full()

    monkeypatch.setattr(pd.DataFrame, "to_parquet", partial_dump)
    with pytest.raises(OSError):
        write_parquet(pd.DataFrame({"a": [3]}), path_pq)
    monkeypatch.setattr(Path, "write_text", lambda self, text: (open(self, "w").write(text[:3]), disk_full()))
    with pytest.raises(OSError):
        write_json(path_json, {"v": 2})
    monkeypatch.undo()
    assert read_json(path_json) == {"v": 1}
    assert read_parquet(path_pq)["a"].tolist() == [1, 2]
    assert leftovers(tmp_path) == []


def test_replace_folder_keeps_the_old_folder_when_the_writer_fails(tmp_path):
    folder = tmp_path / "out"
    replace_folder(folder, lambda f: (f / "a.txt").write_text("old"))

    def failing(f: Path) -> None:
        (f / "a.txt").write_text("new, partial")
        disk_full()

    with pytest.raises(OSError):
        replace_folder(folder, failing)
    assert (folder / "a.txt").read_text() == "old"
    assert leftovers(tmp_path) == []
