"""Stores larger than memory: peak resident memory while a memory-mapped SequenceStore is built
from an iterator and trained from, as the store grows ``--factor`` times; and gather speed from
the memory map vs from RAM.

Memory: each step runs in a fresh process and reports its peak resident set (VmHWM): building
the store with ``SequenceStore.from_iterable`` (lognormal lengths, ``--features`` float32 per
row), then one epoch of ``train_bptt`` (a GRU with 16 hidden units, B=256, K=32) reading it
through the memory map, with the default ``resident_limit`` (1 GiB) lowered to ``--limit-mib``,
and once without a limit for contrast.

Speed: the windows of one epoch's schedule (B=256, K=64) gathered from the store in RAM, from
the memory map (pages resident), and from the memory map with pages dropped every
``--limit-mib`` (faulted back from the page cache); repeats interleaved, medians compared.

    python bench/bptt/compare_store.py [--rows 500000] [--factor 10] [--features 64] [--limit-mib 64]
                                  [--repeats 5] [--folder DIR] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: the shared helpers, when run as a path
from _json_out import write_json  # noqa: E402
from _timing import median, time_cases, timed  # noqa: E402


def peak_rss_mib() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def lengths_for(rows: int, seed: int = 0) -> np.ndarray:
    """Lognormal lengths (median 55) cut to sum to ``rows``."""
    lengths = np.maximum(1, np.random.default_rng(seed).lognormal(4.0, 1.0, rows // 20 + 10)).astype(np.int64)
    lengths = lengths[: int(np.searchsorted(np.cumsum(lengths), rows)) + 1]
    lengths[-1] -= int(lengths.sum()) - rows
    return lengths[lengths > 0]


def sequences(rows: int, features: int):
    rng = np.random.default_rng(1)
    for t in lengths_for(rows):
        yield rng.standard_normal((int(t), features), dtype=np.float32)


def child(args) -> dict:
    import torch
    from torch import nn

    from fastseq.bptt import SequenceStore, train_bptt

    if args.child == "build":
        took, store = timed(lambda: SequenceStore.from_iterable(sequences(args.rows, args.features), args.folder))
        return {"seconds": took, "peak_mib": peak_rss_mib(), "rows": int(store.lengths.sum()),
                "store_mib": store.data.nbytes / 2**20}
    limit = None if args.child == "train-nolimit" else args.limit_mib << 20
    store = SequenceStore.load(args.folder, resident_limit=limit)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    f, h = args.features, 16

    class Decoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn, self.out = nn.GRU(2 * f, h), nn.Linear(h, f)

        def forward(self, visible, context, hidden):
            y, hidden = self.rnn(torch.cat([visible, context.unsqueeze(0)], -1), hidden)
            return self.out(y), hidden

    model = Decoder()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    took, losses = timed(lambda: train_bptt(model, store, store, torch.zeros(f), torch.zeros(1, h), opt,
                                            batch_size=256, bptt=32))
    return {"seconds": took, "peak_mib": peak_rss_mib(), "windows": len(losses)}


def run_child(args, mode: str, rows: int, folder: Path) -> dict:
    cmd = [sys.executable, "-P", __file__, "--child", mode, "--rows", str(rows), "--features", str(args.features),
           "--limit-mib", str(args.limit_mib), "--folder", str(folder)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def gather_speed(args, folder: Path) -> dict:
    from fastseq.bptt import SequenceStore, SlotSchedule

    ram = SequenceStore.load(folder, mmap=False)
    mapped = SequenceStore.load(folder, resident_limit=None)
    dropped = SequenceStore.load(folder, resident_limit=args.limit_mib << 20)
    windows = [w.rows.copy() for w in SlotSchedule(ram.lengths, 256, 64, np.arange(len(ram)))]
    out = np.empty((64, 256) + ram.feature_shape, ram.dtype)
    gib = sum(int((r >= 0).sum()) for r in windows) * ram.data[0].nbytes / 2**30

    def epoch(store) -> None:
        for r in windows:
            store.gather(r, out if r.shape == out.shape[:2] else None)

    for store in (mapped, dropped):  # warm the page cache (and, for "mmap", the mapping)
        epoch(store)
    times = time_cases({"ram": lambda: epoch(ram), "mmap": lambda: epoch(mapped),
                        "mmap_dropped": lambda: epoch(dropped)}, args.repeats, warmup=False)
    result = {"gib_per_epoch": gib}
    for name, ts in times.items():
        result[name] = {"median_gib_s": gib / median(ts), "min_s": min(ts), "max_s": max(ts)}
    for name in ("mmap", "mmap_dropped"):
        result[name]["ratio_to_ram"] = median(times["ram"]) / median(times[name])
    return result


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=500_000)
    p.add_argument("--factor", type=int, default=10)
    p.add_argument("--features", type=int, default=64)
    p.add_argument("--limit-mib", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--folder")
    p.add_argument("--json")
    p.add_argument("--child", choices=["build", "train", "train-nolimit"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args)))
        return {}
    root = Path(args.folder or tempfile.mkdtemp(prefix="fastseq-store-bench-"))
    result: dict = {"features": args.features, "limit_mib": args.limit_mib, "sizes": {}}
    try:
        for rows in (args.rows, args.rows * args.factor):
            folder = root / f"rows{rows}"
            entry = {"build": run_child(args, "build", rows, folder)}
            entry["train"] = run_child(args, "train", rows, folder)
            entry["train_nolimit"] = run_child(args, "train-nolimit", rows, folder)
            result["sizes"][rows] = entry
            print(f"{rows:>10} rows ({entry['build']['store_mib']:7.0f} MiB): peak RSS build "
                  f"{entry['build']['peak_mib']:6.0f} MiB ({entry['build']['seconds']:.1f} s), train "
                  f"{entry['train']['peak_mib']:6.0f} MiB ({entry['train']['seconds']:.1f} s), train without "
                  f"resident_limit {entry['train_nolimit']['peak_mib']:6.0f} MiB", flush=True)
        result["gather"] = gather_speed(args, root / f"rows{args.rows}")
        g = result["gather"]
        print(f"gather, {g['gib_per_epoch']:.2f} GiB per epoch: RAM {g['ram']['median_gib_s']:.2f} GiB/s, "
              f"memory map {g['mmap']['median_gib_s']:.2f} GiB/s ({g['mmap']['ratio_to_ram']:.2f}x RAM), "
              f"memory map dropping pages every {args.limit_mib} MiB {g['mmap_dropped']['median_gib_s']:.2f} GiB/s "
              f"({g['mmap_dropped']['ratio_to_ram']:.2f}x RAM); medians of {args.repeats}")
    finally:
        if not args.folder:
            shutil.rmtree(root, ignore_errors=True)
    if args.json:
        write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
