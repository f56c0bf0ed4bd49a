"""``engine_for``'s crossover table at its edges, its log line, its argument names, and the small
helpers of ``fastseq.bptt.engines`` (``masked_mean``, the step engine's dropout) on the cases
where a near miss gives another answer."""

import logging
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from fastseq.bptt import engine_for, masked_mean, run_window
from fastseq.bptt import engines as eng

from _threads import torch_threads


@pytest.fixture(autouse=True)
def kernel_table(monkeypatch):
    """The crossover table of processors where fastseq's product kernel runs (it holds the
    segments rule; where MKL runs the products the fused engine takes those windows)."""
    monkeypatch.setattr(eng, "_products", SimpleNamespace(kernel_in_use=lambda: True))


@pytest.fixture
def one_thread():
    with torch_threads(1):
        yield


def _reset_on_steps(k_steps: int, width: int, steps: int) -> torch.Tensor:
    """A ``k_steps x width`` mask with resets on exactly ``steps`` of the steps (one slot each)."""
    reset = torch.zeros(k_steps, width, dtype=torch.bool)
    reset[torch.arange(steps) * 2, torch.arange(steps) % width] = True
    return reset


def test_the_default_device_is_the_cpu():
    assert engine_for(nn.GRU(3, 8), 32, 64) == "fused"
    assert engine_for(nn.LSTM(3, 128), 32, 64, reset=_reset_on_steps(32, 64, 1)) == "segments"


def test_few_resets_means_at_most_k_over_8_steps_holding_one():
    lstm = nn.LSTM(3, 128)
    assert engine_for(lstm, 32, 64, "cpu", _reset_on_steps(32, 64, 4)) == "segments"  # 4 = 32 // 8
    assert engine_for(lstm, 32, 64, "cpu", _reset_on_steps(32, 64, 5)) == "fused"
    assert engine_for(lstm, 33, 64, "cpu", _reset_on_steps(33, 64, 4)) == "segments"  # 33 // 8 = 4
    assert engine_for(lstm, 7, 64, "cpu", _reset_on_steps(7, 64, 0)) == "segments"  # 7 // 8 = 0: none at all
    assert engine_for(lstm, 7, 64, "cpu", _reset_on_steps(7, 64, 1)) == "fused"
    assert engine_for(lstm, 32, 64, "cpu") == "fused"  # reset unknown: not "few"


def test_a_projected_lstm_runs_segments_with_few_resets_and_steps_otherwise():
    lstm = nn.LSTM(3, 128, proj_size=4)
    assert engine_for(lstm, 32, 64, "cpu", _reset_on_steps(32, 64, 1)) == "segments"
    assert engine_for(lstm, 32, 64, "cpu", _reset_on_steps(32, 64, 9)) == "steps"
    assert engine_for(nn.LSTM(3, 8, proj_size=4), 32, 64, "cpu", _reset_on_steps(32, 64, 1)) == "segments"


def test_the_lstm_segments_window_includes_both_ends():
    calm = _reset_on_steps(32, 64, 1)
    low, high = eng._SEGMENTS_WIN["LSTM"]
    assert engine_for(nn.LSTM(3, low), 32, 64, "cpu", calm) == "segments"
    assert engine_for(nn.LSTM(3, high), 32, 64, "cpu", calm) == "segments"
    assert engine_for(nn.LSTM(3, low - 1), 32, 64, "cpu", calm) == "fused"
    assert engine_for(nn.LSTM(3, high + 1), 32, 64, "cpu", calm) == "fused"
    assert engine_for(nn.GRU(3, low), 32, 64, "cpu", calm) == "fused"  # LSTM only


def test_the_gru_steps_window_includes_its_edges(one_thread):
    hidden, slots, _ = eng._STEPS_WIN["GRU"]
    assert engine_for(nn.GRU(3, hidden), 32, slots, "cpu") == "steps"
    assert engine_for(nn.GRU(3, hidden + 1), 32, slots, "cpu") == "fused"
    assert engine_for(nn.GRU(3, hidden), 32, slots - 1, "cpu") == "fused"
    assert engine_for(nn.RNN(3, hidden), 32, slots, "cpu") == "fused"  # GRU only


def _log_lines(caplog, calls) -> list[str]:
    eng._CHOSEN.clear()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="fastseq.bptt"):
        for args in calls:
            engine_for(*args)
    return [r.getMessage() for r in caplog.records if r.name == "fastseq.bptt"]


def test_each_new_choice_is_logged_once_with_its_device(caplog, one_thread):
    gru, lstm = nn.GRU(3, 8), nn.LSTM(3, 8)
    lines = _log_lines(caplog, [(gru, 8, 5, "cpu"), (gru, 8, 5, "cpu"), (lstm, 8, 5, "cpu"), (gru, 8, 6, "cpu"),
                                (lstm, 8, 5, "cpu")])
    assert len(lines) == 3, lines
    assert all(", cpu, 1 thread(s)" in line for line in lines), lines
    assert [line.split(" for ")[1].split(" with ")[0] for line in lines] == ["GRU", "LSTM", "GRU"]


