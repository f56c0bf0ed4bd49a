"""Mutation analysis of fastseq's core: do the tests notice small, deliberate bugs?

Pure-Python modules are mutated by mutmut (operator, comparison, constant and
argument changes, one at a time); C++, Cython and Numba code by the curated patch set
in ``tools/mutation_patches.py``. Everything runs in a temporary copy of the checkout
(the built extension included), so the working tree is never touched; each mutant runs
only the test files listed for its module, with a per-mutant time limit.

Two modes. The sampled mode draws a few mutants per module (seeded) from a hand-kept list
of modules and their test files: a quick check, the score ``killed / sampled``. The full
mode (``--full``) makes every mutant of every Python module with logic, one mutmut run
per subpackage over that subpackage's tests (mutmut then runs, for each mutant, only
the tests that executed the mutated function: coverage-based selection), and records
the result per module in ``tools/mutation_results.json``; mutants argued equivalent in
one line each in ``tools/mutation_equivalent.json`` leave the score's denominator.

    python tools/mutation.py --full --jobs 2      # everything (hours; see CONTRIBUTING.md)
    python tools/mutation.py --full --groups mosaic,rowrnn
    python tools/mutation.py --full --groups fastseq/mosaic/tiles.py   # one module, after editing it
    python tools/mutation.py --inventory          # mutants per logic module, no run
    python tools/mutation.py                      # sampled: every listed module, 8 mutants each
    python tools/mutation.py --quick              # 3 per module, about 5-10 minutes
    python tools/mutation.py --modules schedule,native_schedule --max-mutants-per-module 40
    python tools/mutation.py --list               # the modules and their test files
    python tools/mutation.py --rekey-equivalents HEAD   # after editing: re-key equivalents by their mutation

Needs ``pip install "mutmut==3.8.*"`` (the ``mutation`` extra) for the Python modules.
Lines that raise or warn are not mutated: a changed message text is not a bug the
suite is meant to catch.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mutation_patches import PATCHES  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

# module name -> (source files, test files, extra pytest arguments)
PYTHON_MODULES = {
    "schedule": (["fastseq/bptt/_schedule_py.py", "fastseq/bptt/schedule.py"],
                 ["tests/bptt/test_schedule.py", "tests/bptt/test_schedule_partial_orders.py"], []),
    "plans": (["fastseq/bptt/plans.py"], ["tests/bptt/test_engines.py"], []),
    "state": (["fastseq/bptt/state.py"], ["tests/bptt/test_engines.py", "tests/bptt/test_trainer.py"], []),
    "engines": (["fastseq/bptt/engines.py"], ["tests/bptt/test_engines.py"], []),
    "trainer": (["fastseq/bptt/trainer.py"],
                ["tests/bptt/test_trainer.py", "tests/bptt/test_trainer_window_losses.py",
                 "tests/bptt/test_checkpoint.py"], ["-m", "not slow"]),
    "fused": (["fastseq/bptt/_engines_fused.py", "fastseq/bptt/_fused_py.py"], ["tests/bptt/test_fused_engine.py"],
              []),
    "corrsort": (["fastseq/mosaic/order.py", "fastseq/mosaic/_order_py.py"], ["tests/mosaic/test_order.py"], []),
    # changing under other work: mutated last
    "sampling": (["fastseq/boltzmann/_sampling_py.py"], ["tests/boltzmann/test_sampling.py"], []),
    "likelihood": (["fastseq/boltzmann/likelihood.py"], ["tests/boltzmann/test_rbm.py"],
                   ["-k", "not sklearn"]),
}
ORDER = ["schedule", "native_schedule", "native_gather", "native_gemm", "plans", "state", "engines", "fused", "trainer",
         "corrsort", "order_nb", "sampling", "likelihood", "sampling_nb", "cd_nb"]
# --full: one mutmut run per group of modules, with the tests that exercise them
# (mutmut selects, per mutant, the tests among these that ran the mutated function)
GROUPS = {
    "util": (["fastseq/_util"], ["tests/_util", "tests/bptt", "tests/boltzmann", "tests/commands"]),
    "bptt": (["fastseq/bptt"], ["tests/bptt", "tests/fuzz"]),
    "boltzmann": (["fastseq/boltzmann"], ["tests/boltzmann", "tests/fuzz"]),
    "commands": (["fastseq/commands", "fastseq/cli.py", "fastseq/__init__.py"], ["tests/commands", "tests/fuzz"]),
    "conv": (["fastseq/conv"], ["tests/conv", "tests/fuzz"]),
    "datasets": (["fastseq/datasets"], ["tests/datasets"]),
    "mosaic": (["fastseq/mosaic"], ["tests/mosaic", "tests/fuzz"]),
    "rowrnn": (["fastseq/rowrnn"], ["tests/rowrnn"]),
}


def _module_exists(path: str) -> bool:
    """Whether ``fastseq/x/y.py`` is a file of this checkout or, where only the tools and tests
    were copied, of the installed package."""
    if (ROOT / path).is_file():
        return True
    import importlib.util

    try:
        return importlib.util.find_spec(path[:-3].replace("/", ".")) is not None
    except (ImportError, ValueError):
        return False


def group_spec(name: str) -> tuple[list[str], list[str]]:
    """``(paths to mutate, tests)`` of a group, or of one module given by its path
    (``fastseq/mosaic/tiles.py``: that file alone, with its group's tests), to rerun a module
    after editing it, or of several modules of one group joined by ``+`` (one run: the
    group's tests record who calls what once). Raises KeyError for anything else."""
    if name in GROUPS:
        return GROUPS[name]
    if "+" in name:
        specs = [group_spec(part) for part in name.split("+")]
        if any(tests != specs[0][1] or part in GROUPS for (_, tests), part in zip(specs, name.split("+"))):
            raise KeyError(name)  # modules of one group only
        return [path for paths, _ in specs for path in paths], specs[0][1]
    for paths, tests in GROUPS.values():
        if name.endswith(".py") and _module_exists(name) and any(
                name == path or name.startswith(path.rstrip("/") + "/") for path in paths):
            return [name], tests
    raise KeyError(name)


RESULTS = ROOT / "tools" / "mutation_results.json"
EQUIVALENT = ROOT / "tools" / "mutation_equivalent.json"
DO_NOT_MUTATE = [r"^\s*raise ", r"warnings\.warn\(", r"^\s*\"\"\"", r"^\s*f?\"Expected"]


def scratch_copy(tag: str) -> Path:
    """A copy of the checkout (tracked and untracked, not ignored, plus built extensions)."""
    dest = Path(tempfile.mkdtemp(prefix=f"fastseq-mutation-{tag}-"))
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.split()
    files += [str(p.relative_to(ROOT)) for p in (ROOT / "fastseq").rglob("*.so")]
    for name in files:
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def existing(root: Path, tests: list[str]) -> list[str]:
    return [t for t in tests if (root / t).exists()]


# ------------------------------------------------------------------ mutmut (pure Python)


# what the tests read besides the package: the command-line page and the tool that writes it
ALSO_COPY = ["fastseq", "tests", "examples", "bench", "tools", "docs/guide"]


def mutmut_config(sources, tests, extra, timeout_multiplier, timeout_constant=2.0) -> str:
    q = lambda xs: "[" + ", ".join(json.dumps(x) for x in xs) + "]"  # noqa: E731
    # one -m expression: pytest keeps only the last -m given, and mutmut puts the selection's
    # arguments first, so a separate "-m not slow" there was overridden by "-m not cuda"
    marks, rest, i = ["not cuda"], [], 0
    while i < len(extra):
        if extra[i] == "-m":
            marks.append(f"({extra[i + 1]})")
            i += 2
        else:
            rest.append(extra[i])
            i += 1
    return (f"\n[tool.mutmut]\nsource_paths = {q(sources)}\nalso_copy = {q(ALSO_COPY)}\n"
            f"pytest_add_cli_args_test_selection = {q(tests + rest)}\n"
            f"pytest_add_cli_args = {q(['-p', 'no:cacheprovider', '-q', '-x', '-m', ' and '.join(marks)])}\n"
            f"do_not_mutate_patterns = {q(DO_NOT_MUTATE)}\n"
            f"timeout_multiplier = {timeout_multiplier}\ntimeout_constant = {timeout_constant}\n"
            "use_git_change_detection = false\n")


def mutant_names(root: Path, sources: list[str]) -> list[str]:
    """Every mutant mutmut would make of ``sources`` (names as mutmut keys them)."""
    code = ("import json, sys, warnings\nwarnings.simplefilter('ignore')\n"
            "from mutmut.mutation.file_mutation import mutate_file_contents\nout = []\n"
            "for f in sys.argv[1:]:\n"
            "    mod = f[:-3].replace('/', '.')\n"
            "    out += [mod + '.' + n for n in mutate_file_contents(f, open(f).read()).mutant_names]\n"
            "print(json.dumps(out))\n")
    res = subprocess.run([sys.executable, "-c", code, *sources], cwd=root, capture_output=True,
                         text=True, check=True)
    return json.loads(res.stdout)


_MUTANT_BODIES = r"""
import ast, json, sys, warnings
warnings.simplefilter("ignore")
from mutmut.mutation.file_mutation import mutate_file_contents
code = mutate_file_contents(sys.argv[1], open(sys.argv[1]).read()).code
lines = code.splitlines()
out = {node.name: "\n".join(lines[node.body[0].lineno - 1:node.end_lineno])  # the body, without the def line
       for node in ast.walk(ast.parse(code))
       if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and "__mutmut_" in node.name}
print(json.dumps(out))
"""


def mutation_keys(source: str, text: str) -> dict[str, tuple[str, str]]:
    """``{mutant name: (function, the lines it changes)}`` for one file's text: a key that
    survives edits elsewhere in the function, unlike mutmut's numbers."""
    import difflib

    with tempfile.TemporaryDirectory() as d:
        (Path(d) / source).parent.mkdir(parents=True)
        (Path(d) / source).write_text(text)
        (Path(d) / "pyproject.toml").write_text(mutmut_config([source], [], [], 1.0))
        bodies = json.loads(subprocess.run([sys.executable, "-c", _MUTANT_BODIES, source], cwd=d, check=True,
                                           capture_output=True, text=True).stdout)
    keys = {}
    for name, body in bodies.items():
        if not name.endswith("__mutmut_orig"):
            func = name.rsplit("__mutmut_", 1)[0]
            orig = bodies[func + "__mutmut_orig"].splitlines()
            diff = difflib.unified_diff(orig, body.splitlines(), n=1, lineterm="")
            keys[name] = (func, "\n".join(line for line in diff if not line.startswith(("@@", "---", "+++"))))
    return keys


def _changed_lines(change: str) -> str:
    """A mutation key's removed and added lines, without the context lines around them."""
    return "\n".join(line for line in change.splitlines() if line.startswith(("-", "+")))


def rekey_equivalents(rev: str, only: list[str]) -> None:
    """Re-key the equivalent mutants of every module changed since ``rev`` (of ``only``, if
    given) to the numbers mutmut gives the same mutations now; entries whose mutation is gone
    are dropped."""
    equivalent = json.loads(EQUIVALENT.read_text())
    changed = subprocess.run(["git", "diff", "--name-only", rev, "--", *(only or ["fastseq"])], cwd=ROOT,
                             check=True, capture_output=True, text=True).stdout.split()
    renamed = {}  # old key -> new key, or None where the mutation is gone
    for source in (f for f in changed if f.endswith(".py") and (ROOT / f).exists()):
        module = source[:-3].replace("/", ".") + "."
        mine = [k for k in equivalent if k.startswith(module)]
        if not mine:
            continue
        old_text = subprocess.run(["git", "show", f"{rev}:{source}"], cwd=ROOT, check=True, capture_output=True,
                                  text=True).stdout
        old, new = mutation_keys(source, old_text), mutation_keys(source, (ROOT / source).read_text())
        def by_change(keys):  # change -> its mutants in mutmut's order (a change can recur in a function)
            out = {}
            for name in sorted(keys, key=lambda n: int(n.rsplit("_", 1)[1])):
                out.setdefault(keys[name], []).append(name)
            return out

        old_by, new_by = by_change(old), by_change(new)
        bare = lambda keys: {n: (f, _changed_lines(c)) for n, (f, c) in keys.items()}  # noqa: E731
        old_bare, new_bare = by_change(bare(old)), by_change(bare(new))
        for k in mine:
            change = old.get(k[len(module):])
            before, match = old_by.get(change, []), new_by.get(change, [])
            if not match and change is not None:  # an edited neighbour line: match on the changed lines alone
                change = (change[0], _changed_lines(change[1]))
                before, match = old_bare.get(change, []), new_bare.get(change, [])
            if len(before) == len(match) > 1:  # the same change as often as before: pair them in order
                match = [match[before.index(k[len(module):])]]
            renamed[k] = module + match[0] if len(match) == 1 else None
            if renamed[k] is None:
                print(f"dropped   {k} (its mutation {'is gone' if not match else 'is ambiguous'})")
            elif renamed[k] != k:
                print(f"re-keyed  {k} -> {match[0]}")
    out = {renamed.get(k, k): v for k, v in equivalent.items() if renamed.get(k, k) is not None}
    EQUIVALENT.write_text(json.dumps(out, indent=2) + "\n")


def run_mutmut(name, spec, args) -> dict:
    sources, tests, extra = spec
    root = scratch_copy(name)
    tests = existing(root, tests)
    with open(root / "pyproject.toml", "a") as fh:
        fh.write(mutmut_config(sources, tests, extra, args.timeout_multiplier, args.timeout_constant))
    names = mutant_names(root, sources)
    rng = random.Random(f"{args.seed}:{name}")
    sample = sorted(rng.sample(names, min(args.max_mutants_per_module, len(names))))
    env = dict(os.environ, PYTHONPATH=str(root), PYTHONDONTWRITEBYTECODE="1")
    log = root / "mutmut.log"
    with open(log, "w") as fh:
        subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children", str(args.jobs), *sample],
                       cwd=root, env=env, stdout=fh, stderr=subprocess.STDOUT)
    from mutmut.stats import status_by_exit_code

    codes = {}
    for src in sources:
        meta = root / "mutants" / (src + ".meta")
        if meta.exists():
            codes.update(json.loads(meta.read_text())["exit_code_by_key"])
    result = {"total_mutants": len(names), "sampled": len(sample), "killed": 0, "survivors": [],
              "not_run": [], "rechecked": [], "log": str(log)}
    for key in sample:
        status = status_by_exit_code[codes.get(key)]
        if status in ("killed", "timeout", "segfault"):
            result["killed"] += 1
        elif status in ("survived", "suspicious"):  # suspicious: mutmut saw an abnormally slow run
            diff = subprocess.run([sys.executable, "-m", "mutmut", "show", key], cwd=root, env=env,
                                  capture_output=True, text=True).stdout
            lines = [x for x in diff.splitlines() if x[:1] in "+-" and x[:3] not in ("+++", "---")]
            if recheck_killed(root, key, sources, tests + extra, args):
                result["killed"] += 1
                result["rechecked"].append({"mutant": key, "status": status, "diff": lines})
            else:
                result["survivors"].append({"mutant": key, "diff": lines})
        else:
            result["not_run"].append({"mutant": key, "status": status})
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return result


def recheck_killed(root: Path, key: str, sources: list[str], tests: list[str], args) -> bool:
    """Run a survivor once more, written into the source and tested in a fresh process.

    mutmut forks one warm process per mutant; a test that draws its examples at random
    (hypothesis) then sees the same draws in every child, so a survivor is confirmed here.
    """
    saved = {src: (root / src).read_text() for src in sources}
    try:
        subprocess.run([sys.executable, "-m", "mutmut", "apply", key], cwd=root, capture_output=True, check=True)
        ok, _ = pytest_passes(root, tests, args.patch_timeout, Path(tempfile.mkdtemp(dir=root)))
        return not ok
    finally:
        for src, text in saved.items():
            (root / src).write_text(text)


def write_json(path: Path, data, indent: int) -> None:
    """Write ``data`` as JSON (ending in a newline) atomically: a stopped run never leaves half a file."""
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=indent) + "\n")
    os.replace(tmp, path)


