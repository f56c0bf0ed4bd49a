"""What every subcommand shares: one-line errors, option spelling, checked option types,
output paths, thread counts and up-front memory checks."""
from __future__ import annotations

import argparse
import copy
import os
import sys
from pathlib import Path
from typing import Callable

from fastseq._util.memory import check_fits, cpu_count


class CommandError(Exception):
    """An error the user can fix; printed as one line without a traceback."""


class OneLineParser(argparse.ArgumentParser):
    """Reports a usage error as one line (with a pointer to --help), not a usage block."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option once, by its dashed name (``--max-length``), not its old alias."""

    def _format_action_invocation(self, action: argparse.Action) -> str:
        if len(action.option_strings) > 1:
            shown = [s for s in action.option_strings if not (s.startswith("--") and "_" in s)]
            action = copy.copy(action)  # choices, nargs and metavar kept: only the names differ
            action.option_strings = shown
        return super()._format_action_invocation(action)


def add_option(parser: argparse.ArgumentParser, name: str, *short: str, **kwargs) -> argparse.Action:
    """Add ``--dashed-name`` with ``--dashed_name`` accepted too (the older spelling)."""
    names = [name, *short]
    if "-" in name[2:]:
        names.append("--" + name[2:].replace("-", "_"))
    return parser.add_argument(*names, **kwargs)


def checked(convert: Callable, ok: Callable, expectation: str) -> Callable:
    """An argparse type: convert the text, then check it; errors say what was expected and got."""
    def parse(text: str):
        try:
            value = convert(text)
        except (ValueError, OverflowError):
            raise argparse.ArgumentTypeError(f"expected {expectation}, got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"expected {expectation}, got {value}")
        return value

    parse.__name__ = convert.__name__  # argparse names the type in some messages
    return parse


positive_int = checked(int, lambda v: v >= 1, "an integer >= 1")
count = checked(int, lambda v: v >= 0, "an integer >= 0")
fraction = checked(float, lambda v: 0.0 <= v <= 1.0, "a number in [0, 1]")
positive_float = checked(float, lambda v: 0.0 < v < float("inf"), "a finite number > 0")
finite_float = checked(float, lambda v: abs(v) < float("inf"), "a finite number")


def output_file(text: str, option: str = "--output", suffix: str | None = None) -> Path:
    """A file path to write: not a folder, in a writable folder that exists, ending in ``suffix``."""
    if not text or text.endswith(("/", os.sep)) or Path(text).is_dir():
        raise CommandError(f"Expected {option} to name a file, got the folder {text!r}.")
    path = Path(text)
    if suffix is not None and path.suffix.lower() != suffix:
        raise CommandError(f"Expected {option} to end in {suffix}, got {text!r}.")
    if not path.parent.is_dir():
        raise CommandError(f"Expected {option} in an existing folder, got {text!r} ({path.parent} does not exist).")
    # files are written next to the destination and renamed over it: the folder must be writable
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise CommandError(f"Expected {option} in a folder you can write to, got {text!r} "
                           f"(no write permission in {path.parent}).")
    return path


def threads(requested: int, option: str = "--threads") -> int:
    """``requested``, or the number of usable cores with a warning if it asks for more."""
    cores = cpu_count()
    if requested > cores:
        print(f"warning: {option} {requested} is more than the {cores} cores available; using {cores}",
              file=sys.stderr)
        return cores
    return requested


def fits(nbytes: float, what: str) -> None:
    """Raise CommandError if ``what`` (e.g. "--batch 100 with --hidden 10000") cannot fit."""
    try:
        check_fits(what, nbytes)
    except ValueError as exc:
        raise CommandError(str(exc)) from None


def torch_device(text: str):
    """A torch.device this build of torch can use, or a CommandError naming --device."""
    import torch

    try:
        device = torch.device(text)
    except (RuntimeError, ValueError) as exc:
        raise CommandError(f"Expected --device to be a torch device such as cpu or cuda, got {text!r} ({exc}).") \
            from None
    available = {"cpu": lambda: True, "cuda": torch.cuda.is_available,
                 "mps": lambda: hasattr(torch.backends, "mps") and torch.backends.mps.is_available()}
    if not available.get(device.type, lambda: False)():
        raise CommandError(f"Expected --device to be available in this torch build, got {text!r} "
                           f"(torch {torch.__version__} cannot use {device.type} here).")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise CommandError(f"Expected --device cuda:0..{torch.cuda.device_count() - 1}, got {text!r}.")
    return device