def test_only_a_fused_choice_names_who_runs_its_slot_blocks(caplog, one_thread):
    hidden, slots, _ = eng._STEPS_WIN["GRU"]
    (steps,) = _log_lines(caplog, [(nn.GRU(3, hidden), 32, slots, "cpu")])
    assert steps.startswith("run_window(engine='auto'): steps ") and steps.endswith(", cpu, 1 thread(s)"), steps
    (segments,) = _log_lines(caplog, [(nn.LSTM(3, 128), 32, 64, "cpu", _reset_on_steps(32, 64, 1))])
    assert segments.endswith(", cpu, 1 thread(s)"), segments
    (fused,) = _log_lines(caplog, [(nn.GRU(3, 8), 32, 64, "cpu")])
    assert ", cpu, 1 thread(s), slot blocks on " in fused, fused


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(k_steps=0, width=4), ValueError, "Expected k_steps to be an integer >= 1, got 0."),
    (dict(k_steps=4, width=0), ValueError, "Expected width to be an integer >= 1, got 0."),
    (dict(k_steps=4, width=4, device="nonsense"), ValueError, "Expected device to be a device such as"),
    (dict(k_steps=4, width=4, reset="abc"), TypeError, "Expected reset to be a K x W bool mask, got str."),
    (dict(k_steps=4, width=4, reset=np.zeros((3, 4), bool)), ValueError,
     "Expected reset to be k_steps x width = 4 x 4, got shape (3, 4)."),
])
def test_engine_for_errors_name_the_argument(kwargs, error, message):
    with pytest.raises(error) as info:
        engine_for(nn.GRU(3, 4), **kwargs)
    assert str(info.value).startswith(message), str(info.value)


def test_masked_mean_counts_one_real_step_as_one():
    values = torch.tensor([[3.0, 100.0], [-7.0, 5.0]], dtype=torch.float64)
    assert masked_mean(values, [[True, False], [False, False]]).item() == 3.0
    assert masked_mean(values, [[False, False], [False, False]]).item() == 0.0  # nothing real: 0, not NaN
    third = masked_mean(values, [[True, False], [True, True]])
    assert third.dtype == torch.float64 and third.item() == 1 / 3  # float64 throughout: (3 - 7 + 5) / 3


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_masked_mean_of_half_precision_values_counts_past_their_range(dtype):
    """K x W = 70,000 real steps: more than float16's largest finite number (65,504), and far
    past where bfloat16 stops counting by ones (256). The mean stays in the values' dtype."""
    values = torch.full((700, 100), 1.5, dtype=dtype)
    values[0, 0] = 0.0
    valid = torch.ones(700, 100, dtype=torch.bool)
    got = masked_mean(values, valid)
    assert got.dtype == dtype
    assert got.item() == pytest.approx(1.5 * (70_000 - 1) / 70_000, abs=1e-3)
    assert torch.isfinite(got)


def test_masked_mean_stays_on_the_values_device():
    values = torch.empty(4, 3, device="meta")
    got = masked_mean(values, np.ones((4, 3), bool))
    assert got.device.type == "meta" and got.shape == ()


@pytest.mark.parametrize("values, got", [(torch.zeros(3), "shape (3,)"), ([1.0, 2.0], "list")])
def test_masked_mean_errors_say_what_they_got(values, got):
    with pytest.raises(TypeError) as info:
        masked_mean(values, [[True]])
    assert str(info.value) == f"Expected values to be a K x W (or K x W x ...) tensor, got {got}."


@pytest.mark.parametrize("cls", [nn.GRU, nn.LSTM, nn.RNN])
def test_the_step_engine_drops_out_between_layers_as_the_module_does(cls):
    """In training, with ``dropout`` set, the step engine draws the same masks as the module
    itself (the same calls in the same order), so a reset-free window matches it to float64
    rounding (a different mask is off by O(1)); in evaluation, none. Not bit for bit: the module
    projects the whole sequence's inputs in one product, the engine step by step, and whether
    the two round alike depends on the processor's kernels (on AVX-512 Xeons an RNN's do not)."""
    torch.manual_seed(0)
    rnn = cls(3, 5, num_layers=3, dropout=0.5).double()
    x = torch.randn(6, 4, 3, dtype=torch.float64)
    reset = torch.zeros(6, 4, dtype=torch.bool)
    torch.manual_seed(7)
    got, _ = run_window(rnn, x, reset, engine="steps")
    torch.manual_seed(7)
    want, _ = rnn(x)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)
    rnn.eval()
    plain, _ = run_window(rnn, x, reset, engine="steps")
    torch.testing.assert_close(plain, rnn(x)[0], rtol=1e-12, atol=1e-14)
    assert (plain - got).abs().max() > 1e-3  # the training run did drop units
