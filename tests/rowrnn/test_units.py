"""Hidden-unit pictures: the batched weighting against a plain loop over units and windows."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fastseq.rowrnn.units import hidden_unit_pictures, sample_windows, unit_responses
from fastseq.rowrnn.models import GRURows, TiedRNN


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def _responses_twin(m: TiedRNN, windows: np.ndarray):
    """For each unit, for each window: read it one row at a time, weight = max(pre-activation, 0),
    roll forward feeding back predictions; weighted averages by plain accumulation."""
    p = {k: v.detach().double().numpy() for k, v in m.state_dict().items()}
    s, length, f = windows.shape
    seen = np.zeros((m.n_hidden, length, f))
    expected = np.zeros((m.n_hidden, length, f))
    for unit in range(m.n_hidden):
        total = 0.0
        for w in windows.astype(np.float64):
            h = np.zeros(m.n_hidden)
            for row in w:
                pre = row @ p["Wxh"] + h @ p["Whh"] + p["b"]
                h = _sigmoid(pre)
            weight = max(pre[unit], 0.0)
            rolled = []
            for _ in range(length):
                y = _sigmoid(h @ p["Wxh"].T + p["c"])
                rolled.append(y)
                h = _sigmoid(y @ p["Wxh"] + h @ p["Whh"] + p["b"])
            seen[unit] += weight * w
            expected[unit] += weight * np.array(rolled)
            total += weight
        if total > 0:
            seen[unit] /= total
            expected[unit] /= total
    return seen, expected


@pytest.mark.parametrize("length,count,batch", [(1, 7, 3), (4, 20, 6), (10, 33, 100)])
def test_unit_responses_match_plain_loop(length, count, batch):
    torch.manual_seed(length)
    m = TiedRNN(28, 6)
    with torch.no_grad():
        m.b -= 1.0  # some units respond below 0 to some windows, so the floor matters
    windows = sample_windows(np.random.default_rng(0).random((9, 28, 28)), length, count, seed=1)
    before = windows.copy()
    seen, expected = unit_responses(m, windows, batch_size=batch)
    np.testing.assert_array_equal(windows, before)
    tseen, texpected = _responses_twin(m, windows)
    np.testing.assert_allclose(seen, tseen, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(expected, texpected, rtol=1e-4, atol=1e-5)


def test_weighting_prefers_windows_the_unit_likes():
    m = TiedRNN(4, 2)
    with torch.no_grad():
        m.Wxh.zero_(); m.Whh.zero_(); m.b.zero_()
        m.Wxh[0, 0] = 5.0   # unit 0 responds to pixel 0 of the last row
        m.Wxh[1, 1] = -5.0  # unit 1 never responds above 0 here
    windows = np.zeros((2, 1, 4), np.float32)
    windows[0, 0, 0] = 1.0
    windows[1, 0, 2] = 1.0
    seen, _ = unit_responses(m, windows)
    np.testing.assert_allclose(seen[0, 0], [1, 0, 0, 0])   # only window 0 has weight
    np.testing.assert_array_equal(seen[1], 0)              # never above 0: zeros, no NaN


def test_sample_windows_are_real_consecutive_rows():
    images = np.arange(3 * 28 * 2, dtype=np.float32).reshape(3, 28, 2)
    w = sample_windows(images, window=5, count=50, seed=2)
    assert w.shape == (50, 5, 2)
    assert np.all(np.diff(w[:, :, 0], axis=1) == 2)          # consecutive rows of one image
    np.testing.assert_array_equal(w, sample_windows(images, 5, 50, seed=2))
    with pytest.raises(ValueError, match="window <= 28"):
        sample_windows(images, window=29)


def test_pictures_stack_seen_over_expected_for_any_model():
    images = np.random.default_rng(0).random((10, 28, 28))
    pics = hidden_unit_pictures(GRURows(28, 5), images, window=6, count=40)
    assert pics.shape == (5, 12, 28) and np.isfinite(pics).all()


def test_pictures_refuse_images_with_another_row_width_naming_images():
    images = np.random.default_rng(0).random((5, 2, 1))
    with pytest.raises(ValueError, match=r"Expected images of shape N x T x 4 \(the model's features per row\), "
                                         r"got \(5, 2, 1\)"):
        hidden_unit_pictures(GRURows(4, 3), images, window=1, count=3)
