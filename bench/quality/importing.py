"""Step 1: Ciao imported into the benchmark's data root, once per source."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench.quality import log
from fusion_tasks.storage import DataRoot, read_json


def ensure_import(source: Path, root: DataRoot) -> dict[str, Any]:
    """Import Ciao unless the root already holds an import of ``source`` (re-importing rewrites every
    landing file, which would invalidate the extraction cache)."""
    from fusion_tasks.importers.ciao import import_ciao

    summary_path = root.landing_summary("ciao_import")
    if summary_path.is_file():
        summary = read_json(summary_path)
        if summary.get("source") == str(source) and summary.get("until") is None:
            return {"skipped": True, "summary": str(summary_path)}
    t0 = time.perf_counter()
    summary = import_ciao(source, root)
    log(f"imported Ciao into {root.root} ({summary['behavior_events']} events)")
    return {"skipped": False, "seconds": round(time.perf_counter() - t0, 1)}
