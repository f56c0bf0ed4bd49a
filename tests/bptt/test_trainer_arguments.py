"""train_bptt's arguments one by one: the defaults it documents (clipping at 1.0, a checkpoint
every 100 windows, no progress bar), the values it refuses with their names, the settings a
checkpoint records, wrap-around, an unseeded run's teacher-forcing stream, a list read where it
is, and the device and dtype taken from the decoder."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from torch import nn

from fastseq.bptt import SlotSwapLoader, train_bptt, trainer
from fastseq.bptt.checkpoint import load_checkpoint
from test_exact_resume import CTX, TGT, B, Cost, F, H, K, _fresh, _Stop


def _run(**kw):
    model, opt = _fresh()
    args = dict(batch_size=B, bptt=K, seed=3, shuffle=True) | kw
    losses = train_bptt(model, CTX, TGT, torch.zeros(F), torch.zeros(1, H), opt, **args)
    return losses, [p.detach().clone() for p in model.parameters()]


def _same(a, b) -> bool:
    return a[0] == b[0] and all(torch.equal(x, y) for x, y in zip(a[1], b[1]))


def _large_cost(pred, target):
    return 100.0 * ((pred - target) ** 2).sum(-1)  # gradients far above norm 1: clipping acts


def test_gradients_are_clipped_at_norm_1_by_default():
    default = _run(cost_fn=_large_cost)
    assert _same(default, _run(cost_fn=_large_cost, clip_grad_norm=1.0))
    assert not _same(default, _run(cost_fn=_large_cost, clip_grad_norm=2.0))


@pytest.mark.parametrize("bad", [0, 0.0, -1.0, "1", float("nan")])
def test_clip_grad_norm_must_be_a_positive_number(bad):
    with pytest.raises(ValueError, match=r"Expected clip_grad_norm to be a positive number or None, got"):
        _run(clip_grad_norm=bad)


@pytest.mark.parametrize("bad", [-1, "1", True, 1.5])
def test_epoch_must_be_an_integer_from_0(bad):
    with pytest.raises(ValueError, match=rf"^Expected epoch to be an integer >= 0, got {bad!r}\.$"):
        _run(epoch=bad)


def test_mismatched_contexts_and_targets_are_named():
    model, opt = _fresh()
    with pytest.raises(ValueError, match=r"^Expected contexts and targets to hold the same number of sequences"):
        train_bptt(model, CTX, TGT[:-1], torch.zeros(F), torch.zeros(1, H), opt, batch_size=B, bptt=K)
    with pytest.raises(ValueError, match=r"^Expected each item of targets to be T x F"):
        train_bptt(model, CTX, [t[:, :, None] for t in TGT], torch.zeros(F), torch.zeros(1, H), opt, batch_size=B,
                   bptt=K)


def test_teacher_forcing_needs_a_visible_seed_as_wide_as_the_targets_even_with_a_cost():
    model, opt = _fresh()
    with pytest.raises(ValueError, match=rf"Expected visible_seed to have shape \[F\] with F = {F}"):
        train_bptt(model, CTX, TGT, torch.zeros(F + 1), torch.zeros(1, H), opt, batch_size=B, bptt=K,
                   cost_fn=nn.PairwiseDistance(), teacher_forcing=0.5)


def test_no_progress_bar_unless_asked(capsys):
    _run()
    assert capsys.readouterr().err == ""


def test_a_checkpoint_every_100_windows_by_default(tmp_path):
    """Single steps in one slot: more than 100 windows, cut after the 103rd."""
    path = tmp_path / "c.ckpt"
    model, opt = _fresh()
    with pytest.raises(_Stop):
        train_bptt(model, CTX, TGT, torch.zeros(F), torch.zeros(1, H), opt, batch_size=1, bptt=1,
                   cost_fn=Cost(103), checkpoint=path)
    meta, _ = load_checkpoint(path)
    assert (meta["loader"]["epoch"], meta["loader"]["window"]) == (0, 100)


def test_the_checkpoint_records_the_run_s_options(tmp_path):
    path = tmp_path / "c.ckpt"
    _run(checkpoint=path, teacher_forcing=0.25, clip_grad_norm=3.0, cost_fn=Cost())
    config = load_checkpoint(path)[0]["config"]
    assert {k: config[k] for k in ("teacher_forcing", "clip_grad_norm", "dtype", "cost_fn")} == {
        "teacher_forcing": 0.25, "clip_grad_norm": 3.0, "dtype": "torch.float32", "cost_fn": "Cost"}


def test_wrap_around_retrains_from_the_start_instead_of_draining():
    wrapped, plain = _run(wrap_around=True), _run(tail="none")
    windows = len(list(SlotSwapLoader(CTX, TGT, B, K, shuffle=True, seed=3, wrap_around=True, tail="none")))
    assert len(wrapped[0]) == windows
    assert wrapped[0] != plain[0]
    assert _same(_run(wrap_around=True, tail="packed"), wrapped)  # wrap-around drains nothing: any tail is "none"


def test_an_unseeded_run_draws_teacher_forcing_from_seed_0():
    assert _same(_run(seed=None, shuffle=False, teacher_forcing=0.5), _run(seed=0, shuffle=False, teacher_forcing=0.5))


def test_a_list_of_arrays_is_read_where_it_is():
    xs = [np.zeros((2, 3), np.float32), np.zeros((4, 3), np.float32)]
    store = trainer._matrix_store(xs, "contexts")
    xs[1][0] = 7.0
    assert store.gather(np.array([2])).ravel().tolist() == [7.0, 7.0, 7.0]


class _FrozenFirst(nn.Module):
    """A module whose first parameter is an integer table (no gradient), then float weights."""

    def __init__(self):
        super().__init__()
        self.table = nn.Parameter(torch.arange(3), requires_grad=False)
        self.weight = nn.Parameter(torch.zeros(2, dtype=torch.float64))


def test_device_and_dtype_come_from_the_decoder_s_first_parameter_or_the_defaults():
    assert trainer._model_device_dtype(nn.Identity(), None) == (torch.device("cpu"), torch.get_default_dtype())
    assert trainer._model_device_dtype(nn.Linear(2, 2).double(), None) == (torch.device("cpu"), torch.float64)
    assert trainer._model_device_dtype(_FrozenFirst(), None) == (torch.device("cpu"), torch.get_default_dtype())
    assert trainer._model_device_dtype(nn.Identity(), "cpu") == (torch.device("cpu"), torch.get_default_dtype())


def test_the_progress_bar_counts_windows_and_shows_the_last_loss(capsys):
    losses, _ = _run(progress=True)
    err = capsys.readouterr().err
    n = len(losses)
    assert re.search(r"(^|\r)train_bptt: ", err) and f"{n}/{n}" in err
    assert re.search(r"(?<![A-Za-z])window/s|s/window(?![A-Za-z])", err)
    assert f"loss={losses[-1]:.4g}" in err


@pytest.mark.parametrize("bad", [0, -3])
def test_checkpoint_every_must_be_positive(tmp_path, bad):
    with pytest.raises(ValueError, match=r"\bcheckpoint_every\b"):
        _run(checkpoint=tmp_path / "c.ckpt", checkpoint_every=bad)


def test_the_epoch_s_end_is_checkpointed_whatever_checkpoint_every_says(tmp_path):
    path = tmp_path / "c.ckpt"
    losses, _ = _run(checkpoint=path, checkpoint_every=1000)
    meta, _ = load_checkpoint(path)
    assert len(losses) < 1000 and (meta["loader"]["epoch"], meta["loader"]["window"]) == (1, 0)
