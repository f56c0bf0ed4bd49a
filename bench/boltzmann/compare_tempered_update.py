"""What a tempered PCD update costs against a plain PCD update, measured in one process.

Two RBMs of the sampler comparison's size (784-500, batch 20, PCD-1, falling rate) on the
training split of the embedded digits: plain PCD with ``--pcd-chains`` persistent chains,
and tempered PCD with ``--rungs`` x ``--chains`` (rungs x chains per rung). Each is fitted
for one epoch first (compiling the fused kernels), then their epochs alternate through the
machines' own fused epoch (``_epoch``, one Numba call per run of updates), ``--repeats``
times each. Prints each machine's median seconds per epoch and the ratio tempered / PCD,
the number the sampler comparison's "same time" protocol rests on (an epoch is the same
number of updates for both):

    flock /tmp/fastseq-bench.lock python bench/boltzmann/compare_tempered_update.py
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: the shared helpers
from _json_out import write_json  # noqa: E402
from compare_samplers import digits_split, settings  # noqa: E402

from fastseq.boltzmann import RBM  # noqa: E402


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hidden", type=int, default=500)
    ap.add_argument("--pcd-chains", type=int, default=100)
    ap.add_argument("--rungs", type=int, default=2)
    ap.add_argument("--chains", type=int, default=50, help="tempered chains per rung")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--rows", type=int, default=0, help="use only this many digits (0: all 5,000), for a smoke run")
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args(argv)
    X, _, tr, _, _ = digits_split(args.rows)
    base = dict(settings(argparse.Namespace(hidden=args.hidden, seed=0, schedule="linear")), n_iter=1)
    machines = {f"PCD, {args.pcd_chains} chains": RBM(**base, n_chains=args.pcd_chains),
                f"tempered, {args.rungs} x {args.chains}": RBM(**base, n_chains=args.chains, tempering=args.rungs)}
    data = {}
    for name, m in machines.items():
        m.fit(X[tr])
        data[name] = m._training_data(X[tr])
    seconds = {name: [] for name in machines}
    for _ in range(args.repeats):
        for name, m in machines.items():
            with m._threads():
                start = time.perf_counter()
                m._epoch(data[name], 1)
                seconds[name].append(time.perf_counter() - start)
    medians = {name: float(np.median(s)) for name, s in seconds.items()}
    updates = -(-len(tr) // 20)
    for name, s in seconds.items():
        print(f"{name:24s} {medians[name]:.3f} s per epoch of {updates} updates "
              f"(runs {min(s):.3f}-{max(s):.3f})")
    pcd, pt = medians.values()
    print(f"tempered / PCD: {pt / pcd:.2f}")
    result = {"settings": vars(args), "updates per epoch": updates, "seconds per epoch": seconds,
              "median seconds per epoch": medians, "ratio tempered / PCD": pt / pcd}
    if args.json:
        write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
