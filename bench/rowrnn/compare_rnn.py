"""Batched versus one-at-a-time: completing digits and picturing hidden units.

The issue asks that windows run through the network as one batch; this measures what
that buys over running them one by one (the same code with batch size 1), interleaving
repeats, on real MNIST digits (shipped inside fastseq) and a 169-unit tied RNN.

    PYTHONPATH=. python bench/rowrnn/compare_rnn.py [--repeats 5] [--json PATH]   # no PYTHONPATH once installed
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from fastseq.datasets.mnist import load_mnist
from fastseq.rowrnn.units import sample_windows, unit_responses
from fastseq.rowrnn.models import TiedRNN, complete

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: the shared helpers, when run as a path
from _json_out import write_json  # noqa: E402
from _timing import median, time_cases  # noqa: E402


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--digits", type=int, default=200, help="held-out digits completed")
    parser.add_argument("--windows", type=int, default=1000, help="windows for the hidden-unit pictures")
    parser.add_argument("--json", default=None, metavar="PATH")
    args = parser.parse_args(argv)
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
    # interleaved, so drifts in machine load hit every case alike; no warm-up
    times = time_cases(cases, args.repeats, warmup=False)

    rows = []
    print(f"{'task':<16} {'variant':<22} {'median s':>9} {'vs batched':>11}")
    for (task, variant), ts in times.items():
        med = median(ts)
        ratio = med / median(times[(task, "batched")])
        rows.append({"task": task, "variant": variant, "median_s": med, "ratio": ratio})
        print(f"{task:<16} {variant:<22} {med:>9.4f} {ratio:>10.1f}x")
    if args.json:
        write_json(args.json, {"digits": args.digits, "windows": args.windows, "repeats": args.repeats, "rows": rows})


if __name__ == "__main__":
    main()
