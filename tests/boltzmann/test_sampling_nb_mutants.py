"""The Python side of the Numba sampling kernels (fastseq/boltzmann/_sampling_nb.py): which
path draws (serial chunks or the parallel driver), the chunk bounds, the sigma rows, the
dtypes and layouts handed to the kernels, ``out=`` and the early returns of ``gibbs_chain``."""
from __future__ import annotations

import numpy as np
import pytest

from fastseq.boltzmann import _sampling_nb as nbs


class _Recorder:
    """A leaf and a driver that record how ``_run`` called them."""

    def __init__(self) -> None:
        self.leaf_calls: list[tuple] = []
        self.driver_calls = 0

    def leaf(self, g, *args):
        self.leaf_calls.append(args[-2:])

    def driver(self, gens, *arrays):
        self.driver_calls += 1


@pytest.mark.parametrize("beta, threshold", [(True, nbs.PARALLEL_MIN_BETA), (False, nbs.PARALLEL_MIN)])
def test_run_goes_parallel_from_its_threshold_on(beta, threshold):
    gens = nbs.make_streams(0)
    for n, parallel in ((threshold - 1, False), (threshold, True)):
        rec = _Recorder()
        nbs._run(rec.leaf, rec.driver, gens, np.empty(n, np.float32), beta=beta)
        assert rec.driver_calls == int(parallel) and (len(rec.leaf_calls) == 0) == parallel


def test_run_treats_draws_as_beta_draws_unless_told():
    rec = _Recorder()
    nbs._run(rec.leaf, rec.driver, nbs.make_streams(0), np.empty(nbs.PARALLEL_MIN_BETA, np.float32))
    assert rec.driver_calls == 1


