"""The mutation tool's mutmut configuration: one marker expression, so no selection is lost."""
from __future__ import annotations

import importlib.util
import tomllib
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[1] / "tools" / "mutation.py"


def _tool():
    spec = importlib.util.spec_from_file_location("fastseq_mutation_tool", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_marker_selections_merge_into_one_expression():
    # pytest keeps only the last -m it is given: a "-m not slow" among the test selection,
    # placed before mutmut's own arguments, was overridden and the slow tests ran
    config = tomllib.loads(_tool().mutmut_config(["fastseq/a.py"], ["tests/t.py"], ["-m", "not slow", "-k", "x"],
                                                 1.5)[1:])["tool"]["mutmut"]
    args = config["pytest_add_cli_args"] + config["pytest_add_cli_args_test_selection"]
    assert args.count("-m") == 1
    assert args[args.index("-m") + 1] == "not cuda and (not slow)"
    assert config["pytest_add_cli_args_test_selection"] == ["tests/t.py", "-k", "x"]
    plain = tomllib.loads(_tool().mutmut_config(["fastseq/a.py"], ["tests/t.py"], [], 1.5)[1:])["tool"]["mutmut"]
    assert plain["pytest_add_cli_args"][-2:] == ["-m", "not cuda"]
    # tests import the examples (the DDP example) and the benchmark helpers: the copy has them
    assert set(plain["also_copy"]) >= {"fastseq", "tests", "examples", "bench", "tools",
                                       "docs/guide"}


def test_a_module_path_runs_that_module_with_its_groups_tests():
    tool = _tool()
    assert tool.group_spec("mosaic") == tool.GROUPS["mosaic"]
    assert tool.group_spec("fastseq/mosaic/tiles.py") == (["fastseq/mosaic/tiles.py"], tool.GROUPS["mosaic"][1])
    assert tool.group_spec("fastseq/cli.py") == (["fastseq/cli.py"], tool.GROUPS["commands"][1])
    for bad in ("fastseq/mosaic/no_such.py", "fastseq/mosaic", "tests/mosaic/test_tiles.py", "nothing"):
        try:
            tool.group_spec(bad)
        except KeyError:
            continue
        raise AssertionError(f"{bad!r} was taken as a group")


def test_modules_of_one_group_joined_by_plus_run_together_with_its_tests():
    tool = _tool()
    both = tool.group_spec("fastseq/bptt/epoch.py+fastseq/bptt/state.py")
    assert both == (["fastseq/bptt/epoch.py", "fastseq/bptt/state.py"], tool.GROUPS["bptt"][1])
    for bad in ("fastseq/bptt/epoch.py+fastseq/mosaic/tiles.py", "fastseq/bptt/epoch.py+bptt",
                "fastseq/bptt/epoch.py+fastseq/bptt/no_such.py"):
        try:
            tool.group_spec(bad)
        except KeyError:
            continue
        raise AssertionError(f"{bad!r} was taken as one group's modules")


def _git(cwd, *args):
    import subprocess

    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd, check=True,
                   capture_output=True)


def test_rekeying_follows_a_mutation_whose_neighbour_line_was_edited(tmp_path, monkeypatch):
    """An equivalent entry keeps its mutation when the edit renumbers it and also changes a line
    beside it (the docstring's last line), where the diff's context no longer matches."""
    import json

    import pytest

    pytest.importorskip("mutmut")
    tool = _tool()
    source = tmp_path / "fastseq" / "m.py"
    source.parent.mkdir()
    source.write_text('def f(a, b):\n    """Sum."""\n    if a is None:\n        return b\n    return a + b\n')
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-qm", "m")
    old = tool.mutation_keys("fastseq/m.py", source.read_text())
    target = next(n for n, (_, c) in old.items() if "+    if a is not None:" in c)
    source.write_text('def f(a, b):\n    """Sum,\n    now longer."""\n    c = 1\n    if a is None:\n        return b\n'
                      '    return a + b + c\n')
    new = tool.mutation_keys("fastseq/m.py", source.read_text())
    moved = next(n for n, (_, c) in new.items() if "+    if a is not None:" in c)
    assert moved != target  # the edit renumbered it (else the test shows nothing)
    equivalent = tmp_path / "equivalent.json"
    equivalent.write_text(json.dumps({f"fastseq.m.{target}": "why"}))
    monkeypatch.setattr(tool, "ROOT", tmp_path)
    monkeypatch.setattr(tool, "EQUIVALENT", equivalent)
    tool.rekey_equivalents("HEAD", [])
    assert json.loads(equivalent.read_text()) == {f"fastseq.m.{moved}": "why"}


