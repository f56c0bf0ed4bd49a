"""``fastseq.cli.main`` itself: every subcommand is wired to its module, a command's result
becomes the exit status, and each kind of failure becomes one line and its status."""
from __future__ import annotations

import importlib

import pytest

from fastseq import cli
from fastseq.commands._common import CommandError, HelpFormatter, OneLineParser


def test_the_parser_wires_every_subcommand_to_its_module():
    parser = cli.build_parser()
    assert isinstance(parser, OneLineParser) and parser.prog == "fastseq"
    sub = next(a for a in parser._actions if a.dest == "command")
    assert sub.required and list(sub.choices) == list(cli.COMMANDS) == ["demo", "train", "mosaic", "faces"]
    for name, module_name in cli.COMMANDS.items():
        module = importlib.import_module(module_name)
        command = sub.choices[name]
        assert command.description == module.HELP and command.formatter_class is HelpFormatter
        assert command.get_default("_run") is module.run
        assert command.prog == f"fastseq {name}"
    assert parser.format_help().splitlines()[2] == \
        "Slot-swap truncated-BPTT training and pictures of what sequence models learn."
    helps = {a.dest: a.help for a in sub._choices_actions}
    assert helps == {name: importlib.import_module(m).HELP for name, m in cli.COMMANDS.items()}


def test_a_command_is_required_and_the_version_is_printed(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main([])
    assert info.value.code == 2 and "required: COMMAND" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    from fastseq import __version__
    assert info.value.code == 0 and capsys.readouterr().out == f"fastseq {__version__}\n"


def _run_demo_as(monkeypatch, run):
    demo = importlib.import_module(cli.COMMANDS["demo"])
    monkeypatch.setattr(demo, "run", run)


@pytest.mark.parametrize("result, status", [(None, 0), (0, 0), (3, 3), (True, 1)])
def test_the_commands_result_is_the_exit_status(monkeypatch, capsys, result, status):
    seen = []
    _run_demo_as(monkeypatch, lambda args: seen.append(args.command) or result)
    assert cli.main(["demo"]) == status and seen == ["demo"]
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("error", [CommandError, ValueError, TypeError, OSError, FileNotFoundError,
                                   FloatingPointError])
def test_an_expected_error_is_one_line_and_status_2(monkeypatch, capsys, error):
    def run(args):
        raise error("bad\n  thing\there")

    _run_demo_as(monkeypatch, run)
    assert cli.main(["demo"]) == 2
    assert capsys.readouterr().err == "fastseq demo: error: bad thing here\n"


def test_an_interrupt_is_one_line_and_status_130(monkeypatch, capsys):
    def run(args):
        raise KeyboardInterrupt

    _run_demo_as(monkeypatch, run)
    assert cli.main(["demo"]) == 130
    assert capsys.readouterr().err == "fastseq demo: interrupted\n"


@pytest.mark.parametrize("message, shown", [("cannot allocate\n 8 GiB", "cannot allocate 8 GiB"), ("", "no details")])
def test_running_out_of_memory_is_one_line_and_status_2(monkeypatch, capsys, message, shown):
    def run(args):
        raise MemoryError(message)

    _run_demo_as(monkeypatch, run)
    assert cli.main(["demo"]) == 2
    assert capsys.readouterr().err == f"fastseq demo: error: out of memory ({shown}); try smaller sizes\n"


def test_an_unexpected_error_is_not_hidden(monkeypatch):
    def run(args):
        raise KeyError("a bug")

    _run_demo_as(monkeypatch, run)
    with pytest.raises(KeyError, match="a bug"):
        cli.main(["demo"])
