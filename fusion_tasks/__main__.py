"""Command line: ``python -m fusion_tasks {synthetic,run,show}``."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys

from fusion_tasks.config import RunConfig, default_data_root
from fusion_tasks.storage import DataRoot


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fusion_tasks", description=__doc__)
    parser.add_argument("--data-root", default=None, help="default: $FUSION_DATA_ROOT or var/")
    sub = parser.add_subparsers(dest="command", required=True)
    synth = sub.add_parser("synthetic", help="write the built-in synthetic data set to the landing zone")
    synth.add_argument("--days", type=int, default=120)
    synth.add_argument("--seed", type=int, default=7)
    run = sub.add_parser("run", help="run every step for one date in this process (no Airflow)")
    run.add_argument("--date", required=True, type=dt.date.fromisoformat)
    run.add_argument("--set", action="append", default=[], metavar="KEY=JSON", help="a RunConfig field")
    show = sub.add_parser("show", help="print the published metrics table of a date")
    show.add_argument("--date", required=True, type=dt.date.fromisoformat)
    args = parser.parse_args(argv)
    root = DataRoot(args.data_root or default_data_root())

    if args.command == "synthetic":
        from fusion_tasks.synthetic import SyntheticSpec, generate

        print(json.dumps(generate(root, SyntheticSpec(n_days=args.days, seed=args.seed)), indent=2))
    elif args.command == "run":
        from fusion_tasks.evaluation.report import summary_table
        from fusion_tasks.pipeline import run_all

        overrides = dict(item.split("=", 1) for item in args.set)
        config = RunConfig.from_dict({"as_of_date": args.date, "data_root": root.root,
                                      **{k: json.loads(v) for k, v in overrides.items()}})
        out = run_all(config)
        print(summary_table(out["evaluation"]))
        print("gate:", out["gate"]["reason"] or "passed")
    elif args.command == "show":
        from fusion_tasks.evaluation.report import summary_table

        if args.date not in root.published_dates("metrics"):
            print(f"nothing published for {args.date} under {root.root}", file=sys.stderr)
            return 1
        report = root.read_published_metrics(args.date)
        print(f"as of {args.date}: holdout {report['holdout']['origin']}..{report['holdout']['end']}, "
              f"{report['n_users_evaluated']} users evaluated, K={report['k']}, * = published method")
        print(summary_table(report))
        print(f"published table: {root.published('recommendations', args.date)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
