"""bench/'s shape: topic folders, one runner each, one timing helper, and paths the docs can trust."""
from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
TOPICS = ("bptt", "boltzmann", "mosaic", "faces", "rowrnn")
# a path into bench/, not the tail of another word ("fastseq-bench/") or of another path
BENCH_PATH = re.compile(r"(?<![\w./-])bench/[\w./-]*[\w]")


@pytest.fixture(scope="module")
def load():
    """Import a bench/ file by path (its own imports see bench/, as when it runs); sys.path is
    put back afterwards."""
    saved = list(sys.path)
    sys.path.insert(0, str(BENCH))

    def _load(relative: str) -> ModuleType:
        path = BENCH / relative
        name = "_bench_" + relative.removesuffix(".py").replace("/", "_")
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up
        spec.loader.exec_module(module)
        return module

    yield _load
    sys.path[:] = saved


# ---------------------------------------------------------------- paths in README.md and docs/


def documented_bench_paths() -> dict[str, set[str]]:
    """Every ``bench/...`` path mentioned in README.md and docs/ (pages, recorded outputs), and where."""
    generated = ("docs/api/", "docs/benchmarks/pages/", "docs/auto_examples/")  # made by the docs build
    files = [ROOT / "README.md"] + sorted(p for p in (ROOT / "docs").rglob("*")
                                          if p.suffix in (".md", ".rst", ".txt", ".json")
                                          and not str(p.relative_to(ROOT)).startswith(generated))
    found: dict[str, set[str]] = {}
    for f in files:
        for path in BENCH_PATH.findall(f.read_text(encoding="utf-8")):
            found.setdefault(path.rstrip("."), set()).add(str(f.relative_to(ROOT)))
    return found


def test_every_bench_path_in_readme_and_docs_exists():
    found = documented_bench_paths()
    assert "bench/bptt/compare_batching.py" in found  # the README's headline command is seen
    missing = {path: sorted(where) for path, where in found.items() if not (ROOT / path).exists()}
    assert missing == {}


def test_the_bench_path_pattern_reads_commands_not_other_words():
    text = "`python bench/bptt/compare_gemm.py --json x`, /tmp/fastseq-bench/rbm.npy, docs/benchmarks/a.json, bench/."
    assert BENCH_PATH.findall(text) == ["bench/bptt/compare_gemm.py"]


def test_readme_headline_command_is_the_bptt_runners(load):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    headline = re.search(r"the first three rows: `([^`]+)`", readme).group(1)
    runner = load("_runner.py")
    job = next(j for j in load("bptt/run.py").JOBS if j.name == "compare_batching_quick")
    cmd = runner.shown(runner.command(job, BENCH / "bptt", False, runner.DOCS))
    assert cmd == headline + " --json docs/benchmarks/compare_batching_quick.json"


# ---------------------------------------------------------------- topics and runners


def test_bench_is_topic_folders_around_shared_helpers():
    top = sorted(p.name for p in BENCH.iterdir() if p.name != "__pycache__" and not p.name.startswith("."))
    assert top == sorted(["_json_out.py", "_runner.py", "_timing.py", *TOPICS])
    for topic in TOPICS:
        assert (BENCH / topic / "run.py").is_file(), topic


def test_every_compare_script_has_a_job_and_every_job_a_script(load):
    names = []
    for topic in TOPICS:
        jobs = load(f"{topic}/run.py").JOBS
        scripts = {p.name for p in (BENCH / topic).glob("compare_*.py")}
        assert scripts and scripts == {j.script for j in jobs}, topic
        assert {j.script for j in jobs if j.quick is not None} == scripts, topic  # a smoke run reaches each
        names += [j.name for j in jobs]
    assert len(names) == len(set(names))  # every job has its own docs/benchmarks/NAME.json


def test_documented_results_keep_their_names(load):
    names = {j.name for topic in TOPICS for j in load(f"{topic}/run.py").JOBS}
    for kept in ("compare_batching", "compare_batching_quick", "compare_engines", "compare_feedback", "compare_gemm",
                 "compare_gibbs_chains_new", "compare_gibbs_chains_new-loaded"):
        assert kept in names
        assert (ROOT / "docs" / "benchmarks" / f"{kept}.json").is_file()


FAKE = """
import argparse, json, sys
p = argparse.ArgumentParser()
p.add_argument("--size", type=int)
p.add_argument("--json")
a = p.parse_args()
print("measured", a.size)
if a.size < 0:
    sys.exit(3)
with open(a.json, "w") as fh:
    json.dump({"size": a.size}, fh)
"""


def test_runner_writes_json_and_output_of_each_job(load, tmp_path, capsys):
    runner = load("_runner.py")
    (tmp_path / "fake.py").write_text(FAKE)
    jobs = [runner.Job("small", "fake.py", full=("--size", "5"), quick=("--size", "1")),
            runner.Job("long", "fake.py", full=("--size", "7"), quick=None)]
    out = tmp_path / "out"
    assert runner.main(jobs, tmp_path, "fake", ["--out", str(out)]) == 0
    assert json.loads((out / "small.json").read_text()) == {"size": 5}
    assert json.loads((out / "long.json").read_text()) == {"size": 7}
    text = (out / "small.txt").read_text().splitlines()
    assert text[0].startswith("# python ") and text[0].endswith("--size 5 --json " + str(out / "small.json"))
    assert text[1:] == ["measured 5"]
    assert "measured 7" in capsys.readouterr().out  # echoed as it runs

    quick = tmp_path / "quick"
    assert runner.main(jobs, tmp_path, "fake", ["--quick", "--out", str(quick)]) == 0
    assert sorted(p.name for p in quick.iterdir()) == ["small.json", "small.txt"]  # no quick run for "long"
    assert json.loads((quick / "small.json").read_text()) == {"size": 1}


