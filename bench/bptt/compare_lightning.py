"""Real steps per second of one epoch of next-byte prediction, in a Lightning Trainer
(fastseq.bptt.lightning) and in the plain loop of the README, on the same model and windows:
GRU H=128, B=64 slots, K=32 steps, stdlib paragraphs; interleaved repeats, medians.
Lightning is timed twice: the whole ``Trainer.fit`` (setup included, as a one-epoch run
sees it) and the epoch alone (from ``on_train_epoch_start`` to ``on_train_epoch_end``).

    python bench/bptt/compare_lightning.py [--repeats 3] [--sequences 1000] [--json out.json]
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
import warnings
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch import nn

from fastseq.bptt import SlotSwapLoader, masked_mean, run_window
from fastseq.bptt.lightning import SlotSwapDataModule, SlotSwapMixin
from fastseq.datasets import stdlib_paragraphs

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: the shared helpers, when run as a path
from _json_out import write_json  # noqa: E402
from _timing import interleave, per_second, summary, timed  # noqa: E402


class ByteNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb, self.rnn, self.head = nn.Embedding(256, 32), nn.GRU(32, 128), nn.Linear(128, 256)

    def loss(self, out, w):
        ce = nn.functional.cross_entropy(self.head(out).flatten(0, 1), w.targets.flatten().long(), reduction="none")
        return masked_mean(ce.view(w.targets.shape), w.valid)


class ByteModel(SlotSwapMixin, pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = ByteNet()

    def training_step(self, window, batch_idx):
        return self.net.loss(self.run_window(self.net.rnn, self.net.emb(window.inputs.long()), window), window)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=3e-3)


def plain_epoch(loader: SlotSwapLoader) -> float:
    net = ByteNet()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    state = None
    for w in loader:
        out, state = run_window(net.rnn, net.emb(w.inputs.long()), w.reset, state,
                                valid=w.valid, slot_map=w.slot_map, plan=w.plan)
        loss = net.loss(out, w)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
    return loader.total_steps


class EpochClock(pl.Callback):
    """Seconds from the epoch's start to its end, without ``Trainer.fit``'s setup and teardown."""

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.seconds = time.perf_counter() - self.start


def lightning_epoch(loader: SlotSwapLoader) -> tuple[float, float]:
    """Real steps per second of the whole ``fit``, and of the epoch alone."""
    clock = EpochClock()
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_epochs=1, gradient_clip_val=1.0, logger=False,
                         enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                         callbacks=[clock])
    seconds, _ = timed(lambda: trainer.fit(ByteModel(), datamodule=SlotSwapDataModule(loader)))
    return loader.total_steps / seconds, loader.total_steps / clock.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sequences", type=int, default=1000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module="pytorch_lightning")
    seqs = stdlib_paragraphs(max_sequences=args.sequences, min_length=3, max_length=2000)
    xs, ys = [s[:-1] for s in seqs], [s[1:] for s in seqs]

    def make() -> SlotSwapLoader:
        return SlotSwapLoader(xs, ys, batch_size=64, bptt=32, shuffle=True, seed=0)

    rates = interleave({"plain loop": lambda: per_second(lambda: plain_epoch(make())),
                        "lightning": lambda: lightning_epoch(make())}, args.repeats)
    results = {"plain loop": summary(rates["plain loop"]),
               "lightning fit": summary([fit for fit, _ in rates["lightning"]]),
               "lightning epoch": summary([epoch for _, epoch in rates["lightning"]])}
    for k, s in results.items():
        print(f"{k:>15}: {s['median']:,.0f} real steps/s (min {s['min']:,.0f}, max {s['max']:,.0f})")
    ratios = {k: results[k]["median"] / results["plain loop"]["median"] for k in ("lightning fit", "lightning epoch")}
    print(", ".join(f"{k} / plain loop: {r:.3f}" for k, r in ratios.items())
          + f" ({make().total_steps:,} real steps an epoch, torch threads {torch.get_num_threads()})")
    if args.json:
        write_json(args.json, {"rates": results, "ratios": ratios})


if __name__ == "__main__":
    main()
