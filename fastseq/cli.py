"""The ``fastseq`` command. Each subcommand lives in ``fastseq/commands/<name>.py`` and
defines ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``.

Expected failures (bad options, missing or corrupt files) print one line and exit 2;
they are raised as :class:`CommandError` or as ValueError/FileNotFoundError/OSError.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# subcommand name -> module; each module is small and imports heavy libraries in run()
COMMANDS: dict[str, str] = {
    "demo": "fastseq.commands.demo",
    "train": "fastseq.commands.train",
    "mosaic": "fastseq.commands.mosaic",
    "faces": "fastseq.commands.faces",
}


class CommandError(Exception):
    """An error the user can fix; printed as one line without a traceback."""


class _OneLineParser(argparse.ArgumentParser):
    """Reports a usage error as one line (with a pointer to --help), not a usage block."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(
        prog="fastseq",
        description="Slot-swap truncated-BPTT training and pictures of what sequence models learn.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=module.HELP, description=module.HELP,
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
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
    except (CommandError, ValueError, TypeError, FileNotFoundError, OSError) as exc:
        print(f"fastseq {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
