"""train_bptt's resume rules, each at its edge: which checkpoints a call accepts (its own epoch,
or the previous epoch's end, and nothing later), when changed optimizer settings are refused
(mid-epoch, from the first window on) or taken (a new epoch, logged), how often checkpoints are
written, the teacher-forcing stream of an unseeded run, older checkpoints' settings, the
carried state's round trip, and the error a non-finite loss raises."""
from __future__ import annotations

import logging
import math

import pytest
import torch

from fastseq.bptt import NonFiniteLossError, SlotSwapLoader, checkpoint, trainer
from test_exact_resume import CTX, TGT, B, F, H, K, _epoch, _fresh, _state, _windows_at, assert_identical


def _set_lr(opt, lr):
    for group in opt.param_groups:
        group["lr"] = lr


@pytest.mark.parametrize("later", ["mid_next_epoch", "two_epochs_on"])
def test_a_checkpoint_past_the_call_s_epoch_is_refused(tmp_path, later):
    """Epoch 0 accepts its own checkpoints and epoch 0's end, (1, 0); not one in epoch 1 or at epoch 1's end."""
    path = tmp_path / "c.ckpt"
    model, opt = _fresh()
    _epoch(model, opt, 0, path)
    if later == "mid_next_epoch":
        assert _epoch(model, opt, 1, path, stop_at=2 * K) is None
        assert _windows_at(path) == (1, 2)
    else:
        _epoch(model, opt, 1, path)
        assert _windows_at(path) == (2, 0)
    saved = path.read_bytes()
    model, opt = _fresh()
    with pytest.raises(ValueError, match=r"to be in epoch 0 or at its start, got epoch (1 after 2|2 after 0) windows"):
        _epoch(model, opt, 0, path)
    assert path.read_bytes() == saved


def test_changed_optimizer_settings_are_refused_after_the_first_window(tmp_path):
    path = tmp_path / "c.ckpt"
    model, opt = _fresh()
    assert _epoch(model, opt, 0, path, stop_at=K) is None
    assert _windows_at(path) == (0, 1)
    model, opt = _fresh()
    _set_lr(opt, 0.5)
    with pytest.raises(ValueError, match="resumed with the optimizer settings it was trained with"):
        _epoch(model, opt, 0, path)


def test_a_new_epoch_takes_the_caller_s_settings_and_logs_them(tmp_path, caplog):
    """From the previous epoch's end the caller's settings win (a schedule's), with one log line;
    with the same settings nothing is logged."""
    path = tmp_path / "c.ckpt"
    model, opt = _fresh()
    _epoch(model, opt, 0, path)
    model, opt = _fresh()
    with caplog.at_level(logging.INFO, logger="fastseq.bptt"):
        _epoch(model, opt, 1, path, stop_at=K)
    assert not [r for r in caplog.records if "caller's optimizer settings" in r.getMessage()]
    path.unlink()
    model, opt = _fresh()
    _epoch(model, opt, 0, path)
    model, opt = _fresh()
    _set_lr(opt, 0.02)
    opt.param_groups[0]["eps"] = 1e-6
    with caplog.at_level(logging.INFO, logger="fastseq.bptt"):
        assert _epoch(model, opt, 1, path, stop_at=K) is None
    lines = [r.getMessage() for r in caplog.records if "caller's optimizer settings" in r.getMessage()]
    assert lines == [f"train_bptt: epoch 1 starts from checkpoint {path} with the caller's optimizer settings: "
                     "optimizer group 0 eps (checkpoint 1e-08, now 1e-06), "
                     "optimizer group 0 lr (checkpoint 0.01, now 0.02)"]
    assert (opt.param_groups[0]["lr"], opt.param_groups[0]["eps"]) == (0.02, 1e-6)


def test_checkpoints_are_written_every_n_windows_only(tmp_path):
    path = tmp_path / "c.ckpt"
    model, opt = _fresh()
    assert _epoch(model, opt, 0, path, stop_at=5 * K, checkpoint_every=3) is None
    assert _windows_at(path) == (0, 3)


def test_an_unseeded_run_s_next_epoch_from_a_checkpoint_draws_as_the_uninterrupted_one(tmp_path):
    """Without a seed the teacher-forcing stream of epoch e starts from e, resumed or not."""
    model, opt = _fresh()
    _epoch(model, opt, 0, seed=None, shuffle=False)
    reference = _epoch(model, opt, 1, seed=None, shuffle=False)
    path = tmp_path / "c.ckpt"
    model, opt = _fresh()
    _epoch(model, opt, 0, path, seed=None, shuffle=False)
    model, opt = _fresh()
    assert _epoch(model, opt, 1, path, seed=None, shuffle=False) == reference


def test_an_older_checkpoint_repeating_the_loader_settings_in_its_config_resumes(tmp_path, monkeypatch):
    """Older checkpoints repeat the epoch's settings in ``config["loader"]``: they are not compared twice."""
    path = tmp_path / "c.ckpt"
    model, opt = _fresh()
    reference = _epoch(model, opt, 0)
    end = _state(model, opt)
    model, opt = _fresh()
    assert _epoch(model, opt, 0, path, stop_at=2 * K) is None
    real = checkpoint.load_checkpoint

    def older(p):
        meta, tensors = real(p)
        meta["config"]["loader"] = {"batch_size": B, "bptt": K, "shuffle": True, "seed": 3}
        return meta, tensors

    monkeypatch.setattr(checkpoint, "load_checkpoint", older)
    model, opt = _fresh()
    assert _epoch(model, opt, 0, path) == reference
    assert_identical(_state(model, opt), end)


def test_run_state_round_trips_one_process_s_carried_parts():
    seeds = trainer._seeds(torch.zeros(F), torch.zeros(1, H), F, torch.device("cpu"), torch.float64)
    g = torch.Generator().manual_seed(0)
    parts = (torch.randn(1, B, F, generator=g, dtype=torch.float64), torch.randn(1, B, H, generator=g,
                                                                                 dtype=torch.float64))
    run = trainer._Run(SlotSwapLoader(CTX, TGT, B, K), seeds)
    run.load_state_dict({"carried": parts, "losses": [1.5, 2]})
    state = run.state_dict()
    assert all(torch.equal(a, b) for a, b in zip(state["carried"], parts)) and len(state["carried"]) == 2
    assert state["losses"] == [1.5, 2.0]


@pytest.mark.parametrize("window, kept", [(0, "as they were before training"), (1, "those after window 0"),
                                          (7, "those after window 6")])
def test_non_finite_loss_error_says_which_parameters_were_kept(window, kept):
    err = NonFiniteLossError(window, math.inf)
    assert str(err).startswith(f"Loss of window {window} is inf; training stopped before its optimizer step, so the "
                               f"parameters are {kept}.")
    assert err.window == window and err.value == math.inf
