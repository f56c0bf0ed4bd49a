"""Write docs/guide/command_line.md: every ``fastseq`` command's ``--help``, as the command prints it.

    python tools/cli_reference.py          # rewrite the page after changing an option
    python tools/cli_reference.py --check  # exit 1 if the page is out of date

tests/commands/test_cli_reference.py fails while the page differs from the commands' help, so
an option's text, default or choices cannot change without the manual changing with it.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "guide" / "command_line.md"
WIDTH = 100  # the terminal width the help is wrapped to

HEADER = """\
# Command line

`fastseq` has four commands; each prints one line and exits with status 2 on a usage error
or a file it cannot use, and never a traceback. Options spelled with dashes also accept the
older underscore spelling (`--max_length`). Below is each command's `--help`, as printed in a
terminal {width} columns wide.
"""


def help_texts() -> dict[str, str]:
    """``{"": fastseq --help, name: fastseq name --help}``, wrapped to WIDTH columns."""
    from fastseq import cli

    with mock.patch.dict(os.environ, {"COLUMNS": str(WIDTH)}):
        parser = cli.build_parser()
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        texts = {"": parser.format_help()}
        texts.update({name: command.format_help() for name, command in sub.choices.items()})
    return texts


def render() -> str:
    parts = [HEADER.format(width=WIDTH)]
    for name, text in help_texts().items():
        title = f"fastseq {name}".rstrip()
        parts.append(f"\n## `{title}`\n\n```text\n$ {title} --help\n{text.rstrip()}\n```\n")
    return "".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 if the page is out of date")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = PAGE.read_text(encoding="utf-8") if PAGE.exists() else ""
        if current != text:
            print(f"{PAGE.relative_to(ROOT)} is out of date: run python tools/cli_reference.py", file=sys.stderr)
            return 1
        return 0
    tmp = PAGE.with_suffix(".md.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, PAGE)
    print(f"wrote {PAGE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
