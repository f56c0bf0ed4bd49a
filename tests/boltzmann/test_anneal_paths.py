"""The annealing paths behind AIS, pinned where a wrong path still gives a plausible log Z:

- the Bernoulli RBM's base model takes the data's column means (kept 1e-3 off 0 and 1) as
  its rates, or the visible biases without data;
- a Beta-unit machine's path keeps its draws off 0 and 1 by a margin of its dtype, and its
  AIS agrees with the exact log Z (hidden states enumerated) on a strongly coupled machine,
  where a transition that does not leave its temperature's distribution invariant shows;
- a Gaussian machine's path draws its noise from the machine's own stream, in its dtype (so
  a seeded estimate repeats whatever the global generator did, and float64 stays float64).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fastseq.boltzmann import RBM, BetaRBM, GaussianRBM
from fastseq.boltzmann._anneal import AnnealBeta, AnnealGauss, AnnealRBM
from fastseq.boltzmann.likelihood import ais_log_partition, exact_log_partition


def _set(m, **params) -> None:
    with torch.no_grad():
        for name, value in params.items():
            m.params_[name].copy_(torch.as_tensor(value, dtype=m.params_[name].dtype))


def _softplus_inverse(x):
    return np.log(np.expm1(x))


def test_rbm_base_rates_are_the_data_column_means_kept_off_0_and_1():
    rng = np.random.default_rng(0)
    data = (rng.random((40, 5)) < [0.2, 0.5, 0.7, 0.0, 1.0]).astype(np.float64)
    m = RBM(n_components=3, n_iter=1, dtype="float64", random_state=0).fit(data)
    _set(m, b=rng.normal(size=5))
    mean = np.clip(data.mean(0), 1e-3, 1 - 1e-3)
    path = AnnealRBM(m, data)
    np.testing.assert_allclose(path.b0.numpy(), np.log(mean / (1 - mean)), rtol=1e-12)
    assert float(path.b0[3]) == pytest.approx(np.log(1e-3 / (1 - 1e-3)), rel=1e-12)
    assert float(path.b0[4]) == pytest.approx(-float(path.b0[3]), rel=1e-12)
    np.testing.assert_array_equal(AnnealRBM(m, None).b0.numpy(), m.params_["b"].detach().numpy())


@pytest.mark.parametrize("dtype, tiny", [("float64", 1e-12), ("float32", 1e-6)])
def test_beta_path_keeps_draws_off_0_and_1_by_its_dtypes_margin(dtype, tiny):
    X = np.random.default_rng(0).beta(2.0, 3.0, size=(30, 3))
    m = BetaRBM(n_components=2, n_iter=1, dtype=dtype, random_state=0).fit(X)
    path = AnnealBeta(m, None)
    assert path.tiny == tiny
    kept = path._clamp(torch.tensor([0.0, 0.5, 1.0], dtype=m._tdtype))
    want = torch.tensor([tiny, 0.5, 1 - tiny], dtype=m._tdtype)
    assert torch.equal(kept, want)


@pytest.fixture(scope="module")
def strong_beta():
    """7 visible Beta units, 6 hidden, weights (softplus) 0.1-8: a hidden unit switches the
    visible shapes far apart. Each hidden bias offsets the log Beta-function change its
    unit makes (plus noise), so every unit is on about as often as off (a plain bias leaves
    the units off, and AIS is right with any path)."""
    from scipy.special import betaln

    rng = np.random.default_rng(3)
    d, h = 7, 6
    m = BetaRBM(n_components=h, n_iter=1, dtype="float64", random_state=0).fit(rng.beta(2, 3, size=(40, d)))
    wa, wb = rng.uniform(0.1, 8, (d, h)), rng.uniform(0.1, 8, (d, h))
    a, b = rng.uniform(0.5, 3, d), rng.uniform(0.5, 3, d)
    c = (betaln(a, b)[:, None] - betaln(a[:, None] + wa, b[:, None] + wb)).sum(0) + rng.normal(0, 1, h)
    _set(m, Wa_raw=_softplus_inverse(wa), Wb_raw=_softplus_inverse(wb), A_raw=_softplus_inverse(a),
         B_raw=_softplus_inverse(b), c=c)
    return m


def test_beta_ais_agrees_with_the_exact_log_z_of_a_strongly_coupled_machine(strong_beta):
    exact = exact_log_partition(strong_beta)
    errors = []
    for seed in (0, 1):
        r = ais_log_partition(strong_beta, n_betas=3000, n_runs=200, random_state=seed)
        assert 0 < r.log_z_std < 0.05
        errors.append((r.log_z - exact, r.log_z_std))
    for err, se in errors:
        assert abs(err) <= 4 * se + 0.02, errors
    # the check has power: ten temperatures leave a clear Jensen bias on this machine
    short = ais_log_partition(strong_beta, n_betas=10, n_runs=200, random_state=0)
    assert short.log_z - exact < -0.3


def _gaussian(sigma: float = 0.5):
    rng = np.random.default_rng(2)
    m = GaussianRBM(n_components=3, sigma=sigma, n_iter=1, dtype="float64", random_state=0).fit(rng.normal(size=(30, 4)))
    _set(m, W=rng.normal(size=(4, 3)), b=rng.normal(size=4))
    return m


def test_gaussian_path_starts_from_its_base_with_the_models_own_noise():
    m = _gaussian()
    path = AnnealGauss(m, None)
    twin = torch.Generator().set_state(m._tgen.get_state())
    torch.manual_seed(123)  # the global generator must play no part
    v = path.start(5)
    want = path.b + path.s * torch.randn(5, 4, generator=twin, dtype=torch.float64)
    assert v.dtype == torch.float64 and torch.equal(v, want)


def test_gaussian_path_step_adds_the_models_own_noise_to_the_conditional_mean():
    m = _gaussian()
    path = AnnealGauss(m, None)
    v = path.start(5)
    pre = torch.full((5, 3), 60.0, dtype=torch.float64)
    pre[:, 1] = -60.0  # hidden units certain: on, off, on
    h = torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64).expand(5, -1)
    beta = 0.3
    twin = torch.Generator().set_state(m._tgen.get_state())  # the hidden draw uses the Bernoulli streams
    torch.manual_seed(7)
    got = path.step(v, pre, beta)
    want = path.b + path.s * (beta * (h @ path.W.T)) + path.s * torch.randn(5, 4, generator=twin, dtype=torch.float64)
    assert got.dtype == torch.float64 and torch.equal(got, want)


def test_seeded_gaussian_ais_repeats_whatever_the_global_generator_did():
    m = _gaussian(sigma=2.0)
    torch.manual_seed(1)
    first = ais_log_partition(m, n_betas=50, n_runs=20, random_state=5)
    torch.manual_seed(2)
    torch.randn(100)
    again = ais_log_partition(m, n_betas=50, n_runs=20, random_state=5)
    np.testing.assert_array_equal(first.log_weights, again.log_weights)
