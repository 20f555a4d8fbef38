"""Progress lines for long loops: count, share, elapsed time and an estimate of the time left.

    progress = Progress(len(dates), "dates", label="bench")
    for day in dates:
        ...
        progress.advance(detail=str(day))

prints lines such as ``bench: 3/8 dates (38%), 21m04s elapsed, about 35m07s left (2010-01-01)`` to
stderr: the first step, then at most one line every ``min_interval`` seconds, and always the last.
The estimate is the mean time per step so far times the steps left.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO


def format_seconds(seconds: float) -> str:
    """``42s``, ``3m05s``, ``2h04m``."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Progress:
    """Counts steps of a loop of known length and reports them (see the module docstring)."""

    def __init__(self, total: int, unit: str, *, label: str = "", stream: TextIO | None = None,
                 min_interval: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.total = max(0, int(total))
        self.unit = unit
        self.label = label
        self.stream = stream
        self.min_interval = min_interval
        self.clock = clock
        self.done = 0
        self.started = clock()
        self._last_report: float | None = None

    def line(self, detail: str = "") -> str:
        """The current progress as one line (without a newline)."""
        elapsed = self.clock() - self.started
        share = f" ({self.done / self.total:.0%})" if self.total else ""
        text = f"{self.label + ': ' if self.label else ''}{self.done}/{self.total} {self.unit}{share}, " \
               f"{format_seconds(elapsed)} elapsed"
        if self.done >= self.total:
            text += ", done"
        elif self.done:
            text += f", about {format_seconds(elapsed / self.done * (self.total - self.done))} left"
        return text + (f" ({detail})" if detail else "")

    def advance(self, steps: int = 1, detail: str = "") -> None:
        """Count ``steps`` more; print a line if it is the first, the last, or ``min_interval`` has passed."""
        self.done = min(self.total, self.done + steps) if self.total else self.done + steps
        now = self.clock()
        due = (self._last_report is None or self.done >= self.total
               or now - self._last_report >= self.min_interval)
        if due:
            self._last_report = now
            stream = self.stream or sys.stderr
            print(self.line(detail), file=stream, flush=True)
