"""The manual's command-line page is each command's --help as the commands print it today,
so no option's text, default or choices changes without the manual changing too."""
from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[2] / "tools" / "cli_reference.py"


def _tool():
    spec = importlib.util.spec_from_file_location("fastseq_cli_reference", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(sys.version_info[:2] != (3, 11), reason="the page shows Python 3.11 argparse's layout; "
                    "the next test checks every option's text on any version")
def test_the_command_line_page_is_the_commands_help():
    tool = _tool()
    page = tool.PAGE.read_text(encoding="utf-8")
    assert page == tool.render(), "docs/guide/command_line.md is out of date: run python tools/cli_reference.py"


def _squeezed(text: str) -> str:
    return "".join(text.split())  # argparse wraps lines at spaces and after hyphens


def test_the_page_shows_every_option_with_its_text_and_default():
    """Any Python: each option's name and full help (default included) is on the page."""
    from fastseq import cli

    tool = _tool()
    page = tool.PAGE.read_text(encoding="utf-8")
    sections = {title: _squeezed(body) for title, body in
                (part.split("`", 1) for part in page.split("\n## `")[1:])}
    assert list(sections) == ["fastseq", *(f"fastseq {name}" for name in cli.COMMANDS)]
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert _squeezed(parser.description) in sections["fastseq"]
    for name, command in sub.choices.items():
        section = sections[f"fastseq {name}"]
        assert _squeezed(command.description) in section and _squeezed(sub.choices[name].format_usage()[7:]) in section
        formatter = command._get_formatter()
        for action in command._actions:
            shown = [s for s in action.option_strings if not (s.startswith("--") and "_" in s)]
            assert all(s in section for s in shown), (name, shown)
            if action.help not in (None, argparse.SUPPRESS):
                assert _squeezed(formatter._expand_help(action)) in section, (name, action.dest)
        if command.epilog:
            assert _squeezed(command.epilog) in section


def test_check_mode_finds_a_stale_page(tmp_path, monkeypatch, capsys):
    tool = _tool()
    assert tool.main(["--check"]) == 0
    stale = tmp_path / "command_line.md"
    stale.write_text(tool.render().replace("(default: 2000)", "(default: 2001)"), encoding="utf-8")
    monkeypatch.setattr(tool, "PAGE", stale)
    monkeypatch.setattr(tool, "ROOT", tmp_path)
    assert tool.main(["--check"]) == 1 and "out of date" in capsys.readouterr().err
    assert tool.main([]) == 0 and stale.read_text(encoding="utf-8") == tool.render()
