"""The dense engine on windows of several groups and with dropout between layers: against
the step engine, and through the dropout calls it makes."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from fastseq.bptt.engines import run_window
from fastseq.bptt.loader import SlotSwapLoader


def _loader(plan, n=240, batch=64, bptt=16, seed=0):
    rng = np.random.default_rng(seed)
    xs = [rng.standard_normal((int(t), 3)) for t in rng.integers(1, 30, size=n)]
    return SlotSwapLoader(xs, None, batch_size=batch, bptt=bptt, plan=plan, tail="none")


def test_windows_of_several_groups_match_the_step_engine_with_every_slots_own_state():
    """Wide windows whose pieces fall into 2 or more dense groups, each slot carrying its own
    state into the next window: each group starts from its own slots' states (the column
    offset moves on by each group's width)."""
    torch.manual_seed(0)
    rnn = nn.GRU(3, 5, num_layers=2).double()
    seed = torch.randn(2, 5, dtype=torch.float64)
    dense, steps = _loader("dense"), _loader(None)
    groups, states = [], {"dense": None, "steps": None}
    for wd, ws in zip(dense, steps):
        assert torch.equal(wd.reset, ws.reset)
        groups.append(len(wd.plan.shapes))
        out_d, states["dense"] = run_window(rnn, wd.inputs, wd.reset, states["dense"], valid=wd.valid,
                                            reset_state=seed, slot_map=wd.slot_map, plan=wd.plan, engine="dense")
        out_s, states["steps"] = run_window(rnn, ws.inputs, ws.reset, states["steps"], valid=ws.valid,
                                            reset_state=seed, slot_map=ws.slot_map, engine="steps")
        mask = wd.valid.unsqueeze(-1)
        torch.testing.assert_close(out_d * mask, out_s * mask, rtol=1e-10, atol=1e-12)
        live = wd.valid[-1]  # an idle slot's state is never read (it resets before its next piece)
        torch.testing.assert_close(states["dense"][:, live], states["steps"][:, live], rtol=1e-10, atol=1e-12)
    assert max(groups) >= 3  # else a wrong offset from the third group on goes unseen


@pytest.mark.parametrize("training", [True, False])
def test_dropout_runs_between_layers_only_while_training(monkeypatch, training):
    """One dropout call per group for each layer above the first, at the module's rate, on
    that group's output of the layer below; none on the inputs and none in eval mode."""
    torch.manual_seed(1)
    rnn = nn.GRU(3, 4, num_layers=3, dropout=0.3).double().train(training)
    calls = []

    def dropout(inp, p=0.5, training=True, inplace=False):
        calls.append((tuple(inp.shape), p, training))
        return inp * 0.5

    monkeypatch.setattr(torch.nn.functional, "dropout", dropout)
    w = next(iter(_loader("dense", batch=32, bptt=8)))
    out, _ = run_window(rnn, w.inputs.double(), w.reset, None, valid=w.valid, plan=w.plan, engine="dense")
    if not training:
        assert calls == []
        return
    shapes = [(s, c) for s, c in w.plan.shapes]
    assert calls == [((s, c, 4), 0.3, True) for _layer in (1, 2) for s, c in shapes]


@pytest.mark.parametrize("batch,bptt", [(1, 4), (4, 1)])
def test_one_slot_or_one_step_windows_match_the_step_engine(batch, bptt):
    """The padding row is sized from one step of one slot, which a 1-step or 1-slot window has."""
    torch.manual_seed(2)
    rnn = nn.RNN(3, 4).double()
    dense, steps = _loader("dense", n=6, batch=batch, bptt=bptt), _loader(None, n=6, batch=batch, bptt=bptt)
    sd = ss = None
    for wd, ws in zip(dense, steps):
        out_d, sd = run_window(rnn, wd.inputs, wd.reset, sd, valid=wd.valid, slot_map=wd.slot_map, plan=wd.plan,
                               engine="dense")
        out_s, ss = run_window(rnn, ws.inputs, ws.reset, ss, valid=ws.valid, slot_map=ws.slot_map, engine="steps")
        mask = wd.valid.unsqueeze(-1)
        torch.testing.assert_close(out_d * mask, out_s * mask, rtol=1e-10, atol=1e-12)
