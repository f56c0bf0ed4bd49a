"""The fused feedback decoders against the same module stepped: train_bptt's fused windows
(FeedbackGRU / FeedbackLSTM, readout and feedback inside one compiled recurrence) versus the
ideal stepped loop (the module called once per step on fixed-length windows, no resets, its
output fed back), and train_bptt with the module stepped (``fused = False``) for scale.

Every method trains the same module (same initial weights) with the default cost
(``PairwiseDistance``), SGD and gradient clipping 1.0, ``K`` steps per update, in float32.
train_bptt runs an epoch of fixed-length sequences (resets where each ends, loading timed);
the ideal runs the same number of real steps as full ``K x B`` windows. Each method runs once
untimed (Numba kernels, allocator), then repeats are interleaved (A, B, C, A, B, C, ...);
rates are real steps per second, medians, with the spread (min-max over median).

Run:
    flock /tmp/fastseq-bench.lock python bench/bptt/compare_feedback.py [--quick] [--threads 1,2] [--json out.json]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fastseq.bptt import FeedbackGRU, FeedbackLSTM, train_bptt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: the shared helpers, when run as a path
from _json_out import write_json  # noqa: E402
from _timing import interleave, median, per_second, spread  # noqa: E402

CELLS = {"gru": FeedbackGRU, "lstm": FeedbackLSTM}
METHODS = {
    "fused": "train_bptt, fused window",
    "stepped": "train_bptt, module stepped (fused = False)",
    "ideal": "ideal: module stepped, fixed windows, no resets",
}
# (label, B, H, sequences, length): the real steps fill a few windows per repeat
WORKLOADS = [("H=128 B=64", 64, 128, 64, 256), ("H=32 B=1024", 1024, 32, 512, 256)]


def _data(n: int, length: int, features: int, context: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    xs = [rng.standard_normal((length, context)).astype(np.float32) for _ in range(n)]
    ys = [rng.standard_normal((length, features)).astype(np.float32) for _ in range(n)]
    return xs, ys


def _module(cell: str, features: int, context: int, hidden: int, fused: bool) -> nn.Module:
    torch.manual_seed(0)
    dec = CELLS[cell](features, context, hidden)
    dec.fused = fused
    return dec


def _seed_hidden(cell: str, hidden: int):
    h = torch.zeros(1, hidden)
    return (h, h.clone()) if cell == "lstm" else h


def run_train_bptt(dec, xs, ys, batch: int, bptt: int, cell: str) -> int:
    opt = torch.optim.SGD(dec.parameters(), lr=0.01)
    train_bptt(dec, xs, ys, torch.zeros(ys[0].shape[1]), _seed_hidden(cell, dec.hidden_size), opt, batch, bptt)
    return sum(len(y) for y in ys)


def run_ideal(dec, xs, ys, batch: int, bptt: int, cell: str) -> int:
    """The module stepped on full ``K x B`` windows of the same real steps: no scheduling, no resets."""
    total = sum(len(y) for y in ys)
    n_windows = max(1, total // (batch * bptt))
    shape = (n_windows, bptt, batch, -1)
    x = torch.from_numpy(np.concatenate(xs)[: n_windows * bptt * batch].copy()).reshape(shape)
    y = torch.from_numpy(np.concatenate(ys)[: n_windows * bptt * batch].copy()).reshape(shape)
    opt = torch.optim.SGD(dec.parameters(), lr=0.01)
    cost_fn = nn.PairwiseDistance()
    hid = dec.hidden_size
    h = (torch.zeros(1, batch, hid), torch.zeros(1, batch, hid)) if cell == "lstm" else torch.zeros(1, batch, hid)
    visible = torch.zeros(1, batch, y.shape[3])
    for i in range(n_windows):
        costs = []
        for t in range(bptt):
            out, h = dec(visible, x[i, t], h)
            costs.append(cost_fn(out[0], y[i, t]))
            visible = out
        loss = torch.stack(costs).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(dec.parameters(), 1.0)
        opt.step()
        h = tuple(p.detach() for p in h) if isinstance(h, tuple) else h.detach()
        visible = visible.detach()
    return n_windows * bptt * batch


def race(label: str, cell: str, batch: int, hidden: int, n: int, length: int, features: int, context: int,
         bptt: int, repeats: int) -> dict:
    xs, ys = _data(n, length, features, context)
    fns = {
        "fused": lambda: run_train_bptt(_module(cell, features, context, hidden, True), xs, ys, batch, bptt, cell),
        "stepped": lambda: run_train_bptt(_module(cell, features, context, hidden, False), xs, ys, batch, bptt, cell),
        "ideal": lambda: run_ideal(_module(cell, features, context, hidden, False), xs, ys, batch, bptt, cell),
    }
    # warm-up untimed, then real steps per second of each call, interleaved
    rates = interleave({k: (lambda fn=fn: per_second(fn)) for k, fn in fns.items()}, repeats)
    med = {k: median(v) for k, v in rates.items()}
    rows = [{"method": k, "label": METHODS[k], "steps_per_s": med[k], "vs_ideal": med[k] / med["ideal"],
             "spread": spread(rates[k]), "samples": [round(r) for r in rates[k]]}
            for k in fns]
    print(f"\n## {cell.upper()} {label}, F={features} C={context} K={bptt}, {torch.get_num_threads()} thread(s), "
          f"{n} sequences of {length} steps, {repeats} repeats")
    print("| method | steps/s | x ideal | spread (min-max / median) |")
    print("|---|---:|---:|:---:|")
    for r in rows:
        print(f"| {r['label']} | {r['steps_per_s']:.0f} | {r['vs_ideal']:.2f} | "
              f"{r['spread'][0]:.2f}-{r['spread'][1]:.2f} |")
    return {"workload": label, "cell": cell, "threads": torch.get_num_threads(), "batch": batch, "hidden": hidden,
            "features": features, "context": context, "bptt": bptt, "sequences": n, "length": length, "rows": rows}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer repeats and sequences half as long (noisier)")
    p.add_argument("--threads", default="1,2", help="comma-separated torch intra-op thread counts")
    p.add_argument("--cells", default="gru,lstm")
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--features", type=int, default=32)
    p.add_argument("--context", type=int, default=0)
    p.add_argument("--bptt", type=int, default=32)
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = p.parse_args(argv)
    repeats = args.repeats or (3 if args.quick else 5)
    t0 = time.perf_counter()
    results = {"torch": torch.__version__, "repeats": repeats, "races": []}
    for threads in (int(t) for t in args.threads.split(",")):
        torch.set_num_threads(threads)
        for cell in args.cells.split(","):
            for label, batch, hidden, n, length in WORKLOADS:
                length = length // 2 if args.quick else length  # never fewer sequences than slots
                results["races"].append(race(label, cell, batch, hidden, n, length, args.features, args.context,
                                             args.bptt, repeats))
    print("\n## fused / ideal")
    print("| cell | workload | threads | x ideal |")
    print("|---|---|---:|---:|")
    for r in results["races"]:
        print(f"| {r['cell'].upper()} | {r['workload']} | {r['threads']} | {r['rows'][0]['vs_ideal']:.2f} |")
    results["seconds"] = time.perf_counter() - t0
    print(f"\n(total {results['seconds']:.0f} s, torch {torch.__version__})")
    if args.json:
        write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
