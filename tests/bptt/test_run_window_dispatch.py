"""``run_window`` hands each window to the engine it names (or that ``auto`` picks), with the
window's masks, plan and seeds as given: the engines agree with each other to rounding, so a
window run by the wrong one passes every exactness test; these tests watch which one ran."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from fastseq.bptt import engines as eng
from fastseq.bptt import plans, run_window

RUNNERS = {"fused": "run_fused", "segments": "_run_segments", "steps": "_run_steps", "packed": "_run_packed",
           "dense": "run_dense"}


@pytest.fixture
def calls(monkeypatch):
    """The runners (and ``window_plan``) ``run_window`` called, in order, each with its arguments."""
    seen: list[tuple[str, tuple]] = []
    for name in list(RUNNERS.values()) + ["window_plan"]:
        original = getattr(eng, name)

        def spy(*args, _name=name, _original=original, **kwargs):
            seen.append((_name, args))
            return _original(*args, **kwargs)

        monkeypatch.setattr(eng, name, spy)
    return seen


def _window(k_steps=6, width=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(k_steps, width, 2, dtype=torch.float64, generator=g)
    reset = np.zeros((k_steps, width), bool)
    reset[0] = True
    reset[3, 1] = True
    valid = np.ones((k_steps, width), bool)
    valid[4:, 2] = False  # slot 2 idles for the last two steps
    return x, reset, valid


def _gru():
    torch.manual_seed(0)
    return nn.GRU(2, 4).double()


@pytest.mark.parametrize("engine", list(RUNNERS))
def test_each_engine_runs_its_own_runner(engine, calls):
    x, reset, valid = _window()
    run_window(_gru(), x, reset, valid=valid, engine=engine)
    ran = [name for name, _ in calls if name != "window_plan"]
    assert ran == [RUNNERS[engine]]


@pytest.mark.parametrize("engine, kind, other", [("packed", plans.SegmentPlan, "dense"),
                                                 ("dense", plans.DensePlan, "packed")])
def test_a_plan_of_the_engines_kind_is_used_and_another_kind_is_remade(engine, kind, other, calls):
    x, reset, valid = _window()
    rnn = _gru()
    own, foreign = plans.window_plan(reset, valid, engine), plans.window_plan(reset, valid, other)
    assert isinstance(own, kind) and not isinstance(foreign, kind)
    calls.clear()
    want, _ = run_window(rnn, x, reset, valid=valid, engine=engine, plan=own)
    assert [name for name, _ in calls] == [RUNNERS[engine]]
    calls.clear()
    got, _ = run_window(rnn, x, reset, valid=valid, engine=engine, plan=foreign)
    assert [name for name, _ in calls] == ["window_plan", RUNNERS[engine]]
    torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_auto_runs_what_engine_for_picks(calls, monkeypatch):
    x, reset, valid = _window()
    run_window(_gru(), x, reset, valid=valid)
    assert [name for name, _ in calls] == ["run_fused"]
    calm = np.zeros((32, 64), bool)
    calm[0] = True  # one step of 32 holds resets: an LSTM of 128 units runs as segments beside fastseq's kernel
    calls.clear()
    run_window(nn.LSTM(2, 128), torch.randn(32, 64, 2), calm)
    picked = eng.engine_for(nn.LSTM(2, 128), 32, 64, "cpu", calm)
    assert [name for name, _ in calls] == [{"fused": "run_fused", "segments": "_run_segments"}[picked]]
    monkeypatch.setattr(eng, "_products", SimpleNamespace(kernel_in_use=lambda: True))
    calls.clear()
    run_window(nn.LSTM(2, 128), torch.randn(32, 64, 2), calm)
    assert [name for name, _ in calls] == ["_run_segments"]
    calls.clear()
    busy = np.ones((32, 64), bool)
    run_window(nn.LSTM(2, 128), torch.randn(32, 64, 2), busy)
    assert [name for name, _ in calls] == ["run_fused"]


def test_fused_asked_of_a_projected_lstm_warns_and_runs_steps(calls):
    x, reset, valid = _window()
    with pytest.warns(UserWarning, match="using engine='steps'"):
        run_window(nn.LSTM(2, 4, proj_size=2).double(), x, reset, valid=valid, engine="fused")
    assert [name for name, _ in calls] == ["_run_steps"]


@pytest.mark.parametrize("engine", list(RUNNERS))
def test_idle_steps_give_zero_outputs_in_every_engine(engine):
    """``valid`` reaches the engine: without a plan given (packed and dense make theirs from
    ``reset`` and ``valid``) and for the engines that mask their outputs."""
    x, reset, valid = _window()
    out, _ = run_window(_gru(), x, reset, valid=valid, engine=engine)
    assert (out[4:, 2] == 0).all()
    assert (out[valid] != 0).all()
    want, _ = run_window(_gru(), x, reset, engine="steps")
    torch.testing.assert_close(out[valid], want[torch.from_numpy(valid)], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("engine", list(RUNNERS))
@pytest.mark.parametrize("as_type", [np.int64, np.float32, np.uint8])
def test_masks_of_zeros_and_ones_of_any_dtype_are_read_as_bool(engine, as_type):
    x, reset, valid = _window()
    want, want_h = run_window(_gru(), x, reset, valid=valid, engine=engine)
    got, got_h = run_window(_gru(), x, reset.astype(as_type), valid=valid.astype(as_type), engine=engine)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    torch.testing.assert_close(got_h, want_h, rtol=0, atol=0)


@pytest.mark.parametrize("engine", ["fused", "steps", "segments", "packed"])
def test_a_reset_state_of_another_dtype_is_converted_to_the_windows(engine):
    x, reset, valid = _window()
    rnn = _gru()
    seed = torch.linspace(-0.5, 0.5, 4).view(1, 4)
    want, want_h = run_window(rnn, x, reset, valid=valid, engine=engine, reset_state=seed.double())
    got, got_h = run_window(rnn, x, reset, valid=valid, engine=engine, reset_state=seed.float())
    assert got.dtype == torch.float64 and got_h.dtype == torch.float64
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    torch.testing.assert_close(got_h, want_h, rtol=0, atol=0)


@pytest.mark.parametrize("engine, cls", [(e, c) for e in ("fused", "steps", "packed", "dense")
                                         for c in (nn.GRU, nn.LSTM) if (e, c) != ("dense", nn.LSTM)])
def test_every_mask_and_plan_goes_to_the_inputs_device(engine, cls):
    """PyTorch's ``meta`` device stands in for an accelerator: host masks and plans must be
    moved to it (a CPU tensor mixed into a meta computation fails). Segments are left out:
    finding the cuts reads the mask's values, which a meta tensor does not have; dense
    runs GRU and RNN only."""
    rnn = cls(2, 4).to("meta")
    x, reset, valid = _window()
    out, final = run_window(rnn, x.float().to("meta"), reset, valid=valid, engine=engine)
    parts = final if isinstance(final, tuple) else (final,)
    assert out.device.type == "meta" and all(p.device.type == "meta" for p in parts)
    assert out.shape == (6, 3, 4)
