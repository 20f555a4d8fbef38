"""Atomic publication (``storage.publish_version``): SIGKILL at every step, concurrent publishers, readers.

Publishers run in separate processes (``python -c CHILD``) so that a real SIGKILL can land at a chosen
step: the child's writer (or a wrapper around the pointer swap, installed in the child only) creates a
marker file when it reaches the step and then sleeps; the test waits for the marker and kills it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from fusion_tasks import storage
from fusion_tasks.config import PROJECT_ROOT
from fusion_tasks.storage import MANIFEST, DataRoot, publish_version, verify_version

DAY = dt.date(2024, 4, 29)
KINDS = ("recommendations", "metrics")
BLOB_BYTES = 1 << 20

# The publisher run in a child process. argv[1] is a JSON object:
#   root, day, label, mode, marker, repeat (publish that many times), attempt (optional)
# mode: clean | mid_file | after_data | before_swap | mid_swap | after_swap | between_kinds
CHILD = r"""
import datetime as dt, hashlib, json, sys, time
from pathlib import Path
import pandas as pd
from fusion_tasks import storage

args = json.loads(sys.argv[1])
root = storage.DataRoot(args["root"])
day = dt.date.fromisoformat(args["day"])
mode = args["mode"]
marker = Path(args["marker"]) if args.get("marker") else None

def reached():
    if marker is not None:
        marker.write_text("here")
    time.sleep(600)