def recheck_timeouts(root: Path, keys: list[str], jobs: int, limit: float,
                     done: Callable[[str, str], None] | None = None) -> dict[str, str]:
    """Re-run each timed-out mutant's selected tests in a fresh process under a wall-clock
    ``limit``: ``"killed"`` where they fail, ``"hang"`` where they run out the limit, else
    ``"passed"`` (a survivor). ``done(key, verdict)`` is called (in this thread) as each one
    finishes, so a caller can keep the verdicts of a recheck stopped part way.

    mutmut limits a mutant by CPU time, estimated from the tests' wall time: tests whose
    PyTorch, Numba or BLAS threads keep two cores busy spend CPU time about twice as fast as
    wall time, so an unchanged run of them can hit the limit and be reported killed.
    """
    from concurrent.futures import ThreadPoolExecutor, as_completed

    stats = json.loads((root / "mutants" / "mutmut-stats.json").read_text())["tests_by_mangled_function_name"]

    def one(key: str) -> str:
        tests = stats.get(key.rsplit("__mutmut_", 1)[0], [])
        ok, last = pytest_passes(root / "mutants", tests, limit, None, mutant=key)  # the trampolined copy
        return "passed" if ok else "hang" if last == "timeout" else "killed"

    verdicts: dict[str, str] = {}
    with ThreadPoolExecutor(max(1, jobs)) as pool:
        futures = {pool.submit(one, key): key for key in keys}
        try:
            for n, future in enumerate(as_completed(futures), 1):
                key = futures[future]
                verdicts[key] = future.result()
                print(f"\rre-checked {n} of {len(keys)} timed-out mutants", end="", file=sys.stderr, flush=True)
                if done is not None:
                    done(key, verdicts[key])
        except BaseException:  # Ctrl-C or a failure: start no further mutant, keep what was judged
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    if keys:
        print(file=sys.stderr)
    return {k: verdicts[k] for k in keys}