def test_run_cuts_the_serial_draws_into_contiguous_integer_chunks():
    n = 3 * nbs.CHUNK_MIN + 1000  # 3 chunks of unequal integer bounds
    rec = _Recorder()
    nbs._run(rec.leaf, rec.driver, nbs.make_streams(0), np.empty(n, np.float32))
    assert rec.leaf_calls == [(0, n // 3), (n // 3, 2 * n // 3), (2 * n // 3, n)]
    assert all(type(lo) is int and type(hi) is int for lo, hi in rec.leaf_calls)


def test_a_bernoulli_draw_below_its_own_threshold_stays_serial(monkeypatch):
    def refuse(*a):
        raise AssertionError("parallel driver used")

    monkeypatch.setattr(nbs, "_bernoulli_driver", refuse)
    out = nbs.bernoulli_logits(np.zeros(nbs.PARALLEL_MIN_BETA), nbs.make_streams(0))
    assert set(np.unique(out)) == {0.0, 1.0}


def test_sigma_row_of_no_columns_is_a_single_one_in_the_dtype():
    row = nbs._sigma_row(0.3, 0, np.float32)
    assert row.tolist() == [1.0] and row.dtype == np.float32
    np.testing.assert_array_equal(nbs._sigma_row([0.1, 0.2], 2, np.float64), [0.1, 0.2])


@pytest.mark.parametrize("draw", ["bernoulli", "sigmoid_beta"])
def test_draws_fill_and_return_the_out_array_given(draw):
    x = np.linspace(-3, 3, 12).reshape(3, 4)
    out = np.full_like(x, -7.0)
    if draw == "bernoulli":
        got = nbs.bernoulli_logits(x, nbs.make_streams(0), out=out)
    else:
        got = nbs.sigmoid_beta(x, 0.1, nbs.make_streams(0), out=out)
    assert got is out and not np.any(out == -7.0)


def test_two_dimensional_draws_keep_their_shape_and_match_the_flat_draws():
    x = np.linspace(-3, 3, 24).reshape(4, 6)
    for fn in (lambda a, g: nbs.bernoulli_logits(a, g), lambda a, g: nbs.sigmoid_beta(a, 0.2, g),
               lambda a, g: nbs.beta_mean_sigma(1 / (1 + np.exp(-a)), 0.2, g)):
        two, flat = fn(x, nbs.make_streams(1)), fn(x.reshape(-1), nbs.make_streams(1))
        assert two.shape == (4, 6)
        np.testing.assert_array_equal(two.reshape(-1), flat)


def test_sigma_per_column_of_a_one_dimensional_input():
    x = np.zeros(3)
    draws = nbs.sigmoid_beta(x, np.array([1e-6, 1e-6, 1e-6]), nbs.make_streams(0))
    np.testing.assert_allclose(draws, 0.5, atol=1e-4)


def test_beta_ab_reads_beta_in_alpha_dtype():
    a = np.full(64, 2.5, np.float32)
    b = np.linspace(0.5, 5.0, 64) + 1e-9  # float64, not exactly float32 values
    got = nbs.beta_ab(a, b, nbs.make_streams(3))
    want = nbs.beta_ab(a, b.astype(np.float32), nbs.make_streams(3))
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)


def test_make_streams_gives_eight_by_default():
    gens = nbs.make_streams(5)
    assert len(gens) == 8
    x = np.zeros(8 * nbs.CHUNK_MIN)
    np.testing.assert_array_equal(nbs.bernoulli_logits(x, gens), nbs.bernoulli_logits(x, nbs.make_streams(5, 8)))


def _certain(d: int, h: int, seed: int = 0):
    g = np.random.default_rng(seed)
    return g.normal(scale=0.3, size=(d, h)), 50.0 * g.choice([-1.0, 1.0], d), 50.0 * g.choice([-1.0, 1.0], h)


def test_gibbs_chain_sigmas_default_to_one():
    w, b, c = _certain(5, 3)
    b, c = b / 50.0, c / 50.0
    h0 = np.full((4, 3), 0.5)
    for kinds in ((nbs.BETA, nbs.BERNOULLI), (nbs.BERNOULLI, nbs.BETA)):
        v1, h1 = nbs.gibbs_chain(h0, w, b, c, 3, nbs.make_streams(2), *kinds)
        v2, h2 = nbs.gibbs_chain(h0, w, b, c, 3, nbs.make_streams(2), *kinds, 1.0, 1.0)
        np.testing.assert_array_equal(v1, v2)
        np.testing.assert_array_equal(h1, h2)


def test_gibbs_chain_returns_a_c_ordered_copy_in_the_weights_dtype():
    w, b, c = _certain(5, 3)
    h0 = np.asfortranarray(np.zeros((4, 3), np.float32))
    v, h = nbs.gibbs_chain(h0, w, b, c, 0, nbs.make_streams(0))
    assert h.dtype == np.float64 and h.flags.c_contiguous and v.shape == (4, 5) and v.dtype == np.float64


def test_gibbs_chain_runs_one_chain_and_hidden_layers_of_no_units():
    w, b, c = _certain(5, 3)
    v, _ = nbs.gibbs_chain(np.zeros((1, 3)), w, b, c, 1, nbs.make_streams(0))
    np.testing.assert_array_equal(v, [(b > 0).astype(float)])
    v0, _ = nbs.gibbs_chain(np.zeros((2, 0)), np.zeros((5, 0)), b, np.zeros(0), 1, nbs.make_streams(0))
    np.testing.assert_array_equal(v0, np.tile((b > 0).astype(float), (2, 1)))


def test_gibbs_chain_sigma_rows_follow_their_layers():
    w, b, c = _certain(5, 3)
    b, c = b / 50.0, c / 50.0
    v, h = nbs.gibbs_chain(np.full((2, 3), 0.5), w, b, c, 2, nbs.make_streams(0), nbs.BETA, nbs.BETA,
                           np.full(5, 1e-7), np.full(3, 1e-7))
    assert v.shape == (2, 5) and h.shape == (2, 3)
    np.testing.assert_allclose(h, 1 / (1 + np.exp(-(nbs.gibbs_chain(np.full((2, 3), 0.5), w, b, c, 1,
                               nbs.make_streams(0), nbs.BETA, nbs.BETA, np.full(5, 1e-7), np.full(3, 1e-7))[0]
                               @ w + c))), atol=1e-4)


def test_two_dimensional_beta_ab_keeps_its_shape_and_matches_the_flat_draws():
    a = np.linspace(0.5, 4.0, 24).reshape(4, 6)
    b = a[::-1].copy()
    two, flat = nbs.beta_ab(a, b, nbs.make_streams(2)), nbs.beta_ab(a.reshape(-1), b.reshape(-1), nbs.make_streams(2))
    assert two.shape == (4, 6)
    np.testing.assert_array_equal(two.reshape(-1), flat)


@pytest.mark.parametrize("draw", [lambda m, s, g: nbs.beta_mean_sigma(m, s, g),
                                  lambda m, s, g: nbs.sigmoid_beta(m - np.float32(0.5), s, g)],
                         ids=["beta_mean_sigma", "sigmoid_beta"])
def test_a_python_float_sigma_is_taken_in_the_input_dtype(draw):
    """sigma = 0.1 with float32 means draws as sigma = float32(0.1) does: the spread is
    rounded to the input's dtype, as the machine's own parameters are."""
    mean = np.linspace(0.2, 0.8, 40, dtype=np.float32)
    got = draw(mean, 0.1, nbs.make_streams(4))
    want = draw(mean, np.float32(0.1), nbs.make_streams(4))
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)


def test_gibbs_chain_takes_biases_and_sigmas_in_the_weights_dtype():
    """float32 weights with float64 biases and Python-float sigmas draw exactly as with all of
    them rounded to float32 first (Beta units: every draw moves with its mean and spread)."""
    rng = np.random.default_rng(0)
    w = rng.normal(scale=0.5, size=(5, 3)).astype(np.float32)
    b, c = rng.normal(size=5) + 1e-9, rng.normal(size=3) + 1e-9  # not float32 values
    h0 = np.full((4, 3), 0.5, np.float32)
    kw = dict(vis_kind=nbs.BETA, hid_kind=nbs.BETA)
    got = nbs.gibbs_chain(h0, w, b, c, 3, nbs.make_streams(6), sigma_v=0.1, sigma_h=0.15, **kw)
    want = nbs.gibbs_chain(h0, w, b.astype(np.float32), c.astype(np.float32), 3, nbs.make_streams(6),
                           sigma_v=np.float32(0.1), sigma_h=np.float32(0.15), **kw)
    for g, t in zip(got, want):
        assert g.dtype == np.float32
        np.testing.assert_array_equal(g, t)