def blob(label):
    return hashlib.sha256(label.encode()).digest() * (BLOB_BYTES // 32)

def table(label):
    return pd.DataFrame({"label": [label] * 50, "rank": list(range(1, 51)),
                         "blob_sha256": hashlib.sha256(blob(label)).hexdigest()})

BLOB_BYTES = args["blob_bytes"]

def make_writer(kind, label):
    def write(folder):
        table(label).to_parquet(folder / f"{kind}.parquet", index=False)
        data = blob(label)
        with open(folder / "blob.bin", "wb") as handle:
            if mode == "mid_file" and kind == "recommendations":
                handle.write(data[: len(data) // 2])
                handle.flush()
                reached()
            handle.write(data)
        if mode == "after_data" and kind == "recommendations":
            reached()
        if mode == "between_kinds" and kind == "metrics":
            reached()
    return write

if mode == "mid_swap":
    import os
    original_replace = os.replace
    def replace(src, dst):
        if str(src).endswith(".lnk"):
            reached()
        original_replace(src, dst)
    os.replace = replace

if mode in ("before_swap", "after_swap"):
    original = storage._swap_symlink
    def swap(link, target):
        if mode == "before_swap":
            assert (Path(target) / storage.MANIFEST).is_file()
            reached()
        original(link, target)
        reached()
    storage._swap_symlink = swap

for n in range(args.get("repeat", 1)):
    label = args["label"] if args.get("repeat", 1) == 1 else f"{args['label']}-{n}"
    storage.publish_version(root, day, {k: make_writer(k, label) for k in ("recommendations", "metrics")},
                            manifest_extra={"label": label}, attempt=args.get("attempt"))
"""

# The reader run in a child process: argv[1] = {"root", "day", "until" (a file: stop when it exists), "style"}.
READER = r"""
import datetime as dt, json, os, sys, time, hashlib
from pathlib import Path
from fusion_tasks import storage

args = json.loads(sys.argv[1])
root = storage.DataRoot(args["root"])
day = dt.date.fromisoformat(args["day"])
until = Path(args["until"])
reads, missed, problems = 0, 0, []
deadline = time.monotonic() + 60
while not until.exists() and time.monotonic() < deadline:
    for kind in ("recommendations", "metrics"):
        link = root.published(kind, day)
        try:
            if args["style"] == "single_file":
                # one open per file (storage.read_parquet holds one handle): each read resolves the symlink once
                frame = storage.read_parquet(link / f"{kind}.parquet")
                with open(link / "blob.bin", "rb") as handle:
                    data = handle.read()
                labels = set(frame["label"])
                if len(labels) != 1 or len(frame) != 50:
                    problems.append(f"{kind}: torn table {labels} {len(frame)}")
                if len(data) != args["blob_bytes"]:
                    problems.append(f"{kind}: blob of {len(data)} bytes")
            else:
                if not storage.read_published(root, kind, day, storage.verify_version):
                    problems.append(f"{kind}: verify_version False")
        except FileNotFoundError as err:
            # a plain open that walked into a version being replaced: it fails, it never reads a torn file
            if args["style"] != "single_file":
                problems.append(f"{kind}: {type(err).__name__}: {err}")
            missed += 1
        except Exception as err:
            problems.append(f"{kind}: {type(err).__name__}: {err}")
        reads += 1
print(json.dumps({"reads": reads, "missed": missed, "problems": problems[:20], "n_problems": len(problems)}))
"""


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT), env.get("PYTHONPATH", "")])
    return env


def start_publisher(root: DataRoot, label: str, mode: str = "clean", marker: Path | None = None,
                    repeat: int = 1, attempt: str | None = None) -> subprocess.Popen:
    args = {"root": str(root.root), "day": DAY.isoformat(), "label": label, "mode": mode,
            "marker": str(marker) if marker else None, "repeat": repeat, "attempt": attempt,
            "blob_bytes": BLOB_BYTES}
    return subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(args)], env=child_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"publisher exited ({proc.returncode}) before the step: {proc.stderr.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("publisher never reached the step")
        time.sleep(0.01)


def finish(proc: subprocess.Popen, timeout: float = 120.0) -> None:
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert proc.returncode == 0, err


def blob(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest() * (BLOB_BYTES // 32)


def writers(label: str) -> dict:
    """The same writers as the child's, for publishing in this process."""

    def make(kind: str):
        def write(folder: Path) -> None:
            pd.DataFrame({"label": [label] * 50, "rank": list(range(1, 51)),
                          "blob_sha256": hashlib.sha256(blob(label)).hexdigest()}).to_parquet(
                folder / f"{kind}.parquet", index=False)
            (folder / "blob.bin").write_bytes(blob(label))
        return write

    return {kind: make(kind) for kind in KINDS}


def publish(root: DataRoot, label: str) -> dict[str, str]:
    return publish_version(root, DAY, writers(label), manifest_extra={"label": label})


def current(root: DataRoot, kind: str) -> Path:
    link = root.published(kind, DAY)
    assert link.is_symlink(), f"{link} is not a symlink"
    return link.resolve()


def versions(root: DataRoot, kind: str) -> list[Path]:
    return sorted(root.published_versions(kind, DAY).iterdir())


def assert_current_complete(root: DataRoot, kind: str, label: str) -> None:
    folder = current(root, kind)
    assert verify_version(folder), f"{kind}: current version {folder} is not complete"
    assert verify_version(root.published(kind, DAY))
    frame = pd.read_parquet(root.published(kind, DAY) / f"{kind}.parquet")
    assert set(frame["label"]) == {label}
    assert (root.published(kind, DAY) / "blob.bin").read_bytes() == blob(label)
    assert storage.read_json(folder / MANIFEST)["label"] == label


def content_of(folder: Path) -> dict[str, object]:
    """Every file's bytes, and the manifest without the attempt id (which is random per run)."""
    out: dict[str, object] = {}
    for path in sorted(folder.iterdir()):
        if path.name == MANIFEST:
            manifest = storage.read_json(path)
            manifest.pop("attempt")
            out[path.name] = manifest
        else:
            out[path.name] = path.read_bytes()
    return out


@pytest.fixture
def root(tmp_path: Path) -> DataRoot:
    root = DataRoot(tmp_path / "data")
    publish(root, "old")
    return root


@pytest.fixture(scope="module")
def clean_new(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, object]]:
    """The content of a clean publish of ``new`` into an empty root."""
    clean = DataRoot(tmp_path_factory.mktemp("clean"))
    publish(clean, "new")
    return {kind: content_of(current(clean, kind)) for kind in KINDS}


def test_every_path_is_the_documented_layout(tmp_path: Path) -> None:
    """The on-disk layout the README and the module docstring describe, one path per ``DataRoot`` method."""
    root = DataRoot(tmp_path)
    paths = {
        root.landing(): "landing",
        root.landing_day("behavior", DAY): "landing/behavior/date=2024-04-29",
        root.landing_summary("synthetic"): "landing/_synthetic.json",
        root.staged("behavior", DAY): "staged/behavior/ds=2024-04-29/data.parquet",
        root.staged_manifest("behavior", DAY): "staged/behavior/ds=2024-04-29/manifest.json",
        root.landing_cache("social") / storage.CACHE_INDEX_FILE: "staged/_cache/social/index.json",
        root.quarantine("content", DAY): "quarantine/content/ds=2024-04-29/rows.parquet",
        root.features_users(DAY): "features/ds=2024-04-29/users.parquet",
        root.features_items(DAY): "features/ds=2024-04-29/items.parquet",
        root.features_relevance(DAY): "features/ds=2024-04-29/relevance.parquet",
        root.features_manifest(DAY): "features/ds=2024-04-29/manifest.json",
        root.model_dir("als", DAY, "final") / storage.MODEL_PARAMS_FILE:
            "models/als/ds=2024-04-29/origin=final/params.json",
        root.model_dir("als", DAY, "fold1") / storage.MODEL_STATE_FILE:
            "models/als/ds=2024-04-29/origin=fold1/state.npz",
        root.model_manifest("als", DAY): "models/als/ds=2024-04-29/manifest.json",
        root.fused_pool(DAY, "test"): "fused/ds=2024-04-29/pool_origin=test.parquet",
        root.fused_pools(DAY): "fused/ds=2024-04-29/pools.json",
        root.fused_method(DAY, "stacking"): "fused/ds=2024-04-29/stacking.json",
        root.fused_metrics(DAY): "fused/ds=2024-04-29/metrics.json",
        root.fused_gate(DAY): "fused/ds=2024-04-29/gate.json",
        root.fused_recommendations(DAY): "fused/ds=2024-04-29/recommendations.parquet",
        root.published_dir("metrics"): "published/metrics",
        root.recommendations_path(DAY): "published/recommendations/ds=2024-04-29/recommendations.parquet",
        root.metrics_path(DAY): "published/metrics/ds=2024-04-29/metrics.json",
        root.serving_db(): "serving/fusionrec.sqlite",
        root.export_path(DAY): "exports/ds=2024-04-29/recommendations.csv",
    }
    assert [str(path.relative_to(root.root)) for path in paths] == list(paths.values())


def test_publish_layout_and_manifest(root: DataRoot) -> None:
    for kind in KINDS:
        link = root.published(kind, DAY)
        assert link.is_symlink()
        assert not os.path.isabs(os.readlink(link))  # relative: the root can be moved
        [only] = versions(root, kind)
        assert current(root, kind) == only
        manifest = storage.read_json(only / MANIFEST)
        assert manifest["ds"] == DAY.isoformat()
        assert set(manifest["files"]) == {f"{kind}.parquet", "blob.bin"}
        assert manifest["files"]["blob.bin"] == {"bytes": BLOB_BYTES,
                                                 "sha256": hashlib.sha256(blob("old")).hexdigest()}
    assert root.published_dates("recommendations") == [DAY]
    assert root.published_dates("metrics") == [DAY]


def test_verify_version_detects_damage(root: DataRoot) -> None:
    folder = current(root, "recommendations")
    assert verify_version(folder)
    data = bytearray((folder / "blob.bin").read_bytes())
    data[10] ^= 0xFF  # same size, different content
    (folder / "blob.bin").write_bytes(bytes(data))
    assert not verify_version(folder)
    (folder / "blob.bin").write_bytes(blob("old")[:100])
    assert not verify_version(folder)
    (folder / "blob.bin").unlink()
    assert not verify_version(folder)
    with pytest.raises(FileNotFoundError):  # no such version (e.g. replaced meanwhile): ask again
        verify_version(current(root, "metrics").parent / "does-not-exist")
    (current(root, "metrics") / MANIFEST).unlink()
    assert not verify_version(current(root, "metrics"))


@pytest.mark.parametrize("mode", ["mid_file", "after_data", "before_swap"])
def test_sigkill_before_the_swap_keeps_the_previous_version(root: DataRoot, tmp_path: Path, mode: str,
                                                            clean_new: dict) -> None:
    marker = tmp_path / f"{mode}.marker"
    proc = start_publisher(root, "new", mode, marker)
    wait_for(marker, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    # the killed publisher left its staging folder behind, but the old version is still current
    assert len(versions(root, "recommendations")) == 2
    for kind in KINDS:
        assert_current_complete(root, kind, "old")

    # the next publish succeeds (the kernel released the lock) and removes the orphan
    publish(root, "new")
    for kind in KINDS:
        [only] = versions(root, kind)
        assert current(root, kind) == only
        assert_current_complete(root, kind, "new")
        assert content_of(only) == clean_new[kind]


def test_sigkill_mid_swap_leaves_no_orphan_after_a_rerun(root: DataRoot, tmp_path: Path, clean_new: dict) -> None:
    marker = tmp_path / "mid_swap.marker"
    proc = start_publisher(root, "new", "mid_swap", marker)
    wait_for(marker, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    for kind in KINDS:
        assert_current_complete(root, kind, "old")
    publish(root, "new")
    for kind in KINDS:
        [only] = versions(root, kind)
        assert content_of(only) == clean_new[kind]
    leftovers = sorted(p.name for kind in KINDS for p in (root.root / "published" / kind).iterdir()
                       if p.name not in (f"ds={DAY.isoformat()}", ".versions"))
    assert leftovers == []


def test_sigkill_right_after_the_swap_leaves_the_new_version_current(root: DataRoot, tmp_path: Path,
                                                                     clean_new: dict) -> None:
    marker = tmp_path / "after_swap.marker"
    proc = start_publisher(root, "new", "after_swap", marker)
    wait_for(marker, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert_current_complete(root, "recommendations", "new")  # swapped, the old one not yet removed
    assert len(versions(root, "recommendations")) == 2
    assert_current_complete(root, "metrics", "old")
    publish(root, "new")
    for kind in KINDS:
        [only] = versions(root, kind)
        assert content_of(only) == clean_new[kind]


def test_sigkill_between_kinds_leaves_both_kinds_at_the_old_version(root: DataRoot, tmp_path: Path) -> None:
    """Every kind is staged before any link is swapped: killed while writing the second kind, both kinds
    still show the old version (a date's table and metrics switch together), and the next publish
    removes the staged leftovers."""
    marker = tmp_path / "between.marker"
    proc = start_publisher(root, "new", "between_kinds", marker)
    wait_for(marker, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    for kind in KINDS:
        assert_current_complete(root, kind, "old")
        assert len(versions(root, kind)) == 2  # the current one and the killed publisher's staging folder
    assert current(root, "recommendations").name == current(root, "metrics").name  # one version id


def test_rerun_with_the_same_attempt_id_replaces_a_killed_staging_folder(root: DataRoot, tmp_path: Path,
                                                                         clean_new: dict) -> None:
    marker = tmp_path / "mid.marker"
    proc = start_publisher(root, "new", "mid_file", marker, attempt="retry1")
    wait_for(marker, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    half = root.published_versions("recommendations", DAY) / "v-retry1" / "blob.bin"
    assert half.stat().st_size == BLOB_BYTES // 2
    publish_version(root, DAY, writers("new"), manifest_extra={"label": "new"}, attempt="retry1")
    for kind in KINDS:
        [only] = versions(root, kind)
        assert only.name == "v-retry1"
        assert content_of(only) == clean_new[kind]


def test_two_concurrent_publishers_end_with_one_complete_version(tmp_path: Path) -> None:
    root = DataRoot(tmp_path / "data")
    procs = [start_publisher(root, label) for label in ("first", "second", "third")]
    for proc in procs:
        finish(proc)
    for kind in KINDS:
        [only] = versions(root, kind)
        assert current(root, kind) == only
        assert verify_version(only)
        label = storage.read_json(only / MANIFEST)["label"]
        assert label in {"first", "second", "third"}
        assert_current_complete(root, kind, label)
    # both kinds come from the same (last) publisher
    assert (storage.read_json(current(root, "recommendations") / MANIFEST)["label"]
            == storage.read_json(current(root, "metrics") / MANIFEST)["label"])
    leftovers = [p.name for kind in KINDS for p in (root.root / "published" / kind).iterdir()
                 if p.name not in (f"ds={DAY.isoformat()}", ".versions")]
    assert leftovers == []


def run_readers_during_publishes(root: DataRoot, tmp_path: Path, style: str, publishes: int) -> dict:
    stop = tmp_path / f"stop-{style}"
    args = {"root": str(root.root), "day": DAY.isoformat(), "until": str(stop), "style": style,
            "blob_bytes": BLOB_BYTES}
    reader = subprocess.Popen([sys.executable, "-c", READER, json.dumps(args)], env=child_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)  # let the reader import pandas and start looping
    publisher = start_publisher(root, "loop", repeat=publishes)
    try:
        finish(publisher)
    finally:
        stop.write_text("stop")
    out, err = reader.communicate(timeout=120)
    assert reader.returncode == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["reads"] > 20, result
    for kind in KINDS:
        assert len(versions(root, kind)) == 1
        assert_current_complete(root, kind, f"loop-{publishes - 1}")
    return result


def test_single_file_readers_always_see_a_complete_file_during_publishes(root: DataRoot, tmp_path: Path) -> None:
    result = run_readers_during_publishes(root, tmp_path, "single_file", publishes=40)
    assert result["n_problems"] == 0, result["problems"]
    # an open may rarely fail with ENOENT when the old version is removed mid-lookup; that is allowed
    assert result["missed"] <= result["reads"] // 10, result


def test_verify_version_readers_always_see_a_complete_version_during_publishes(root: DataRoot,
                                                                              tmp_path: Path) -> None:
    result = run_readers_during_publishes(root, tmp_path, "verify", publishes=40)
    assert result["n_problems"] == 0, result["problems"]
