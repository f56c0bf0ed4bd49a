"""fastseq's float32 product kernel against PyTorch's (MKL) and NumPy's (OpenBLAS), one thread.

The shapes are the fused engine's: per-step products of a block of 32 (or 64) slots with the
hidden weights, forward (``32 x H @ H x 4H``) and backward (``32 x 4H @ 4H x H``), and the
whole-window products (input projection, weight gradients). Interleaved, medians of
``--repeats``; GFLOP/s of the kernel and its speed-up over each peer.

    flock /tmp/fastseq-bench.lock python bench/bptt/compare_gemm.py [--json out.json]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from fastseq.bptt import _gemm_cy

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: the shared helpers, when run as a path
from _json_out import write_json  # noqa: E402
from _timing import median, processor, spread, time_cases  # noqa: E402

# (label, m, k, n, a transposed)
SHAPES = [
    ("step forward, 32 slots, LSTM H=128", 32, 128, 512, False),
    ("step forward, 64 slots, LSTM H=128", 64, 128, 512, False),
    ("step backward, 32 slots, LSTM H=128", 32, 512, 128, False),
    ("step forward, 32 slots, GRU H=32", 32, 32, 96, False),
    ("step forward, 32 slots, LSTM H=512", 32, 512, 2048, False),
    ("input projection, 2048 rows, F=32, LSTM H=128", 2048, 32, 512, False),
    ("hidden weight gradient, 2048 rows, LSTM H=128", 512, 2048, 128, True),
    ("hidden weight gradient, 32768 rows, GRU H=32", 96, 32768, 32, True),
]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--json", metavar="PATH")
    args = p.parse_args(argv)
    if not _gemm_cy.available():
        print("this processor has no AVX-512: the fused engine uses MKL or scipy's BLAS here")
        return 0
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    rows = []
    print("| product | m x k x n | fastseq us | MKL (torch.mm) us | OpenBLAS (numpy) us | GFLOP/s | vs MKL | vs OpenBLAS |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    with threadpool_limits(1):
        for label, m, k, n, transposed in SHAPES:
            a = rng.standard_normal((k, m) if transposed else (m, k)).astype(np.float32)
            a = a.T if transposed else a
            b = rng.standard_normal((k, n)).astype(np.float32)
            out = np.empty((m, n), np.float32)
            ta, tb, tout = torch.from_numpy(a), torch.from_numpy(b), torch.empty(m, n)
            fns = {"fastseq": lambda: _gemm_cy.matmul(a, b, out), "mkl": lambda: torch.mm(ta, tb, out=tout),
                   "openblas": lambda: np.dot(a, b, out=out)}
            reps = max(3, int(2e7 / (m * k * n)))
            samples = time_cases(fns, args.repeats, inner=reps)
            med = {name: median(v) for name, v in samples.items()}
            gflops = 2 * m * k * n / med["fastseq"] / 1e9
            row = {"product": label, "m": m, "k": k, "n": n, "us": {x: 1e6 * v for x, v in med.items()},
                   "spread": {x: spread(v) for x, v in samples.items()},
                   "gflops": gflops, "vs_mkl": med["mkl"] / med["fastseq"], "vs_openblas": med["openblas"] / med["fastseq"]}
            rows.append(row)
            print(f"| {label} | {m} x {k} x {n} | {1e6 * med['fastseq']:.1f} | {1e6 * med['mkl']:.1f} | "
                  f"{1e6 * med['openblas']:.1f} | {gflops:.0f} | {row['vs_mkl']:.2f} | {row['vs_openblas']:.2f} |", flush=True)
    print(f"({processor()})")
    if args.json:
        write_json(args.json, {"torch": torch.__version__, "numpy": np.__version__, "processor": processor(),
                               "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
