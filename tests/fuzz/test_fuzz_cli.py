"""Fuzz every subcommand: one option at a time gets a malformed value (or a malformed input
file), the rest stay small and valid. Each run must end with exit 0, or exit 2 and one line
on stderr, within the deadline: no traceback, no other exit code, no hang.

Subcommands and their options are read from the parser, so a new subcommand is fuzzed as
soon as it is registered (with an empty base command line until it gets one below).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzzing import BIG, SMALL, deadline, fuzz_settings, junk_arrays

from fastseq.cli import build_parser, main

VALUES = ["-1", "0", "1", "2", "3", "0.5", "1e999", "nan", "inf", "-inf", "abc", "", " ", "--", "1,2",
          "1000000000000", "99999999999999999999", "2147483648", "cpu", "cuda", "meta", "/nonexistent/x", "sub/",
          "x.jpg", "GRU", "none"]
HUGE = {"1000000000000", "99999999999999999999", "2147483648", "1e999", "inf"}
# options whose large values mean "more work", not "more memory": only small or invalid values
WORK = {"demo": {"--sequences", "--max-length", "--epochs"}, "train": {"--epochs", "--windows"},
        "mosaic": {"--time-budget"},
        "faces": {"--size", "--max-images", "--channels", "--cnn-epochs", "--fine-tune-epochs", "--rbm-epochs",
                  "--hidden", "--gibbs-steps", "--ais-betas", "--ais-runs", "--batch"}}
# examples per subcommand where one valid run takes seconds
EXAMPLES = {"faces": max(3, SMALL // 4)}


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _options(sub: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in sub._actions if a.option_strings and a.dest != "help"]


@pytest.fixture(scope="module")
def base(tmp_path_factory, digits_dir):
    folder = tmp_path_factory.mktemp("cli")
    old_cache = os.environ.get("FASTSEQ_CACHE")
    os.environ["FASTSEQ_CACHE"] = str(folder / "cache")  # the faces command caches its data here
    np.save(folder / "w.npy", np.random.default_rng(0).random((12, 16)))
    yield {
        "demo": ["--sequences", "20", "--max-length", "100", "--hidden", "8", "--batch", "4", "--bptt", "8",
                 "--quiet"],
        "train": ["--data", str(digits_dir), "--epochs", "1", "--hidden", "8", "--windows", "40", "--window", "5",
                  "--output", str(folder / "run")],
        "mosaic": [str(folder / "w.npy"), "-o", str(folder / "m.png"), "--order", "none"],
        "faces": ["--dataset", "mnist", "--size", "16", "--max-images", "24", "--channels", "4", "4", "4",
                  "--strides", "2", "2", "1", "--cnn-epochs", "1", "--fine-tune-epochs", "1", "--rbm-epochs", "2",
                  "--hidden", "8", "--gibbs-steps", "5", "--ais-betas", "20", "--ais-runs", "4", "--quiet",
                  "--machines", "RRBM", "--force", "--output", str(folder / "faces")],
        "_folder": [str(folder)],
    }
    if old_cache is None:
        os.environ.pop("FASTSEQ_CACHE", None)
    else:
        os.environ["FASTSEQ_CACHE"] = old_cache


def _run(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            with deadline(60):
                code = main(argv)
        except SystemExit as exc:
            code = exc.code
    return code, err.getvalue()


def _check(argv: list[str]) -> None:
    code, err = _run(argv)
    assert code in (0, 2), (argv, code, err[-2000:])
    if code == 2:
        lines = [line for line in err.splitlines() if not line.startswith("warning:")]
        assert len(lines) == 1 and "error" in lines[0], (argv, err[-2000:])
    assert "Traceback" not in err, (argv, err[-2000:])


def _replace(argv: list[str], option: argparse.Action, values: list[str]) -> list[str]:
    """argv without ``option`` (and its value), then ``option`` with ``values``."""
    out, skip = [], False
    names = set(option.option_strings)
    for i, word in enumerate(argv):
        if skip:
            skip = False
            continue
        if word in names:
            skip = option.nargs != 0
            continue
        out.append(word)
    return out + [option.option_strings[0], *values]


COMMANDS = sorted(_subparsers())


def test_every_subcommand_has_a_base_command_line(base):
    assert set(COMMANDS) <= set(base)  # a new subcommand needs small valid settings here


def _fuzz(command: str, base: dict, examples: int) -> None:
    options = _options(_subparsers()[command])

    @fuzz_settings(examples)
    @given(data=st.data())
    def run(data):
        option = data.draw(st.sampled_from(options), label="option")
        if option.nargs == 0:  # a flag: add it
            argv = _replace(base[command], option, [])
        else:
            count = 2 if option.nargs in ("+", "*") else 1
            choices = VALUES + list(option.choices or [])
            if option.option_strings[0] in WORK.get(command, ()):
                choices = [v for v in choices if v not in HUGE]
            values = data.draw(st.lists(st.sampled_from(choices), min_size=1, max_size=count), label="values")
            argv = _replace(base[command], option, values)
        _check([command, *argv])

    run()


@pytest.mark.parametrize("command", COMMANDS)
def test_fuzz_options(command, base):
    _fuzz(command, base, EXAMPLES.get(command, SMALL))


@pytest.mark.slow
@pytest.mark.parametrize("command", COMMANDS)
def test_fuzz_options_big(command, base, request):
    if not request.config.getoption("-m") and not request.config.getoption("keyword"):
        pytest.skip("the big fuzz run: select it with -m slow or -k big")
    _fuzz(command, base, BIG // 4)


@pytest.mark.parametrize("size", [SMALL, pytest.param(BIG, marks=pytest.mark.slow)])
def test_fuzz_mosaic_input_files(base, size, request):
    """Malformed .npy files for ``fastseq mosaic``: any dtype or shape, truncated, random bytes."""
    if size == BIG and not request.config.getoption("-m") and not request.config.getoption("keyword"):
        pytest.skip("the big fuzz run: select it with -m slow")
    folder = base["_folder"][0]
    path = os.path.join(folder, "in.npy")

    @fuzz_settings(size)
    @given(array=junk_arrays(), cut=st.one_of(st.none(), st.integers(0, 400)), noise=st.binary(max_size=64))
    def run(array, cut, noise):
        buf = io.BytesIO()
        np.save(buf, array)
        data = buf.getvalue()
        if cut is not None:  # truncated, or a valid header followed by junk
            data = data[:cut] + noise
        with open(path, "wb") as fh:
            fh.write(data)
        _check(["mosaic", path, "-o", os.path.join(folder, "f.png"), "--order", "greedy", "--clusters"])

    run()
