"""Exact checks of the NumPy sampling twins (``fastseq.boltzmann._sampling_py``).

Cheng's BB and BC are driven with chosen uniforms and compared with Cheng's formulas
evaluated here; dtypes, copies, defaults and generator use are checked directly."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from fastseq.boltzmann import _sampling_py as ref
from fastseq.boltzmann._sampling_nb import BERNOULLI, BETA

LN4 = np.log(4.0)


class _Uniforms:
    """Stand-in generator: ``random(shape)`` hands out the given arrays in order, then
    arrays full of ``fill`` (0.5 is accepted at once by both BB and BC; None: none more)."""

    def __init__(self, *arrays, fill=0.5):
        self.queue = [np.asarray(a, dtype=np.float64) for a in arrays]
        self.fill = fill

    def random(self, shape):
        if self.queue:
            a = self.queue.pop(0)
            assert a.shape == np.empty(shape).shape
            return a.copy()
        if self.fill is None:
            raise RuntimeError("more uniforms asked for than given")
        return np.full(shape, self.fill)


def _bb_by_hand(lo, hi, u1, u2):
    """Cheng's BB acceptance and result w / (hi + w) for uniforms (u1, u2)."""
    u1 = np.where(u1 == 0.0, 0.5, u1)
    a = lo + hi
    b = np.sqrt((a - 2.0) / (2.0 * lo * hi - a))
    v = b * np.log(u1 / (1.0 - u1))
    w, z, r = lo * np.exp(v), u1 ** 2 * u2, (lo + 1.0 / b) * v - LN4
    with np.errstate(divide="ignore"):
        lz = np.log(z)
    squeeze = (lo + r - w + 2.609438 >= 5.0 * z) | (lo + r - w > lz)
    return squeeze | (r + a * np.log(a / (hi + w)) >= lz), w / (hi + w)


def _bc_by_hand(big, small, u1, u2):
    """Cheng's BC acceptance and log(w / small) for uniforms (u1, u2), in plain w space."""
    u1 = np.where(u1 == 0.0, 0.5, u1)
    alpha, beta, delta = big + small, 1.0 / small, 1.0 + big - small
    k1 = delta * (1.0 / 72 + small / 24) / (big / small - 7.0 / 9)
    k2 = 0.25 + (0.5 + 0.25 / delta) * small
    low = u1 < 0.5
    y = u1 * u2
    z = u1 * u1 * u2
    v = beta * np.log(u1 / (1.0 - u1))
    w = big * np.exp(v)
    with np.errstate(divide="ignore"):
        full = alpha * (np.log(alpha / (small + w)) + v) - LN4 >= np.log(z)
    acc = np.where(low, (0.25 * u2 + z - y < k1) & full, (z <= 0.25) | ((z < k2) & full))
    return acc, np.log(w / small)


def _pairs(n, seed):
    g = np.random.default_rng(seed)
    return g.random(n), g.random(n)


BB_SHAPES = [(1.5, 1.5), (1.2, 7.0), (3.0, 4.0), (2.0, 30.0)]
BC_SHAPES = [(2.5, 0.5), (0.8, 0.3), (3.0, 0.9), (1.0, 1.0), (6.0, 0.05), (0.6, 0.6)]


@pytest.mark.parametrize("kernel,by_hand,first,second,retry", [
    (ref._cheng_bb, _bb_by_hand, f, s, lambda f, s: f / (f + s)) for f, s in BB_SHAPES] + [
    (ref._cheng_bc, _bc_by_hand, f, s, lambda f, s: np.log(f / s)) for f, s in BC_SHAPES])
def test_cheng_accepts_and_returns_as_cheng_formulas_for_given_uniforms(kernel, by_hand, first, second, retry):
    n = 20_000
    u1, u2 = _pairs(n, 2)
    x, y = np.full(n, first), np.full(n, second)
    acc, val = by_hand(x, y, u1, u2)
    # rejected pairs are redrawn with u1 = u2 = 0.5: v = 0, w = the first shape, accepted
    expected = np.where(acc, val, retry(first, second))
    got = kernel(x, y, _Uniforms(u1, u2))
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
    assert acc.any()


def test_cheng_zero_first_uniform_is_read_as_one_half():
    # u1 = 0 would make logit(u1) = -inf; it is replaced by 0.5 (v = 0, w = the first shape)
    lo, hi = np.array([2.0]), np.array([5.0])
    assert ref._cheng_bb(lo, hi, _Uniforms([0.0], [0.5], fill=None))[0] == pytest.approx(2.0 / 7.0)
    big, small = np.array([3.0]), np.array([0.5])
    assert ref._cheng_bc(big, small, _Uniforms([0.0], [0.5], fill=None))[0] == pytest.approx(np.log(6.0))
    assert ref._cheng_bc(big, small, _Uniforms([0.0], [0.01], fill=None))[0] == pytest.approx(np.log(6.0))


def test_cheng_zero_second_uniform_gives_no_log_of_zero_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ref._cheng_bb(np.array([2.0, 3.0]), np.array([5.0, 3.0]), _Uniforms([0.3, 0.7], [0.0, 0.0]))
        ref._cheng_bc(np.array([3.0, 0.8]), np.array([0.5, 0.3]), _Uniforms([0.3, 0.7], [0.0, 0.0]))


