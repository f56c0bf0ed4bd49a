"""GaussianRBM with standard deviations other than 1 and weights of realistic size, against
an independent brute force on a tiny machine (2 visible, 3 hidden): hidden states enumerated,
each visible unit integrated by quadrature from the energy as its docstring writes it.

The reference never uses the model's own algebra (no completed square): it evaluates
``E(v, h) = sum_i (v_i - b_i)^2 / (2 s_i^2) - c.h - sum_ij (v_i / s_i) W_ij h_j`` and sums
or integrates ``exp(-E)``.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy import integrate

from fastseq.boltzmann import GaussianRBM
from fastseq.boltzmann.likelihood import average_log_likelihood, exact_log_partition

D, H = 2, 3
W0 = np.array([[1.5, -0.8, 2.0], [-1.2, 0.6, -1.7]])  # |W| 0.6 - 2
B0, C0 = np.array([0.4, -0.7]), np.array([-0.5, 0.3, 0.8])
HIDDEN = np.array(list(itertools.product([0.0, 1.0], repeat=H)))  # all 2^H hidden states
ROWS = np.random.default_rng(0).normal(scale=1.5, size=(40, D))


def _machine(sigma) -> GaussianRBM:
    """A float64 machine with the weights above; ``sigma`` a number (fixed) or one per unit (learned)."""
    per_unit = np.ndim(sigma) > 0
    m = GaussianRBM(n_components=H, sigma=1.0 if per_unit else sigma, learn_sigma=per_unit, n_iter=1,
                    dtype="float64", random_state=0).fit(ROWS)
    with torch.no_grad():
        p = m.params_
        p["W"].copy_(torch.from_numpy(W0))
        p["b"].copy_(torch.from_numpy(B0))
        p["c"].copy_(torch.from_numpy(C0))
        p["log_sigma"].copy_(torch.log(torch.tensor(_sigmas(sigma))))
    return m


def _energy(v, h, w, b, c, s):
    """E(v, h) for rows v (N x D) and hidden states h (M x H): N x M."""
    quad = (((v - b) / s) ** 2).sum(1) / 2
    return quad[:, None] - (h @ c)[None, :] - ((v / s) @ w) @ h.T


def _sigmas(sigma):
    return np.broadcast_to(np.asarray(sigma, dtype=np.float64), (D,))


def _unit_integral(i, h, s, power=0):
    """``int v^power exp(-(terms of E with v_i)) dv_i`` by adaptive quadrature over a range
    that holds the whole bump (its centre found numerically, not from the model's formula)."""
    a = W0[i] @ h

    def f(x, power):
        return x ** power * math.exp(-((x - B0[i]) / s[i]) ** 2 / 2 + x / s[i] * a)

    grid = np.linspace(-60, 60, 120_001)
    centre = grid[np.argmax(-((grid - B0[i]) / s[i]) ** 2 / 2 + grid / s[i] * a)]
    lo, hi = centre - 12 * s[i], centre + 12 * s[i]
    mass = integrate.quad(f, lo, hi, args=(0,), epsabs=0, epsrel=1e-11, limit=200)[0]
    if power == 0:
        return mass
    # v changes sign inside the bump: an absolute tolerance relative to the mass
    return integrate.quad(f, lo, hi, args=(power,), epsabs=1e-11 * mass, epsrel=1e-11, limit=200)[0]


def _brute_log_z(sigma) -> float:
    s = _sigmas(sigma)
    terms = [C0 @ h + sum(math.log(_unit_integral(i, h, s)) for i in range(D)) for h in HIDDEN]
    return float(np.logaddexp.reduce(terms))


SIGMAS = [0.5, 2.0, (0.5, 2.0)]


@pytest.mark.parametrize("sigma", SIGMAS)
def test_free_energy_and_hidden_means_equal_the_enumeration(sigma):
    m, s = _machine(sigma), _sigmas(sigma)
    neg_e = -_energy(ROWS, HIDDEN, W0, B0, C0, s)
    np.testing.assert_allclose(m.free_energy(ROWS), -np.logaddexp.reduce(neg_e, axis=1), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(m.score_samples(ROWS), np.logaddexp.reduce(neg_e, axis=1), rtol=1e-12, atol=1e-12)
    post = np.exp(neg_e - np.logaddexp.reduce(neg_e, axis=1, keepdims=True))  # p(h | v) over the 2^H states
    np.testing.assert_allclose(m.hidden_mean(ROWS), post @ HIDDEN, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("sigma", SIGMAS)
def test_visible_means_equal_the_integrated_conditional(sigma):
    m, s = _machine(sigma), _sigmas(sigma)
    hs = np.vstack([HIDDEN, [[0.25, 0.5, 0.9]]])  # states and a mean-field vector
    want = np.array([[_unit_integral(i, h, s, 1) / _unit_integral(i, h, s) for i in range(D)] for h in hs])
    np.testing.assert_allclose(m.visible_mean(hs), want, rtol=1e-9, atol=1e-9)
    # and their spread: sample_visible draws N(mean, s^2) per unit
    draws = m.sample_visible(np.repeat(hs[-1:], 20000, axis=0))
    np.testing.assert_allclose(draws.std(0), s, rtol=0.03)


@pytest.mark.parametrize("sigma", SIGMAS)
def test_exact_log_partition_equals_the_integral(sigma):
    m = _machine(sigma)
    brute = _brute_log_z(sigma)
    assert exact_log_partition(m) == pytest.approx(brute, rel=1e-10, abs=1e-10)
    assert average_log_likelihood(m, ROWS, brute) == pytest.approx(
        float(np.mean(-m.free_energy(ROWS))) - brute, rel=1e-12)


def test_the_sigma_matters():
    """A standard deviation misplaced in the energy would go unseen with s = 1: here it moves
    log Z far more than the tolerances above."""
    logs = [exact_log_partition(_machine(s)) for s in [1.0, *SIGMAS]]
    assert min(abs(a - b) for a, b in itertools.combinations(logs, 2)) > 0.1


def _log_likelihood(m, params: dict[str, torch.Tensor]) -> float:
    """Mean exact log-likelihood of ROWS at ``params`` (through the public functions)."""
    saved = {k: v.detach().clone() for k, v in m.params_.items()}
    with torch.no_grad():
        for k, v in params.items():
            m.params_[k].copy_(v)
    try:
        return average_log_likelihood(m, ROWS, exact_log_partition(m))
    finally:
        with torch.no_grad():
            for k, v in saved.items():
                m.params_[k].copy_(v)


def _model_weights(m, n=801):
    """Quadrature nodes over the plane and their weights p(v) dv, from the brute-force log Z."""
    s = _sigmas(np.exp(m.params_["log_sigma"].detach().numpy()))
    axes = [np.linspace(-14 * s[i] - 8, 14 * s[i] + 8, n) for i in range(D)]
    step = np.prod([a[1] - a[0] for a in axes])
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, D)
    log_p = np.logaddexp.reduce(-_energy(grid, HIDDEN, W0, B0, C0, s), axis=1) - _brute_log_z(s)
    return grid, np.exp(log_p) * step


@pytest.mark.parametrize("sigma", SIGMAS)
def test_the_training_gradient_with_exact_phases_is_the_log_likelihood_gradient(sigma):
    """The CD/PCD step minimises ``mean F(data) - mean F(negatives)``; with the negative phase
    the exact model average (quadrature weights in place of samples), its gradient is minus
    the exact log-likelihood's, checked against central finite differences of
    ``average_log_likelihood(exact_log_partition)``."""
    m = _machine(sigma)
    grid, weight = _model_weights(m)
    assert weight.sum() == pytest.approx(1.0, abs=1e-9)  # the quadrature holds all the mass
    learned = [k for k, v in m.params_.items() if v.requires_grad]
    assert ("log_sigma" in learned) == (np.ndim(sigma) > 0)
    for p in m.params_.values():
        p.grad = None
    f_pos = m._free_energy_pre(torch.from_numpy(ROWS))[0]
    f_neg = m._free_energy_pre(torch.from_numpy(grid))[0]
    (f_pos.mean() - (f_neg * torch.from_numpy(weight)).sum()).backward()
    base = {k: v.detach().clone() for k, v in m.params_.items()}
    eps = 1e-5
    for name in learned:
        numeric = np.zeros(base[name].numel())
        for j in range(numeric.size):
            up, down = base[name].clone(), base[name].clone()
            up.view(-1)[j] += eps
            down.view(-1)[j] -= eps
            numeric[j] = (_log_likelihood(m, {name: up}) - _log_likelihood(m, {name: down})) / (2 * eps)
        grad = -m.params_[name].grad.numpy().ravel()
        np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-6, err_msg=name)
        assert np.abs(numeric).max() > 1e-3, name  # a gradient that could be wrong
