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
    assert nbs._n_chunks(x.size, 8) == 8
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


# ---------------------------------------------------------------- exact Gibbs step counts
# A chain that silently runs one step too many (CD-1 becoming CD-2) still reaches the same
# equilibrium, so column means from random starts cannot see it. These tests start many
# copies of a few fixed hidden rows in a strongly coupled model, where the distributions
# after 1 and 2 steps are far apart, and compare with the exact distributions.

def _coupled_model(d=4, h=3):
    rng = np.random.default_rng(11)
    return rng.normal(scale=2.5, size=(d, h)), rng.normal(size=d), rng.normal(size=h)


def _exact_means(w, b, c, h0):
    """Exact E[v_1 | h_0], E[h_1 | h_0] and E[v_2 | h_0] by enumerating all visible states."""
    d, _ = w.shape
    states = ((np.arange(2 ** d)[:, None] >> np.arange(d)) & 1).astype(np.float64)
    pv1 = ref.sigmoid(h0 @ w.T + b)                                           # rows x d
    p_state = np.prod(np.where(states[None] == 1, pv1[:, None], 1 - pv1[:, None]), axis=2)  # rows x 2^d
    ph1_given_state = ref.sigmoid(states @ w + c)                              # 2^d x h
    h1_mean = p_state @ ph1_given_state
    hidden = ((np.arange(2 ** w.shape[1])[:, None] >> np.arange(w.shape[1])) & 1).astype(np.float64)
    p_h1 = np.stack([np.prod(np.where(hidden[None] == 1, ph1_given_state[:, None], 1 - ph1_given_state[:, None]),
                             axis=2).T @ p_state[r] for r in range(len(h0))])  # rows x 2^h
    v2_mean = p_h1 @ ref.sigmoid(hidden @ w.T + b)
    return pv1, h1_mean, v2_mean


def _starts(n_rep=20_000):
    h0 = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
    return h0, np.repeat(h0, n_rep, axis=0)


def _row_means(x, n_rows):
    return x.reshape(n_rows, -1, x.shape[1]).mean(1)


def test_one_gibbs_step_matches_its_closed_form():
    w, b, c = _coupled_model()
    h0, starts = _starts()
    v1, h_ret = nbs.gibbs_chain(starts, w, b, c, 1, _streams())
    pv1, h1_mean, v2_mean = _exact_means(w, b, c, h0)
    se = np.sqrt(pv1 * (1 - pv1) / 20_000) + 1e-12
    assert np.all(np.abs(_row_means(v1, 3) - pv1) < 5 * se)
    np.testing.assert_array_equal(h_ret, starts)  # k = 1 returns h_0 itself
    assert np.max(np.abs(pv1 - v2_mean)) > 0.2  # the coupled model tells 1 step from 2


def test_two_gibbs_steps_and_the_documented_return():
    w, b, c = _coupled_model()
    h0, starts = _starts()
    v2, h1 = nbs.gibbs_chain(starts, w, b, c, 2, _streams(1))
    pv1, h1_mean, v2_mean = _exact_means(w, b, c, h0)
    se_v = np.sqrt(v2_mean * (1 - v2_mean) / 20_000) + 1e-12
    se_h = np.sqrt(h1_mean * (1 - h1_mean) / 20_000) + 1e-12
    assert np.all(np.abs(_row_means(v2, 3) - v2_mean) < 5 * se_v)   # v_k
    assert np.all(np.abs(_row_means(h1, 3) - h1_mean) < 5 * se_h)   # h_{k-1}
    # and the twin, which the kernel must agree with
    tv, th = ref.gibbs_chain(starts, w, b, c, 2, np.random.default_rng(3))
    assert np.all(np.abs(_row_means(tv, 3) - v2_mean) < 5 * se_v)
    assert np.all(np.abs(_row_means(th, 3) - h1_mean) < 5 * se_h)