def timeout_status(verdict: str, equivalent: bool) -> str:
    """What a mutant mutmut timed out counts as, from its recheck's ``verdict``: killed where its
    tests failed or ran out the limit, a survivor where they passed. A mutant argued equivalent
    that runs out the limit ran a test set slower than the limit, not a loop the mutation made:
    it stays equivalent (tallied as such), never counted killed."""
    if verdict == "passed" or (verdict == "hang" and equivalent):
        return "survived (timed out under mutmut)"
    return "killed"


def kept_rechecks(root: Path, keys: list[str], jobs: int, limit: float) -> dict[str, str]:
    """:func:`recheck_timeouts` of ``keys``, keeping the verdicts in the copy (``timeout-rechecks.json``),
    so recording the copy again (``--from-kept``, say after arguing an equivalent) re-runs only
    mutants not yet re-checked under this ``limit``. Each verdict is written as it comes: a
    recheck stopped part way (hundreds of slow mutants can take hours) keeps what it judged."""
    kept_file = root / "timeout-rechecks.json"
    kept = json.loads(kept_file.read_text()) if kept_file.exists() else {}
    verdicts = kept.get("verdicts", {}) if kept.get("limit") == limit else {}
    todo = [k for k in keys if k not in verdicts]

    def keep(key: str, verdict: str) -> None:
        verdicts[key] = verdict
        write_json(kept_file, {"limit": limit, "verdicts": verdicts}, indent=2)

    if todo:
        recheck_timeouts(root, todo, jobs, limit, done=keep)
    return {k: verdicts[k] for k in keys}


