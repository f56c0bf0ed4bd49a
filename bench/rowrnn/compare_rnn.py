"""Batched versus one-at-a-time: completing digits and picturing hidden units.

The issue asks that windows run through the network as one batch; this measures what
that buys over running them one by one (the same code with batch size 1), interleaving
repeats, on real MNIST digits (shipped inside fastseq) and a 169-unit tied RNN.

    PYTHONPATH=. python bench/rowrnn/compare_rnn.py [--repeats 5] [--json PATH]   # no PYTHONPATH once installed
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from fastseq.datasets.mnist import load_mnist
from fastseq.rowrnn.units import sample_windows, unit_responses
from fastseq.rowrnn.models import TiedRNN, complete


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--digits", type=int, default=200, help="held-out digits completed")
    parser.add_argument("--windows", type=int, default=1000, help="windows for the hidden-unit pictures")
    parser.add_argument("--json", default=None, metavar="PATH")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = TiedRNN(28, 169)
    test = load_mnist().test_images[: args.digits]
    windows = sample_windows(test, 10, args.windows, seed=0)

    cases = {
        ("complete", "batched"): lambda: complete(model, test, 14),
        ("complete", "one digit at a time"): lambda: complete(model, test, 14, batch_size=1),
        ("unit_responses", "batched"): lambda: unit_responses(model, windows),
        ("unit_responses", "one window at a time"): lambda: unit_responses(model, windows, batch_size=1),
    }
    times: dict[tuple[str, str], list[float]] = {k: [] for k in cases}
    for _ in range(args.repeats):  # interleaved, so drifts in machine load hit every case alike
        for key, fn in cases.items():
            t0 = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - t0)

    rows = []
    print(f"{'task':<16} {'variant':<22} {'median s':>9} {'vs batched':>11}")
    for (task, variant), ts in times.items():
        med = float(np.median(ts))
        ratio = med / float(np.median(times[(task, "batched")]))
        rows.append({"task": task, "variant": variant, "median_s": med, "ratio": ratio})
        print(f"{task:<16} {variant:<22} {med:>9.4f} {ratio:>10.1f}x")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"digits": args.digits, "windows": args.windows, "repeats": args.repeats, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
