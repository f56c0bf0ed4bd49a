"""Gibbs step time against the number of chains: Beta-unit machines against a Bernoulli RBM.

Four machines of one size (default 288 visible, 128 hidden units, the faces pipeline's
codes), each trained for one epoch on seeded Beta data: ``RBM`` (Bernoulli units, the
reference), ``RRBM``, ``R3BM`` and ``BetaRBM``. A step is h -> v -> h through the model's own
CPU chain (``model._chain``), timed over ``--steps`` steps; each run times every machine at
every chain count ``--repeats`` times, interleaved, and keeps the median. Per run it forms
two ratios for each Beta machine, and the targets are that both hold in every run:

* the 64-chain step takes at most 10x the 8-chain step (time linear in the chains);
* the 64-chain step takes at most 3x the Bernoulli RBM's 64-chain step.

``--draws`` adds the per-thread CPU time of one draw (``time.thread_time``, so other
processes on the machine barely move it) for the step's shapes: Bernoulli units from the
RBM's visible logits, Beta units from RRBM's logits (``sigmoid_beta``) and from BetaRBM's
shapes (``beta_ab``), each ``chains x visible`` at the large chain count.

``--load`` starts one CPU-bound process (``python -c "while True: pass"``) beside the runs
and stops it afterwards, as on a shared machine. Run under the shared lock:

    flock /tmp/fastseq-bench.lock python bench/boltzmann/compare_gibbs_chains.py --runs 10 --json quiet.json
    flock /tmp/fastseq-bench.lock python bench/boltzmann/compare_gibbs_chains.py --runs 10 --load --json loaded.json
"""
from __future__ import annotations

import argparse
import contextlib
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numba
import numpy as np
import torch

from fastseq.boltzmann import R3BM, RBM, RRBM, BetaRBM

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: the shared helpers, when run as a path
from _json_out import write_json  # noqa: E402
from _timing import interleave, median, seconds  # noqa: E402

BETA = ("RRBM", "R3BM", "BetaRBM")
MAX_CHAIN_RATIO, MAX_RBM_RATIO = 10.0, 3.0


def models(visible: int, hidden: int, seed: int = 0) -> dict:
    """The four machines, each trained one epoch on seeded data (Beta(2, 5); binarised for RBM)."""
    X = np.random.default_rng(seed).beta(2.0, 5.0, size=(200, visible)).astype(np.float32)
    common = dict(n_components=hidden, n_iter=1, batch_size=20, random_state=seed)
    return {"RBM": RBM(**common).fit((X > 0.3).astype(np.float32)), "RRBM": RRBM(**common).fit(X),
            "R3BM": R3BM(**common).fit(X), "BetaRBM": BetaRBM(learning_rate=0.01, **common).fit(X)}


def step_seconds(model, chains: int, steps: int) -> float:
    """Seconds per Gibbs step h -> v -> h of ``chains`` chains (steps + 1 visible draws, steps hidden)."""
    h = torch.zeros(chains, model.n_components, dtype=model._tdtype)
    with torch.no_grad(), model._threads():
        return seconds(lambda: model._chain(h, steps + 1)) / steps


def one_run(machines: dict, chains: list[int], steps: int, repeats: int) -> dict[str, dict[int, float]]:
    """Median step seconds of every machine at every chain count, repeats interleaved (no warm-up)."""
    cases = {(name, b): (lambda m=m, b=b: step_seconds(m, b, steps)) for name, m in machines.items() for b in chains}
    times = interleave(cases, repeats, warmup=False)
    return {name: {b: median(times[(name, b)]) for b in chains} for name in machines}


def draw_ns(machines: dict, chains: int, repeats: int = 21, inner: int = 20) -> dict[str, float]:
    """Median CPU nanoseconds per draw (this thread) of the three kinds of unit draws of a step."""
    from fastseq.boltzmann import _sampling_nb as nbs

    rbm, rrbm, beta = machines["RBM"], machines["RRBM"], machines["BetaRBM"]
    with torch.no_grad():
        h = (torch.rand(chains, rbm.n_components, generator=torch.Generator().manual_seed(0)) < 0.5).float()
        logits_rbm = rbm._visible_pre(h).numpy()
        logits_rrbm = rrbm._visible_pre(h).numpy()
        a, b = (x.numpy() for x in beta._alpha_beta(h))
    gens = nbs.make_streams(0)
    cases = {"Bernoulli (bernoulli_logits)": lambda: nbs.bernoulli_logits(logits_rbm, gens),
             "Beta from logits (sigmoid_beta)": lambda: nbs.sigmoid_beta(logits_rrbm, float(rrbm.sigma), gens),
             "Beta from shapes (beta_ab)": lambda: nbs.beta_ab(a, b, gens)}
    out = {}
    for name, fn in cases.items():
        fn()
        times = []
        for _ in range(repeats):
            start = time.thread_time()
            for _ in range(inner):
                fn()
            times.append((time.thread_time() - start) / inner)
        out[name] = median(times) / a.size * 1e9
    return out


