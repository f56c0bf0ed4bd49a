"""AIS against the exact log partition function where annealing errors show: strongly coupled
machines (a 12 x 8 Bernoulli RBM with |W| in [1, 3], a 10 x 6 GaussianRBM with |W| in
[0.5, 1.5] and sigma 0.5 or 2), fixed seeds.

What each test would catch (measured on these machines, 5000 betas, 200 runs):

- the base model's visible term left out of the weights (``(b_k - b_{k-1}) (b - b0).v``, nonzero
  when ``data`` sets base rates other than the visible biases): log Z off by about -11.6;
- the base model's log Z without the hidden units' ``H log 2``: off by -5.5; a GaussianRBM's
  without ``log s``: off by ``D log s`` (-6.9 for s = 0.5);
- weights a temperature late (each step's weight from the pair before, so the last step's is
  lost): off by -3.2 on a schedule that jumps from 0.9 to 1, where a correct AIS stays within
  about 0.01 (importance weights are exact for any schedule; only their spread grows).

A transition at the previous temperature instead of the current one is not caught: it is
still a valid annealing sequence and moved the estimate by less than its standard error.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fastseq.boltzmann import RBM, GaussianRBM
from fastseq.boltzmann.likelihood import ais_log_partition, exact_log_partition

SEEDS = (0, 1, 2)


def _set(m, **params) -> None:
    with torch.no_grad():
        for name, value in params.items():
            m.params_[name].copy_(torch.from_numpy(value))


@pytest.fixture(scope="module")
def strong_rbm():
    """12 visible, 8 hidden, |W| in [1, 3] with random signs; biases that keep every unit
    undecided on average (so the modes are many); data with base rates far from the biases."""
    rng = np.random.default_rng(1)
    d, h = 12, 8
    data = (rng.random((100, d)) < 0.3).astype(float)
    m = RBM(n_components=h, n_iter=1, dtype="float64", random_state=0).fit(data)
    w = rng.uniform(1, 3, (d, h)) * rng.choice([-1, 1], (d, h))
    _set(m, W=w, b=rng.normal(0, 1, d) - w.sum(1) / 2, c=rng.normal(0, 1, h) - w.sum(0) / 2)
    return m, data


@pytest.fixture(scope="module", params=[0.5, 2.0])
def strong_gaussian(request):
    rng = np.random.default_rng(2)
    d, h = 10, 6
    m = GaussianRBM(n_components=h, sigma=request.param, n_iter=1, dtype="float64",
                    random_state=0).fit(rng.normal(size=(50, d)))
    w = rng.uniform(0.5, 1.5, (d, h)) * rng.choice([-1, 1], (d, h))
    _set(m, W=w, b=rng.normal(0, 1, d), c=rng.normal(0, 1, h) - (w ** 2).sum(0) / 2)
    assert np.allclose(np.exp(m.params_["log_sigma"].detach().numpy()), request.param)
    return m


def _errors(m, data, seeds=SEEDS, **kw) -> list[tuple[float, float]]:
    """(estimate - exact, reported standard error) for each seed."""
    exact = exact_log_partition(m)
    out = []
    for seed in seeds:
        r = ais_log_partition(m, data, n_runs=200, random_state=seed, **kw)
        assert r.log_z_low <= r.log_z <= r.log_z_high and r.log_weights.shape == (200,)
        out.append((r.log_z - exact, r.log_z_std))
    return out


def _within(errors, k=4.0, slack=0.02) -> None:
    """Each error within k reported standard errors (plus a little: the delta-method error of
    200 heavy-tailed weights is itself an estimate)."""
    for err, se in errors:
        assert 0 < se < 0.05
        assert abs(err) <= k * se + slack, (err, se)


@pytest.fixture(scope="module")
def rbm_long(strong_rbm):
    """The RBM's errors with 5000 betas, base rates from the data."""
    m, data = strong_rbm
    return _errors(m, data, n_betas=5000)


def test_ais_agrees_with_the_exact_log_z_of_a_strongly_coupled_rbm(strong_rbm, rbm_long):
    """With data the base model's rates differ from the visible biases, so the base term of
    every weight counts; without, the base model is the visible biases alone."""
    m, data = strong_rbm
    assert exact_log_partition(m) > 30  # far from the base model's
    _within(rbm_long)
    _within(_errors(m, None, n_betas=5000))


def test_ais_with_a_final_jump_in_temperature_is_still_right(strong_rbm):
    """Catches weights taken a temperature late: they lose the whole 0.9 -> 1 step."""
    m, data = strong_rbm
    betas = np.concatenate([np.linspace(0.0, 0.9, 3000), [1.0]])
    _within(_errors(m, data, betas=betas))


def test_too_few_betas_underestimate_far_more(strong_rbm, rbm_long):
    """Ten temperatures: log mean(w) is biased low (Jensen) by far more than 5000 leave."""
    m, data = strong_rbm
    short = [e for e, _ in _errors(m, data, n_betas=10)]
    assert np.mean(short) < -0.1
    assert np.mean(np.abs(short)) > 5 * np.mean([abs(e) for e, _ in rbm_long])


def test_ais_agrees_with_the_exact_log_z_of_a_gaussian_rbm_with_sigma(strong_gaussian):
    m = strong_gaussian
    long = _errors(m, None, n_betas=5000)
    _within(long, slack=0.03)
    short = [e for e, _ in _errors(m, None, n_betas=10)]
    assert np.mean(np.abs(short)) > 10 * np.mean([abs(e) for e, _ in long])