def killed_by_new_tests(root: Path, keys: list[str], paths: list[str], jobs: int, limit: float) -> set[str]:
    """The survivors among ``keys`` that test files written after the run kill: each file is
    copied from this checkout into the kept copy, and each survivor runs them there with its
    mutation switched on (as mutmut would, in a fresh process, under a wall-clock ``limit``;
    running out of it counts as killed, as for :func:`recheck_timeouts`). Verdicts are kept in
    the copy (``new-test-verdicts.json``, per set of files and their contents), so recording it
    again re-runs none, unless a file was edited since."""
    from concurrent.futures import ThreadPoolExecutor

    for rel in paths:
        if not (ROOT / rel).is_file():
            raise SystemExit(f"--new-tests: {rel} is not a file of this checkout")
        for dest in (root / rel, root / "mutants" / rel):
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ROOT / rel, dest)
    ok, last = pytest_passes(root / "mutants", paths, limit, None, mutant="none")  # every mutation off
    if not ok:
        raise SystemExit(f"--new-tests: {', '.join(paths)} fail on the copy with no mutation on ({last}); "
                         "they would count every survivor killed. Tests of code changed since the run need a new run.")
    kept_file = root / "new-test-verdicts.json"
    kept = json.loads(kept_file.read_text()) if kept_file.exists() else {}
    # keyed by the files' names and contents: a test edited after its verdicts judges afresh
    label = ",".join(f"{rel}@{hashlib.sha256((ROOT / rel).read_bytes()).hexdigest()[:16]}" for rel in sorted(paths))
    verdicts = kept.setdefault(label, {})
    todo = [k for k in keys if k not in verdicts]

    def one(key: str) -> str:
        ok, last = pytest_passes(root / "mutants", paths, limit, None, mutant=key)
        return "passed" if ok else "hang" if last == "timeout" else "killed"

    if todo:
        with ThreadPoolExecutor(max(1, jobs)) as pool:
            verdicts.update(zip(todo, pool.map(one, todo)))
        kept_file.write_text(json.dumps(kept, indent=2))
    return {k for k in keys if verdicts[k] != "passed"}


