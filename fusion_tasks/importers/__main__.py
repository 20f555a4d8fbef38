"""Command line for the importers; prints a JSON summary of what was written.

    python -m fusion_tasks.importers ciao [--source DIR] [--data-root DIR] [--until YYYY-MM-DD]
    python -m fusion_tasks.importers generic --modality behavior|content|social --input FILE \\
        --map SRC=DST [SRC=DST ...] [--data-root DIR] [--valid-from YYYY-MM-DD] [--event-type rating] \\
        [--edge-type trust] [--weight 1.0] [--name NAME]

``--data-root`` defaults to ``$FUSION_DATA_ROOT`` (else ``var/``), ``--source`` to ``$FUSION_CIAO_DIR``
(else ``../shared/data/ciao``). Exit status 2 on bad arguments or input, with the reason on stderr.
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


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _mapping(text: str) -> tuple[str, str]:
    src, sep, dst = text.rpartition("=")
    if not sep or not src or not dst:
        raise argparse.ArgumentTypeError(f"expected SRC=DST, got {text!r}")
    return src, dst


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fusion_tasks.importers",
                                     description="Write external data into the landing contract.")
    sub = parser.add_subparsers(dest="command", required=True)

    ciao = sub.add_parser("ciao", help="import the Ciao data set (ratings, categories, trust)")
    ciao.add_argument("--source", type=Path, default=None,
                      help="Ciao folder (default: $FUSION_CIAO_DIR or ../shared/data/ciao)")
    ciao.add_argument("--data-root", type=Path, default=None, help="data root (default: $FUSION_DATA_ROOT or var/)")
    ciao.add_argument("--until", type=_date, default=None, help="last day to import (inclusive)")

    gen = sub.add_parser("generic", help="import one CSV/Parquet table with a column mapping")
    gen.add_argument("--modality", required=True, choices=MODALITIES)
    gen.add_argument("--input", required=True, type=Path, help="a .csv or .parquet file")
    gen.add_argument("--map", dest="mapping", type=_mapping, nargs="+", action="extend", default=[],
                     metavar="SRC=DST", help="rename input column SRC to schema column DST")
    gen.add_argument("--data-root", type=Path, default=None, help="data root (default: $FUSION_DATA_ROOT or var/)")
    gen.add_argument("--valid-from", type=_date, default=None, help="default valid_from (content, social)")
    gen.add_argument("--event-type", default=None, help="default event_type (behavior)")
    gen.add_argument("--edge-type", default=None, help="default edge_type (social)")
    gen.add_argument("--weight", type=float, default=None, help="default weight (social)")
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
                                   edge_type=args.edge_type, weight=args.weight, name=args.name)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2, sort_keys=True, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
