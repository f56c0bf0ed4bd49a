"""Time-to-quality: held-out loss after the same wall time, fastseq vs padded vs bucketed.

Task: next-byte prediction on paragraphs of Python's stdlib (embedding 32 -> GRU 128
-> 256-way softmax, Adam, truncated BPTT K=32, B=64). The three trainers take turns
in short slices of wall time, so machine noise hits them alike, until each has
trained for the budget; then each model's cross-entropy (bits per byte) is measured
on the same held-out paragraphs, feeding every paragraph whole.
"""
from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pad_sequence

from fastseq.datasets.stdlib import stdlib_paragraphs
from fastseq.bptt.loader import SlotSwapLoader
from fastseq.bptt.engines import masked_mean, run_window

import _batching_methods as bm


class ByteModel(nn.Module):
    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.emb = nn.Embedding(256, 32)
        self.rnn = nn.GRU(32, 128)
        self.head = nn.Linear(128, 256)
        self.opt = torch.optim.Adam(self.parameters(), lr=3e-3)

    def loss(self, out, targets, valid):
        ce = nn.functional.cross_entropy(self.head(out).flatten(0, 1), targets.flatten().long(), reduction="none")
        return masked_mean(ce.view(targets.shape), valid)

    def update(self, loss) -> None:
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.parameters(), 1.0)
        self.opt.step()


def _fastseq(model: ByteModel, xs, ys, batch, bptt):
    epoch = 0
    while True:
        loader = SlotSwapLoader(xs, ys, batch, bptt, shuffle=True, seed=epoch)
        h = None
        for w in loader:
            out, h = run_window(model.rnn, model.emb(w.inputs.long()), w.reset, h, valid=w.valid,
                                slot_map=w.slot_map, plan=w.plan)
            model.update(model.loss(out, w.targets, w.valid))
            yield w.real_steps
        epoch += 1


def _padded(model: ByteModel, xs, ys, batch, bptt, bucketed: bool):
    lengths = np.array([len(x) for x in xs])
    data = bm.Data("bytes", xs, ys)  # only for its lengths in batching
    rng = np.random.default_rng(0)
    while True:
        batches = bm.bucketed_batches(data, batch, rng) if bucketed else bm.random_batches(data, batch, rng)
        for ids in batches:
            x = pad_sequence([torch.from_numpy(xs[i]).long() for i in ids])
            y = pad_sequence([torch.from_numpy(ys[i]).long() for i in ids])
            valid = torch.arange(x.shape[0]).unsqueeze(1) < torch.from_numpy(lengths[ids]).unsqueeze(0)
            h = None
            for c in range(0, x.shape[0], bptt):
                out, h = model.rnn(model.emb(x[c:c + bptt]), h)
                model.update(model.loss(out, y[c:c + bptt], valid[c:c + bptt]))
                h = h.detach()
                yield int(valid[c:c + bptt].sum())


@torch.no_grad()
def held_out_bits(model: ByteModel, xs, ys) -> float:
    total = count = 0.0
    for i in range(0, len(xs), 64):
        x = pad_sequence([torch.from_numpy(a).long() for a in xs[i:i + 64]])
        y = pad_sequence([torch.from_numpy(a).long() for a in ys[i:i + 64]])
        lengths = torch.tensor([len(a) for a in xs[i:i + 64]])
        valid = torch.arange(x.shape[0]).unsqueeze(1) < lengths.unsqueeze(0)
        out, _ = model.rnn(model.emb(x))
        ce = nn.functional.cross_entropy(model.head(out).flatten(0, 1), y.flatten(), reduction="none")
        total += float((ce.view(y.shape) * valid).sum())
        count += float(valid.sum())
    return total / count / np.log(2)


def time_to_quality(budget: float, quick: bool = False, batch: int = 64, bptt: int = 32, slice_s: float = 0.5) -> dict:
    n_train = 400 if quick else 3000
    seqs = stdlib_paragraphs(max_sequences=n_train + 300, min_length=3, max_length=2000)
    train, held = seqs[:n_train], seqs[n_train:]
    xs, ys = [s[:-1] for s in train], [s[1:] for s in train]
    hx, hy = [s[:-1] for s in held], [s[1:] for s in held]
    models = {k: ByteModel() for k in ("fastseq", "padded_random", "bucketed")}
    runs = {
        "fastseq": _fastseq(models["fastseq"], xs, ys, batch, bptt),
        "padded_random": _padded(models["padded_random"], xs, ys, batch, bptt, bucketed=False),
        "bucketed": _padded(models["bucketed"], xs, ys, batch, bptt, bucketed=True),
    }
    spent = {k: 0.0 for k in runs}
    steps = {k: 0 for k in runs}
    updates = {k: 0 for k in runs}
    while min(spent.values()) < budget:
        for k, run in runs.items():
            if spent[k] >= budget:
                continue
            t0 = time.perf_counter()
            while time.perf_counter() - t0 < slice_s and spent[k] + (time.perf_counter() - t0) < budget:
                steps[k] += next(run)
                updates[k] += 1
            spent[k] += time.perf_counter() - t0
    rows = []
    print(f"\n## Time-to-quality: stdlib next-byte, {budget:.0f} s of training each, held-out {len(held)} paragraphs")
    print("| method | real steps trained | updates | held-out bits/byte |")
    print("|---|---:|---:|---:|")
    for k, model in models.items():
        bits = held_out_bits(model, hx, hy)
        rows.append({"method": k, "seconds": spent[k], "real_steps": steps[k], "updates": updates[k], "bits_per_byte": bits})
        print(f"| {k} | {steps[k]} | {updates[k]} | {bits:.3f} |")
    return {"budget_s": budget, "train_sequences": n_train, "held_out": len(held), "rows": rows}
