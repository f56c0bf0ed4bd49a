"""Schedule speed: windows per second of the native scheduler vs its Python twin.

Workload (issue 2): B=256 slots, K=64 steps, one million lognormal lengths.
The twin is timed on the first windows only (it is ~1000x slower); both are
interleaved in repeats and the medians are compared.

    python bench/compare_schedule.py [--sequences 1000000] [--repeats 5] [--json out.json]
"""
from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time

import numpy as np

from fastseq.bptt.schedule import SlotSchedule
from fastseq.bptt.store import gather_rows, gather_rows_reference


def lognormal_lengths(n: int, seed: int = 0) -> np.ndarray:
    return np.maximum(1, np.random.default_rng(seed).lognormal(4.0, 1.0, n)).astype(np.int64)


def windows_per_second(schedule: SlotSchedule, limit: int | None) -> tuple[float, int]:
    start = time.perf_counter()
    count = sum(1 for _ in itertools.islice(schedule, limit))
    return count / (time.perf_counter() - start), count


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sequences", type=int, default=1_000_000)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--bptt", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--twin-windows", type=int, default=40)
    p.add_argument("--json")
    args = p.parse_args(argv)
    lengths = lognormal_lengths(args.sequences)
    print(f"{args.sequences:,} lognormal lengths (sum {lengths.sum():,}), B={args.batch}, K={args.bptt}")
    native, twin, gather_native, gather_twin = [], [], [], []
    data = np.random.default_rng(1).standard_normal((1_000_000, 32)).astype(np.float32)
    rows = np.random.default_rng(2).integers(-1, data.shape[0], (args.bptt, args.batch))
    out = np.empty(rows.shape + (32,), np.float32)
    for _ in range(args.repeats):
        rate, n_windows = windows_per_second(SlotSchedule(lengths, args.batch, args.bptt, compact=True), None)
        native.append(rate)
        twin.append(windows_per_second(SlotSchedule(lengths, args.batch, args.bptt, compact=True,
                                                    backend="python"), args.twin_windows)[0])
        t = time.perf_counter()
        for _ in range(200):
            gather_rows(data, rows, out)
        gather_native.append(200 / (time.perf_counter() - t))
        t = time.perf_counter()
        for _ in range(20):
            gather_rows_reference(data, rows)
        gather_twin.append(20 / (time.perf_counter() - t))
    result = {
        "windows_per_epoch": n_windows,
        "native_windows_per_s": statistics.median(native),
        "twin_windows_per_s": statistics.median(twin),
        "native_gathers_per_s": statistics.median(gather_native),
        "numpy_gathers_per_s": statistics.median(gather_twin),
    }
    print(f"schedule: native {result['native_windows_per_s']:,.0f} windows/s "
          f"(whole epoch of {n_windows:,} windows in {n_windows / result['native_windows_per_s']:.2f} s), "
          f"Python twin {result['twin_windows_per_s']:,.1f} windows/s: "
          f"{result['native_windows_per_s'] / result['twin_windows_per_s']:,.0f}x")
    print(f"gather of a {args.bptt}x{args.batch}x32 float32 window: native {result['native_gathers_per_s']:,.0f}/s, "
          f"NumPy fancy indexing {result['numpy_gathers_per_s']:,.0f}/s: "
          f"{result['native_gathers_per_s'] / result['numpy_gathers_per_s']:.1f}x")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)
    return result


if __name__ == "__main__":
    main()
