"""A train_bptt checkpoint written by two processes resumes on one or on three: every step of
every sequence is trained exactly once in the epoch, and sequences cut mid-way continue with
their carried state."""
import os
import shutil
from datetime import timedelta

import numpy as np
import pytest
import torch
import torch.distributed as dist
from _gloo import leave_group, spawn
from torch import nn

import fastseq

LENGTHS = [9, 3, 1, 12, 4, 2, 6, 7, 5, 1, 8, 14, 2, 3, 6, 4]
B, K, EVERY = 2, 3, 3

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not built in")


class Stop(Exception):
    pass


class Counting(nn.Module):
    """Reads the tag [sequence, position + 1] of each row; its hidden state counts the steps
    of the sequence in its slot, so a carried state is right iff the count equals the position."""

    def __init__(self, stop_at=None):
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))
        self.seen, self.calls, self.stop_at = [], 0, stop_at

    def forward(self, visible, context, hidden):
        if self.calls == self.stop_at:
            raise Stop
        self.calls += 1
        live = context[:, 1] > 0
        self.seen.append(torch.stack([context[live, 0], context[live, 1] - 1, hidden[0, live, 0]], 1))
        step = torch.zeros_like(hidden)
        step[..., 0] = 1.0
        return 0.01 * self.w * context[:, 1:2].unsqueeze(0) + 0 * visible, hidden + step


def _data():
    ctx = [torch.stack([torch.full((n,), float(i)), torch.arange(1.0, n + 1)], 1) for i, n in enumerate(LENGTHS)]
    g = torch.Generator().manual_seed(0)
    return ctx, [torch.randn(n, 1, generator=g) for n in LENGTHS]


def _train(model, path, distributed):
    ctx, tgt = _data()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    return fastseq.train_bptt(model, ctx, tgt, torch.zeros(1), torch.zeros(1, 2), opt, B, K, shuffle=True, seed=3,
                              distributed=distributed, checkpoint=path, checkpoint_every=EVERY)


def worker(rank, world, folder, stop_at):
    os.environ["GLOO_SOCKET_IFNAME"] = "lo"
    dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous-{world}", rank=rank, world_size=world,
                            timeout=timedelta(seconds=60))
    model = Counting(stop_at)
    try:
        torch.set_num_threads(1)
        losses = _train(model, f"{folder}/ckpt-{world}", True)
        torch.save({"losses": torch.tensor(losses)}, f"{folder}/losses-{world}-{rank}.pt")
    except Stop:
        pass
    finally:
        torch.save({"seen": torch.cat(model.seen)}, f"{folder}/seen-{world}-{rank}.pt")
        leave_group()


def _seen(folder, world, ranks):
    return torch.cat([torch.load(f"{folder}/seen-{world}-{r}.pt", weights_only=True)["seen"] for r in range(ranks)])


def _check_once(before, after):
    rows = torch.cat([before, after])
    steps = sorted((int(s), int(t)) for s, t, _ in rows.tolist())
    assert steps == [(i, t) for i, n in enumerate(LENGTHS) for t in range(n)]  # each step exactly once
    assert torch.equal(rows[:, 2], rows[:, 1])  # the carried count equals the position: state continued
    cut = {int(s) for s, t, _ in after.tolist() if t > 0} & {int(s) for s, _, _ in before.tolist()}
    assert cut  # some sequences were cut mid-way and continued


def test_two_process_checkpoint_resumes_on_one_and_on_three(tmp_path):
    folder = str(tmp_path)
    spawn(worker, (2, folder, EVERY * K), 2)  # stops in the window after a checkpoint
    before = _seen(folder, 2, 2)
    shutil.copy(tmp_path / "ckpt-2", tmp_path / "ckpt-3")
    shutil.copy(tmp_path / "ckpt-2", tmp_path / "ckpt-1")

    one = Counting()
    losses_one = _train(one, tmp_path / "ckpt-1", False)
    _check_once(before, torch.cat(one.seen))
    assert len(losses_one) > EVERY

    spawn(worker, (3, folder, None), 3)
    _check_once(before, _seen(folder, 3, 3))
    runs = [torch.load(tmp_path / f"losses-3-{r}.pt", weights_only=True)["losses"] for r in range(3)]
    assert all(torch.equal(r, runs[0]) for r in runs) and len(runs[0]) > EVERY
    np.testing.assert_array_equal(runs[0][:EVERY].numpy(), losses_one[:EVERY])  # the losses before the cut
