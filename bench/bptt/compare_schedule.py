"""Schedule and gather speed against fair peers, each timed the same way.

- Scheduler: the native scheduler against the fastest NumPy scheduler we could write
  (``bench/bptt/_schedule_numpy.py``: heap admission once per epoch, whole-array windows),
  both over the same whole epoch without compaction (they yield identical windows).
- Twin speed-up: native against its plain-Python twin over the *same* windows (2 to 41
  of the epoch, set-up untimed; the twin is a readable per-slot loop, the tests'
  reference, not a peer).
- Gather: ``gather_rows`` into a reused buffer against ``np.take(..., out=reused)`` plus
  zeroing the idle rows in place (reused index and mask buffers).

Every comparison runs once to warm up, then the contenders take turns in each repeat;
medians and the spread (min-max over repeats) are printed.

    python bench/bptt/compare_schedule.py [--sequences 1000000] [--repeats 5] [--json out.json]
"""
from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np

from _schedule_numpy import numpy_gather_into, numpy_schedule

from fastseq.bptt.schedule import SlotSchedule
from fastseq.bptt.store import gather_rows

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: the shared helpers, when run as a path
from _json_out import write_json  # noqa: E402
from _timing import interleave, per_second, seconds, summary  # noqa: E402


def lognormal_lengths(n: int, seed: int = 0) -> np.ndarray:
    return np.maximum(1, np.random.default_rng(seed).lognormal(4.0, 1.0, n)).astype(np.int64)


def rate(make_iter) -> float:
    """Windows per second of a whole epoch, construction and admission included."""
    return per_second(lambda: sum(1 for _ in make_iter()))


def window_rate(make_iter, windows: int) -> float:
    """Windows per second over windows 2..windows+1 (set-up and the first window untimed)."""
    it = iter(make_iter())
    next(it)
    return per_second(lambda: sum(1 for _ in itertools.islice(it, windows)))


def calls_per_second(fn, calls: int) -> float:
    return 1.0 / seconds(fn, calls)


def fmt(s: dict, digits: int = 0) -> str:
    return f"{s['median']:,.{digits}f} ({s['min']:,.{digits}f}-{s['max']:,.{digits}f})"


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sequences", type=int, default=1_000_000)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--bptt", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--twin-windows", type=int, default=40, help="windows timed for native vs twin")
    p.add_argument("--idle", type=float, default=1 / 64, help="fraction of idle (-1) rows in the gather")
    p.add_argument("--json")
    args = p.parse_args(argv)
    lengths = lognormal_lengths(args.sequences)
    b, k = args.batch, args.bptt
    print(f"{args.sequences:,} lognormal lengths (sum {lengths.sum():,}), B={b}, K={k}, "
          f"{args.repeats} interleaved repeats after a warm-up; medians (min-max)")

    epoch = interleave({
        "native": lambda: rate(lambda: SlotSchedule(lengths, b, k)),
        "numpy": lambda: rate(lambda: numpy_schedule(lengths, b, k)),
    }, args.repeats)
    n_windows = sum(1 for _ in SlotSchedule(lengths, b, k))
    twin = interleave({
        "native": lambda: window_rate(lambda: SlotSchedule(lengths, b, k, compact=True), args.twin_windows),
        "python": lambda: window_rate(lambda: SlotSchedule(lengths, b, k, compact=True, backend="python"),
                                      args.twin_windows),
    }, args.repeats)

    rng = np.random.default_rng(1)
    data = rng.standard_normal((1_000_000, 32)).astype(np.float32)
    rows = rng.integers(0, data.shape[0], (k, b))
    rows[rng.random((k, b)) < args.idle] = -1
    out_native, out_numpy = np.empty(rows.shape + (32,), np.float32), np.empty(rows.shape + (32,), np.float32)
    index, idle = np.empty(rows.shape, np.int64), np.empty(rows.shape, bool)
    gather = interleave({
        "native": lambda: calls_per_second(lambda: gather_rows(data, rows, out_native), 200),
        "numpy": lambda: calls_per_second(lambda: numpy_gather_into(data, rows, out_numpy, index, idle), 200),
    }, args.repeats)
    np.testing.assert_array_equal(out_native, out_numpy)

    r = {
        "windows_per_epoch": n_windows,
        "epoch_native": summary(epoch["native"]), "epoch_numpy": summary(epoch["numpy"]),
        "twin_native": summary(twin["native"]), "twin_python": summary(twin["python"]),
        "gather_native": summary(gather["native"]), "gather_numpy": summary(gather["numpy"]),
    }
    ratio = lambda a, c: r[a]["median"] / r[c]["median"]  # noqa: E731
    r["ratios"] = {"scheduler_vs_numpy": ratio("epoch_native", "epoch_numpy"),
                   "scheduler_vs_twin": ratio("twin_native", "twin_python"),
                   "gather_vs_numpy": ratio("gather_native", "gather_numpy")}
    print(f"scheduler, whole epoch ({n_windows:,} windows, no compaction), windows/s: "
          f"native {fmt(r['epoch_native'])}, NumPy {fmt(r['epoch_numpy'])}: "
          f"{r['ratios']['scheduler_vs_numpy']:.1f}x")
    print(f"twin speed-up, the same {args.twin_windows} windows (compacting), windows/s: "
          f"native {fmt(r['twin_native'])}, Python twin {fmt(r['twin_python'], 1)}: "
          f"{r['ratios']['scheduler_vs_twin']:,.0f}x")
    print(f"gather of a {k}x{b}x32 float32 window ({args.idle:.1%} idle rows) into a reused buffer, calls/s: "
          f"native {fmt(r['gather_native'])}, np.take + mask {fmt(r['gather_numpy'])}: "
          f"{r['ratios']['gather_vs_numpy']:.2f}x")
    if args.json:
        write_json(args.json, r)
    return r


if __name__ == "__main__":
    main()
