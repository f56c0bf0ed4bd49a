"""Slot-swap truncated BPTT under plain PyTorch DistributedDataParallel, no Join needed.

Each process reads its shard with ``SlotSwapLoader(..., world_size="auto")``: shards are
balanced by steps and every process yields the same number of windows (idle ones, with
``valid`` all False, once its shard has ended), so every process runs the same forward and
backward passes and DDP's gradient all-reduce never waits for a missing process.

    torchrun --nproc_per_node 2 examples/ddp_slot_swap.py [--sequences 64] [--epochs 2]

(Run with plain ``python`` it trains on one process.)
"""
from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from fastseq.bptt import SlotSwapLoader


class WindowLoss(nn.Module):
    """A GRU cell over one ``K x W`` window: the summed squared error over real steps, and the
    final hidden state (slots restart from zeros where a sequence starts)."""

    def __init__(self, features: int, hidden: int) -> None:
        super().__init__()
        self.cell, self.out = nn.GRUCell(features, hidden), nn.Linear(hidden, features)

    def forward(self, x, y, reset, valid, h):
        total = x.new_zeros(())
        for k in range(x.shape[0]):
            h = torch.where(reset[k, :, None], torch.zeros_like(h), h)
            h = self.cell(x[k], h)
            total = total + (((self.out(h) - y[k]) ** 2).mean(-1) * valid[k]).sum()
        return total, h



def _teardown() -> None:
    """Leave the group together: a rank that exits while gloo still talks to it can abort
    ("terminate called without an active exception"). Whatever holds the group (the DDP
    wrapper and its reducer) is released first, so nothing refers to it at interpreter exit."""
    import gc

    gc.collect()
    try:
        dist.barrier()
    finally:
        dist.destroy_process_group()

def train_epoch(loader: SlotSwapLoader, model: nn.Module, optimizer, world: int, on_window=None) -> float:
    """One epoch: per window, the loss is the mean over every process's real steps. DDP
    averages gradients over processes, hence the factor ``world``."""
    cell = (model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model).cell
    hidden = torch.zeros(loader.slots, cell.hidden_size)
    steps, summed = 0, 0.0
    for w in loader:
        hidden = hidden.detach()[torch.as_tensor(w.slot_map)]
        total, hidden = model(w.inputs, w.targets, w.reset, w.valid, hidden)
        optimizer.zero_grad()
        (total * world / max(w.total_real_steps, 1)).backward()
        if on_window is not None:
            on_window(w, model)
        optimizer.step()
        summed, steps = summed + float(total.detach()), steps + w.real_steps
    return summed / max(steps, 1)


def make_data(n: int, features: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    lengths = np.maximum(1, rng.lognormal(2.5, 1.0, n).round()).astype(int)
    xs = [rng.standard_normal((t, features)).astype(np.float32) for t in lengths]
    return xs, [np.roll(x, -1, axis=0) for x in xs]  # predict the next row


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sequences", type=int, default=64)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--bptt", type=int, default=8)
    args = p.parse_args(argv)
    distributed = "RANK" in __import__("os").environ
    if distributed:
        dist.init_process_group("gloo")
    torch.set_num_threads(1)
    torch.manual_seed(0)
    _train(args, distributed)
    if distributed:  # only after success: a barrier with a failed rank would wait for good
        _teardown()


def _train(args, distributed: bool) -> None:
    xs, ys = make_data(args.sequences, 3)
    loader = SlotSwapLoader(xs, ys, args.batch, args.bptt, shuffle=True, seed=0, world_size="auto")
    model = WindowLoss(3, 16)
    ddp = nn.parallel.DistributedDataParallel(model) if distributed else model
    optimizer = torch.optim.Adam(ddp.parameters(), lr=1e-2)
    for epoch in range(args.epochs):
        shards = loader.epoch_shards(loader.epoch)
        loss = train_epoch(loader, ddp, optimizer, loader.world_size)
        print(f"rank {loader.rank}/{loader.world_size} epoch {epoch}: {shards.windows} windows "
              f"({shards.windows_per_rank[loader.rank]} with data here), loss {loss:.4f}", flush=True)


if __name__ == "__main__":
    main()
