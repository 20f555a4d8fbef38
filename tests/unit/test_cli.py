"""The command lines a new user meets: help with formats, option help and an example per command."""

from __future__ import annotations

import argparse
import datetime as dt

import pytest

from fusion_tasks.__main__ import build_parser as library_parser
from fusion_tasks.__main__ import main as library_main
from fusion_tasks.importers.__main__ import build_parser as importers_parser


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("build", [library_parser, importers_parser], ids=["fusion_tasks", "importers"])
def test_every_command_has_an_example_and_every_option_a_help(build):
    parser = build()
    text = parser.format_help()
    assert "``" not in text and ":func:" not in text  # plain text, no markup
    for name, sub in _subparsers(parser).items():
        help_text = sub.format_help()
        assert "example" in help_text and f"{parser.prog} {name}" in help_text, name
        assert "``" not in help_text
        for action in sub._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, (name, action.option_strings)


def test_importer_help_lists_the_formats_and_the_allowed_types():
    help_text = _subparsers(importers_parser())["generic"].format_help()
    for fmt in (".csv", ".tsv", ".txt", ".parquet", "--sep"):
        assert fmt in help_text
    for value in ("view", "click", "purchase", "rating", "follow", "friend", "trust"):
        assert value in help_text


def test_an_unknown_edge_type_is_refused_naming_the_allowed_ones(capsys):
    with pytest.raises(SystemExit) as exit_info:
        importers_parser().parse_args(["generic", "--modality", "social", "--input", "x.csv", "--edge-type", "trsut"])
    assert exit_info.value.code == 2
    assert "'follow', 'friend', 'trust'" in capsys.readouterr().err


def test_run_refuses_an_unknown_setting(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        library_main(["--data-root", str(tmp_path), "run", "--date", "2024-04-29", "--set", "top_kk=3"])
    assert exit_info.value.code == 2
    assert "unknown run settings: ['top_kk']" in capsys.readouterr().err


def test_run_settings_are_json():
    args = library_parser().parse_args(["run", "--date", "2024-04-29", "--set", "top_k=20",
                                        "--set", 'methods=["stacking"]'])
    assert args.date == dt.date(2024, 4, 29)
    assert dict(args.set) == {"top_k": 20, "methods": ["stacking"]}
    with pytest.raises(SystemExit):
        library_parser().parse_args(["run", "--date", "2024-04-29", "--set", "methods=stacking"])
