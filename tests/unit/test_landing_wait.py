"""A missing daily landing partition is awaited until the end of D plus landing_wait_hours, then reported."""

from __future__ import annotations

import datetime as dt

from fusion_tasks.config import RunConfig
from fusion_tasks.pipeline import landing_status
from fusion_tasks.storage import DataRoot
from fusion_tasks.synthetic import SyntheticSpec, generate

SPEC = SyntheticSpec(n_days=20, n_users=20, n_items=30)  # 2024-01-01 .. 2024-01-20
LAST = dt.date(2024, 1, 20)


def _status(root: DataRoot, day: dt.date, now: dt.datetime, **kw):
    return landing_status(root, RunConfig(as_of_date=day, data_root=root.root, **kw), now)


def test_a_delivered_date_is_ready(tmp_path):
    root = DataRoot(tmp_path)
    generate(root, SPEC)
    status = _status(root, LAST, dt.datetime(2030, 1, 1, tzinfo=dt.UTC))
    assert status["ready"] and not status["overdue"] and status["missing"] == []


def test_the_day_after_the_data_waits_until_the_deadline(tmp_path):
    root = DataRoot(tmp_path)
    generate(root, SPEC)
    day = LAST + dt.timedelta(days=1)  # what unpausing runs when the data stops at LAST
    folder = str(root.landing_day("behavior", day))
    early = _status(root, day, dt.datetime(2024, 1, 22, 5, 59, tzinfo=dt.UTC), landing_wait_hours=6)
    assert not early["ready"] and not early["overdue"]
    assert early["missing"] == [folder]
    assert early["message"].startswith("waiting for the landing partition of 2024-01-21")
    assert folder in early["message"] and "2024-01-22 06:00 UTC" in early["message"]

    late = _status(root, day, dt.datetime(2024, 1, 22, 6, 0, tzinfo=dt.UTC), landing_wait_hours=6)
    assert late["overdue"] and not late["ready"]
    assert folder in late["message"] and "did not arrive" in late["message"]
    assert "landing_wait_hours=6" in late["message"]


def test_only_daily_modalities_are_awaited(tmp_path):
    """Content and social keep their latest versions: no partition of their own is needed for D."""
    root = DataRoot(tmp_path)
    generate(root, SPEC)
    for modality in ("content", "social"):
        for part in root.landing(modality).iterdir():
            if part.name == f"date={LAST}":
                for file in part.iterdir():
                    file.unlink()
                part.rmdir()
    assert _status(root, LAST, dt.datetime(2030, 1, 1, tzinfo=dt.UTC))["ready"]
