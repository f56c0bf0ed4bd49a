"""Race the usual ways of batching variable-length sequences against fastseq, in one process.

Every method trains the same GRU + linear head with truncated BPTT (K steps per
update); repeats are interleaved (method A, B, C, A, B, C, ...) so machine noise
hits all alike, and medians are reported. Steps/s counts real steps only
(padding computed does not count). Baselines time a random sample of their
batches (their speed does not change along an epoch); fastseq and the ideal
time whole epochs / all their windows, fastseq's epoch end (drain) included.

Run:
    flock /tmp/fastseq-bench.lock python bench/compare_batching.py [--quick] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
try:
    import fastseq  # noqa: F401  (the installed package, or the in-place build below)
except ImportError:
    sys.path.insert(1, os.path.dirname(HERE))

import _batching_methods as bm  # noqa: E402
from _time_to_quality import time_to_quality  # noqa: E402

ORDER = ["original", "padded_random", "pack_padded", "bucketed", "fastseq_step", "fastseq_seq",
         "fastseq_seq_dense", "fastseq_seq_packed", "ideal", "ideal_steps"]
LABELS = {
    "original": "original algorithm (slot loop)",
    "padded_random": "padded, random batches",
    "pack_padded": "pack_padded_sequence",
    "bucketed": "length-bucketed padded",
    "fastseq_step": "fastseq step mode (train_bptt)",
    "fastseq_seq": "fastseq sequence mode (auto engine)",
    "fastseq_seq_dense": "fastseq sequence mode (dense)",
    "fastseq_seq_packed": "fastseq sequence mode (packed)",
    "ideal": "ideal: fixed length, nn.GRU",
    "ideal_steps": "ideal: fixed length, step engine",
}


def _methods(data: bm.Data, batch: int, bptt: int, hidden: int, sample_batches: int, which: list[str]):
    rng = np.random.default_rng(1)
    rb = bm.collate(data, bm.random_batches(data, batch, rng)[:sample_batches])
    bb = bm.collate(data, bm.bucketed_batches(data, batch, rng)[:sample_batches])
    iw = bm.ideal_windows(data, batch, bptt)
    orig_windows = max(4, sample_batches)
    # loaders are built once, like a training run does; each call iterates one epoch
    loaders = {k: bm.fastseq_loader(data, batch, bptt, plan=plan) if k in which else None
               for k, plan in (("fastseq_seq", "auto"), ("fastseq_seq_dense", "dense"), ("fastseq_seq_packed", "packed"))}
    fns = {
        "original": lambda m: bm.train_original(m, data, batch, bptt, max_windows=orig_windows),
        "padded_random": lambda m: bm.train_padded(m, rb, bptt),
        "pack_padded": lambda m: bm.train_packed(m, rb, bptt),
        "bucketed": lambda m: bm.train_padded(m, bb, bptt),
        "fastseq_step": lambda m: bm.train_bptt_step_mode(m, data, batch, bptt),
        "fastseq_seq": lambda m: bm.train_fastseq(m, loaders["fastseq_seq"], "auto"),
        "fastseq_seq_dense": lambda m: bm.train_fastseq(m, loaders["fastseq_seq_dense"], "dense"),
        "fastseq_seq_packed": lambda m: bm.train_fastseq(m, loaders["fastseq_seq_packed"], "packed"),
        "ideal": lambda m: bm.train_ideal(m, iw, bptt),
        "ideal_steps": lambda m: bm.train_ideal(m, iw, bptt, "steps"),
    }
    models = {k: bm.Model(data.features, hidden) for k in which}
    return {k: (fns[k], models[k]) for k in which}


def race(name: str, data: bm.Data, batch: int, bptt: int, hidden: int, repeats: int, sample_batches: int,
         which: list[str]) -> dict:
    methods = _methods(data, batch, bptt, hidden, sample_batches, which)
    rates = {k: [] for k in methods}
    pad = {}
    for _ in range(repeats):
        for k, (fn, model) in methods.items():
            t0 = time.perf_counter()
            real, computed = fn(model)
            rates[k].append(real / (time.perf_counter() - t0))
            pad[k] = bm.padding_fraction(real, computed)
    med = {k: float(np.median(v)) for k, v in rates.items()}
    ideal = max(med.get("ideal", 0.0), med.get("ideal_steps", 0.0)) or None
    rows = [{"method": k, "label": LABELS[k], "steps_per_s": med[k], "padding": pad[k],
             "vs_ideal": med[k] / ideal if ideal else None, "samples": [round(r) for r in rates[k]]}
            for k in ORDER if k in med]
    info = {"workload": name, "sequences": len(data.xs), "real_steps": int(data.lengths.sum()),
            "median_length": float(np.median(data.lengths)), "max_length": int(data.lengths.max()),
            "batch": batch, "bptt": bptt, "features": data.features, "hidden": hidden, "rows": rows}
    print(f"\n## {name}: N={len(data.xs)}, lengths median {np.median(data.lengths):.0f} / max "
          f"{data.lengths.max()}, B={batch}, K={bptt}, F={data.features}, H={hidden}")
    print(f"| {'method':38s} | steps/s | x ideal | padding |")
    print(f"|{'-' * 40}|--------:|--------:|--------:|")
    for r in rows:
        vs = f"{r['vs_ideal']:.2f}" if r["vs_ideal"] else "-"
        padding = "-" if r["padding"] is None else f"{100 * r['padding']:.1f}%"
        print(f"| {r['label']:38s} | {r['steps_per_s']:7.0f} | {vs:>7s} | {padding:>7s} |")
    return info


def _rate(info: dict, method: str) -> float:
    return next(r["steps_per_s"] for r in info["rows"] if r["method"] == method)


def targets(main: dict, orig: dict) -> list[dict]:
    fs = _rate(main, "fastseq_seq")
    ideal = max(_rate(main, "ideal"), _rate(main, "ideal_steps"))
    out = [
        ("fastseq / ideal (GRU F=32 H=128 B=64 K=32)", fs / ideal, 0.9),
        ("fastseq / padded random batches", fs / _rate(main, "padded_random"), 3.0),
        ("fastseq / length-bucketed batches", fs / _rate(main, "bucketed"), 1.1),
        ("fastseq / original algorithm (H=32 B=1024 K=32)",
         max(_rate(orig, "fastseq_seq"), _rate(orig, "fastseq_step")) / _rate(orig, "original"), 4.0),
        ("ideal / original algorithm (H=32 B=1024 K=32), for scale",
         max(_rate(orig, "ideal"), _rate(orig, "ideal_steps")) / _rate(orig, "original"), None),
    ]
    print("\n## Targets")
    print("| ratio | measured | target | met |")
    print("|---|---:|---:|:---:|")
    rows = []
    for label, value, goal in out:
        met = None if goal is None else bool(value >= goal)
        print(f"| {label} | {value:.2f} | {'-' if goal is None else f'>= {goal}'} | "
              f"{'-' if met is None else ('yes' if met else 'no')} |")
        rows.append({"ratio": label, "measured": value, "target": goal, "met": met})
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="about a minute: smaller data, 2 repeats (noisier)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (the loader thread uses another core)")
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--ttq-seconds", type=float, default=None, help="wall-clock budget per method for time-to-quality")
    p.add_argument("--skip-ttq", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    q = args.quick
    repeats = args.repeats or (2 if q else 5)
    sample = 4 if q else 16
    core = [k for k in ORDER if k not in ("fastseq_seq_dense", "fastseq_seq_packed")]
    t0 = time.perf_counter()
    results = {"threads": args.threads, "repeats": repeats, "torch": torch.__version__, "workloads": []}
    main_w = race("lognormal", bm.lognormal_data(1000 if q else 6000, 32), 64, 32, 128, repeats, sample, ORDER)
    results["workloads"].append(main_w)
    few = max(2, repeats - 2)
    corpus = bm.corpus_data(300 if q else 2000, 32, max_length=600 if q else 2000)
    results["workloads"].append(race("stdlib_paragraphs", corpus, 64, 32, 128, few, sample, core))
    results["workloads"].append(race("fixed28", bm.fixed_data(600 if q else 2000, 32, 28), 64, 32, 128,
                                     few, sample, core))
    # the original's regime; lengths capped so the epoch is much deeper (N * mean / B steps) than
    # its longest sequence, as in real data sets, and the epoch end does not dominate
    orig_data = bm.lognormal_data(6000 if q else 24000, 32, seed=2, max_length=400 if q else 1000)
    orig = race("lognormal, original's regime", orig_data, 1024, 32, 32, repeats, 4 if q else 8,
                ["original", "fastseq_step", "fastseq_seq", "ideal", "ideal_steps"])
    results["workloads"].append(orig)
    results["targets"] = targets(main_w, orig)
    if not args.skip_ttq:
        budget = args.ttq_seconds or (5.0 if q else 30.0)
        results["time_to_quality"] = time_to_quality(budget, quick=q)
    results["seconds"] = time.perf_counter() - t0
    print(f"\n(total {results['seconds']:.0f} s, torch {torch.__version__}, {args.threads} intra-op thread(s))")
    if args.json:
        tmp = args.json + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(results, fh, indent=1)
        os.replace(tmp, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
