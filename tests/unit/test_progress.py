"""Progress lines: count, share, elapsed time and time left, throttled to one line per interval."""

from __future__ import annotations

import io

from fusion_tasks.progress import Progress, format_seconds


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_lines_carry_count_share_and_an_estimate_of_the_time_left():
    clock, out = Clock(), io.StringIO()
    progress = Progress(8, "dates", label="bench.quality", stream=out, min_interval=0, clock=clock)
    clock.now += 420
    progress.advance(detail="2009-01-01 done")
    clock.now += 420
    progress.advance()
    lines = out.getvalue().splitlines()
    assert lines[0] == "bench.quality: 1/8 dates (12%), 7m00s elapsed, about 49m00s left (2009-01-01 done)"
    assert lines[1] == "bench.quality: 2/8 dates (25%), 14m00s elapsed, about 42m00s left"


def test_lines_are_throttled_but_the_first_and_last_always_show():
    clock, out = Clock(), io.StringIO()
    progress = Progress(1000, "days", label="ciao behavior", stream=out, min_interval=10, clock=clock)
    for _ in range(1000):
        clock.now += 0.1  # 100 s in all: the first line, one every 10 s, the last
        progress.advance()
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("ciao behavior: 1/1000 days (0%)")
    assert lines[-1] == "ciao behavior: 1000/1000 days (100%), 1m40s elapsed, done"
    assert 9 <= len(lines) <= 12


def test_format_seconds():
    assert [format_seconds(s) for s in (0, 42, 185, 7440)] == ["0s", "42s", "3m05s", "2h04m"]
