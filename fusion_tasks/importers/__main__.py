"""Command line for the importers: ``python -m fusion_tasks.importers {ciao,generic} --help``.

Each run prints a JSON summary of what was written on stdout (progress lines go to stderr); exit
status 2 on bad arguments or input, with the reason on stderr.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

from fusion_tasks.config import MODALITIES, default_ciao_dir, default_data_root
from fusion_tasks.importers.ciao import import_ciao
from fusion_tasks.importers.generic import import_table
from fusion_tasks.storage import DataRoot


def cli_date(text: str) -> dt.date:
    """A ``YYYY-MM-DD`` command-line argument (argparse's ``type=``)."""
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _mapping(text: str) -> tuple[str, str]:
    src, sep, dst = text.rpartition("=")
    if not sep or not src or not dst:
        raise argparse.ArgumentTypeError(f"expected SRC=DST, got {text!r}")
    return src, dst


FORMATS_HELP = """input formats:
  .csv              comma-separated, with a header line (or any separator with --sep)
  .tsv              tab-separated, with a header line
  .txt              separator sniffed from the header line (one of , TAB ; |), or --sep
  .parquet          any column types; ids are written as text
  Text values are read as text; an empty field is a null.

landing contract written (see README, Landing contract):
  behavior          user_id, item_id, event_type ({events}), value (default 1; ratings need theirs),
                    timestamp (ISO-8601 or unix seconds, UTC): one file per UTC day, empty days included
  content           item_id, valid_from (YYYY-MM-DD), category (default unknown), optional brand, price,
                    tags (a|b|c), embedding (space-separated floats): each row in the partition of its valid_from
  social            src_user_id, dst_user_id, edge_type ({edges}), weight (> 0), valid_from (YYYY-MM-DD)
"""

GENERIC_EXAMPLES = """examples:
  python -m fusion_tasks.importers generic --modality behavior --input clicks.tsv \\
      --map uid=user_id sku=item_id ts=timestamp --event-type click
  python -m fusion_tasks.importers generic --modality content --input items.txt --sep '|' \\
      --map sku=item_id since=valid_from
  python -m fusion_tasks.importers generic --modality social --input follows.parquet \\
      --map a=src_user_id b=dst_user_id --edge-type follow --weight 1 --valid-from 2024-01-01
"""

CIAO_EXAMPLES = """examples:
  python -m fusion_tasks.importers ciao                      # $FUSION_CIAO_DIR into $FUSION_DATA_ROOT
  python -m fusion_tasks.importers ciao --source data/ciao --data-root var/ciao --until 2010-12-31
"""


def build_parser() -> argparse.ArgumentParser:
    from fusion_tasks.modalities import behavior, social

    events = sorted(behavior.EVENT_TYPES)
    edges = sorted(next(c.allowed for c in social.SCHEMA.columns if c.name == "edge_type"))
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="python -m fusion_tasks.importers", formatter_class=raw,
        description="Write external data into the landing zone, in the landing contract the DAG reads.",
        epilog="run 'python -m fusion_tasks.importers COMMAND --help' for the options and examples of a command")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ciao = sub.add_parser("ciao", help="import the Ciao data set (ratings, categories, trust)", formatter_class=raw,
                          description="Import the Ciao folder (rating_with_timestamp.mat, trustnetwork.mat, "
                                      "catalog_ciao.txt)\ninto ciao.csv files per landing day.",
                          epilog=CIAO_EXAMPLES)
    ciao.add_argument("--source", type=Path, default=None, metavar="DIR",
                      help="Ciao folder (default: $FUSION_CIAO_DIR or ../shared/data/ciao)")
    ciao.add_argument("--data-root", type=Path, default=None, metavar="DIR",
                      help="data root (default: $FUSION_DATA_ROOT or var/)")
    ciao.add_argument("--until", type=cli_date, default=None, metavar="YYYY-MM-DD",
                      help="last day to import (inclusive; default: the last rating day)")

    gen = sub.add_parser("generic", help="import one CSV/TSV/text/Parquet table with a column mapping",
                         formatter_class=raw, epilog=FORMATS_HELP.format(events=", ".join(events),
                                                                         edges=", ".join(edges)) + "\n" +
                         GENERIC_EXAMPLES,
                         description="Rename the columns of one table to a modality's schema, fill defaults, and "
                                     "write its landing\npartitions. Bad rows are left for the pipeline to "
                                     "quarantine; unknown event/edge types are counted\nin the summary.")
    gen.add_argument("--modality", required=True, choices=MODALITIES, help="which landing contract to write")
    gen.add_argument("--input", required=True, type=Path, metavar="FILE",
                     help="a .csv, .tsv, .txt or .parquet file (see input formats)")
    gen.add_argument("--map", dest="mapping", type=_mapping, nargs="+", action="extend", default=[],
                     metavar="SRC=DST", help="rename input column SRC to schema column DST (repeatable)")
    gen.add_argument("--sep", default=None, metavar="CHAR",
                     help="field separator of a text input (default: by suffix, see input formats)")
    gen.add_argument("--data-root", type=Path, default=None, metavar="DIR",
                     help="data root (default: $FUSION_DATA_ROOT or var/)")
    gen.add_argument("--valid-from", type=cli_date, default=None, metavar="YYYY-MM-DD",
                     help="valid_from of rows without one (content, social)")
    gen.add_argument("--event-type", default=None, choices=events,
                     help="event_type of rows without one (behavior)")
    gen.add_argument("--edge-type", default=None, choices=edges, help="edge_type of rows without one (social)")
    gen.add_argument("--weight", type=float, default=None, metavar="W", help="weight of rows without one (social; > 0)")
    gen.add_argument("--name", default=None, help="landing file name (default: the input's stem)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    root = DataRoot(args.data_root or default_data_root())
    try:
        if args.command == "ciao":
            summary = import_ciao(args.source or default_ciao_dir(), root, until=args.until)
        else:
            summary = import_table(args.input, root, args.modality, dict(args.mapping),
                                   valid_from=args.valid_from, event_type=args.event_type,
                                   edge_type=args.edge_type, weight=args.weight, name=args.name, sep=args.sep)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2, sort_keys=True, default=str))
    for column, counts in (summary.get("unknown_values") or {}).items():
        print(f"warning: {sum(counts.values())} row(s) have an unknown {column} {sorted(counts)}; the pipeline will "
              "quarantine them", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
