"""The landing cache of ``Modality.extract`` gives the same staged history as a cold read, whatever
dates ran before, and notices a changed file."""

from __future__ import annotations

import datetime as dt
import os
import shutil

import pandas as pd

from fusion_tasks.config import RunConfig
from fusion_tasks.modalities import REGISTRY
from fusion_tasks.storage import DataRoot
from fusion_tasks.synthetic import SyntheticSpec, generate

SPEC = SyntheticSpec(n_days=40, n_users=60, n_items=80, malformed_rows_per_day=1.0)


def staged(root: DataRoot, day: dt.date) -> dict[str, tuple[pd.DataFrame, pd.DataFrame, dict]]:
    out = {}
    for name, modality in REGISTRY.items():
        manifest = modality.extract(root, RunConfig(as_of_date=day, data_root=root.root, max_quarantine_share=1.0))
        manifest = {k: v for k, v in manifest.items() if k not in ("drift", "staged_path", "quarantine_path")}
        out[name] = (pd.read_parquet(root.staged(name, day)), pd.read_parquet(root.quarantine(name, day)), manifest)
    return out


def assert_same(a, b) -> None:
    for name in a:
        pd.testing.assert_frame_equal(a[name][0], b[name][0], check_exact=True)
        pd.testing.assert_frame_equal(a[name][1], b[name][1], check_exact=True)
        assert a[name][2] == b[name][2]


def test_warm_cache_in_any_date_order_equals_a_cold_read(tmp_path):
    warm = DataRoot(tmp_path / "warm")
    generate(warm, SPEC)
    last = SPEC.start + dt.timedelta(days=SPEC.n_days - 1)
    early = SPEC.start + dt.timedelta(days=20)
    staged(warm, last)  # the cache now holds every file, also those after `early`
    warm_early = staged(warm, early)
    cold = DataRoot(tmp_path / "cold")
    shutil.copytree(warm.root / "landing", cold.root / "landing")
    assert_same(warm_early, staged(cold, early))
    assert (warm.root / "staged" / "_cache" / "behavior" / "index.json").is_file()


def test_a_rewritten_landing_file_is_read_again(tmp_path):
    root = DataRoot(tmp_path)
    generate(root, SPEC)
    day = SPEC.start + dt.timedelta(days=SPEC.n_days - 1)
    before = staged(root, day)
    path = root.landing_files("behavior")[-1][1]
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame = pd.concat([frame, frame.iloc[:1]], ignore_index=True)
    frame.to_csv(path, index=False)
    os.utime(path, ns=(1, 1))
    after = staged(root, day)
    assert after["behavior"][2]["rows_read"] == before["behavior"][2]["rows_read"] + 1


def test_a_file_replaced_with_the_same_size_and_mtime_is_read_again(tmp_path):
    """Re-deliveries that preserve size and mtime (``cp -p``, ``rsync -t``) still invalidate the cache."""
    root = DataRoot(tmp_path)
    generate(root, SPEC)
    day = SPEC.start + dt.timedelta(days=SPEC.n_days - 1)
    staged(root, day)
    path = root.landing_files("behavior")[-1][1]
    stat = path.stat()
    lines = path.read_text().split("\n")
    row = next(i for i, line in enumerate(lines[1:], 1) if line.startswith("u"))  # a well-formed row
    user = lines[row].split(",")[0]
    lines[row] = lines[row].replace(user, "x" * len(user), 1)  # same length, another user
    replacement = path.with_name(".replacement.csv")
    replacement.write_text("\n".join(lines))
    os.utime(replacement, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    os.replace(replacement, path)
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (stat.st_size, stat.st_mtime_ns)
    after = pd.read_parquet(root.staged("behavior", day))
    assert "x" * len(user) not in set(after["user_id"])  # not yet re-extracted
    after = staged(root, day)["behavior"][0]
    assert "x" * len(user) in set(after["user_id"])