def test_beta_ab_equal_shapes_give_the_cheng_draw_itself_not_its_mirror():
    a = np.full(50, 3.0)
    np.testing.assert_array_equal(ref.beta_ab(a, a, np.random.default_rng(3)),
                                  ref._cheng_bb(a, a, np.random.default_rng(3)))
    a = np.full(50, 0.7)
    lr = ref._cheng_bc(a, a, np.random.default_rng(4))
    np.testing.assert_allclose(ref.beta_ab(a, a, np.random.default_rng(4)), 1.0 / (1.0 + np.exp(-lr)),
                               rtol=1e-15)


def test_beta_ab_tiny_shapes_give_no_overflow_warning():
    a = np.array([1e-3, 2e-3, 5.0, 1e-3] * 50)
    b = np.array([1e-3, 4.0, 1e-3, 0.5] * 50)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x = ref.beta_ab(a, b, np.random.default_rng(5))
    assert np.all((x >= 0) & (x <= 1))


def test_bernoulli_logits_keeps_float32_and_zero_uniform_never_fires_at_probability_zero():
    x = np.array([-3.0, 0.0, 2.0], dtype=np.float32)
    assert ref.bernoulli_logits(x, np.random.default_rng(0)).dtype == np.float32
    # P(u < p) = p needs the strict test: u = 0 with p = 0 must give 0
    out = ref.bernoulli_logits(np.array([-1e30, -1e30]), _Uniforms(np.zeros(2)))
    assert out.tolist() == [0.0, 0.0]


def test_sigmoid_computes_in_float64_for_float32_input():
    s = ref.sigmoid(np.array([20.0, -3.0], dtype=np.float32))
    assert s.dtype == np.float64
    assert s[0] < 1.0  # float32 tanh(10) rounds to 1
    assert s[1] == 0.5 * (1.0 + np.tanh(-1.5))


def test_beta_mean_sigma_and_sigmoid_beta_keep_float32():
    m = np.array([0.2, 0.5, 0.9], dtype=np.float32)
    assert ref.beta_mean_sigma(m, 0.1, np.random.default_rng(0)).dtype == np.float32
    x = np.array([-1.0, 0.0, 2.0], dtype=np.float32)
    assert ref.sigmoid_beta(x, 0.1, np.random.default_rng(0)).dtype == np.float32


def _rbm(dtype, n_vis=5, n_hid=3, seed=0):
    g = np.random.default_rng(seed)
    return (g.normal(size=(n_vis, n_hid)).astype(dtype), g.normal(size=n_vis).astype(dtype),
            g.normal(size=n_hid).astype(dtype))


def test_gibbs_chain_zero_steps_returns_empty_visible_of_weight_dtype_and_shape():
    w, b, c = _rbm(np.float32)
    h0 = np.ones((4, 3))
    v, h = ref.gibbs_chain(h0, w, b, c, 0, np.random.default_rng(0))
    assert isinstance(v, np.ndarray) and v.shape == (4, 5) and v.dtype == np.float32
    assert h.dtype == np.float32 and h.shape == (4, 3)


def test_gibbs_chain_casts_to_weight_dtype_and_copies_h0():
    w, b, c = _rbm(np.float32)
    h0 = (np.random.default_rng(1).random((4, 3)) < 0.5).astype(np.float64)
    v, h = ref.gibbs_chain(h0, w, b, c, 1, np.random.default_rng(0))
    assert v.dtype == np.float32 and h.dtype == np.float32
    h0 = h0.astype(np.float32)
    keep = h0.copy()
    v, h = ref.gibbs_chain(h0, w, b, c, 1, np.random.default_rng(0))
    assert not np.shares_memory(h, h0)
    h[...] = 7.0
    np.testing.assert_array_equal(h0, keep)


def test_swap_replicas_uses_exactly_one_uniform_per_pair_and_chain():
    g, mirror = np.random.default_rng(9), np.random.default_rng(9)
    energy = np.random.default_rng(0).normal(size=(4, 6))
    order = np.tile(np.arange(4)[:, None], (1, 6))
    ref.swap_replicas(energy, np.array([1.0, 0.8, 0.6, 0.4]), 0, g, order, np.zeros(3, np.int64))
    mirror.random((3, 6))
    assert g.random() == mirror.random()


def test_swap_replicas_adds_to_accepted_counts():
    energy = np.array([[0.0, 0.0], [-5.0, -5.0]])  # higher beta gets lower energy: always taken
    accepted = np.array([10], np.int64)
    ref.swap_replicas(energy, np.array([1.0, 0.5]), 0, np.random.default_rng(0),
                      np.array([[0, 0], [1, 1]]), accepted)
    assert accepted.tolist() == [12]


def test_swap_replicas_infinite_energies_give_no_warning():
    energy = np.array([[np.inf, 2000.0, 0.0], [np.inf, 0.0, 1.0]])
    order = np.array([[0, 0, 0], [1, 1, 1]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ref.swap_replicas(energy, np.array([1.0, 0.5]), 0, np.random.default_rng(0), order,
                          np.zeros(1, np.int64))
    # NaN difference (inf - inf) rejected; d = 1000 taken
    assert order[:, 0].tolist() == [0, 1] and order[:, 1].tolist() == [1, 0]
