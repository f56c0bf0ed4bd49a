"""Race the usual ways of batching variable-length sequences against fastseq, in one process.

Every method trains the same GRU (or LSTM) + linear head with truncated BPTT (K
steps per update); each method first runs once untimed (warm-up: allocator, Numba
kernels), then repeats are interleaved (method A, B, C, A, B, C, ...) so machine
noise hits all alike, and medians are reported; "x ideal" is relative to the plain
module (``nn.GRU`` / ``nn.LSTM``) on fixed-length windows. Steps/s counts real steps only
(padding computed does not count). Baselines time a random sample of their
batches (their speed does not change along an epoch); fastseq and the ideal
time whole epochs / all their windows, fastseq's epoch end (drain) included.

The fastseq timed is the checkout this script is in (its compiled extensions built in
place), not an installed copy, unless PYTHONPATH names another. Under a loaded machine,
``--clock cpu`` times each call by the CPU time of this process (every thread of it) instead
of the wall clock; at one thread only, as threads spin-waiting for a core count as busy.

Run:
    flock /tmp/fastseq-bench.lock python bench/bptt/compare_batching.py [--quick] [--threads 1,2] [--workloads lognormal,original] [--clock cpu] [--json out.json]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

if "PYTHONPATH" not in os.environ:  # the checkout's fastseq, not an installed one
    sys.path.insert(1, str(Path(__file__).resolve().parents[2]))
import _batching_methods as bm  # noqa: E402
from _time_to_quality import time_to_quality  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: the shared helpers, when run as a path
from _json_out import write_json  # noqa: E402
from _timing import interleave, median, processor, spread, timed  # noqa: E402

ORDER = ["original", "padded_random", "pack_padded", "bucketed", "fastseq_step", "fastseq_seq",
         "fastseq_seq_fused", "fastseq_seq_steps", "fastseq_seq_dense", "fastseq_seq_packed", "ideal",
         "ideal_fused", "ideal_steps", "ideal_decoder", "original_feedback", "fastseq_step_feedback"]
LABELS = {
    "original": "original algorithm (slot loop)",
    "padded_random": "padded, random batches",
    "pack_padded": "pack_padded_sequence",
    "bucketed": "length-bucketed padded",
    "fastseq_step": "fastseq step mode (train_bptt)",
    "fastseq_seq": "fastseq sequence mode (auto engine)",
    "fastseq_seq_fused": "fastseq sequence mode (fused)",
    "fastseq_seq_steps": "fastseq sequence mode (steps)",
    "fastseq_seq_dense": "fastseq sequence mode (dense)",
    "fastseq_seq_packed": "fastseq sequence mode (packed)",
    "ideal": "ideal: fixed length, plain module",
    "ideal_fused": "ideal: fixed length, fused engine",
    "ideal_steps": "ideal: fixed length, step engine",
    "ideal_decoder": "ideal: fixed length, decoder stepped",
    "original_feedback": "original algorithm, FeedbackGRU stepped",
    "fastseq_step_feedback": "train_bptt, FeedbackGRU (fused window)",
}
FEEDBACK = ("original_feedback", "fastseq_step_feedback")
SEQ_ENGINES = {"fastseq_seq": "auto", "fastseq_seq_fused": "fused", "fastseq_seq_steps": "steps",
               "fastseq_seq_dense": "dense", "fastseq_seq_packed": "packed"}


def _methods(data: bm.Data, batch: int, bptt: int, hidden: int, sample_batches: int, which: list[str],
             cell: str = "gru"):
    rng = np.random.default_rng(1)
    rb = bm.collate(data, bm.random_batches(data, batch, rng)[:sample_batches])
    bb = bm.collate(data, bm.bucketed_batches(data, batch, rng)[:sample_batches])
    iw = bm.ideal_windows(data, batch, bptt)
    orig_windows = max(4, sample_batches)
    # loaders are built once, like a training run does; each call iterates one epoch
    plans = {"dense": "dense", "packed": "packed"}
    loaders = {k: bm.fastseq_loader(data, batch, bptt, plan=plans.get(e, "auto")) for k, e in SEQ_ENGINES.items()
               if k in which}
    fns = {
        "original": lambda m: bm.train_original(m, data, batch, bptt, max_windows=orig_windows),
        "padded_random": lambda m: bm.train_padded(m, rb, bptt),
        "pack_padded": lambda m: bm.train_packed(m, rb, bptt),
        "bucketed": lambda m: bm.train_padded(m, bb, bptt),
        "fastseq_step": lambda m: bm.train_bptt_step_mode(m, data, batch, bptt),
        **{k: (lambda m, k=k: bm.train_fastseq(m, loaders[k], SEQ_ENGINES[k])) for k in loaders},
        "ideal": lambda m: bm.train_ideal(m, iw, bptt),
        "ideal_fused": lambda m: bm.train_ideal(m, iw, bptt, "fused"),
        "ideal_steps": lambda m: bm.train_ideal(m, iw, bptt, "steps"),
        "ideal_decoder": lambda m: bm.train_ideal_decoder(m, iw, bptt),
        "original_feedback": lambda m: bm.train_original(m, data, batch, bptt, max_windows=orig_windows),
        "fastseq_step_feedback": lambda m: bm.train_bptt_step_mode(m, data, batch, bptt),
    }
    models = {k: bm.FeedbackModel(data.features, hidden) if k in FEEDBACK else bm.Model(data.features, hidden, cell=cell)
              for k in which}
    return {k: (fns[k], models[k]) for k in which}


def race(name: str, data: bm.Data, batch: int, bptt: int, hidden: int, repeats: int, sample_batches: int,
         which: list[str], cell: str = "gru") -> dict:
    methods = _methods(data, batch, bptt, hidden, sample_batches, which, cell)
    # each sample: (seconds, (real steps, computed steps)) of one epoch; warm-up untimed
    samples = interleave({k: (lambda fn=fn, model=model: CLOCK(lambda: fn(model)))
                          for k, (fn, model) in methods.items()}, repeats)
    rates = {k: [real / t for t, (real, _) in v] for k, v in samples.items()}
    pad = {k: bm.padding_fraction(*v[-1][1]) for k, v in samples.items()}
    med = {k: median(v) for k, v in rates.items()}
    ideal = med.get("ideal")
    rows = [{"method": k, "label": LABELS[k], "steps_per_s": med[k], "padding": pad[k],
             "vs_ideal": med[k] / ideal if ideal else None, "samples": [round(r) for r in rates[k]],
             "spread": spread(rates[k])}
            for k in ORDER if k in med]
    info = {"workload": name, "cell": cell, "threads": torch.get_num_threads(), "sequences": len(data.xs),
            "real_steps": int(data.lengths.sum()), "median_length": float(np.median(data.lengths)),
            "max_length": int(data.lengths.max()), "batch": batch, "bptt": bptt, "features": data.features,
            "hidden": hidden, "rows": rows}
    print(f"\n## {name} ({cell.upper()}, {torch.get_num_threads()} thread(s)): N={len(data.xs)}, lengths median "
          f"{np.median(data.lengths):.0f} / max {data.lengths.max()}, B={batch}, K={bptt}, F={data.features}, H={hidden}")
    print(f"| {'method':38s} | steps/s | x ideal | padding | spread (min-max / median) |")
    print(f"|{'-' * 40}|--------:|--------:|--------:|:---:|")
    for r in rows:
        vs = f"{r['vs_ideal']:.2f}" if r["vs_ideal"] else "-"
        padding = "-" if r["padding"] is None else f"{100 * r['padding']:.1f}%"
        strayed = f"{r['spread'][0]:.2f}-{r['spread'][1]:.2f}"
        print(f"| {r['label']:38s} | {r['steps_per_s']:7.0f} | {vs:>7s} | {padding:>7s} | {strayed} |")
    return info


def cpu_timed(fn):
    """CPU seconds of this process (all its threads) one call of ``fn`` took, and what it returned."""
    start = time.process_time()
    result = fn()
    return time.process_time() - start, result


CLOCK = timed  # --clock cpu: cpu_timed


def _rate(info: dict, method: str) -> float:
    return next(r["steps_per_s"] for r in info["rows"] if r["method"] == method)


# (label, workload, method, peer method, target or None)
TARGETS = [
    ("lognormal GRU: fastseq / ideal (plain nn.GRU)", "lognormal", "fastseq_seq", "ideal", 1.3),
    ("lognormal LSTM: fastseq / ideal (plain nn.LSTM)", "lognormal_lstm", "fastseq_seq", "ideal", 1.05),
    ("lognormal RNN: fastseq / ideal (plain nn.RNN)", "lognormal_rnn", "fastseq_seq", "ideal", 1.05),
    ("fixed28: fastseq / padded random batches", "fixed28", "fastseq_seq", "padded_random", 1.05),
    ("lognormal GRU: fastseq / length-bucketed", "lognormal", "fastseq_seq", "bucketed", 1.15),
    ("lognormal LSTM: fastseq / length-bucketed", "lognormal_lstm", "fastseq_seq", "bucketed", 1.15),
    ("lognormal GRU: fastseq / padded random batches", "lognormal", "fastseq_seq", "padded_random", 3.0),
    ("lognormal GRU: train_bptt / same decoder stepped without resets", "lognormal", "fastseq_step",
     "ideal_decoder", 0.9),
    ("H=32 B=1024: fastseq / ideal (plain nn.GRU)", "original", "fastseq_seq", "ideal", 1.0),
    ("H=32 B=1024: fastseq / original algorithm", "original", "fastseq_seq", "original", 5.0),
    ("H=32 B=1024: train_bptt / original algorithm (both feed the output back)", "original", "fastseq_step",
     "original", 4.0),
    ("H=32 B=1024: train_bptt / same decoder stepped without resets", "original", "fastseq_step",
     "ideal_decoder", 0.9),
    ("H=32 B=1024: train_bptt / original algorithm, both with a FeedbackGRU", "original",
     "fastseq_step_feedback", "original_feedback", 4.0),
    ("H=512: fastseq / ideal (plain nn.GRU)", "h512", "fastseq_seq", "ideal", 1.0),
    ("H=512: fastseq / ideal (plain nn.LSTM)", "h512_lstm", "fastseq_seq", "ideal", 1.0),
    ("H=32 B=1024: ideal / original algorithm, for scale", "original", "ideal", "original", None),
]


def targets(w: dict) -> list[dict]:
    """The ratios the fused engine aims at, from one thread count's workloads (keyed by name);
    those whose workload did not run are left out."""
    out = [(label, _rate(w[name], a) / _rate(w[name], b), goal) for label, name, a, b, goal in TARGETS if name in w]
    if not out:
        return []
    threads = next(iter(w.values()))["threads"]
    print(f"\n## Targets ({threads} thread(s))")
    print("| ratio | measured | target | met |")
    print("|---|---:|---:|:---:|")
    rows = []
    for label, value, goal in out:
        met = None if goal is None else bool(value >= goal)
        print(f"| {label} | {value:.2f} | {'-' if goal is None else f'>= {goal}'} | "
              f"{'-' if met is None else ('yes' if met else 'no')} |")
        rows.append({"ratio": label, "measured": value, "target": goal, "met": met, "threads": threads})
    return rows


WORKLOADS = ("lognormal", "lognormal_lstm", "lognormal_rnn", "stdlib", "fixed28", "original", "h512", "h512_lstm")


def workloads(q: bool, repeats: int, sample: int, only: tuple[str, ...] = WORKLOADS) -> dict:
    """The workloads named in ``only`` at the current torch thread count, keyed by a short name."""
    few = max(2, repeats - 2)
    core = ["original", "padded_random", "pack_padded", "bucketed", "fastseq_step", "fastseq_seq", "fastseq_seq_steps",
            "ideal", "ideal_fused", "ideal_steps"]
    w = {}
    if "lognormal" in only or "lognormal_lstm" in only or "lognormal_rnn" in only:
        lognormal = bm.lognormal_data(1000 if q else 6000, 32)
    if "lognormal" in only:
        w["lognormal"] = race("lognormal", lognormal, 64, 32, 128, repeats, sample,
                              [k for k in ORDER if k not in FEEDBACK])
    if "lognormal_lstm" in only:
        w["lognormal_lstm"] = race("lognormal", lognormal, 64, 32, 128, repeats, sample,
                                   ["padded_random", "bucketed", "fastseq_seq", "fastseq_seq_steps",
                                    "fastseq_seq_packed", "ideal", "ideal_fused", "ideal_steps"], cell="lstm")
    if "lognormal_rnn" in only:
        w["lognormal_rnn"] = race("lognormal", lognormal, 64, 32, 128, repeats, sample,
                                  ["padded_random", "bucketed", "fastseq_seq", "fastseq_seq_steps", "ideal",
                                   "ideal_fused", "ideal_steps"], cell="rnn")
    if "stdlib" in only:
        corpus = bm.corpus_data(300 if q else 2000, 32, max_length=600 if q else 2000)
        w["stdlib"] = race("stdlib_paragraphs", corpus, 64, 32, 128, few, sample, core)
    if "fixed28" in only:
        w["fixed28"] = race("fixed28", bm.fixed_data(600 if q else 2000, 32, 28), 64, 32, 128, few, sample, core)
    if "original" in only:
        # the original's regime; lengths capped so the epoch is much deeper (N * mean / B steps) than
        # its longest sequence, as in real data sets, and the epoch end does not dominate
        orig_data = bm.lognormal_data(6000 if q else 24000, 32, seed=2, max_length=400 if q else 1000)
        w["original"] = race("lognormal, original's regime", orig_data, 1024, 32, 32, repeats, 4 if q else 8,
                             ["original", "fastseq_step", "fastseq_seq", "fastseq_seq_steps", "ideal", "ideal_fused",
                              "ideal_steps", "ideal_decoder", "original_feedback", "fastseq_step_feedback"])
    if "h512" in only:
        # GEMM-bound: the products dominate, the engine must not lose there
        big = bm.lognormal_data(200 if q else 500, 32, seed=3, max_length=200)  # capped, like the original's regime
        w["h512"] = race("lognormal, H=512", big, 64, 32, 512, few, sample,
                         ["fastseq_seq", "fastseq_seq_steps", "ideal", "ideal_fused"])
    if "h512_lstm" in only:
        big = bm.lognormal_data(200 if q else 500, 32, seed=3, max_length=200)
        w["h512_lstm"] = race("lognormal, H=512", big, 64, 32, 512, few, sample,
                              ["fastseq_seq", "fastseq_seq_steps", "ideal", "ideal_fused"], cell="lstm")
    return w


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a few minutes: smaller data, 2 repeats (noisier)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    p.add_argument("--threads", default="1,2",
                   help="comma-separated torch intra-op thread counts, each a full pass (the loader thread uses another core)")
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--ttq-seconds", type=float, default=None, help="wall-clock budget per method for time-to-quality")
    p.add_argument("--skip-ttq", action="store_true")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="wall: elapsed time; cpu: CPU time of this process, all threads (for a loaded machine, "
                        "at 1 thread: with more, threads spin-waiting for cores count too)")
    p.add_argument("--workloads", default=",".join(WORKLOADS),
                   help=f"comma-separated subset of {', '.join(WORKLOADS)} (default: all)")
    args = p.parse_args(argv)
    threads = [int(t) for t in str(args.threads).split(",")]
    only = tuple(n.strip() for n in args.workloads.split(","))
    unknown = sorted(set(only) - set(WORKLOADS))
    if unknown:
        p.error(f"unknown workload(s) {', '.join(unknown)}; choose from {', '.join(WORKLOADS)}")
    global CLOCK
    CLOCK = cpu_timed if args.clock == "cpu" else timed
    q = args.quick
    repeats = args.repeats or (2 if q else 5)
    sample = 4 if q else 16
    t0 = time.perf_counter()
    results = {"threads": threads, "repeats": repeats, "torch": torch.__version__, "workloads": [], "targets": []}
    for n in threads:
        torch.set_num_threads(n)
        w = workloads(q, repeats, sample, only)
        results["workloads"].extend(w.values())
        results["targets"].extend(targets(w))
    if not args.skip_ttq:
        torch.set_num_threads(threads[0])
        budget = args.ttq_seconds or (5.0 if q else 30.0)
        results["time_to_quality"] = time_to_quality(budget, quick=q)
    results["seconds"] = time.perf_counter() - t0
    results["processor"] = processor()
    print(f"\n(total {results['seconds']:.0f} s, torch {torch.__version__}, intra-op thread(s): {args.threads}; "
          f"{results['processor']})")
    if args.json:
        write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