@contextlib.contextmanager
def cpu_load(on: bool):
    """One CPU-bound process beside the block (stopped afterwards), or nothing."""
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if on else None
    try:
        if proc is not None:
            time.sleep(0.5)  # let it start spinning
        yield
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait()


def machine() -> str:
    return (f"{platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start; "
            f"numba {numba.__version__} ({numba.get_num_threads()} threads), torch {torch.__version__}")


def summarise(runs: list[dict], small: int, large: int) -> dict:
    """Per-case medians and ranges, per-run ratios, and whether each target held in every run."""
    cases = {f"{name} {b}": [r[name][b] for r in runs] for name in runs[0] for b in runs[0][name]}
    ratios = {}
    for name in BETA:
        chain_r = [r[name][large] / r[name][small] for r in runs]
        rbm_r = [r[name][large] / r["RBM"][large] for r in runs]
        ratios[name] = {"chains": chain_r, "rbm": rbm_r,
                        "chains_ok": max(chain_r) <= MAX_CHAIN_RATIO, "rbm_ok": max(rbm_r) <= MAX_RBM_RATIO}
    return {"cases": cases, "ratios": ratios}


def table(summary: dict, small: int, large: int, condition: str, info: str) -> None:
    ms = lambda v: f"{median(v) * 1e3:.3f} ({min(v) * 1e3:.3f}-{max(v) * 1e3:.3f})"  # noqa: E731
    x = lambda v: f"{median(v):.1f}x ({min(v):.1f}-{max(v):.1f})"  # noqa: E731
    print(f"\n{condition}; {info}\n")
    print(f"| machine | {small} chains: ms per step, median (min-max) | {large} chains | "
          f"{large}/{small} chains per run (<= {MAX_CHAIN_RATIO:g}x) | vs RBM at {large} chains (<= {MAX_RBM_RATIO:g}x) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name in ("RBM",) + BETA:
        c = summary["cases"]
        row = f"| {name} | {ms(c[f'{name} {small}'])} | {ms(c[f'{name} {large}'])} |"
        if name == "RBM":
            r = [a / b for a, b in zip(c[f"RBM {large}"], c[f"RBM {small}"])]
            print(f"{row} {x(r)} | (reference) |")
            continue
        q = summary["ratios"][name]
        yes = lambda ok: "holds in every run" if ok else "**fails**"  # noqa: E731
        print(f"{row} {x(q['chains'])} {yes(q['chains_ok'])} | {x(q['rbm'])} {yes(q['rbm_ok'])} |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=5, help="timings per case in a run (the median is kept)")
    ap.add_argument("--steps", type=int, default=40, help="Gibbs steps per timing")
    ap.add_argument("--chains", default="8,64", help="the small and the large chain count")
    ap.add_argument("--visible", type=int, default=288)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--load", action="store_true", help="run beside one CPU-bound process")
    ap.add_argument("--draws", action="store_true", help="also time one draw of each kind (CPU ns)")
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args(argv)
    small, large = (int(c) for c in args.chains.split(","))
    info = machine()
    machines = models(args.visible, args.hidden)
    condition = (f"{'beside one CPU-bound process' if args.load else 'quiet (no load added)'}: "
                 f"{args.visible} visible, {args.hidden} hidden units, {args.runs} runs x {args.repeats} "
                 f"timings x {args.steps} steps")
    runs = []
    with cpu_load(args.load):
        one_run(machines, [small, large], 2, 1)  # warm-up: JIT and caches
        for _ in range(args.runs):
            runs.append(one_run(machines, [small, large], args.steps, args.repeats))
    summary = summarise(runs, small, large)
    table(summary, small, large, condition, info)
    draws = draw_ns(machines, large) if args.draws else None
    if draws:
        print(f"\nCPU ns per draw ({large} x {args.visible} values, this thread): "
              + ", ".join(f"{k} {v:.1f}" for k, v in draws.items()))
    if args.json:
        write_json(args.json, {"condition": condition, "machine": info, "args": vars(args), "runs": runs,
                               "ratios": summary["ratios"], "draw_ns": draws})
    held = all(q["chains_ok"] and q["rbm_ok"] for q in summary["ratios"].values())
    print(f"\nall targets hold in every run: {'yes' if held else 'no'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