# ------------------------------------------------------------------ full mode (every mutant)


def logic_modules(root: Path, paths: list[str]) -> dict[str, int]:
    """Every ``.py`` file under ``paths`` with at least one mutant, and its mutant count."""
    files = sorted(str(f.relative_to(root)) for p in paths
                   for f in ([root / p] if p.endswith(".py") else (root / p).rglob("*.py")))
    names = mutant_names(root, files)
    counts = {f: 0 for f in files}
    for key in names:
        for f in files:
            if key.startswith(f[:-3].replace("/", ".") + "."):
                counts[f] += 1
    return {f: n for f, n in counts.items() if n}


def survivor_diff(root: Path, key: str, env: dict) -> list[str]:
    diff = subprocess.run([sys.executable, "-m", "mutmut", "show", key], cwd=root, env=env,
                          capture_output=True, text=True).stdout
    return [x for x in diff.splitlines() if x[:1] in "+-" and x[:3] not in ("+++", "---")]


def nothing_ran(group: str, root: Path) -> str:
    """The message when a run tested no mutant, usually because the clean tests failed in the copy:
    nothing is recorded, so a module's earlier results are not replaced by "0 killed"."""
    return (f"{group}: mutmut ran no mutant (the clean tests must pass first); nothing recorded; "
            f"its output: {root / 'mutmut.log'}")