def test_runner_reports_a_failed_job_and_runs_the_others(load, tmp_path, capsys):
    runner = load("_runner.py")
    (tmp_path / "fake.py").write_text(FAKE)
    jobs = [runner.Job("bad", "fake.py", full=("--size", "-1")), runner.Job("good", "fake.py", full=("--size", "2"))]
    assert runner.main(jobs, tmp_path, "fake", ["--out", str(tmp_path / "out")]) == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.json", "good.txt"]  # nothing of "bad"
    assert "failed: bad" in capsys.readouterr().err


def test_runner_only_and_list(load, tmp_path, capsys):
    runner = load("_runner.py")
    jobs = [runner.Job("a", "fake.py", full=("--size", "1")), runner.Job("b", "fake.py", full=("--size", "2"))]
    assert runner.main(jobs, tmp_path, "fake", ["--list", "--only", "b", "--out", str(tmp_path)]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == 1 and "--size 2" in listed[0]
    assert list(tmp_path.iterdir()) == []  # listing runs nothing
    with pytest.raises(SystemExit) as exit_info:
        runner.main(jobs, tmp_path, "fake", ["--only", "c"])
    assert exit_info.value.code == 2
    assert "unknown job(s) c; choose from a, b" in capsys.readouterr().err


SCRIPTS = sorted(str(p.relative_to(BENCH)) for p in BENCH.glob("*/compare_*.py")) + [f"{t}/run.py" for t in TOPICS]
# Each script as `python bench/TOPIC/SCRIPT.py`: sys.path[0] its folder, none of bench/'s modules
# imported yet, so a script that cannot find its helpers from its own file fails here. One
# process for all of them (torch imports once).
AS_SCRIPTS = """
import json, runpy, sys
from pathlib import Path
bench, scripts = Path(sys.argv[1]), sys.argv[2:]
rest, results = list(sys.path[1:]), {}
for script in scripts:
    path = bench / script
    sys.path[:] = [str(path.parent)] + rest
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", None) or "").startswith(str(bench)):
            del sys.modules[name]
    sys.argv = [str(path), "--list" if path.name == "run.py" else "--help"]
    try:
        runpy.run_path(str(path), run_name="__main__")
        results[script] = "returned"
    except SystemExit as exc:
        results[script] = exc.code
    except Exception as exc:
        results[script] = repr(exc)
print(json.dumps(results))
"""


def test_each_script_runs_on_its_own():
    """Every compare script answers --help, every runner --list, each run as a path."""
    out = subprocess.run([sys.executable, "-c", AS_SCRIPTS, str(BENCH), *SCRIPTS], capture_output=True, text=True,
                         cwd=ROOT, timeout=600)  # a hung script fails the test, named, instead of the suite
    assert out.returncode == 0, out.stderr
    results = json.loads(out.stdout.strip().splitlines()[-1])
    assert results == {s: 0 for s in SCRIPTS}
    assert out.stdout.count("usage:") == sum(1 for s in SCRIPTS if not s.endswith("run.py"))
    for topic in TOPICS:
        assert f"python bench/{topic}/compare_" in out.stdout


# ---------------------------------------------------------------- the timing helper


def test_interleave_warms_up_then_takes_turns(load):
    timing = load("_timing.py")
    log = []
    cases = {k: (lambda k=k: log.append(k) or len(log)) for k in "abc"}
    samples = timing.interleave(cases, {"a": 2, "b": 1, "c": 3})
    assert log == list("abc") + list("abc") + list("ac") + list("c")
    assert samples == {"a": [4, 7], "b": [5], "c": [6, 8, 9]}
    log.clear()
    assert timing.interleave(cases, 2, warmup=False) == {"a": [1, 4], "b": [2, 5], "c": [3, 6]}
    with pytest.raises(ValueError, match="Expected repeats to be at least 0"):
        timing.interleave(cases, -1)


def test_time_cases_times_inner_calls_after_one_plain_warm_up(load):
    timing = load("_timing.py")
    calls = {"a": 0, "b": 0}

    def bump(k):
        calls[k] += 1

    samples = timing.time_cases({k: (lambda k=k: bump(k)) for k in calls}, 3, inner=4)
    assert calls == {"a": 1 + 3 * 4, "b": 1 + 3 * 4}
    assert [len(v) for v in samples.values()] == [3, 3] and all(t > 0 for v in samples.values() for t in v)
    with pytest.raises(ValueError, match="Expected inner to be at least 1, got 0"):
        timing.seconds(lambda: None, 0)


def test_timed_and_per_second_measure_the_call(load):
    timing = load("_timing.py")
    took, result = timing.timed(lambda: sum(range(1000)))
    assert result == 499500 and 0 < took < 5
    rate = timing.per_second(lambda: (sum(range(1000)), 1000)[1])
    assert rate > 1000  # 1000 units of work in well under a second


def test_summary_and_spread(load):
    timing = load("_timing.py")
    assert timing.summary([4.0, 1.0, 2.0, 3.0]) == {"median": 2.5, "min": 1.0, "max": 4.0}
    assert timing.spread([4.0, 1.0, 2.0]) == [0.5, 2.0]
