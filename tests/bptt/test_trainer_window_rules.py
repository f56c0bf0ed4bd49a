"""train_bptt window by window: data cast to the decoder's dtype, a non-finite loss numbered
by its window in the epoch (after a resume too), and gradients dropped, not zeroed, between
windows (a parameter without a gradient in a window is not stepped)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from fastseq.bptt import NonFiniteLossError, train_bptt
from test_exact_resume import CTX, TGT, B, C, Cost, Decoder, F, H, K, _epoch, _fresh


class _ContextFirst(nn.Module):
    """A decoder that reads the context through a linear layer of its own (no type promotion, as
    ``torch.cat`` would give): it takes data of its own dtype only."""

    def __init__(self):
        super().__init__()
        self.ctx = nn.Linear(C, C)
        self.inner = Decoder()
        self.inner.drop.p = 0.0

    def forward(self, visible, context, hidden):
        return self.inner(visible, self.ctx(context), hidden)


def test_float32_data_trains_a_float64_decoder_as_the_same_data_in_float64():
    runs = []
    for dtype in (torch.float32, torch.float64):
        ctx = [torch.as_tensor(c, dtype=torch.float32).to(dtype) for c in CTX]
        tgt = [torch.as_tensor(t, dtype=torch.float32).to(dtype) for t in TGT]
        torch.manual_seed(0)
        model = _ContextFirst().double()
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        losses = train_bptt(model, ctx, tgt, torch.zeros(F), torch.zeros(1, H), opt, batch_size=B, bptt=K, seed=1)
        runs.append((losses, [p.detach().clone() for p in model.parameters()]))
    assert runs[0][0] == runs[1][0] and all(np.isfinite(runs[0][0]))
    assert all(torch.equal(a, b) for a, b in zip(runs[0][1], runs[1][1]))


class _NanCost(Cost):
    """The default cost, able to stop the run at its ``stop_at``-th call, and NaN from its
    ``nan_at``-th call on (one class for both runs: its name is part of a run's settings)."""

    def __init__(self, stop_at: int | None = None, nan_at: int | None = None):
        super().__init__(stop_at)
        self.nan_at = nan_at

    def forward(self, a, b):
        out = super().forward(a, b)
        return out * float("nan") if self.nan_at is not None and self.calls > self.nan_at else out


def test_non_finite_loss_after_a_resume_names_its_window_in_the_epoch(tmp_path):
    path = tmp_path / "c.ckpt"
    model, opt = _fresh()
    assert _epoch(model, opt, 0, path, cost_fn=_NanCost(stop_at=3 * K)) is None  # stopped in window 3
    model, opt = _fresh()
    with pytest.raises(NonFiniteLossError) as err:
        _epoch(model, opt, 0, path, cost_fn=_NanCost(nan_at=0))  # windows 0-2 came from the checkpoint
    assert err.value.window == 3


class _SometimesUsed(nn.Module):
    """A GRU decoder with an extra output bias used only while ``use_extra`` is set."""

    def __init__(self):
        super().__init__()
        self.inner = Decoder()
        self.inner.drop.p = 0.0
        self.extra = nn.Parameter(torch.zeros(F))
        self.use_extra = True

    def forward(self, visible, context, hidden):
        out, hidden = self.inner(visible, context, hidden)
        return (out + self.extra if self.use_extra else out), hidden


def test_a_parameter_without_gradient_in_a_window_is_not_stepped():
    """Adam steps a parameter whose gradient is zero (its moments go on), not one whose gradient is
    None: the gradients are dropped before each window, so ``extra``, used in the first window
    only, keeps the value the first step gave it."""
    torch.manual_seed(0)
    model = _SometimesUsed()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    after_first = []

    def first_step_only(optimizer, args, kwargs):
        if model.use_extra:
            after_first.append(model.extra.detach().clone())
            model.use_extra = False

    opt.register_step_post_hook(first_step_only)
    losses = train_bptt(model, CTX, TGT, torch.zeros(F), torch.zeros(1, H), opt, batch_size=B, bptt=K, seed=1)
    assert len(losses) > 3 and not torch.equal(after_first[0], torch.zeros(F))
    assert torch.equal(model.extra.detach(), after_first[0])
