"""Elastic resume with a different carried state in every slot of every process: each continued
sequence finds its own state, whichever process and slot it lands in; on the same number of
processes the resumed run is the uninterrupted one bit for bit.

What is bit-identical when the number of processes changes, and what is not:

- Bit-identical: each continued sequence's carried state (the fed-back visible and every
  hidden part) is the saved one, copied from the saved process's slot into its new slot with
  no arithmetic; so are the parameters, the optimizer's state and the losses of the windows
  before the cut (restored from the file), and after the resume every process reports the
  same (all-reduced) loss for each window.
- Not identical to the uninterrupted run: the rest of the epoch is re-sharded, so its windows
  group other (sequence, step) pairs. Each window's loss is a mean over another set of steps,
  each optimizer step sums other gradients (in another order, through another all-reduce),
  and the number of windows left changes: the losses and final parameters follow another
  (equally valid) trajectory, not the same one up to rounding. Process r of the new run takes
  the torch random state of saved process ``r % saved``, so dropout draws differ too.
- On the same number of processes nothing is re-sharded: the windows are the uninterrupted
  run's and the resumed run equals it exactly (gloo sums two addends, whose order does not
  matter; with more processes the reduction order is still fixed by the group).
"""
import os
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist
from _gloo import leave_group, spawn
from test_elastic_resume import (  # 16 sequences tagged [sequence, position + 1]
    LENGTHS,
    Counting,
    Stop,
    _data,
)
from test_exact_resume import Cost, _Stop
from torch import nn

import fastseq
from fastseq.bptt.checkpoint import load_checkpoint

B, K, CUT = 2, 3, 3  # the 3-process run stops in window CUT + 1, its checkpoint after window CUT

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not built in")


class Tagging(Counting):
    """Contexts are tags ``[sequence, position + 1]`` (0 in idle slots). The hidden state
    ``1 x W x 3`` becomes ``[steps seen, sequence + 1, 1000 + 100 sequence + position]`` and the
    output (fed back as the next visible) ``100 sequence + position + 1``: every slot's carried
    state differs, and names its sequence and position."""

    def forward(self, visible, context, hidden):
        if self.calls == self.stop_at:
            raise Stop
        self.calls += 1
        seq, pos1 = context[:, 0], context[:, 1]
        live = pos1 > 0
        self.seen.append(torch.stack([seq, pos1 - 1, *hidden[0].unbind(1), visible[0, :, 0]], 1)[live].detach())
        new = torch.stack([hidden[0, :, 0] + 1, seq + 1, 1000 + 100 * seq + pos1 - 1], 1).unsqueeze(0)
        return (100 * seq + pos1).view(1, -1, 1) + 0 * self.w, new


def _tagged_epoch(model, path, distributed):
    ctx, tgt = _data()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    return fastseq.train_bptt(model, ctx, tgt, torch.zeros(1), torch.zeros(1, 3), opt, B, K, shuffle=True, seed=5,
                              distributed=distributed, checkpoint=path, checkpoint_every=1)


def _join(rank, world, folder, tag):
    os.environ["GLOO_SOCKET_IFNAME"] = "lo"
    dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous-{tag}", rank=rank, world_size=world,
                            timeout=timedelta(seconds=60))
    torch.set_num_threads(1)


def tagged_worker(rank, world, folder, stop_at):
    _join(rank, world, folder, f"tagged-{world}")
    model = Tagging(stop_at)
    try:
        _tagged_epoch(model, f"{folder}/ckpt-{world}", True)
    except Stop:
        pass
    finally:
        seen = torch.cat(model.seen)
        torch.save({"seen": torch.cat([seen, torch.full((len(seen), 1), float(rank))], 1)},
                   f"{folder}/seen-{world}-{rank}.pt")
        leave_group()


def _seen(folder, world):
    return torch.cat([torch.load(f"{folder}/seen-{world}-{r}.pt", weights_only=True)["seen"] for r in range(world)])


def _check_states(rows):
    """Each row ``[sequence, position, count, tag, last, visible, rank]``: its state is its own."""
    seq, pos, count, tag, last, visible = rows[:, :6].unbind(1)
    first = pos == 0
    assert torch.equal(count, pos)
    assert torch.equal(tag, torch.where(first, 0.0, seq + 1))
    assert torch.equal(last, torch.where(first, 0.0, 1000 + 100 * seq + pos - 1))
    assert torch.equal(visible, torch.where(first, 0.0, 100 * seq + pos))


