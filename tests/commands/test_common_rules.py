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


def test_help_shows_an_option_with_only_an_underscore_name():
    parser = OneLineParser(prog="x", formatter_class=HelpFormatter)
    parser.add_argument("--old_only", help="o")
    parser.add_argument("--n_a", "--n-a", help="n")  # two names, both kept out of the list but the dashed one
    listed = [line.split("  ")[1] for line in parser.format_help().splitlines() if line.startswith("  -")]
    assert listed == ["-h, --help", "--old_only OLD_ONLY", "--n-a N_A"]


def test_every_checked_type_keeps_its_bounds():
    from fastseq.commands._common import count, finite_float, positive_float

    assert count("0") == 0 and positive_int("1") == 1 and fraction("0") == 0.0 and fraction("1") == 1.0
    assert positive_float("1e-300") == 1e-300 and finite_float("-1e300") == -1e300 and finite_float("0") == 0.0
    for parse, text in [(count, "-1"), (fraction, "-0.01"), (fraction, "1.01"), (positive_float, "0"),
                        (positive_float, "inf"), (positive_float, "-2"), (finite_float, "inf"),
                        (finite_float, "-inf"), (finite_float, "nan"), (positive_float, "nan"),
                        (positive_int, "1e999"), (count, "1.5")]:
        with pytest.raises(argparse.ArgumentTypeError, match=r"^expected "):
            parse(text)
    with pytest.raises(argparse.ArgumentTypeError, match=r"^expected an integer >= 0, got -1$"):
        count("-1")
    with pytest.raises(argparse.ArgumentTypeError, match=r"^expected a finite number > 0, got inf$"):
        positive_float("inf")
    with pytest.raises(argparse.ArgumentTypeError, match=r"^expected a finite number, got '1e99999x'$"):
        finite_float("1e99999x")
    assert finite_float.__name__ == "float" and count.__name__ == "int"


def test_checked_turns_overflow_into_the_expectation():
    from fastseq.commands._common import checked

    def overflow(text):
        raise OverflowError(text)

    parse = checked(overflow, lambda v: True, "something small")
    with pytest.raises(argparse.ArgumentTypeError, match=r"^expected something small, got 'big'$"):
        parse("big")


def test_one_line_parser_exits_2_with_a_pointer_to_help(capsys):
    parser = OneLineParser(prog="x y")
    parser.add_argument("--n", type=int)
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(["--n", "two"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("x y: error: argument --n: invalid int value: 'two' (see x y --help)")
    assert err.endswith(")\n") and err.count("\n") == 1


def test_add_option_adds_the_underscore_alias_only_to_dashed_names():
    parser = argparse.ArgumentParser()
    assert add_option(parser, "--seed", "-s", type=int).option_strings == ["--seed", "-s"]
    assert add_option(parser, "--max-length", "-m").option_strings == ["--max-length", "-m", "--max_length"]
    assert add_option(parser, "--a-b-c").option_strings == ["--a-b-c", "--a_b_c"]
    assert vars(parser.parse_args(["-s", "4", "--max_length", "x", "--a_b_c", "y"])) == \
        {"seed": 4, "max_length": "x", "a_b_c": "y"}


def test_threads_warns_only_when_asked_for_more_than_the_cores(capsys, monkeypatch):
    from fastseq.commands import _common

    monkeypatch.setattr(_common, "cpu_count", lambda: 3)
    assert _common.threads(1) == 1 and _common.threads(3) == 3
    assert capsys.readouterr().err == ""
    assert _common.threads(4, "--workers") == 3
    assert capsys.readouterr().err == "warning: --workers 4 is more than the 3 cores available; using 3\n"
    assert _common.threads(5) == 3
    assert capsys.readouterr().err.startswith("warning: --threads 5 is more")


def test_fits_turns_a_memory_check_into_a_command_error(monkeypatch):
    from fastseq._util import memory
    from fastseq.commands import _common

    monkeypatch.setattr(memory, "machine_memory", lambda: 1000)
    _common.fits(1000, "exactly the memory")
    with pytest.raises(CommandError, match=r"^--zoom 9 would need .*, more than the .* this machine has\.$") as info:
        _common.fits(1001, "--zoom 9")
    assert info.value.__cause__ is None and info.value.__suppress_context__


def _fake_torch_devices(monkeypatch, cuda: int, mps: bool | None):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: cuda)
    if mps is None:
        monkeypatch.delattr(torch.backends, "mps", raising=False)
    else:
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)


@pytest.mark.parametrize("cuda, mps", [(0, False), (2, True), (0, None)])
def test_torch_device_accepts_exactly_what_this_torch_can_use(monkeypatch, cuda, mps):
    import torch

    from fastseq.commands._common import torch_device

    _fake_torch_devices(monkeypatch, cuda, mps)
    assert torch_device("cpu") == torch.device("cpu")
    for text in ("cuda", "cuda:0", "cuda:1"):
        if cuda:
            assert torch_device(text) == torch.device(text)
        else:
            with pytest.raises(CommandError, match=rf"^Expected --device to be available in this torch build, "
                                                   rf"got '{text}' \(torch .* cannot use cuda here\)\.$"):
                torch_device(text)
    if cuda:
        with pytest.raises(CommandError, match=r"^Expected --device cuda:0\.\.1, got 'cuda:2'\.$"):
            torch_device("cuda:2")
    if mps:
        assert torch_device("mps") == torch.device("mps")
    else:
        with pytest.raises(CommandError, match="cannot use mps here"):
            torch_device("mps")
    with pytest.raises(CommandError, match="cannot use meta here"):  # a real torch device, but not one to train on
        torch_device("meta")
    with pytest.raises(CommandError, match=r"^Expected --device to be a torch device such as cpu or cuda, "
                                           r"got 'potato' \(.+\)\.$") as info:
        torch_device("potato")
    assert info.value.__cause__ is None and info.value.__suppress_context__
