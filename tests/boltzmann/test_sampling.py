"""Numba sampling kernels against their NumPy twins, in distribution."""
from __future__ import annotations

import numba
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp
from scipy import stats

from fastseq.boltzmann import _sampling_nb as nbs
from fastseq.boltzmann import _sampling_py as ref
N = 40_000


def _streams(seed=0):
    return nbs.make_streams(seed, 8)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bernoulli_matches_sigmoid_and_twin(dtype):
    logits = np.array([-6.0, -1.5, 0.0, 0.7, 3.0], dtype=dtype)
    x = np.repeat(logits[None], N, axis=0)
    ours = nbs.bernoulli_logits(x, _streams())
    twin = ref.bernoulli_logits(x, np.random.default_rng(1))
    assert ours.dtype == dtype and ours.shape == x.shape
    assert set(np.unique(ours)) <= {0.0, 1.0}
    p = ref.sigmoid(logits)
    se = np.sqrt(p * (1 - p) / N)
    assert np.all(np.abs(ours.mean(0) - p) < 5 * se + 1e-12)
    assert np.all(np.abs(twin.mean(0) - p) < 5 * se + 1e-12)


def test_bernoulli_extremes_and_corners():
    g = _streams()
    assert nbs.bernoulli_logits(np.array([-1e30, -800.0, 800.0, 1e30]), g).tolist() == [0, 0, 1, 1]
    assert nbs.bernoulli_logits(np.zeros((0, 3)), g).shape == (0, 3)
    assert nbs.bernoulli_logits(np.zeros(1), g).shape == (1,)


def test_same_seed_same_draws_serial_and_parallel_and_any_thread_count():
    x = np.random.default_rng(0).normal(size=nbs.PARALLEL_MIN * 2)
    a = nbs.bernoulli_logits(x, _streams(5))
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        b = nbs.bernoulli_logits(x, _streams(5))
    finally:
        numba.set_num_threads(old)
    # the serial path over the same chunks gives the very same numbers
    c = np.empty_like(x)
    gens = _streams(5)
    for t in range(8):
        nbs._bernoulli_chunk(gens[t], x, c, x.size * t // 8, x.size * (t + 1) // 8)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    assert not np.array_equal(a, nbs.bernoulli_logits(x, _streams(6)))


SHAPES = [(0.3, 0.7), (0.05, 0.05), (0.5, 0.5), (1.0, 1.0), (2.0, 5.0), (30.0, 12.0), (0.2, 8.0)]


@pytest.mark.parametrize("a,b", SHAPES)
def test_beta_ab_matches_distribution_and_twin(a, b):
    ours = nbs.beta_ab(np.full(N, a), np.full(N, b), _streams())
    twin = ref.beta_ab(np.full(N, a), np.full(N, b), np.random.default_rng(2))
    assert np.all((ours >= 0) & (ours <= 1))
    mean, var = a / (a + b), a * b / ((a + b) ** 2 * (a + b + 1))
    assert abs(ours.mean() - mean) < 5 * np.sqrt(var / N)
    assert abs(ours.var() - var) < 0.05 * var
    if min(a, b) >= 0.1:
        # below that, ~8% of Beta(0.05, 0.05) lies within 1e-16 of 0 or 1 and rounds onto
        # the end points, which a test against the continuous cdf reads as a jump
        assert stats.kstest(ours, stats.beta(a, b).cdf).pvalue > 1e-3
    assert stats.ks_2samp(ours, twin).pvalue > 1e-3


def test_beta_tiny_shapes_degrade_to_bernoulli():
    # a, b << 1: mass piles at 0 and 1 with P(near 1) = a / (a + b); torch's sampler misbehaves here
    a, b = 1e-3, 4e-3
    ours = nbs.beta_ab(np.full(N, a), np.full(N, b), _streams())
    twin = ref.beta_ab(np.full(N, a), np.full(N, b), np.random.default_rng(3))
    assert np.all(np.isfinite(ours)) and np.all((ours >= 0) & (ours <= 1))
    p = a / (a + b)
    se = np.sqrt(p * (1 - p) / N)
    assert abs((ours > 0.5).mean() - p) < 5 * se
    assert abs((ours > 0.5).mean() - (twin > 0.5).mean()) < 7 * se


@pytest.mark.parametrize("m,s", [(0.5, 0.1), (0.2, 0.05), (0.9, 0.2), (0.03, 0.1), (1e-9, 0.1), (1.0, 0.3)])
def test_beta_mean_sigma(m, s):
    ours = nbs.beta_mean_sigma(np.full(N, m), s, _streams())
    twin = ref.beta_mean_sigma(np.full(N, m), s, np.random.default_rng(4))
    assert np.all(np.isfinite(ours)) and np.all((ours >= 0) & (ours <= 1))
    mc = min(max(m, nbs.EPS_MEAN), 1 - nbs.EPS_MEAN)
    sd = min(s, np.sqrt(mc * (1 - mc)))
    assert abs(ours.mean() - mc) < 5 * sd / np.sqrt(N) + 1e-6
    if 0.01 < m < 0.99:  # at the ends only the mean is well determined by N draws
        assert abs(ours.std() - sd) < 0.05 * sd
        assert stats.ks_2samp(ours, twin).pvalue > 1e-3


def test_beta_mean_sigma_per_column_sigma_and_fused_sigmoid():
    sig = np.array([0.05, 0.2])
    x = np.zeros((N, 2))
    ours = nbs.sigmoid_beta(x, sig, _streams())
    twin = ref.sigmoid_beta(x, sig, np.random.default_rng(5))
    np.testing.assert_allclose(ours.std(0), sig, rtol=0.05)
    np.testing.assert_allclose(twin.std(0), sig, rtol=0.05)
    np.testing.assert_allclose(ours.mean(0), 0.5, atol=0.005)


@settings(max_examples=40, deadline=None)
@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=2, min_side=0, max_side=30),
                  elements=st.floats(-1e300, 1e300)))
