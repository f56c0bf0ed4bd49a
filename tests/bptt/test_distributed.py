"""train_bptt(distributed=True) over real torch.distributed (gloo, two processes on loopback)."""
import os

import numpy as np
import pytest
import torch
import torch.distributed as dist
from _gloo import leave_group, spawn
from _trainer_reference import reference_losses
from torch import nn

import fastseq
from fastseq.bptt.distributed import shard_plan
from fastseq.bptt.loader import SlotSwapLoader
from fastseq.bptt.schedule import SlotSchedule

LENGTHS = [9, 3, 1, 12, 4, 2, 6, 7, 5, 1, 8]
B, K, F, C, H = 2, 3, 2, 3, 6


class Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.rnn = nn.GRU(F + C, H)
        self.out = nn.Linear(H, F)

    def forward(self, visible, context, hidden):
        h, hidden = self.rnn(torch.cat([visible, context.unsqueeze(0)], -1), hidden)
        return self.out(h), hidden


def data():
    g = torch.Generator().manual_seed(3)
    return ([torch.randn(n, C, generator=g) for n in LENGTHS],
            [torch.randn(n, F, generator=g) for n in LENGTHS])


def mse(p, t):
    return ((p - t) ** 2).mean(-1)


CONFIGS = {"B2K3": (2, 3), "B1K4": (1, 4)}


def worker(rank, world, folder, batch, bptt):
    os.environ["GLOO_SOCKET_IFNAME"] = "lo"
    dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        model = Decoder()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        ctx, tgt = data()
        losses = fastseq.train_bptt(model, ctx, tgt, torch.zeros(F), torch.zeros(1, H), opt, batch, bptt,
                                    cost_fn=mse, shuffle=True, seed=5, distributed=True)
        torch.save({"losses": torch.tensor(losses), **model.state_dict()}, f"{folder}/rank{rank}.pt")
    finally:
        leave_group()


def reference(world, batch, bptt):
    """One process, no fastseq training code: the shards' windows in lockstep, every sequence
    fed alone into the decoder, one SGD step per window on the loss over all real steps."""
    model = Decoder()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    ctx, tgt = data()
    shards = []
    for r in range(world):
        loader = SlotSwapLoader(ctx, tgt, batch, bptt, shuffle=True, seed=5, rank=r, world_size=world)
        shards.append(list(SlotSchedule(LENGTHS, loader.slots, bptt, loader.order(0), compact=True)))

    def step(loss):
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    losses = reference_losses(model, ctx, tgt, torch.zeros(F), torch.zeros(1, H), shards, step=step, cost_fn=mse)
    return [float(x) for x in losses], model.state_dict()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not built in")
@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_processes_take_identical_steps_equal_to_an_independent_reference(tmp_path, config):
    world = 2
    batch, bptt = CONFIGS[config]
    spawn(worker, (world, str(tmp_path), batch, bptt), world)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    want_losses, want_state = reference(world, batch, bptt)
    for name, value in r0.items():
        torch.testing.assert_close(value, r1[name], rtol=0, atol=0, msg=f"ranks differ in {name}")
    np.testing.assert_allclose(r0["losses"].numpy(), want_losses, rtol=1e-5)
    for name, value in want_state.items():
        torch.testing.assert_close(r0[name], value, rtol=1e-5, atol=1e-6, msg=name)


def test_shard_plan_covers_every_sequence_once():
    lengths = np.array(LENGTHS)
    order = np.random.default_rng(0).permutation(len(lengths))
    with pytest.deprecated_call():
        plans = [shard_plan(lengths, order, B, K, r, 3) for r in range(3)]
    assert sorted(np.concatenate([p.order for p in plans]).tolist()) == list(range(len(lengths)))
    assert plans[0].real_steps.sum() == lengths.sum()
    assert all(np.array_equal(p.real_steps, plans[0].real_steps) for p in plans)
    with pytest.raises(ValueError, match="rank"), pytest.deprecated_call():
        shard_plan(lengths, order, B, K, 3, 3)


def test_distributed_needs_an_initialized_group():
    ctx, tgt = data()
    model = Decoder()
    with pytest.raises(ValueError, match="torch.distributed to be initialized"):
        fastseq.train_bptt(model, ctx, tgt, torch.zeros(F), torch.zeros(1, H),
                           torch.optim.SGD(model.parameters(), lr=0.1), B, K, distributed=True)
