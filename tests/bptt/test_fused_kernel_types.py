"""The fused kernels take one float type per call: their per-step products are called by
address for the first array's type, so an array of another type would be read as garbage."""
from __future__ import annotations

import numpy as np
import pytest

from fastseq.bptt import _fused_nb


def _rnn_arrays(dtype):
    k, w, h = 2, 3, 4
    z = lambda *s: np.zeros(s, dtype)  # noqa: E731
    return [z(k, w, h), z(h, h), z(h), z(w, h), z(h), np.zeros((k, w), bool), False, z(k, w, h), z(k, w, h)]


@pytest.mark.parametrize("dtype, other", [(np.float32, np.float64), (np.float64, np.float32)])
@pytest.mark.parametrize("where", [3, 7])
def test_the_kernels_refuse_arrays_of_another_float_type(dtype, other, where):
    args = _rnn_arrays(dtype)
    args[where] = args[where].astype(other)
    with pytest.raises(ValueError, match=f"{np.dtype(dtype).name} arrays for the fused kernels"):
        _fused_nb.rnn_forward(*args)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_backward_kernels_accumulate_the_seed_gradient_in_the_windows_type(dtype):
    """The per-block seed gradient rows are of the window's type (a scratch of another type is
    refused like any other array)."""
    k, w, h = 2, 3, 4
    rng = np.random.default_rng(0)
    r = lambda *s: rng.standard_normal(s).astype(dtype)  # noqa: E731
    hs, hprev = np.zeros((k, w, h), dtype), np.zeros((k, w, h), dtype)
    reset = np.zeros((k, w), bool)
    _fused_nb.rnn_forward(r(k, w, h), r(h, h).T.copy(), r(h), r(w, h), r(h), reset, False, hs, hprev)
    dga, dh0, dseed = np.zeros((k, w, h), dtype), np.zeros((w, h), dtype), np.zeros(h, dtype)
    _fused_nb.rnn_backward(r(k, w, h), r(h, h), hs, reset, False, dga, dh0, dseed)
    assert np.isfinite(dga).all() and np.isfinite(dh0).all()
