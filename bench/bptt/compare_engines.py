"""Which engine runs a window fastest: the crossover table behind ``run_window(engine="auto")``.

For each recurrent module (GRU, LSTM, RNN), hidden size, slot count and thread count, one
window (K = 32 steps, F = 32 inputs) runs forward and backward through every CPU engine
(fused, steps, segments, dense where it applies) and through the plain module on the same
window without resets (the peer a user would write), interleaved, medians of ``--repeats``.
Two reset patterns: ``lognormal`` (sequences of ~40 steps: about K/8 of the steps of a
64-slot window hold a reset) and ``none`` (a reset-free window, mid-sequence).

    flock /tmp/fastseq-bench.lock python bench/bptt/compare_engines.py [--threads 1,2] [--json out.json]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn

from fastseq.bptt.engines import engine_for, run_window

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: the shared helpers, when run as a path
from _json_out import write_json  # noqa: E402
from _timing import median, spread, time_cases  # noqa: E402

CELLS = {"GRU": nn.GRU, "LSTM": nn.LSTM, "RNN": nn.RNN}
SIZES = [(32, 1024), (128, 64), (512, 64)]  # (H, B): the original's regime, the benchmark's, GEMM-bound


def _window(cell, hidden, width, pattern, k_steps=32, features=32, seed=0):
    torch.manual_seed(seed)
    rnn = CELLS[cell](features, hidden)
    x = torch.randn(k_steps, width, features)
    if pattern == "none":
        reset = torch.zeros(k_steps, width, dtype=torch.bool)
    else:
        reset = torch.rand(k_steps, width) < 1 / 40
    return rnn, x, reset


def _step(rnn, x, reset, engine):
    rnn.zero_grad(set_to_none=True)
    out = rnn(x)[0] if engine == "module" else run_window(rnn, x, reset, engine=engine)[0]
    out.square().mean().backward()


def race(cell, hidden, width, pattern, repeats, inner=None):
    rnn, x, reset = _window(cell, hidden, width, pattern)
    engines = ["module", "fused", "steps", "segments"] + (["dense"] if cell != "LSTM" else [])
    if inner is None:  # enough work per sample to rise above the timer's noise
        inner = max(1, min(20, int(2e8 / (x.shape[0] * width * hidden * hidden * 4))))
    # warm-up (Numba compile, allocator), then seconds per window, interleaved
    times = time_cases({e: (lambda e=e: _step(rnn, x, reset, e)) for e in engines}, repeats, inner=inner)
    med = {e: median(v) for e, v in times.items()}
    best = min((e for e in engines if e != "module"), key=med.get)
    auto = engine_for(rnn, x.shape[0], width, x.device, reset)
    return {"cell": cell, "hidden": hidden, "width": width, "pattern": pattern, "threads": torch.get_num_threads(),
            "ms": {e: 1e3 * m for e, m in med.items()},
            "spread": {e: spread(v) for e, v in times.items()},
            "fastest": best, "auto": auto, "auto_vs_module": med["module"] / med[auto],
            "auto_vs_fastest": med[best] / med[auto]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", default="1,2")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--cells", default="GRU,LSTM,RNN")
    p.add_argument("--json", metavar="PATH")
    args = p.parse_args(argv)
    rows = []
    print("| threads | cell | H | B | resets | module ms | fused | steps | segments | dense | fastest | auto | auto / module | auto / fastest |")
    print("|---:|---|---:|---:|---|---:|---:|---:|---:|---:|---|---|---:|---:|")
    for threads in (int(t) for t in args.threads.split(",")):
        torch.set_num_threads(threads)
        for cell in args.cells.split(","):
            for hidden, width in SIZES:
                for pattern in ("lognormal", "none"):
                    r = race(cell, hidden, width, pattern, args.repeats)
                    rows.append(r)
                    ms = r["ms"]
                    cols = " | ".join(f"{ms[e]:.2f}" if e in ms else "-" for e in ("fused", "steps", "segments", "dense"))
                    print(f"| {threads} | {cell} | {hidden} | {width} | {pattern} | {ms['module']:.2f} | {cols} | "
                          f"{r['fastest']} | {r['auto']} | {r['auto_vs_module']:.2f} | {r['auto_vs_fastest']:.2f} |",
                          flush=True)
    if args.json:
        write_json(args.json, {"torch": torch.__version__, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