def test_model_chain_and_cd1_negative_sample_take_exactly_k_steps():
    import torch

    from fastseq.boltzmann import RBM

    w, b, c = _coupled_model()
    h0, starts = _starts()
    m = RBM(n_components=3, n_iter=0, dtype="float64", random_state=0).fit(np.zeros((2, 4)))
    with torch.no_grad():
        for name, value in (("W", w), ("b", b), ("c", c)):
            m.params_[name].copy_(torch.from_numpy(value))
    pv1, h1_mean, v2_mean = _exact_means(w, b, c, h0)
    se = np.sqrt(pv1 * (1 - pv1) / 20_000) + 1e-12
    v, h = m._chain(torch.from_numpy(starts), 1)
    assert np.all(np.abs(_row_means(v.numpy(), 3) - pv1) < 5 * se)
    np.testing.assert_array_equal(h.numpy(), starts)


def test_importing_fastseq_changes_no_threading_setting():
    import json
    import subprocess
    import sys

    code = ("import json, numba, torch\n"
            "before = (numba.config.THREADING_LAYER, torch.get_num_threads(), numba.get_num_threads())\n"
            "import fastseq.boltzmann, fastseq.boltzmann._sampling_nb, fastseq.boltzmann._cd_nb\n"
            "from fastseq.boltzmann import RBM\n"
            "import numpy as np\n"
            "RBM(n_components=3, n_iter=1).fit(np.zeros((4, 2))).transform(np.zeros((1, 2)))\n"
            "after = (numba.config.THREADING_LAYER, torch.get_num_threads(), numba.get_num_threads())\n"
            "print(json.dumps([before, after]))\n")
    out = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True, check=True,
                         timeout=300)
    before, after = json.loads(out.stdout.strip().splitlines()[-1])
    assert before == after


def test_beta_params_of_float32_means_are_computed_in_float64_like_the_kernel():
    # near the clamp, 1 - m in float32 keeps only a few digits: the shapes would be off by %
    mean = np.array([1e-7, 1e-6, 0.3, 1 - 2e-6, 1 - 1e-6, 1.0], dtype=np.float32)
    sigma = np.float32(1e-4)
    a32, b32 = ref.beta_params(mean, sigma)
    a64, b64 = ref.beta_params(mean.astype(np.float64), np.float64(sigma))
    np.testing.assert_allclose(a32, a64, rtol=1e-12)
    np.testing.assert_allclose(b32, b64, rtol=1e-12)
    kernel = np.array([nbs.beta_params(float(m), float(sigma)) for m in mean])
    np.testing.assert_allclose(np.stack([a32, b32], 1), kernel, rtol=1e-12)


def test_chain_kernels_run_blas_on_one_thread_and_restore_its_setting():
    from threadpoolctl import threadpool_info, threadpool_limits

    from fastseq.boltzmann import RRBM
    from fastseq._util.blas import serial_blas

    def blas_threads():
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]

    rng = np.random.default_rng(0)
    w, b, c = rng.normal(size=(12, 5)) * 0.3, np.zeros(12), np.zeros(5)
    h0 = (rng.random((20, 5)) < 0.5).astype(float)
    with threadpool_limits(2, user_api="blas"):
        with serial_blas():
            assert set(blas_threads()) == {1}
        assert set(blas_threads()) == {2}
        # the same draws whatever the caller's BLAS setting, which the kernels leave as it was
        v2, h2 = nbs.gibbs_chain(h0, w, b, c, 4, _streams(3), nbs.BETA, nbs.BETA, 0.1, 0.2)
        RRBM(n_components=5, n_iter=1, random_state=0).fit(rng.random((30, 12)))
        assert set(blas_threads()) == {2}
    with threadpool_limits(1, user_api="blas"):
        v1, h1 = nbs.gibbs_chain(h0, w, b, c, 4, _streams(3), nbs.BETA, nbs.BETA, 0.1, 0.2)
    np.testing.assert_array_equal(v1, v2)
    np.testing.assert_array_equal(h1, h2)


