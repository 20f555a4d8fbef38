"""The quality benchmark on Ciao: ``python -m bench.quality`` (``make bench-quality``).

1. Imports Ciao (``$FUSION_CIAO_DIR``) into a benchmark data root (``$FUSION_DATA_ROOT/bench-ciao``
   unless ``--root``); skipped when that root already holds an import of the same source.
2. Runs the real DAG for each rolling origin D (``airflow dags test multimodal_fusion D -c CONF``,
   one subprocess per date; ``--runner pipeline`` uses ``fusion_tasks.pipeline.run_all`` instead).
3. Scores, for each D, every list against what each user did for the first time in (D, D+90]:
   the published top-K, each DAG base model's own top-K (final candidate pool), each fusion method
   (fitted parameters applied to the final pool) and the baselines of ``bench.baselines`` (tuned on
   (D-90, D] with data up to D-90, refitted on data up to D). Candidates: items known by D minus
   the user's past items, full ranking.
4. Writes ``BENCHMARKS.md`` and the raw numbers to ``bench/out/quality.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Any

from bench.quality import OUT, log
from bench.quality.importing import ensure_import
from bench.quality.report import markdown, plot_per_origin
from bench.quality.running import CONF, run_date
from bench.quality.scoring import HORIZON_DAYS, aggregate, all_behaviour, evaluate_date
from fusion_tasks.config import PROJECT_ROOT, default_ciao_dir, default_data_root
from fusion_tasks.progress import Progress
from fusion_tasks.storage import DataRoot

DATES = ["2009-01-01", "2009-04-01", "2009-07-01", "2009-10-01",
         "2010-01-01", "2010-04-01", "2010-07-01", "2010-10-01"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.quality", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=None)
    parser.add_argument("--source", type=Path, default=default_ciao_dir())
    parser.add_argument("--dates", default=",".join(DATES))
    parser.add_argument("--runner", choices=("airflow", "pipeline", "none"), default="airflow",
                        help="how to run the DAG per date; 'none' reuses what is already published")
    parser.add_argument("--force", action="store_true", help="rerun dates already published with the same settings")
    parser.add_argument("--conf", default="{}", help="JSON overriding the DAG run settings")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--markdown", type=Path, default=PROJECT_ROOT / "BENCHMARKS.md")
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite BENCHMARKS.md from the raw numbers of the last run (bench/out/quality.json)")
    args = parser.parse_args(argv)
    if args.report_only:
        args.markdown.write_text(markdown(json.loads((args.out / "quality.json").read_text())))
        return 0
    try:
        import implicit  # noqa: F401
    except ImportError:
        print("bench.quality needs the benchmark-only dependency 'implicit': "
              f"{sys.executable} -m pip install -r bench/requirements.txt", file=sys.stderr)
        return 2
    started = time.perf_counter()
    root = DataRoot(args.root or default_data_root() / "bench-ciao")
    conf = {**CONF, **json.loads(args.conf)}
    dates = [dt.date.fromisoformat(d) for d in args.dates.split(",")]
    timings: dict[str, Any] = {"import": ensure_import(args.source, root)}
    timings["runs"] = {}
    events = all_behaviour(root, max(dates) + dt.timedelta(days=HORIZON_DAYS))
    per_date = []
    args.out.mkdir(parents=True, exist_ok=True)
    progress = Progress(len(dates), "dates", label="bench.quality", min_interval=0)  # count and ETA on stderr
    for day in dates:
        timings["runs"][day.isoformat()] = run_date(root, day, conf, args.runner, args.force)
        log(f"{day}: pipeline {timings['runs'][day.isoformat()]['seconds']:.0f}s")
        t0 = time.perf_counter()
        per_date.append(evaluate_date(root, day, conf, events))
        log(f"{day}: evaluation {time.perf_counter() - t0:.0f}s")
        result = aggregate(per_date, conf, [dt.date.fromisoformat(p["info"]["date"]) for p in per_date], timings)
        result["wall_seconds"] = round(time.perf_counter() - started, 1)
        result["complete"] = len(per_date) == len(dates)
        result["plot"] = str(plot_per_origin(result).relative_to(PROJECT_ROOT))
        (args.out / "quality.json").write_text(json.dumps(result, indent=1, default=_json) + "\n")
        args.markdown.write_text(markdown(result))
        progress.advance(detail=f"{day} done")
    log(f"wrote {args.markdown} and {args.out / 'quality.json'} in {result['wall_seconds']:.0f}s")
    return 0


def _json(value: Any) -> Any:
    if isinstance(value, (dt.date, Path)):
        return str(value)
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(type(value).__name__)


if __name__ == "__main__":
    sys.exit(main())