def run_group(group: str, args) -> dict[str, dict]:
    """Every mutant of the group's logic modules; the result per module. With ``args.tests``, only
    those tests run (a shorter tracing pass for one module); the record names them, and a mutant
    only the group's other tests would kill counts as a survivor: the score can only be lower."""
    paths, tests = group_spec(group)
    if args.tests:
        tests = [t for t in args.tests.split(",") if t]
    if args.from_kept:  # a kept copy of a run stopped part way: tally what it finished
        root = Path(args.from_kept)
        tests = existing(root, tests)
    else:
        root = scratch_copy(group.replace("/", "_"))
        tests = existing(root, tests)
        with open(root / "pyproject.toml", "a") as fh:
            fh.write(mutmut_config(paths, tests, ["-m", "not slow"], args.timeout_multiplier, args.timeout_constant))
    modules = logic_modules(root, paths)
    env = dict(os.environ, PYTHONPATH=str(root), PYTHONDONTWRITEBYTECODE="1")
    if not args.from_kept:
        with open(root / "mutmut.log", "w") as fh:
            subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children", str(args.jobs)],
                           cwd=root, env=env, stdout=fh, stderr=subprocess.STDOUT)
    metas = {m: root / "mutants" / (m + ".meta") for m in modules}
    codes_by = {m: json.loads(f.read_text())["exit_code_by_key"] if f.exists() else {} for m, f in metas.items()}
    if not args.from_kept and all(c is None for codes in codes_by.values() for c in codes.values()):
        raise SystemExit(nothing_ran(group, root))
    from mutmut.stats import status_by_exit_code

    equivalent = json.loads(EQUIVALENT.read_text()) if EQUIVALENT.exists() else {}
    timed_out = [k for codes in codes_by.values() for k, c in codes.items() if status_by_exit_code[c] == "timeout"]
    rechecked = kept_rechecks(root, timed_out, args.jobs, args.timeout_recheck)
    new_kills: set[str] = set()
    if args.new_tests:
        lived = [k for codes in codes_by.values() for k, c in codes.items() if k not in equivalent and (
            # "no tests": mutmut traced no test to the function (one only a test outside the group calls)
            status_by_exit_code[c] in ("survived", "suspicious", "no tests")
            or (status_by_exit_code[c] == "timeout" and rechecked[k] == "passed"))]
        new_kills = killed_by_new_tests(root, lived, args.new_tests.split(","), args.jobs, args.timeout_recheck)
    out = {}
    for module, total in modules.items():
        codes = codes_by[module]
        res = {"mutants": total, "killed": 0, "equivalent": 0, "survivors": [], "not_run": 0,
               "timeouts": {"killed": 0, "hang": 0, "passed": 0}}
        for key, code in sorted(codes.items()):
            status = status_by_exit_code[code]
            if status == "timeout":
                res["timeouts"][rechecked[key]] += 1
                status = timeout_status(rechecked[key], key in equivalent)
            if status in ("killed", "segfault", "caught by type check"):
                res["killed"] += 1
            elif key in equivalent:
                res["equivalent"] += 1
            elif key in new_kills:
                res["killed"] += 1
                res["killed_by_new_tests"] = res.get("killed_by_new_tests", 0) + 1
            elif status in ("survived", "suspicious", "no tests", "survived (timed out under mutmut)"):
                if args.recheck and status != "no tests" and recheck_killed(root, key, [module], tests, args):
                    res["killed"] += 1
                    continue
                res["survivors"].append({"mutant": key, "status": status, "diff": survivor_diff(root, key, env)})
            else:
                res["not_run"] += 1
        counted = res["mutants"] - res["equivalent"] - res["not_run"]
        res["score"] = round(res["killed"] / counted, 4) if counted else None
        if args.tests:
            res["tests"] = tests
        out[module] = res
    if not args.keep and not args.from_kept:
        shutil.rmtree(root, ignore_errors=True)
    return out


