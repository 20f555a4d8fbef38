"""Command line of the library: python -m fusion_tasks {synthetic,run,show} (see --help)."""

from __future__ import annotations

import argparse
import json
import sys

from fusion_tasks.config import RunConfig, default_data_root
from fusion_tasks.importers.__main__ import cli_date
from fusion_tasks.storage import DataRoot

DESCRIPTION = """The fusionrec pipeline without Airflow: synthetic data, a whole run for one date, published metrics.

Dates are YYYY-MM-DD (UTC); the data root is --data-root, else $FUSION_DATA_ROOT, else var/ in the project.
"""

EXAMPLES = {
    "synthetic": "example:\n  python -m fusion_tasks synthetic --days 120 --seed 7",
    "run": "examples:\n  python -m fusion_tasks run --date 2024-04-29\n"
           "  python -m fusion_tasks run --date 2024-04-29 --set top_k=20 --set 'methods=[\"stacking\"]'\n\n"
           "--set takes any RunConfig setting (the DAG's params: top_k, modalities, methods, holdout_days,\n"
           "validation_days, n_folds, candidates_per_model, seed, ndcg_floor, regression_tolerance,\n"
           "max_quarantine_share, history_days, landing_wait_hours) with a JSON value; the defaults are the DAG's.",
    "show": "example:\n  python -m fusion_tasks show --date 2024-04-29",
    "db": "examples:\n  python -m fusion_tasks db migrate\n  python -m fusion_tasks db latest --limit 5\n"
          "  python -m fusion_tasks db status --url postgresql://fusionrec:fusionrec@localhost:5432/fusionrec\n\n"
          "Without --url: the embedded SQLite of the data root (serving/fusionrec.sqlite).",
}
LATEST_QUERY = ("SELECT ds, user_id, rank, item_id, score FROM recommendations_latest "
                "WHERE user_id = (SELECT MIN(user_id) FROM recommendations_latest) ORDER BY rank LIMIT ?")