def test_bernoulli_property(x):
    x_before = x.copy()
    out = nbs.bernoulli_logits(x, _streams())
    np.testing.assert_array_equal(x, x_before)
    assert out.shape == x.shape and set(np.unique(out)) <= {0.0, 1.0}
    assert np.all(out[x > 40] == 1) and np.all(out[x < -40] == 0)


@settings(max_examples=40, deadline=None)
@given(hnp.arrays(np.float64, st.integers(0, 50), elements=st.floats(0, 1)),
       st.floats(1e-4, 10.0))
def test_beta_mean_sigma_property(mean, sigma):
    out = nbs.beta_mean_sigma(mean, sigma, _streams())
    assert out.shape == mean.shape
    assert np.all(np.isfinite(out)) and np.all((out >= 0) & (out <= 1))
    a, b = ref.beta_params(mean, sigma)
    assert np.all(a > 0) and np.all(b > 0)


@pytest.mark.parametrize("kinds", [(nbs.BERNOULLI, nbs.BERNOULLI), (nbs.BETA, nbs.BERNOULLI), (nbs.BETA, nbs.BETA)])
def test_gibbs_chain_matches_twin(kinds):
    rng = np.random.default_rng(0)
    d, h, n = 12, 6, 4000
    w = rng.normal(scale=0.8, size=(d, h))
    b, c = rng.normal(size=d), rng.normal(size=h)
    h0 = (rng.random((n, h)) < 0.5).astype(np.float64)
    h0_before = h0.copy()
    v, hk = nbs.gibbs_chain(h0, w, b, c, 5, _streams(), *kinds, sigma_v=0.1, sigma_h=0.15)
    v2, hk2 = ref.gibbs_chain(h0, w, b, c, 5, rng, *kinds, sigma_v=0.1, sigma_h=0.15)
    np.testing.assert_array_equal(h0, h0_before)
    assert v.shape == (n, d) and hk.shape == (n, h)
    np.testing.assert_allclose(v.mean(0), v2.mean(0), atol=0.05)
    np.testing.assert_allclose(hk.mean(0), hk2.mean(0), atol=0.05)
    np.testing.assert_allclose(v.std(0), v2.std(0), atol=0.05)


def test_gibbs_chain_corners():
    w = np.zeros((3, 2))
    v, h = nbs.gibbs_chain(np.zeros((0, 2)), w, np.zeros(3), np.zeros(2), 3, _streams())
    assert v.shape == (0, 3) and h.shape == (0, 2)
    v, h = nbs.gibbs_chain(np.ones((1, 2)), w, np.full(3, 50.0), np.zeros(2), 1, _streams())
    assert v.tolist() == [[1.0, 1.0, 1.0]]