def _check_once(before, after):
    steps = sorted((int(s), int(t)) for s, t in torch.cat([before, after])[:, :2].tolist())
    assert steps == [(i, t) for i, n in enumerate(LENGTHS) for t in range(n)]


def test_each_continued_sequence_finds_its_own_carried_state_on_two_and_on_one_process(tmp_path):
    folder = str(tmp_path)
    spawn(tagged_worker, (3, folder, CUT * K), 3)  # stops in window CUT
    before = _seen(folder, 3)
    _check_states(before)
    meta, tensors = load_checkpoint(tmp_path / "ckpt-3")
    assert (meta["ranks"], meta["loader"]["window"]) == (3, CUT)
    # the saved state: three processes, every live slot's tag distinct
    tags = torch.cat([tensors[f"carried.{r}.1"][0, :, 1] for r in range(3)])
    live = tags[tags > 0]
    assert live.numel() >= 4 and live.unique().numel() == live.numel()
    where = {int(t) - 1: (r, s) for r in range(3) for s, t in enumerate(tensors[f"carried.{r}.1"][0, :, 1].tolist())
             if t > 0}  # sequence -> (rank, slot) that holds its state
    ended = {int(s) for s, p in before[:, :2].tolist() if p == LENGTHS[int(s)] - 1}
    cut = {s: rs for s, rs in where.items() if s not in ended}
    assert cut  # sequences cut mid-way, their states in several processes' slots
    assert len({r for r, _ in cut.values()}) > 1

    for world in (2, 1):
        (tmp_path / f"ckpt-{world}").write_bytes((tmp_path / "ckpt-3").read_bytes())
        if world == 1:
            model = Tagging()
            _tagged_epoch(model, tmp_path / "ckpt-1", False)
            seen = torch.cat(model.seen)
            after = torch.cat([seen, torch.zeros(len(seen), 1)], 1)
        else:
            spawn(tagged_worker, (world, folder, None), world)
            after = _seen(folder, world)
        _check_states(after)  # every step, the continued ones first of all, saw its own state
        _check_once(before, after)
        continued = {int(s) for s, p in after[:, :2].tolist() if p > 0} & set(cut)
        assert continued == set(cut)
        moved = {int(s) for s, r in after[:, [0, 6]].tolist() if int(s) in cut and cut[int(s)][0] != int(r)}
        assert moved  # some states crossed to another process


# ---------------------------------------------------------------- the same number of processes: exact


class Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(1 + 2, 6)
        self.drop = nn.Dropout(0.2)
        self.out = nn.Linear(6, 1)

    def forward(self, visible, context, hidden):
        h, hidden = self.rnn(torch.cat([visible, context.unsqueeze(0)], -1), hidden)
        return self.out(self.drop(h)), hidden


def _gru_epoch(path=None, stop_at=None):
    torch.manual_seed(0)
    model = Decoder()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    ctx, tgt = _data()
    ctx = [c / 10 for c in ctx]
    try:
        losses = fastseq.train_bptt(model, ctx, tgt, torch.zeros(1), torch.zeros(1, 6), opt, B, K,
                                    cost_fn=Cost(stop_at), teacher_forcing=0.5, shuffle=True, seed=5,
                                    distributed=True, checkpoint=path, checkpoint_every=1)
    except _Stop:
        return None
    return losses, [p.detach().clone() for p in model.parameters()], opt.state_dict(), torch.get_rng_state()


def exact_worker(rank, world, folder):
    _join(rank, world, folder, "exact")
    try:
        whole = _gru_epoch()
        assert _gru_epoch(f"{folder}/exact.ckpt", stop_at=4 * K) is None
        resumed = _gru_epoch(f"{folder}/exact.ckpt")
        same = [whole[0] == resumed[0], all(torch.equal(a, b) for a, b in zip(whole[1], resumed[1])),
                all(torch.equal(whole[2]["state"][i][k], resumed[2]["state"][i][k])
                    for i in whole[2]["state"] for k in whole[2]["state"][i]),
                torch.equal(whole[3], resumed[3])]
        torch.save({"same": torch.tensor(same), "windows": torch.tensor(len(whole[0]))}, f"{folder}/exact-{rank}.pt")
    finally:
        leave_group()


def test_resumed_on_the_same_number_of_processes_is_exact(tmp_path):
    spawn(exact_worker, (2, str(tmp_path)), 2)
    for rank in range(2):
        out = torch.load(tmp_path / f"exact-{rank}.pt", weights_only=True)
        assert int(out["windows"]) > 4
        # losses, parameters, Adam's state, the torch random state
        assert out["same"].tolist() == [True, True, True, True], rank