def _setting(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=JSON, got {text!r}")
    try:
        return key, json.loads(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"the value of {key} is not JSON: {value!r} (strings need quotes)") from None


def build_parser() -> argparse.ArgumentParser:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(prog="python -m fusion_tasks", description=DESCRIPTION, formatter_class=raw,
                                     epilog="run 'python -m fusion_tasks COMMAND --help' for a command's options")
    parser.add_argument("--data-root", default=None, metavar="DIR",
                        help="where every layer lives (default: $FUSION_DATA_ROOT, else var/ in the project)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    synth = sub.add_parser("synthetic", help="write the built-in synthetic data set to the landing zone",
                           formatter_class=raw, epilog=EXAMPLES["synthetic"],
                           description="Write the seeded synthetic world (one behaviour file per day from "
                                       "2024-01-01, content and social versions)\ninto the landing zone.")
    synth.add_argument("--days", type=int, default=120, metavar="N", help="days of data from 2024-01-01 (default 120)")
    synth.add_argument("--seed", type=int, default=7, help="seed of the world (default 7)")
    run = sub.add_parser("run", help="run every step for one date in this process (no Airflow)", formatter_class=raw,
                         epilog=EXAMPLES["run"],
                         description="Run every step of the DAG for one date in this process and print the "
                                     "holdout metrics and the gate's decision.")
    run.add_argument("--date", required=True, type=cli_date, metavar="YYYY-MM-DD", help="the as-of date D")
    run.add_argument("--set", action="append", default=[], type=_setting, metavar="KEY=JSON",
                     help="a run setting, e.g. top_k=20 (repeatable)")
    show = sub.add_parser("show", help="print the published metrics table of a date", formatter_class=raw,
                          epilog=EXAMPLES["show"], description="Print the published metrics table of a date "
                                                               "and the path of its recommendations.")
    show.add_argument("--date", required=True, type=cli_date, metavar="YYYY-MM-DD", help="a published date")
    db = sub.add_parser("db", help="the database sink: migrate its schema, show its state, query the latest",
                        formatter_class=raw, epilog=EXAMPLES["db"],
                        description="The database sink's schema and contents.")
    db.add_argument("action", choices=("migrate", "status", "latest"),
                    help="migrate: apply the schema's migrations; status: schema version and published dates; "
                         "latest: a sample query of the view recommendations_latest")
    db.add_argument("--url", default=None, help="postgresql://user:password@host:port/db (default: the embedded "
                                                "SQLite of the data root)")
    db.add_argument("--limit", type=int, default=5, help="rows the latest query prints (default 5)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    root = DataRoot(args.data_root or default_data_root())

    if args.command == "synthetic":
        from fusion_tasks.synthetic import SyntheticSpec, generate

        print(json.dumps(generate(root, SyntheticSpec(n_days=args.days, seed=args.seed)), indent=2))
    elif args.command == "run":
        from fusion_tasks.evaluation.report import summary_table
        from fusion_tasks.gate_text import describe_gate
        from fusion_tasks.pipeline import run_all

        try:
            config = RunConfig.from_dict({"as_of_date": args.date, "data_root": root.root, **dict(args.set)})
        except (TypeError, ValueError) as err:
            parser.error(str(err))
        out = run_all(config)
        print(summary_table(out["evaluation"]))
        print(describe_gate(out["gate"], config.top_k))
    elif args.command == "show":
        from fusion_tasks.evaluation.report import summary_table
        from fusion_tasks.metrics_schema import MetricsSchemaError, read_published_metrics

        if args.date not in root.published_dates("metrics"):
            print(f"nothing published for {args.date} under {root.root}", file=sys.stderr)
            return 1
        try:
            report = read_published_metrics(root, args.date)
        except MetricsSchemaError as err:
            print(err, file=sys.stderr)
            return 1
        print(f"as of {args.date}: holdout {report['holdout']['origin']}..{report['holdout']['end']}, "
              f"{report['n_users_evaluated']} users evaluated, K={report['k']}, * = published method")
        print(summary_table(report))
        shares = sorted(report.get("contribution_share", {}).items(), key=lambda item: -item[1])
        print("share of the published scores: " + ", ".join(f"{group} {share:.0%}" for group, share in shares))
        print(f"published table: {root.published('recommendations', args.date)}")
    elif args.command == "db":
        return _database_command(args, root)
    return 0


def _database_command(args: argparse.Namespace, root: DataRoot) -> int:
    from fusion_tasks.sinks import Database, SinkError
    from fusion_tasks.sinks.database import SCHEMA_VERSION

    db = Database.postgres(args.url) if args.url else Database.sqlite(root.serving_db())
    try:
        if args.action == "migrate":
            applied = db.migrate()
            print(f"{db.location}: schema version {db.schema_version()}"
                  + (f" (applied {', '.join(map(str, applied))})" if applied else " (up to date)"))
        elif args.action == "status":
            version = db.schema_version()
            print(f"{db.location}: schema version {version} (this fusionrec needs {SCHEMA_VERSION})")
            for day in db.published_dates() if version else []:
                run = db.published_run(day)
                print(f"  {day}  version {run['version_id']}  {run['row_count']} rows  {run['method']}  "
                      f"published {run['published_at']}")
        else:
            if not db.published_dates():
                print(f"nothing published in {db.location}", file=sys.stderr)
                return 1
            print(f"{db.location}\n{LATEST_QUERY.replace('?', str(args.limit))};")
            with db.reading() as conn:
                cursor = db.execute(conn, LATEST_QUERY, (args.limit,))
                header = [column[0] for column in cursor.description]
                rows = cursor.fetchall()
            print("  ".join(f"{h:>12}" for h in header))
            for row in rows:
                print("  ".join(f"{v:>12.4f}" if isinstance(v, float) else f"{v!s:>12}" for v in row))
    except SinkError as err:
        print(str(err), file=sys.stderr)
        return 1
    finally:
        db.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
