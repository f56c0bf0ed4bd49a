"""One way to run a topic's comparisons: each compare script in its own process, in turn.

Every topic folder of bench/ has a ``run.py`` that lists its jobs (:class:`Job`) and hands
them to :func:`main`. A job is one compare script with the arguments of its documented run
(``full``) and of a smoke run (``quick``: small sizes, one repeat; its timings mean nothing).
Each writes ``NAME.json`` through the script's ``--json`` (bench/_json_out.py) and ``NAME.txt``
(the command, then what it printed) into the output folder: docs/benchmarks/ for a full run,
whose pages render those files, and a fresh temporary folder for ``--quick`` unless ``--out``
says otherwise, so a smoke run never replaces the documented figures.

A fresh process per script keeps thread settings, allocators and warmed-up state of one
comparison from leaking into the next, exactly as when the script is run on its own.
"""
from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from fastseq._util.atomic import atomic_open

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "benchmarks"


@dataclass(frozen=True)
class Job:
    """One compare script and its arguments; ``quick=None`` leaves it out of a ``--quick`` run."""

    name: str  # NAME.json and NAME.txt in the output folder
    script: str  # file name inside the topic folder
    full: tuple[str, ...] = ()
    quick: tuple[str, ...] | None = ()


def command(job: Job, folder: Path, quick: bool, out: Path) -> list[str]:
    """The command line of ``job`` (its script in ``folder``), writing its JSON into ``out``."""
    args = job.quick if quick else job.full
    if args is None:
        raise ValueError(f"Expected a job with quick arguments, got {job.name!r} without")
    return [sys.executable, str(folder / job.script), *args, "--json", str(out / f"{job.name}.json")]


def shown(cmd: list[str]) -> str:
    """``cmd`` as a reader would type it from the repository root."""
    def rel(arg: str) -> str:
        path = Path(arg)
        return str(path.relative_to(ROOT)) if path.is_absolute() and path.is_relative_to(ROOT) else arg

    return shlex.join(["python"] + [rel(a) for a in cmd[1:]])


def run_job(cmd: list[str], text_path: Path) -> int:
    """Run ``cmd`` from the repository root, echoing its output and, if it succeeds, keeping it
    in ``text_path`` (a failed run leaves the previous file)."""
    lines = [f"# {shown(cmd)}\n"]
    print(f"\n$ {shown(cmd)}", flush=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            lines.append(line)
    sys.stdout.flush()
    if proc.returncode == 0:
        with atomic_open(text_path, "w", encoding="utf-8") as fh:
            fh.writelines(lines)
    return proc.returncode


USAGE = """\
    python {run}            # the documented runs: NAME.json and NAME.txt into docs/benchmarks/
    python {run} --quick    # small sizes, one repeat: checks that every comparison runs
    python {run} --only {first} --out /tmp/bench
    python {run} --list     # the commands; runs nothing

Run the timings alone on the machine (``flock /tmp/fastseq-bench.lock`` before the command).
"""


def main(jobs: Sequence[Job], folder: str | os.PathLike, description: str, argv: Sequence[str] | None = None) -> int:
    """Run the ``jobs`` of the topic in ``folder`` as the command line asks; 1 if any failed."""
    folder = Path(folder).resolve()
    names = [j.name for j in jobs]
    run = (folder / "run.py").relative_to(ROOT) if folder.is_relative_to(ROOT) else folder / "run.py"
    p = argparse.ArgumentParser(description=description, epilog=USAGE.format(run=run, first=names[0]),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="small sizes and one repeat: checks that every comparison runs (timings mean nothing)")
    p.add_argument("--only", metavar="NAME[,NAME]", help=f"run only these jobs, of {', '.join(names)}")
    p.add_argument("--out", metavar="DIR",
                   help="folder for NAME.json and NAME.txt (default: docs/benchmarks, or a temporary folder with --quick)")
    p.add_argument("--list", action="store_true", help="print the commands and run nothing")
    args = p.parse_args(argv)
    chosen = list(jobs)
    if args.only:
        wanted = [n.strip() for n in args.only.split(",")]
        unknown = sorted(set(wanted) - set(names))
        if unknown:
            p.error(f"unknown job(s) {', '.join(unknown)}; choose from {', '.join(names)}")
        chosen = [j for j in jobs if j.name in wanted]
    if args.quick:
        chosen = [j for j in chosen if j.quick is not None]
    if args.out:
        out = Path(args.out)
    elif not args.quick:
        out = DOCS
    elif args.list:  # nothing is written: name the folder without making it
        out = Path(tempfile.gettempdir()) / "fastseq-bench-quick-XXXX"
    else:
        out = Path(tempfile.mkdtemp(prefix="fastseq-bench-quick-"))
    cmds = {j.name: command(j, folder, args.quick, out.resolve()) for j in chosen}
    if args.list:
        for cmd in cmds.values():
            print(shown(cmd))
        return 0
    out.mkdir(parents=True, exist_ok=True)
    failed = [name for name, cmd in cmds.items() if run_job(cmd, out / f"{name}.txt") != 0]
    print(f"\n{len(cmds) - len(failed)} of {len(cmds)} comparisons ran; outputs in {out}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
