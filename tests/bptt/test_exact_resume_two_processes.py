"""Resume is exact on two processes: a distributed train_bptt epoch killed after a checkpoint and
resumed on the same two processes ends, on each process, with the parameters, the optimizer's
state, the losses and the random stream of the uninterrupted two-process run, bit for bit.

Each rank's dropout draws from its own global generator, seeded differently per rank, so a
resume that handed a rank another rank's random state (or carried state) would differ."""
import os
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist
from _gloo import leave_group, spawn
from test_exact_resume import Cost, _Stop, assert_identical
from torch import nn

import fastseq

F, C, H = 2, 2, 6
B, K, EVERY = 2, 3, 2
LENGTHS = [9, 3, 1, 12, 4, 2, 6, 7, 5, 1, 8, 14, 2, 3, 6, 4, 11, 5]
WORLD = 2

pytestmark = [pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not built in"),
              pytest.mark.slow]


class Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(F + C, H)
        self.drop = nn.Dropout(0.3)  # draws from the rank's global generator: part of what resumes
        self.out = nn.Linear(H, F)

    def forward(self, visible, context, hidden):
        h, hidden = self.rnn(torch.cat([visible, context.unsqueeze(0)], -1), hidden)
        return self.out(self.drop(h)), hidden


def _data():
    g = torch.Generator().manual_seed(0)
    return ([torch.randn(n, C, generator=g) for n in LENGTHS], [torch.randn(n, F, generator=g) for n in LENGTHS])


def worker(rank, folder, tag, stop_at):
    os.environ["GLOO_SOCKET_IFNAME"] = "lo"
    # one rendezvous file per launch: a file left by an earlier launch still holds that group's
    # addresses, which a rank can read before this group overwrites them ("Connection refused")
    dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous-{tag}-{stop_at}", rank=rank,
                            world_size=WORLD, timeout=timedelta(seconds=60))
    try:
        torch.set_num_threads(1)
        torch.manual_seed(0)
        model = Decoder()  # the same initial parameters on every rank
        opt = torch.optim.Adam(model.parameters(), lr=0.01)
        torch.manual_seed(100 + rank)  # each rank's dropout stream its own
        ctx, tgt = _data()
        try:
            losses = fastseq.train_bptt(model, ctx, tgt, torch.zeros(F), torch.zeros(1, H), opt, B, K,
                                        cost_fn=Cost(stop_at), teacher_forcing=0.5, shuffle=True, seed=3,
                                        distributed=True, checkpoint=f"{folder}/ckpt-{tag}", checkpoint_every=EVERY)
        except _Stop:
            return
        state = {f"param.{i}": p.detach().clone() for i, p in enumerate(model.parameters())}
        for i, s in opt.state_dict()["state"].items():
            state.update({f"opt.{i}.{k}": v for k, v in s.items()})
        state["losses"] = torch.tensor(losses, dtype=torch.float64)
        state["torch_rng"] = torch.get_rng_state()
        torch.save(state, f"{folder}/end-{tag}-{rank}.pt")
    finally:
        leave_group()


def _ends(folder, tag):
    return [torch.load(f"{folder}/end-{tag}-{r}.pt", weights_only=True) for r in range(WORLD)]


@pytest.mark.parametrize("stop_at", [EVERY * K, 3 * EVERY * K + 1])  # right after a checkpoint; mid-window later
def test_two_process_run_killed_and_resumed_ends_bit_for_bit(tmp_path, stop_at):
    folder = str(tmp_path)
    spawn(worker, (folder, "whole", None), WORLD)
    spawn(worker, (folder, "cut", stop_at), WORLD)
    assert not os.path.exists(f"{folder}/end-cut-0.pt")  # the first run did stop
    spawn(worker, (folder, "cut", None), WORLD)  # the same command again: resumes from its checkpoint
    whole, resumed = _ends(folder, "whole"), _ends(folder, "cut")
    assert not torch.equal(whole[0]["torch_rng"], whole[1]["torch_rng"])  # the ranks' streams differ
    for rank in range(WORLD):
        assert_identical(resumed[rank], whole[rank], f"rank {rank}")
