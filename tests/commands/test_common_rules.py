"""What every subcommand shares (fastseq/commands/_common.py), one rule at a time: checked
option types, output paths, and help that shows each option by its dashed name."""
from __future__ import annotations

import argparse
import os

import pytest

from fastseq.commands._common import (CommandError, HelpFormatter, OneLineParser, add_option, fraction, output_file,
                                      positive_int)


def test_checked_types_convert_then_check_and_say_what_they_expected():
    assert positive_int("3") == 3 and fraction("0.25") == 0.25
    with pytest.raises(argparse.ArgumentTypeError, match=r"^expected an integer >= 1, got 0$"):
        positive_int("0")
    with pytest.raises(argparse.ArgumentTypeError, match=r"^expected an integer >= 1, got 'x'$"):
        positive_int("x")
    with pytest.raises(argparse.ArgumentTypeError, match=r"^expected a number in \[0, 1\], got 1.5$"):
        fraction("1.5")
    assert positive_int.__name__ == "int"  # argparse names the type in some messages


def test_output_file_takes_a_file_in_a_writable_folder(tmp_path, monkeypatch):
    assert output_file(str(tmp_path / "a.png"), suffix=".png") == tmp_path / "a.png"
    for folder in ("", str(tmp_path), str(tmp_path / "new") + "/"):  # empty, a folder, a folder-like name
        with pytest.raises(CommandError, match=r"^Expected --output to name a file"):
            output_file(folder)
    with pytest.raises(CommandError, match=r"^Expected --out to end in \.png"):
        output_file(str(tmp_path / "a.jpg"), "--out", ".png")
    with pytest.raises(CommandError, match="does not exist"):
        output_file(str(tmp_path / "missing" / "a.png"))
    monkeypatch.setattr(os, "access", lambda path, mode: not mode & os.W_OK)  # may not write there
    with pytest.raises(CommandError, match="no write permission"):
        output_file(str(tmp_path / "a.png"))
    monkeypatch.setattr(os, "access", lambda path, mode: not mode & os.X_OK)  # may not enter it
    with pytest.raises(CommandError, match="no write permission"):
        output_file(str(tmp_path / "a.png"))


def test_help_shows_each_option_once_by_its_dashed_name_with_its_choices_and_arguments():
    parser = OneLineParser(prog="x", formatter_class=HelpFormatter)
    add_option(parser, "--max-length", type=int, metavar="N", help="m")
    add_option(parser, "--tsp-solver", choices=["auto", "lkh"], help="t")
    add_option(parser, "--hidden-sizes", type=int, nargs="+", help="h")
    add_option(parser, "--verbose", "-v", action="store_true", help="v")
    add_option(parser, "--seed", type=int, help="s")
    text = parser.format_help()
    listed = [line.split("  ")[1] for line in text.splitlines() if line.startswith("  -")]  # the options' list
    assert listed == ["-h, --help", "--max-length N", "--tsp-solver {auto,lkh}",
                      "--hidden-sizes HIDDEN_SIZES [HIDDEN_SIZES ...]", "--verbose, -v", "--seed SEED"]
    assert "_length" not in text and "_solver" not in text and "--hidden_sizes" not in text  # the old spelling hidden
    assert parser.parse_args(["--max_length", "3", "--tsp_solver", "lkh"]).max_length == 3  # but accepted
