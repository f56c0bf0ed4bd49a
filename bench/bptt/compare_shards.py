"""Load imbalance of slot-swap shards over 1-8 processes: round-robin by count against
shards balanced by steps (fastseq.bptt.shards.plan_epoch), on lognormal lengths.

Idle slot-steps are counted as a share of world x windows x B x K, where windows is the
longest shard's count (every process runs that many windows, the others idle), so they
include the epoch's drain and the idle windows of the processes that finish early.

    python bench/bptt/compare_shards.py [--sequences 100000] [--batch 256] [--bptt 64] [--worlds 1 2 4 8]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from fastseq.bptt.loader import tail_order
from fastseq.bptt.schedule import SlotSchedule
from fastseq.bptt.shards import plan_epoch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: the shared helpers, when run as a path
from _json_out import write_json  # noqa: E402
from _timing import timed  # noqa: E402


def lognormal_lengths(n: int, seed: int = 0) -> np.ndarray:
    return np.maximum(1, np.round(np.random.default_rng(seed).lognormal(4.0, 1.0, n))).astype(np.int64)


def round_robin(lengths: np.ndarray, world: int, batch: int, bptt: int) -> list[int]:
    """The former shards: the longest batch x world first, then ``order[rank::world]``."""
    order = tail_order(np.arange(lengths.size), lengths, batch * world, "longest_first")
    return [sum(1 for _ in SlotSchedule(lengths, batch, bptt, order[r::world], compact=True)) for r in range(world)]


def idle_share(total: int, world: int, windows: int, batch: int, bptt: int) -> float:
    return 1.0 - total / (world * windows * batch * bptt)


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sequences", type=int, default=100_000)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--bptt", type=int, default=64)
    p.add_argument("--worlds", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json")
    args = p.parse_args(argv)
    lengths = lognormal_lengths(args.sequences, args.seed)
    total, b, k = int(lengths.sum()), args.batch, args.bptt
    print(f"{lengths.size} lognormal(4, 1) lengths, {total} steps, longest {lengths.max()} "
          f"({-(-int(lengths.max()) // k)} windows alone), B={b}, K={k}")
    rows = []
    for world in args.worlds:
        before = round_robin(lengths, world, b, k)
        plan_s, plan = timed(lambda: plan_epoch(lengths, np.arange(lengths.size), world, b, k))
        after = plan.windows_per_rank
        steps = [int(lengths[s.order].sum()) for s in plan.shards]
        row = {"world": world, "round_robin_windows": [min(before), max(before)],
               "round_robin_idle": idle_share(total, world, max(before), b, k),
               "balanced_windows": [min(after), max(after)],
               "balanced_idle": idle_share(total, world, max(after), b, k),
               "balanced_steps": [min(steps), max(steps)], "plan_seconds": plan_s}
        rows.append(row)
        print(f"world {world}: round-robin windows {min(before)}-{max(before)}, idle {row['round_robin_idle']:.2%}; "
              f"balanced windows {min(after)}-{max(after)} (steps per rank {min(steps)}-{max(steps)}), "
              f"idle {row['balanced_idle']:.2%}; planning all shards {plan_s:.2f} s")
    if args.json:
        write_json(args.json, rows)
    return rows


if __name__ == "__main__":
    main()
