"""The fused CD epoch (Numba) against the autograd loop it replaces and against its NumPy twin.

Exact comparison needs the same draws; with visible and hidden biases of +-50 every unit's
probability is within 1e-21 of 0 or 1, so the draws are certain while the gradients
(data minus model statistics) are not zero.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fastseq.boltzmann import RBM, RRBM
from fastseq.boltzmann import _cd_nb, _cd_py
from fastseq.boltzmann import _sampling_nb as nbs

D, H = 6, 4


def _certain_params(seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(scale=0.3, size=(D, H)), 50.0 * rng.choice([-1.0, 1.0], D),
            50.0 * rng.choice([-1.0, 1.0], H))


def _data(n=40):
    return (np.random.default_rng(1).random((n, D)) < 0.5).astype(np.float64)


@pytest.mark.parametrize("persistent,k,momentum,weight_decay", [(True, 1, 0.0, 0.0), (True, 2, 0.5, 0.01),
                                                               (False, 1, 0.9, 0.0), (False, 3, 0.0, 0.1)])
def test_fused_updates_equal_the_autograd_loop(monkeypatch, persistent, k, momentum, weight_decay):
    X = _data()
    w, b, c = _certain_params()
    models = []
    for fused in (True, False):
        monkeypatch.setattr(RBM, "_fused", lambda self, f=fused: f)
        m = RBM(n_components=H, n_iter=0, batch_size=8, k=k, momentum=momentum, weight_decay=weight_decay,
                persistent=persistent, dtype="float64", random_state=0).fit(X)
        with torch.no_grad():
            for name, value in (("W", w), ("b", b), ("c", c)):
                m.params_[name].copy_(torch.from_numpy(value))
        for s in range(0, 40, 8):
            m.partial_fit(X[s:s + 8])
        models.append(m)
    fused, plain = models
    for name in ("W", "b", "c"):
        np.testing.assert_allclose(fused.params_[name].detach().numpy(), plain.params_[name].detach().numpy(),
                                   rtol=1e-12, atol=1e-12)
    assert not np.allclose(fused.params_["W"].detach().numpy(), w)  # the updates did something
    np.testing.assert_array_equal(fused.h_samples_, plain.h_samples_)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fused_epoch_equals_its_twin(dtype):
    X = _data(37).astype(dtype)
    order = np.random.default_rng(2).permutation(37)
    outs = []
    for kernel, rng in ((_cd_nb.cd_epoch, nbs.make_streams(0)), (_cd_py.cd_epoch, np.random.default_rng(0))):
        w, b, c = (a.astype(dtype) for a in _certain_params())
        bufs = [np.zeros_like(w), np.zeros_like(b), np.zeros_like(c)]
        chain = np.zeros((5, H), dtype)
        kernel(X, order, 8, w, b, c, *bufs, chain, 2, True, 0.1, 0.5, 0.01, nbs.BERNOULLI, nbs.BERNOULLI,
               np.ones(D, dtype), np.ones(H, dtype), rng)
        outs.append((w, b, c, chain))
    tol = 1e-12 if dtype == np.float64 else 1e-5
    for a, t in zip(*outs):
        np.testing.assert_allclose(a, t, rtol=tol, atol=tol)


def test_fused_training_learns_in_distribution():
    # random draws now: the fused path and the autograd loop reach the same reconstruction quality
    rng = np.random.default_rng(0)
    X = (rng.random((400, 12)) < np.linspace(0.1, 0.9, 12)).astype(np.float32)
    X[:200, :6] = 1.0
    errors = {}
    for fused in (True, False):
        cls = type(f"Probe{fused}", (RBM,), {"_fused": lambda self, f=fused: f})
        m = cls(n_components=8, n_iter=20, batch_size=20, learning_rate=0.1, random_state=0).fit(X)
        errors[fused] = m.reconstruction_error(X)
    before = RBM(n_components=8, n_iter=0, random_state=0).fit(X).reconstruction_error(X)
    assert errors[True] < 0.8 * before and errors[False] < 0.8 * before
    assert abs(errors[True] - errors[False]) < 0.25 * errors[False]
    del RBM._registry["ProbeTrue"], RBM._registry["ProbeFalse"]


def test_rrbm_fused_path_keeps_samples_in_the_unit_interval():
    X = np.random.default_rng(0).random((60, 5))
    m = RRBM(n_components=3, n_iter=3, random_state=0).fit(X)
    assert np.all(np.isfinite(m.components_))
    s = m.sample(4, n_steps=5, return_means=False)
    assert np.all((s >= 0) & (s <= 1))


@pytest.mark.parametrize("kernel,make_rng", [(_cd_nb.cd_epoch, nbs.make_streams), (_cd_py.cd_epoch, np.random.default_rng)])
def test_persistent_chain_advances_with_the_parameters_before_the_update(kernel, make_rng):
    # one visible and one hidden unit, every draw certain: data v = 1 gives E[h|v] = 1, the chain
    # (h = 0) gives v = 0 and E[h|v] = 0, so the hidden bias gradient is -1 and lr = 100 moves c
    # from -50 to +50. Drawn with the old c the chain stays at h = 0; with the new c it would be 1.
    w, b, c = np.array([[100.0]]), np.array([-50.0]), np.array([-50.0])
    bufs = [np.zeros_like(w), np.zeros_like(b), np.zeros_like(c)]
    chain = np.zeros((1, 1))
    kernel(np.ones((1, 1)), np.zeros(1, np.int64), 1, w, b, c, *bufs, chain, 1, True, 100.0, 0.0, 0.0,
           nbs.BERNOULLI, nbs.BERNOULLI, np.ones(1), np.ones(1), make_rng(0))
    np.testing.assert_allclose(c, [50.0])  # the update happened as computed above
    np.testing.assert_array_equal(chain, [[0.0]])


@pytest.mark.parametrize("kernel,make_rng", [(_cd_nb.cd_epoch, nbs.make_streams), (_cd_py.cd_epoch, np.random.default_rng)])
@pytest.mark.parametrize("k", [1, 2])
def test_cd_k_runs_exactly_k_gibbs_steps(kernel, make_rng, k):
    # every draw certain: from the chain's h = 0 the first step gives v = 0, the hidden unit then
    # turns on (c = +50) and the second step gives v = 1. So v_neg is 0 for CD-1 and 1 for CD-2,
    # and the visible bias moves by -lr * (v_neg - v_data) with v_data = 1.
    w, b, c = np.array([[100.0]]), np.array([-50.0]), np.array([50.0])
    bufs = [np.zeros_like(w), np.zeros_like(b), np.zeros_like(c)]
    kernel(np.ones((1, 1)), np.zeros(1, np.int64), 1, w, b, c, *bufs, np.zeros((1, 1)), k, True, 0.01, 0.0, 0.0,
           nbs.BERNOULLI, nbs.BERNOULLI, np.ones(1), np.ones(1), make_rng(0))
    v_neg = {1: 0.0, 2: 1.0}[k]
    np.testing.assert_allclose(b, [-50.0 - 0.01 * (v_neg - 1.0)], rtol=0, atol=1e-12)


@pytest.mark.parametrize("persistent", [True, False])
@pytest.mark.parametrize("vis_kind, hid_kind", [(nbs.BETA, nbs.BERNOULLI), (nbs.BERNOULLI, nbs.BETA),
                                                (nbs.BETA, nbs.BETA)])
def test_fused_epoch_equals_its_twin_with_beta_units(persistent, vis_kind, hid_kind):
    """Beta units with a spread of 1e-7 give draws within about 1e-7 of their means, so the twin
    and the kernel agree to 1e-5 although their random streams differ; Bernoulli units keep
    biases of +-50 (certain draws). Beta means sit away from 0 and 1 (biases of order 1)."""
    X = np.random.default_rng(1).uniform(0.1, 0.9, (37, D))
    order = np.random.default_rng(2).permutation(37)
    outs = []
    for kernel, rng in ((_cd_nb.cd_epoch, nbs.make_streams(0)), (_cd_py.cd_epoch, np.random.default_rng(0))):
        w, b, c = _certain_params()
        if vis_kind == nbs.BETA:
            b = b / 50.0 * np.linspace(0.2, 1.0, D)
        if hid_kind == nbs.BETA:
            c = c / 50.0 * np.linspace(0.2, 1.0, H)
        bufs = [np.zeros_like(w), np.zeros_like(b), np.zeros_like(c)]
        chain = np.full((5, H), 0.5)
        kernel(X, order, 8, w, b, c, *bufs, chain, 2, persistent, 0.1, 0.5, 0.01, vis_kind, hid_kind,
               np.full(D, 1e-7), np.full(H, 1e-7), rng)
        outs.append((w, b, c, chain))
    for a, t, name in zip(*outs, ("w", "b", "c", "chain")):
        np.testing.assert_allclose(a, t, rtol=1e-5, atol=1e-5, err_msg=name)
    w0, b0, c0 = _certain_params()
    assert not np.allclose(outs[0][0], w0)  # the updates did something
    if persistent and hid_kind == nbs.BETA:  # hidden draws near their means, not bits
        assert np.all((outs[0][3] > 0.01) & (outs[0][3] < 0.99))


@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("n_chain_rows", [1, 12])
def test_cd_negatives_are_the_batchs_rows_whatever_the_chain_count(k, n_chain_rows):
    """Plain CD (not persistent) starts one negative chain per row of the batch, however many
    persistent chains the machine holds (``n_chains`` of 1 with batches of 8 once made the
    kernel average 1 negative row and read past its hidden state). Beta units of spread 1e-7
    draw their means, so rows differ and the kernel must match its twin to 1e-6."""
    X = np.random.default_rng(1).uniform(0.05, 0.95, (37, D))
    order = np.random.default_rng(2).permutation(37)
    outs = []
    for kernel, rng in ((_cd_nb.cd_epoch, nbs.make_streams(0)), (_cd_py.cd_epoch, np.random.default_rng(0))):
        r = np.random.default_rng(0)
        w, b, c = r.normal(scale=2.0, size=(D, H)), 0.5 * r.normal(size=D), 0.5 * r.normal(size=H)
        bufs = [np.zeros_like(w), np.zeros_like(b), np.zeros_like(c)]
        chain = np.full((n_chain_rows, H), 0.5)
        kernel(X, order, 8, w, b, c, *bufs, chain, k, False, 0.1, 0.0, 0.0, nbs.BETA, nbs.BETA,
               np.full(D, 1e-7), np.full(H, 1e-7), rng)
        outs.append((w, b, c, chain))
    for a, t, name in zip(*outs, ("w", "b", "c", "chain")):
        np.testing.assert_allclose(a, t, rtol=0, atol=1e-6, err_msg=name)
    np.testing.assert_array_equal(outs[0][3], 0.5)  # CD leaves the persistent chains alone


@pytest.mark.parametrize("persistent", [True, False])
@pytest.mark.parametrize("vis_kind, hid_kind", [(nbs.BERNOULLI, nbs.BERNOULLI), (nbs.BETA, nbs.BERNOULLI),
                                                (nbs.BERNOULLI, nbs.BETA)])
def test_twin_draws_each_layer_with_its_own_kind_and_spread(monkeypatch, persistent, vis_kind, hid_kind):
    """Uncertain units (biases 0): Bernoulli layers hold bits, Beta layers values strictly
    inside (0, 1); the Gibbs chain is handed the kinds and spreads given, and a CD chain
    starts from hidden units drawn with the hidden kind."""
    from fastseq.boltzmann import _sampling_py

    calls = []
    real = _sampling_py.gibbs_chain

    def spy(h0, w, b, c, k, rng, vis, hid, sigma_v, sigma_h):
        calls.append((np.array(h0), vis, hid, sigma_v, sigma_h))
        return real(h0, w, b, c, k, rng, vis, hid, sigma_v, sigma_h)

    monkeypatch.setattr(_sampling_py, "gibbs_chain", spy)
    rng = np.random.default_rng(0)
    w = rng.normal(scale=0.3, size=(D, H))
    b, c = np.zeros(D), np.zeros(H)
    sigma_v, sigma_h = np.full(D, 0.2), np.full(H, 0.3)
    chain = np.full((8, H), 0.5)
    X = np.random.default_rng(1).uniform(0.1, 0.9, (16, D))
    _cd_py.cd_epoch(X, np.arange(16), 8, w, b, c, np.zeros_like(w), np.zeros_like(b), np.zeros_like(c), chain, 1,
                    persistent, 0.01, 0.0, 0.0, vis_kind, hid_kind, sigma_v, sigma_h, rng)

    def holds_kind(a, kind):
        bits = np.isin(a, (0.0, 1.0))
        return bits.all() if kind == nbs.BERNOULLI else not bits.any()

    assert len(calls) == 2
    for start, vis, hid, sv, sh in calls:
        assert (vis, hid) == (vis_kind, hid_kind) and sv is sigma_v and sh is sigma_h
        if not persistent:
            assert holds_kind(start, hid_kind) and len(np.unique(start)) > 1
    if persistent:
        assert holds_kind(chain, hid_kind) and len(np.unique(chain)) > 1
