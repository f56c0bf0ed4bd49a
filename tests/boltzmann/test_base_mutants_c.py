"""What the autograd training step of ``fastseq.boltzmann._base`` (``BoltzmannMachine._update``,
the loop of ``GaussianRBM``, ``BetaRBM`` and of an ``RBM`` trained with Adam; an ``RBM`` with
SGD on the CPU trains through the fused kernels instead) does, checked exactly: tempered
chains are counted from the rows of the data, a tempered machine that was saved and loaded
trains on from fresh tempered chains of its saved chain count, and one CD-1 update of a
``GaussianRBM`` from a set state equals a NumPy computation of it, starting at the persistent
chains with ``persistent=True`` and at hidden states drawn from the data without.

Every test builds its own machines (no shared fixtures).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fastseq import load
from fastseq.boltzmann import GaussianRBM, RBM

LADDER = [1.0, 0.6, 0.3]


def _gauss(n, d, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d))


def _binary(n, d, seed=0):
    return (np.random.default_rng(seed).random((n, d)) < 0.5).astype(np.float64)


# ---------------------------------------------------------------- tempered chains at fit


def test_tempered_chains_count_rows_not_features():
    # 6 rows, 3 columns, batch 10: one chain per row of a mini-batch is 6 chains (3 if the
    # columns were counted); the GaussianRBM's persistent hidden states come from rung 0
    X = _gauss(6, 3)
    g = GaussianRBM(n_components=2, n_iter=1, batch_size=10, learning_rate=0.01, tempering=LADDER,
                    random_state=0).fit(X)
    assert g._replicas.n_chains == 6 and g._replicas.v.shape == (18, 3) and g._replicas.h.shape == (18, 2)
    assert g.h_samples_.shape == (6, 2)
    r = RBM(n_components=2, n_iter=1, batch_size=10, tempering=LADDER, random_state=0).fit(_binary(6, 3))
    assert r._replicas.n_chains == 6 and r._replicas.v.shape == (18, 3)


# ---------------------------------------------------------------- a loaded tempered machine trains on


@pytest.mark.parametrize("make", [
    lambda: (GaussianRBM(n_components=4, n_chains=3, batch_size=5, n_iter=2, learning_rate=0.01,
                         tempering=LADDER, random_state=0), _gauss(10, 2)),
    lambda: (RBM(n_components=4, n_chains=3, batch_size=5, n_iter=2, optimizer="adam", learning_rate=0.01,
                 tempering=LADDER, random_state=0), _binary(10, 2)),
], ids=["GaussianRBM", "RBM-adam"])
def test_loaded_tempered_machine_trains_on_with_its_chain_count(make, tmp_path):
    m, X = make()
    m.fit(X)
    path = tmp_path / "m.safetensors"
    m.save(path)
    back = load(path)
    assert getattr(back, "_replicas", None) is None  # the file holds no chains
    before = {k: v.detach().clone() for k, v in back.params_.items()}
    back.partial_fit(X[:5])
    # fresh tempered chains: 3 (the saved chain count, not the 4 hidden units) at each of 3 rungs
    rep = back._replicas
    assert rep.n_chains == 3 and rep.v.shape == (9, 2) and rep.h.shape == (9, 4)
    assert rep.betas.tolist() == LADDER and back.tempering_.betas.tolist() == LADDER
    assert back.tempering_.n_sweeps == 1
    assert back.h_samples_.shape == (3, 4)
    for name in ("W", "b", "c"):
        after = back.params_[name].detach()
        assert torch.isfinite(after).all() and not torch.equal(after, before[name])
    # seeded: a second load trains on to the same parameters
    again = load(path).partial_fit(X[:5])
    for name, p in back.params_.items():
        assert torch.equal(p.detach(), again.params_[name].detach())


def test_loaded_gaussian_trains_on_as_the_saved_machine_from_fresh_chains(tmp_path):
    # a loaded machine is the saved one with re-seeded streams and fresh tempered chains:
    # the saved machine reset so trains on to the same parameters, bit for bit
    X = _gauss(10, 2)
    m = GaussianRBM(n_components=4, n_chains=3, batch_size=5, n_iter=2, learning_rate=0.01, tempering=LADDER,
                    random_state=0, dtype="float64").fit(X)
    m.save(tmp_path / "m.safetensors")
    back = load(tmp_path / "m.safetensors")
    back.partial_fit(X[5:])
    m._setup_random()
    m._replicas = None
    m.partial_fit(X[5:])
    for name, p in m.params_.items():
        assert torch.equal(p.detach(), back.params_[name].detach()), name
    assert torch.equal(m._replicas.v, back._replicas.v)


# ---------------------------------------------------------------- one CD-1 update against NumPy

D, H, N, CHAINS, RATE = 2, 3, 5, 4, 0.1
# hidden biases of +-30 with small weights: every hidden draw from the data is certain, [1, 0, 1]
W0 = np.array([[0.3, -0.2, 0.1], [-0.1, 0.25, 0.2]])
B0 = np.array([0.2, -0.4])
C0 = np.array([30.0, -30.0, 30.0])
# persistent hidden states unlike the data's draws, and fewer of them than rows of the batch
CHAIN = np.array([[0.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.0, 1.0, 1.0]])


def _set_machine(persistent):
    X = np.clip(_gauss(N, D, seed=3), -1.5, 1.5)
    m = GaussianRBM(n_components=H, n_iter=0, batch_size=N, n_chains=CHAINS, persistent=persistent,
                    learning_rate=RATE, dtype="float64", random_state=0).fit(X)
    with torch.no_grad():
        for name, value in (("W", W0), ("b", B0), ("c", C0)):
            m.params_[name].copy_(torch.from_numpy(value))
    m._h_chain = torch.from_numpy(CHAIN.copy())
    gen = torch.Generator()
    gen.set_state(m._tgen.get_state())  # the visible noise the update will draw
    return m, X, gen


def _expected_step(X, h_start, gen):
    """W, b, c after one SGD step of CD-1 (sigma 1) whose chain starts at hidden states h_start."""
    sig = lambda z: 1.0 / (1.0 + np.exp(-z))
    noise = torch.randn(h_start.shape[0], D, generator=gen, dtype=torch.float64).numpy()
    vn = B0 + h_start @ W0.T + noise
    p0, pn = sig(X @ W0 + C0), sig(vn @ W0 + C0)
    gW = -X.T @ p0 / len(X) + vn.T @ pn / len(vn)
    gb = vn.mean(0) - X.mean(0)
    gc = pn.mean(0) - p0.mean(0)
    return W0 - RATE * gW, B0 - RATE * gb, C0 - RATE * gc


def _assert_params(m, expected):
    for name, value in zip(("W", "b", "c"), expected):
        np.testing.assert_allclose(m.params_[name].detach().numpy(), value, rtol=1e-12, atol=1e-12, err_msg=name)


def test_persistent_cd_step_starts_at_the_persistent_chains():
    m, X, gen = _set_machine(persistent=True)
    m.partial_fit(X)
    _assert_params(m, _expected_step(X, CHAIN, gen))
    assert m.h_samples_.shape == (CHAINS, H)  # the chains were advanced, still 4 of them


def test_plain_cd_step_starts_at_hidden_states_drawn_from_the_batch():
    m, X, gen = _set_machine(persistent=False)
    m.partial_fit(X)
    _assert_params(m, _expected_step(X, np.tile([1.0, 0.0, 1.0], (N, 1)), gen))
    np.testing.assert_array_equal(m.h_samples_, CHAIN)  # without persistence the chains are left alone