def test_new_tests_judge_only_survivors_not_yet_judged(tmp_path, monkeypatch):
    """A test file written after a run is copied into the kept copy and run against each
    survivor once: a failure or a hang kills it, a pass leaves it; a second recording with the
    same files re-runs none, and another file is judged afresh."""
    tool = _tool()
    (tmp_path / "mutants").mkdir()
    ran = []

    def fake(root, tests, limit, cache, mutant=None):
        ran.append((mutant, tuple(tests)))
        assert root == tmp_path / "mutants" and (root / tests[0]).is_file() and (tmp_path / tests[0]).is_file()
        return {"m_1": (False, "1 failed"), "m_2": (True, "3 passed"), "m_3": (False, "timeout"),
                "none": (True, "3 passed")}[mutant]

    monkeypatch.setattr(tool, "pytest_passes", fake)
    files = ["tests/test_mutation_tool.py"]
    assert tool.killed_by_new_tests(tmp_path, ["m_1", "m_2", "m_3"], files, 2, 10.0) == {"m_1", "m_3"}
    assert sorted(m for m, _ in ran) == ["m_1", "m_2", "m_3", "none"]  # "none": the clean copy first
    ran.clear()
    assert tool.killed_by_new_tests(tmp_path, ["m_2", "m_1"], files, 1, 10.0) == {"m_1"}
    assert ran == [("none", tuple(files))]
    ran.clear()
    other = ["tests/conftest.py"]
    assert tool.killed_by_new_tests(tmp_path, ["m_2"], other, 1, 10.0) == set()
    assert ran == [("none", tuple(other)), ("m_2", tuple(other))]
    ran.clear()  # the same file, edited since its verdicts: judged afresh
    edited = tmp_path / "checkout"
    (edited / "tests").mkdir(parents=True)
    (edited / "tests" / "test_mutation_tool.py").write_text("# edited\n")
    monkeypatch.setattr(tool, "ROOT", edited)
    assert tool.killed_by_new_tests(tmp_path, ["m_2", "m_1"], files, 1, 10.0) == {"m_1"}
    assert sorted(m for m, _ in ran) == ["m_1", "m_2", "none"]


def test_new_tests_that_fail_without_any_mutation_are_refused(tmp_path, monkeypatch):
    """Tests of code changed since the run fail on the copy's old code: they would count every
    survivor killed."""
    tool = _tool()
    (tmp_path / "mutants").mkdir()
    monkeypatch.setattr(tool, "pytest_passes", lambda root, tests, limit, cache, mutant=None: (False, "1 failed"))
    with pytest.raises(SystemExit, match="fail on the copy with no mutation on"):
        tool.killed_by_new_tests(tmp_path, ["m_1"], ["tests/test_mutation_tool.py"], 1, 10.0)
    assert not (tmp_path / "new-test-verdicts.json").exists()


def test_a_timed_out_mutant_argued_equivalent_is_never_counted_killed():
    # a hang on recheck kills a mutant, unless it is argued equivalent: then its tests were only
    # slower than the recheck's limit (engines._state_sizes's, past 60 s under load)
    status = _tool().timeout_status
    assert status("killed", False) == status("killed", True) == "killed"
    assert status("hang", False) == "killed"
    assert status("hang", True) == "survived (timed out under mutmut)"
    assert status("passed", False) == status("passed", True) == "survived (timed out under mutmut)"


def test_a_run_that_tests_no_mutant_records_nothing(tmp_path, monkeypatch):
    """When the clean tests fail in the copy, mutmut tests no mutant: recording that would
    replace a module's earlier results with "0 killed, all not run"."""
    tool = _tool()
    (tmp_path / "pyproject.toml").write_text("")
    monkeypatch.setattr(tool, "scratch_copy", lambda tag: tmp_path)
    monkeypatch.setattr(tool, "logic_modules", lambda root, paths: {"fastseq/_util/files.py": 5})
    monkeypatch.setattr(tool.subprocess, "run", lambda *a, **k: None)  # mutmut wrote no result
    recorded = []
    monkeypatch.setattr(tool, "record", recorded.append)
    with pytest.raises(SystemExit, match="util: mutmut ran no mutant .* nothing recorded"):
        tool.main(["--full", "--groups", "util", "--keep"])
    assert recorded == []
    # one result is enough to record: the run did start (reading its codes takes mutmut's table)
    pytest.importorskip("mutmut")
    (tmp_path / "mutants" / "fastseq" / "_util").mkdir(parents=True)
    (tmp_path / "mutants" / "fastseq" / "_util" / "files.py.meta").write_text(
        '{"exit_code_by_key": {"fastseq._util.files.x_f__mutmut_1": 1, "fastseq._util.files.x_f__mutmut_2": null}}')
    tool.main(["--full", "--groups", "util", "--keep"])
    [res] = recorded
    assert (res["fastseq/_util/files.py"]["killed"], res["fastseq/_util/files.py"]["not_run"]) == (1, 1)