def record(results: dict[str, dict]) -> None:
    """Merge per-module results into ``tools/mutation_results.json`` (written atomically)."""
    kept = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    kept.update(results)
    write_json(RESULTS, dict(sorted(kept.items())), indent=1)


# ------------------------------------------------------------------ curated patches (native)


def pytest_passes(root: Path, tests: list[str], timeout: float, numba_cache: Path | None,
                  mutant: str | None = None) -> tuple[bool, str]:
    """Whether ``tests`` pass in a fresh process importing from ``root`` (``mutant``: with that
    mutmut mutant switched on; ``numba_cache`` None: Numba's own cache); ``(False, "timeout")``
    past ``timeout`` seconds, else the output's last line."""
    env = dict(os.environ, PYTHONPATH=str(root), PYTHONDONTWRITEBYTECODE="1")
    if numba_cache is not None:
        env["NUMBA_CACHE_DIR"] = str(numba_cache)
    if mutant is not None:
        env["MUTANT_UNDER_TEST"] = mutant
    cmd = [sys.executable, "-P", "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-m", "not cuda", *tests]
    try:
        res = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, "timeout"
    tail = (res.stdout + res.stderr).strip().splitlines()
    return res.returncode == 0, tail[-1] if tail else ""


def build(root: Path) -> bool:
    res = subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=root,
                         capture_output=True, text=True)
    return res.returncode == 0