def test_beta_block_mixed_shapes_in_one_block_match_their_distributions():
    # the blocked sampler settles most draws in a vectorised pass and fixes the rest one by
    # one (squeeze failures near shape 1, shapes below 1): mix every case inside each block
    shapes = [(0.3, 0.7), (1.0, 1.0), (1.05, 30.0), (3.0, 0.2), (12.0, 12.0), (0.02, 5.0), (250.0, 2.0)]
    a = np.tile([s[0] for s in shapes], N // 4)
    b = np.tile([s[1] for s in shapes], N // 4)
    ours = nbs.beta_ab(a, b, _streams(7))
    twin = ref.beta_ab(a, b, np.random.default_rng(8))
    for k, (sa, sb) in enumerate(shapes):
        x = ours[k::len(shapes)]
        assert np.all((x >= 0) & (x <= 1))
        if min(sa, sb) >= 0.1:
            assert stats.kstest(x, stats.beta(sa, sb).cdf).pvalue > 1e-3, (sa, sb)
        assert stats.ks_2samp(x, twin[k::len(shapes)]).pvalue > 1e-3, (sa, sb)


@pytest.mark.parametrize("kind", ["beta_ab", "sigmoid_beta", "beta_mean_sigma"])
def test_beta_draws_same_serial_and_parallel_and_any_thread_count(kind, monkeypatch):
    x = np.random.default_rng(1).normal(size=(nbs.PARALLEL_MIN_BETA // 7 + 200, 7))
    sig = np.linspace(0.05, 0.3, 7)  # one sigma per column
    call = {"beta_ab": lambda g: nbs.beta_ab(np.exp(x), np.exp(-x), g),
            "sigmoid_beta": lambda g: nbs.sigmoid_beta(x, sig, g),
            "beta_mean_sigma": lambda g: nbs.beta_mean_sigma(ref.sigmoid(x), sig, g)}[kind]
    a = call(_streams(5))
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        b = call(_streams(5))
    finally:
        numba.set_num_threads(old)
    monkeypatch.setattr(nbs, "PARALLEL_MIN_BETA", 1 << 62)  # the serial path over the same chunks
    c = call(_streams(5))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    assert not np.array_equal(a, call(_streams(6)))


def test_beta_rbm_chain_takes_the_base_loops_draws():
    import torch

    from fastseq.boltzmann import BetaRBM
    from fastseq.boltzmann._base import BoltzmannMachine

    X = np.random.default_rng(0).beta(2.0, 5.0, size=(100, 20)).astype(np.float32)
    m = BetaRBM(n_components=7, n_iter=1, learning_rate=0.01, random_state=0).fit(X)
    h = (torch.rand(13, 7, generator=torch.Generator().manual_seed(0)) < 0.5).float()
    m._setup_random()
    ours = m._chain(h, 6)
    m._setup_random()
    base = BoltzmannMachine._chain(m, h, 6)
    for x, y in zip(ours, base):
        assert torch.equal(x, y)


# ---------------------------------------------------------------- Cheng's BB and BC
# the kernel (vectorised BB, log-space BC) and its twin against scipy over a grid of shapes:
# both > 1 (BB), one <= 1 (BC), equal shapes, a < 1 < b, huge and tiny ones

GRID = [(1e4, 1e4), (1e4, 2.0), (2.0, 1e4), (1.0001, 1.0001), (1.5, 1.0), (5.45, 13.8), (13.8, 5.45),
        (12.0, 12.0), (0.5, 1e4), (0.3, 5.0), (5.0, 0.3), (0.8, 0.8)]


@pytest.mark.parametrize("a,b", GRID)
def test_beta_ab_kernel_and_twin_match_scipy_over_a_grid(a, b):
    ours = nbs.beta_ab(np.full(N, a), np.full(N, b), _streams(11))
    twin = ref.beta_ab(np.full(N, a), np.full(N, b), np.random.default_rng(12))
    for x in (ours, twin):
        assert np.all((x >= 0) & (x <= 1))
        assert stats.kstest(x, stats.beta(a, b).cdf).pvalue > 1e-3, (a, b)
    assert stats.ks_2samp(ours, twin).pvalue > 1e-3


@pytest.mark.parametrize("a,b", [(1e-3, 1e-3), (1e-3, 4e-3), (4e-3, 1e-3), (1e-3, 0.5), (0.02, 0.01)])
def test_tiny_shapes_put_mass_at_the_ends_in_the_right_proportions(a, b):
    # the values sit (within rounding) on 0 and 1: compare P(X > 1/2) with scipy's, a chi-square
    # of one degree of freedom on the two halves
    p = stats.beta(a, b).sf(0.5)
    for x in (nbs.beta_ab(np.full(N, a), np.full(N, b), _streams(13)),
              ref.beta_ab(np.full(N, a), np.full(N, b), np.random.default_rng(14))):
        assert np.all(np.isfinite(x)) and np.all((x >= 0) & (x <= 1))
        hi = int((x > 0.5).sum())
        chi2 = (hi - N * p) ** 2 / (N * p) + (N - hi - N * (1 - p)) ** 2 / (N * (1 - p))
        assert stats.chi2.sf(chi2, 1) > 1e-3, (a, b, hi / N, p)


def test_beta_ab_all_equal_entries_in_many_blocks_and_chunks():
    # one shape in every entry: many blocks, retried entries carried across blocks, 8 chunks
    n = 8 * nbs.CHUNK_MIN + 37
    x = nbs.beta_ab(np.full(n, 2.0), np.full(n, 3.0), _streams(15))
    assert np.all((x > 0) & (x < 1))
    assert stats.kstest(x, stats.beta(2.0, 3.0).cdf).pvalue > 1e-3
    for t in range(8):  # each chunk is a Beta(2, 3) sample on its own
        part = x[n * t // 8:n * (t + 1) // 8]
        assert stats.kstest(part, stats.beta(2.0, 3.0).cdf).pvalue > 1e-4


shapes = st.floats(1e-3, 1e4)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 40).flatmap(lambda n: st.tuples(hnp.arrays(np.float64, n, elements=shapes),
                                                      hnp.arrays(np.float64, n, elements=shapes))),
       st.sampled_from([np.float32, np.float64]))
def test_beta_ab_property(ab, dtype):
    a, b = (x.astype(dtype) for x in ab)
    a_before, b_before = a.copy(), b.copy()
    for x in (nbs.beta_ab(a, b, _streams()), ref.beta_ab(a, b, np.random.default_rng(0))):
        assert x.shape == a.shape and x.dtype == dtype
        assert np.all(np.isfinite(x)) and np.all((x >= 0) & (x <= 1))
    np.testing.assert_array_equal(a, a_before)
    np.testing.assert_array_equal(b, b_before)


@pytest.mark.parametrize("a,b", [(2.0, 2.0), (1e-3, 1e-3), (1e4, 0.5)])
def test_beta_ab_length_one(a, b):
    x = nbs.beta_ab(np.array([a]), np.array([b]), _streams())
    assert x.shape == (1,) and 0.0 <= x[0] <= 1.0


def test_beta_ab_shapes_no_try_accepts_give_nan_or_the_limit():
    a = np.array([np.nan, 2.0, np.inf, 1e200, 0.5])
    b = np.array([2.0, np.nan, 3.0, 1e200, np.nan])
    x = nbs.beta_ab(a, b, _streams())  # returns (no endless rejection loop)
    assert np.isnan(x[[0, 1, 2, 4]]).all()
    assert x[3] == 0.5  # Beta(s, s) tends to the point 1/2


def test_vector_log_and_exp_match_libm():
    rng = np.random.default_rng(0)
    x = np.concatenate([np.exp(rng.uniform(-120.0, 120.0, 4096)), rng.uniform(0.5, 2.0, 4096),
                        [np.finfo(float).tiny, np.finfo(float).max, 1.0, np.sqrt(2.0)]])
    got = np.empty_like(x)
    nbs._log_block(x.copy(), got, x.size)
    want = np.log(x)
    assert np.all(np.abs(got - want) <= 2 * np.spacing(np.abs(want)) + 1e-300)
    y = np.concatenate([rng.uniform(-700.0, 700.0, 4096), rng.uniform(-1.0, 1.0, 4096), [0.0, -699.9, 699.9]])
    got = np.empty_like(y)
    nbs._exp_block(y, got, np.empty(y.size, np.int64), y.size)
    np.testing.assert_allclose(got, np.exp(y), rtol=4e-16, atol=0)
