"""The quality benchmark on Ciao, one module per step; ``python -m bench.quality`` runs them (see ``__main__``)."""

from __future__ import annotations

import time

from fusion_tasks.config import PROJECT_ROOT

OUT = PROJECT_ROOT / "bench" / "out"  # quality.json and the logs of the DAG runs


def log(message: str) -> None:
    print(f"[bench.quality {time.strftime('%H:%M:%S')}] {message}", flush=True)