def run_patches(name, args) -> dict:
    patches, tests = PATCHES[name]
    root = scratch_copy(name)
    tests = existing(root, tests)
    rng = random.Random(f"{args.seed}:{name}")
    sample = sorted(rng.sample(range(len(patches)), min(args.max_mutants_per_module, len(patches))))
    native = any(p[1].startswith("csrc/") or p[1].endswith(".pyx") for p in patches)
    result = {"total_mutants": len(patches), "sampled": len(sample), "killed": 0, "survivors": [], "not_run": []}
    ok, last = pytest_passes(root, tests, args.patch_timeout * 3, Path(tempfile.mkdtemp(dir=root)))
    if not ok:
        result["not_run"] = [{"mutant": "all", "status": f"clean tests fail: {last}"}]
        return result
    for i in sample:
        label, path, old, new = patches[i]
        target = root / path
        original = target.read_text()
        if original.count(old) != 1:
            result["not_run"].append({"mutant": label, "status": "patch does not apply"})
            continue
        target.write_text(original.replace(old, new))
        try:
            if native and not build(root):
                result["killed"] += 1  # does not compile: counted killed, as mutmut does
                continue
            ok, last = pytest_passes(root, tests, args.patch_timeout, Path(tempfile.mkdtemp(dir=root)))
            if ok:
                result["survivors"].append({"mutant": label, "diff": [f"- {old.strip()}", f"+ {new.strip()}"]})
            else:
                result["killed"] += 1
        finally:
            target.write_text(original)
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return result


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--modules", default=",".join(ORDER), help="comma-separated, from --list")
    p.add_argument("--max-mutants-per-module", type=int, default=8)
    p.add_argument("--quick", action="store_true", help="3 mutants per module")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=1, help="mutmut worker processes")
    # The limit is much of what a pass costs: a trial over rowrnn/ with (t + 5 s) x 4 x 2 and
    # 2 jobs reached 489 of 613 mutants in 25 minutes, 140 of them timeouts waited out
    p.add_argument("--timeout-multiplier", type=float, default=1.5,
                   help="mutmut's CPU-time limit per mutant: (test time + constant) x this x 2")
    p.add_argument("--timeout-constant", type=float, default=2.0, help="seconds added to the test time (see above)")
    p.add_argument("--patch-timeout", type=float, default=300.0, help="seconds per curated patch")
    p.add_argument("--keep", action="store_true", help="keep the temporary copies")
    p.add_argument("--list", action="store_true")
    p.add_argument("--full", action="store_true", help="every mutant of every logic module, by group")
    p.add_argument("--groups", default=",".join(GROUPS), help="with --full: comma-separated, from " + ",".join(GROUPS) + ", or module paths "
                   "(fastseq/mosaic/tiles.py: that module alone, with its group's tests; "
                   "a.py+b.py: modules of one group in one run)")
    p.add_argument("--inventory", action="store_true", help="mutants per logic module, no run")
    p.add_argument("--tests", default="", metavar="PATHS",
                   help="with --full: comma-separated test files or folders to run instead of the group's "
                        "(recorded with the result; survivors the group's other tests would kill stay survivors)")
    p.add_argument("--recheck", action="store_true", help="with --full: rerun each survivor in a fresh process")
    p.add_argument("--timeout-recheck", type=float, default=300.0,
                   help="with --full: wall-clock seconds for re-running a mutant mutmut timed out (see recheck_timeouts)")
    p.add_argument("--new-tests", default="", metavar="PATHS",
                   help="with --from-kept: comma-separated test files written after the run; each survivor "
                        "runs them in the copy with its mutation on, and counts killed where they fail")
    p.add_argument("--from-kept", metavar="DIR",
                   help="with --full and one group: record a kept copy's results (a run stopped part way) "
                        "without running; mutants it did not reach count as not run")
    p.add_argument("--rekey-equivalents", metavar="REV",
                   help="after editing modules: re-key their entries in mutation_equivalent.json from REV's numbers")
    p.add_argument("--rekey-only", default="", metavar="PATHS",
                   help="with --rekey-equivalents: only these modules (comma-separated), whose keys REV made")
    p.add_argument("--json")
    args = p.parse_args(argv)
    if args.rekey_equivalents:
        return rekey_equivalents(args.rekey_equivalents, [m for m in args.rekey_only.split(",") if m])
    if args.quick:
        args.max_mutants_per_module = 3
    groups = [g.strip() for g in args.groups.split(",") if g.strip()]
    if args.full or args.inventory:
        unknown = []
        for g in groups:
            try:
                group_spec(g)
            except KeyError:
                unknown.append(g)
        if unknown:
            p.error(f"unknown groups {unknown}; choose from {list(GROUPS)} or a module's path (fastseq/...py)")
        return full_mode(groups, args)
    if args.list:
        for name in ORDER:
            spec = PYTHON_MODULES.get(name)
            files, tests = (spec[0], spec[1]) if spec else (sorted({x[1] for x in PATCHES[name][0]}), PATCHES[name][1])
            print(f"{name:16s} {' '.join(files)}  <-  {' '.join(tests)}")
        return {}
    modules = [m.strip() for m in args.modules.split(",") if m.strip()]
    unknown = [m for m in modules if m not in ORDER]
    if unknown:
        p.error(f"unknown modules {unknown}; choose from {ORDER}")
    results = {}
    for name in sorted(modules, key=ORDER.index):
        start = time.perf_counter()
        res = run_mutmut(name, PYTHON_MODULES[name], args) if name in PYTHON_MODULES else run_patches(name, args)
        res["seconds"] = round(time.perf_counter() - start, 1)
        results[name] = res
        print(f"{name:16s} killed {res['killed']:3d} / {res['sampled'] - len(res['not_run']):3d}"
              f"  (sampled {res['sampled']} of {res['total_mutants']}, {res['seconds']:.0f} s)", flush=True)
        for s in res["survivors"]:
            print(f"    survived: {s['mutant']}")
            for line in s["diff"]:
                print(f"        {line}")
        for s in res.get("rechecked", []):
            print(f"    killed on a fresh recheck: {s['mutant']}")
        for s in res["not_run"]:
            print(f"    not run: {s['mutant']} ({s['status']})")
    killed = sum(r["killed"] for r in results.values())
    total = sum(r["sampled"] - len(r["not_run"]) for r in results.values())
    print(f"total            killed {killed} / {total}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return results


def full_mode(groups: list[str], args) -> dict:
    if args.inventory:
        root = scratch_copy("inventory")
        with open(root / "pyproject.toml", "a") as fh:
            fh.write(mutmut_config(["fastseq"], [], [], args.timeout_multiplier, args.timeout_constant))
        counts = {}
        for g in groups:
            counts.update(logic_modules(root, group_spec(g)[0]))
        shutil.rmtree(root, ignore_errors=True)
        for module, n in counts.items():
            print(f"{n:6d}  {module}")
        print(f"{sum(counts.values()):6d}  mutants in {len(counts)} logic modules")
        return counts
    results = {}
    for g in groups:
        start = time.perf_counter()
        res = run_group(g, args)
        record(res)
        results.update(res)
        print(f"{g}: {time.perf_counter() - start:.0f} s", flush=True)
        for module, r in res.items():
            score = "-" if r["score"] is None else f"{100 * r['score']:.1f}%"
            print(f"  {module:42s} {score:>7s}  killed {r['killed']} of {r['mutants']}"
                  f" ({r['equivalent']} equivalent, {r['not_run']} not run)")
            for s in r["survivors"]:
                print(f"      {s['status']}: {s['mutant']}  {' | '.join(s['diff'])[:160]}")
    return results


if __name__ == "__main__":
    main()
