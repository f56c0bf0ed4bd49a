"""The ``fastseq`` command. Each subcommand lives in ``fastseq/commands/<name>.py`` and
defines ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``.

Expected failures (bad options, missing or corrupt files) print one line and exit 2;
they are raised as :class:`CommandError` or as ValueError/FileNotFoundError/OSError.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from fastseq.commands._common import CommandError, HelpFormatter, OneLineParser

__all__ = ["COMMANDS", "CommandError", "build_parser", "main"]

# subcommand name -> module; each module is small and imports heavy libraries in run()
COMMANDS: dict[str, str] = {
    "demo": "fastseq.commands.demo",
    "train": "fastseq.commands.train",
    "mosaic": "fastseq.commands.mosaic",
    "faces": "fastseq.commands.faces",
}


def build_parser() -> argparse.ArgumentParser:
    from fastseq import __version__

    parser = OneLineParser(
        prog="fastseq",
        description="Slot-swap truncated-BPTT training and pictures of what sequence models learn.",
    )
    parser.add_argument("--version", action="version", version=f"fastseq {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=module.HELP, description=module.HELP,
                           formatter_class=HelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print(f"fastseq {args.command}: interrupted", file=sys.stderr)
        return 130
    except (CommandError, ValueError, TypeError, OSError, FloatingPointError) as exc:
        print(f"fastseq {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except MemoryError as exc:  # a size the up-front checks let through: still one line
        print(f"fastseq {args.command}: error: out of memory ({_one_line(exc) or 'no details'}); "
              "try smaller sizes", file=sys.stderr)
        return 2


def _one_line(exc: BaseException) -> str:
    """The exception's message on one line (some libraries put newlines in theirs)."""
    return " ".join(str(exc).split())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
