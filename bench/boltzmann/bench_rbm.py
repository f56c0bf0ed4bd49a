"""pytest-benchmark timings for the Boltzmann machines (784-500, batch 100, MNIST-shaped).

Run with ``flock /tmp/fastseq-bench.lock python -m pytest bench/boltzmann/bench_rbm.py --benchmark-enable``;
with the default ``--benchmark-disable`` each runs once as a plain test.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fastseq import RBM
from fastseq.boltzmann import _sampling_nb as nbs
D, H, B = 784, 500, 100


@pytest.fixture(scope="module")
def digits():
    from fastseq.datasets import embedded_digits

    X, _ = embedded_digits(flat=True)
    return (X[:2000] / 255.0).astype(np.float32)


def test_cd1_epoch(benchmark, digits):
    def epoch():
        return RBM(n_components=H, batch_size=B, n_iter=1, learning_rate=0.05, random_state=0).fit(digits)

    model = benchmark(epoch)
    assert model.components_.shape == (H, D)


def test_sklearn_cd1_epoch(benchmark, digits):
    from sklearn.neural_network import BernoulliRBM

    X = digits.astype(np.float64)
    model = benchmark(lambda: BernoulliRBM(n_components=H, batch_size=B, n_iter=1, learning_rate=0.05,
                                           random_state=0).fit(X))
    assert model.components_.shape == (H, D)


@pytest.fixture(scope="module")
def small_digits():
    from sklearn.datasets import load_digits

    return load_digits().data / 16.0


def test_small_fit(benchmark, small_digits):
    model = benchmark(lambda: RBM(n_components=16, random_state=0).fit(small_digits))
    assert model.components_.shape == (16, 64)


def test_sklearn_small_fit(benchmark, small_digits):
    from sklearn.neural_network import BernoulliRBM

    model = benchmark(lambda: BernoulliRBM(n_components=16, random_state=0).fit(small_digits))
    assert model.components_.shape == (16, 64)


@pytest.fixture(scope="module")
def shapes():
    rng = np.random.default_rng(0)
    return rng.uniform(0.5, 20.0, 500_000), rng.uniform(0.5, 20.0, 500_000)


def test_beta_draws_fastseq(benchmark, shapes):
    gens = nbs.make_streams(0)
    out = benchmark(nbs.beta_ab, *shapes, gens)
    assert np.all((out >= 0) & (out <= 1))


def test_beta_draws_numpy(benchmark, shapes):
    rng = np.random.default_rng(0)
    out = benchmark(rng.beta, *shapes)
    assert out.shape == shapes[0].shape


def test_beta_draws_torch(benchmark, shapes):
    a, b = (torch.from_numpy(s) for s in shapes)
    out = benchmark(lambda: torch.distributions.Beta(a, b).sample())
    assert out.shape == a.shape


def test_gibbs_step(benchmark, digits):
    model = RBM(n_components=H, batch_size=B, n_iter=1, random_state=0).fit(digits[:200])
    h = torch.zeros(B, H)
    v, _ = benchmark(model._chain, h, 1)
    assert v.shape == (B, D)