def test_new_tests_also_judge_mutants_no_test_of_the_group_reached(tmp_path, monkeypatch):
    """A function only a test outside the group calls (the stub writer, by test_layout.py) has
    "no tests" in the run; a new test file that calls it is run against those mutants too."""
    pytest.importorskip("mutmut")  # its table of exit codes (the tool's "mutation" extra)
    tool = _tool()
    (tmp_path / "mutants" / "fastseq" / "_util").mkdir(parents=True)
    (tmp_path / "mutants" / "fastseq" / "_util" / "stub.py.meta").write_text(
        '{"exit_code_by_key": {"fastseq._util.stub.x_f__mutmut_1": 33, "fastseq._util.stub.x_f__mutmut_2": 33}}')
    monkeypatch.setattr(tool, "logic_modules", lambda root, paths: {"fastseq/_util/stub.py": 2})
    judged = []

    def fake(root, keys, paths, jobs, limit):
        judged.extend(keys)
        return {"fastseq._util.stub.x_f__mutmut_1"}

    monkeypatch.setattr(tool, "killed_by_new_tests", fake)
    monkeypatch.setattr(tool, "survivor_diff", lambda root, key, env: [])
    recorded = []
    monkeypatch.setattr(tool, "record", recorded.append)
    tool.main(["--full", "--groups", "util", "--from-kept", str(tmp_path), "--new-tests", "tests/test_layout.py"])
    assert sorted(judged) == ["fastseq._util.stub.x_f__mutmut_1", "fastseq._util.stub.x_f__mutmut_2"]
    res = recorded[0]["fastseq/_util/stub.py"]
    assert res["killed"] == 1 and [s["status"] for s in res["survivors"]] == ["no tests"]


def test_tests_named_replace_the_groups_and_are_recorded(tmp_path, monkeypatch):
    """``--tests`` runs mutmut over the files named instead of the group's, and the record says
    which: a score from fewer tests is not mistaken for the group's."""
    pytest.importorskip("mutmut")
    tool = _tool()
    (tmp_path / "pyproject.toml").write_text("")
    for folder in ("_util", "bptt"):
        (tmp_path / "tests" / folder).mkdir(parents=True)
    (tmp_path / "mutants" / "fastseq" / "_util").mkdir(parents=True)
    (tmp_path / "mutants" / "fastseq" / "_util" / "stub.py.meta").write_text(
        '{"exit_code_by_key": {"fastseq._util.stub.x_f__mutmut_1": 1}}')
    monkeypatch.setattr(tool, "scratch_copy", lambda tag: tmp_path)
    monkeypatch.setattr(tool, "logic_modules", lambda root, paths: {"fastseq/_util/stub.py": 1})
    monkeypatch.setattr(tool.subprocess, "run", lambda *a, **k: None)
    recorded = []
    monkeypatch.setattr(tool, "record", recorded.append)
    tool.main(["--full", "--groups", "fastseq/_util/stub.py", "--tests", "tests/_util", "--keep"])
    config = tomllib.loads((tmp_path / "pyproject.toml").read_text())["tool"]["mutmut"]
    assert config["pytest_add_cli_args_test_selection"] == ["tests/_util"]
    assert recorded[0]["fastseq/_util/stub.py"]["tests"] == ["tests/_util"]
    recorded.clear()
    (tmp_path / "pyproject.toml").write_text("")
    tool.main(["--full", "--groups", "fastseq/_util/stub.py", "--keep"])  # without: the group's tests
    config = tomllib.loads((tmp_path / "pyproject.toml").read_text())["tool"]["mutmut"]
    assert config["pytest_add_cli_args_test_selection"] == ["tests/_util", "tests/bptt"]  # those in the copy
    assert "tests" not in recorded[0]["fastseq/_util/stub.py"]


class _Stopped(Exception):
    """A recheck stopped from outside (Ctrl-C, a kill), as the test below simulates it."""


def test_a_recheck_stopped_part_way_keeps_the_verdicts_it_reached(tmp_path, monkeypatch):
    """Each timed-out mutant's verdict is written as it comes: after a recheck is stopped (here by
    an interrupt during the last mutant), recording the copy again re-runs only the mutants not judged,
    and a different limit judges all afresh."""
    tool = _tool()
    (tmp_path / "mutants").mkdir()
    (tmp_path / "mutants" / "mutmut-stats.json").write_text('{"tests_by_mangled_function_name": {"f": ["t.py"]}}')
    ran = []
    answers = {"f__mutmut_1": (False, "1 failed"), "f__mutmut_2": (True, "3 passed"), "f__mutmut_4": (False, "timeout")}

    def fake(root, tests, limit, cache, mutant=None):
        ran.append(mutant)
        assert tests == ["t.py"] and mutant is not None
        if mutant == "f__mutmut_4" and len(ran) == 4:
            raise _Stopped
        return answers.get(mutant, (False, "1 failed"))

    monkeypatch.setattr(tool, "pytest_passes", fake)
    keys = ["f__mutmut_1", "f__mutmut_2", "f__mutmut_3", "f__mutmut_4"]
    with pytest.raises(_Stopped):
        tool.kept_rechecks(tmp_path, keys, 1, 60.0)
    assert ran == keys
    ran.clear()
    assert tool.kept_rechecks(tmp_path, keys, 1, 60.0) == {
        "f__mutmut_1": "killed", "f__mutmut_2": "passed", "f__mutmut_3": "killed", "f__mutmut_4": "hang"}
    assert ran == ["f__mutmut_4"]
    ran.clear()
    assert tool.kept_rechecks(tmp_path, keys, 1, 60.0)["f__mutmut_2"] == "passed"
    assert ran == []
    assert tool.kept_rechecks(tmp_path, keys[:1], 2, 120.0) == {"f__mutmut_1": "killed"}
    assert ran == ["f__mutmut_1"]
