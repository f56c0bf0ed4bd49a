"""What the sigmoid and Gaussian machines of ``fastseq.boltzmann._rbm`` do, checked exactly:
their random draws against the same draws made here from a copy of the model's generator or
streams, the fused CPU epoch's bookkeeping (order, progress bar, report, tempered swaps),
the starting parameters and what a loaded machine trains.

Every test builds its own machines (no shared fixtures), so each one is credited with the
functions it calls.
"""
from __future__ import annotations

import copy

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from fastseq.boltzmann import _rbm
from fastseq.boltzmann import _sampling_nb as nbs
from fastseq.boltzmann import GaussianRBM, R3BM, RBM, RRBM
from fastseq.boltzmann._cd_nb import cd_epoch
from fastseq.boltzmann.likelihood import average_log_likelihood
from test_tempering import _certain_rbm_arrays

D, H = 6, 4


def _binary(n=25, d=D, seed=0):
    return (np.random.default_rng(seed).random((n, d)) < 0.4).astype(np.float64)


def _twin_generator(model) -> torch.Generator:
    """A generator standing where the model's torch generator stands now."""
    g = torch.Generator()
    g.set_state(model._tgen.get_state())
    return g


def _set_weights(model, scale=1.5, seed=3):
    """Weights of realistic size (|W| ~ 1), so that the hidden states matter."""
    w = torch.from_numpy(np.random.default_rng(seed).normal(scale=scale, size=tuple(model.params_["W"].shape)))
    with torch.no_grad():
        model.params_["W"].copy_(w)


# ---------------------------------------------------------------- starting parameters


def test_rbm_starts_at_the_data_log_odds_with_seeded_weights():
    X = _binary(40)
    X[:, 0], X[:, 1] = 0.0, 1.0  # clamped at 1e-3 and 1 - 1e-3
    m = RBM(n_components=H, n_iter=0, init_scale=0.3, dtype="float64", random_state=7).fit(X)
    p = np.clip(X.mean(0), 1e-3, 1 - 1e-3)
    np.testing.assert_allclose(m.intercept_visible_, np.log(p / (1 - p)), rtol=1e-12)
    np.testing.assert_array_equal(m.intercept_hidden_, np.zeros(H))
    torch_seed = np.random.SeedSequence(7).spawn(3)[0]
    g = torch.Generator()
    g.manual_seed(int(torch_seed.generate_state(1, np.uint64)[0] >> np.uint64(1)))
    w = torch.randn(D, H, generator=g, dtype=torch.float64) * 0.3
    np.testing.assert_array_equal(m.params_["W"].detach().numpy(), w.numpy())
    assert all(m.params_[k].requires_grad for k in ("W", "b", "c"))


@pytest.mark.parametrize("learn_sigma", [False, True])
def test_gaussian_starts_at_the_data_means_and_sigma(learn_sigma):
    X = np.random.default_rng(0).normal(loc=2.0, scale=1.5, size=(30, D))
    m = GaussianRBM(n_components=H, sigma=0.7, learn_sigma=learn_sigma, n_iter=0, dtype="float64",
                    random_state=1).fit(X)
    p = m.params_
    np.testing.assert_allclose(p["b"].detach().numpy(), X.mean(0), rtol=1e-12)
    np.testing.assert_allclose(p["log_sigma"].detach().numpy(), np.full(D, np.log(0.7)), rtol=1e-12)
    assert p["log_sigma"].requires_grad is learn_sigma
    assert p["c"].dtype == p["W"].dtype == torch.float64 and not p["c"].any()


# ---------------------------------------------------------------- what a loaded machine trains


@pytest.mark.parametrize("cls,kw,grads", [
    (RBM, {}, {"W": True, "b": True, "c": True}),
    (GaussianRBM, {"sigma": 0.6}, {"W": True, "b": True, "c": True, "log_sigma": False}),
    (GaussianRBM, {"learn_sigma": True}, {"W": True, "b": True, "c": True, "log_sigma": True}),
])
def test_a_loaded_machine_trains_the_same_parameters(tmp_path, cls, kw, grads):
    X = _binary(20) if cls is RBM else np.random.default_rng(0).normal(size=(20, D))
    m = cls(n_components=H, n_iter=1, random_state=0, **kw).fit(X)
    m.save(tmp_path / "m.safetensors")
    loaded = cls.load(tmp_path / "m.safetensors")
    assert {k: v.requires_grad for k, v in loaded.params_.items()} == grads
    # with Adam (the autograd loop) a parameter left out of the optimizer would not move
    loaded.set_params(optimizer="adam")
    loaded._start_training(int(loaded._h_chain.shape[0]))
    before = {k: v.detach().clone() for k, v in loaded.params_.items()}
    loaded.partial_fit(X)
    for name, trained in grads.items():
        assert (not torch.equal(before[name], loaded.params_[name].detach())) is trained, name


# ---------------------------------------------------------------- random starts and draws


def test_rbm_random_visible_are_the_generator_draws_below_one_half():
    m = RBM(n_components=H, n_iter=0, dtype="float64", random_state=0).fit(_binary())
    g = _twin_generator(m)
    v = m._random_visible(50)
    expected = (torch.rand(50, D, generator=g, dtype=torch.float64) < 0.5).to(torch.float64)
    assert v.dtype == torch.float64
    torch.testing.assert_close(v, expected, rtol=0, atol=0)
    assert 0.3 < float(v.mean()) < 0.7
    assert torch.equal(m._tgen.get_state(), g.get_state())  # the model's generator advanced alike


def test_rbm_random_visible_puts_an_exact_half_at_zero():
    # torch.rand (float32) returns multiples of 2^-24; seed 1965 gives exactly 0.5 at draw 987
    m = RBM(n_components=H, n_iter=0, random_state=0).fit(_binary(d=8))
    m._tgen.manual_seed(1965)
    g = _twin_generator(m)
    u = torch.rand(124, 8, generator=g)
    assert float(u.view(-1)[987]) == 0.5
    v = m._random_visible(124)
    assert v.dtype == torch.float32 and float(v.view(-1)[987]) == 0.0
    torch.testing.assert_close(v, (u < 0.5).float(), rtol=0, atol=0)


def test_gaussian_random_visible_are_the_generator_normals():
    m = GaussianRBM(n_components=H, sigma=0.5, n_iter=0, dtype="float64", random_state=0).fit(
        np.random.default_rng(0).normal(size=(20, D)))
    g = _twin_generator(m)
    v = m._random_visible(30)
    assert v.dtype == torch.float64
    torch.testing.assert_close(v, torch.randn(30, D, generator=g, dtype=torch.float64), rtol=0, atol=0)


def test_gaussian_sample_visible_is_mean_plus_sigma_times_noise():
    X = np.random.default_rng(0).normal(size=(20, D))
    m = GaussianRBM(n_components=H, learn_sigma=True, n_iter=0, dtype="float64", random_state=0).fit(X)
    _set_weights(m)
    sigma = np.array([0.3, 0.5, 0.8, 1.2, 2.0, 0.4])
    with torch.no_grad():
        m.params_["log_sigma"].copy_(torch.log(torch.from_numpy(sigma)))
    h = (np.random.default_rng(2).random((9, H)) < 0.5).astype(np.float64)
    g = _twin_generator(m)
    out = m.sample_visible(h)
    w, b = m.params_["W"].detach().numpy(), m.params_["b"].detach().numpy()
    noise = torch.randn(9, D, generator=g, dtype=torch.float64).numpy()
    np.testing.assert_allclose(out, b + sigma * (h @ w.T) + sigma * noise, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- the CPU Gibbs chain


@pytest.mark.parametrize("cls,kw", [(RBM, {}), (RRBM, {"sigma": 0.15}), (R3BM, {"sigma": 0.15, "sigma_hidden": 0.2})])
def test_cpu_chain_is_the_numba_chain_with_the_machine_units(cls, kw):
    X = np.clip(_binary(30), 0.05, 0.95)
    m = cls(n_components=H, n_iter=1, random_state=0, **kw).fit(X)
    _set_weights(m)
    h = torch.from_numpy((np.random.default_rng(1).random((7, H)) < 0.5).astype(np.float32))
    streams = copy.deepcopy(m._streams)
    p = {k: v.detach().numpy() for k, v in m.params_.items()}
    sv, sh = kw.get("sigma", 1.0), kw.get("sigma_hidden", 1.0)
    ev, eh = nbs.gibbs_chain(h.numpy(), p["W"], p["b"], p["c"], 3, streams, m._vis_kind, m._hid_kind, sv, sh)
    v, h_last = m._chain(h, 3)
    np.testing.assert_array_equal(v.numpy(), ev)
    np.testing.assert_array_equal(h_last.numpy(), eh)
    binary = bool(np.isin(ev, [0.0, 1.0]).all())
    assert binary is (cls is RBM)


# ---------------------------------------------------------------- the fused epoch


def test_fused_training_is_sgd_on_the_cpu_only():
    assert RBM(optimizer="sgd")._fused() and RRBM(optimizer="sgd")._fused()
    assert not RBM(optimizer="adam")._fused()


@pytest.mark.parametrize("cls,kw", [(RRBM, {"sigma": 0.15}), (R3BM, {"sigma": 0.15, "sigma_hidden": 0.2})])
def test_fused_epoch_passes_the_machine_sigmas_in_its_dtype(cls, kw):
    X = np.clip(_binary(30), 0.05, 0.95).astype(np.float32)
    m = cls(n_components=H, n_iter=1, random_state=0, momentum=0.5, k=2, **kw).fit(X)
    _set_weights(m)
    twin, w0 = copy.deepcopy(m), m.params_["W"].detach().numpy().copy()
    order = np.random.default_rng(4).permutation(30)
    with m._threads():
        m._cd(X, order, 8)
    p, mom = twin.params_, twin._velocity
    w = p["W"].detach().numpy()
    cd_epoch(X, order, 8, w, p["b"].detach().numpy(), p["c"].detach().numpy(), mom["W"].numpy(),
             mom["b"].numpy(), mom["c"].numpy(), twin._h_chain.numpy(), 2, True, 0.1, 0.5, 0.0, m._vis_kind,
             m._hid_kind, np.full(D, kw["sigma"], np.float32), np.full(H, kw.get("sigma_hidden", 1.0), np.float32),
             twin._streams)
    for name in ("W", "b", "c"):
        np.testing.assert_array_equal(m.params_[name].detach().numpy(), p[name].detach().numpy())
    np.testing.assert_array_equal(m.h_samples_, twin.h_samples_)
    assert not np.array_equal(w0, w)  # the epoch did something


class _BarLog:
    """Stands in for ``_bar``: records each bar's arguments and updates."""

    def __init__(self):
        self.bars = []

    def __call__(self, total, show, desc):
        bar = {"total": total, "show": show, "desc": desc, "updates": [], "closed": False}
        self.bars.append(bar)

        class Bar:
            def update(self, n=1):
                bar["updates"].append(n)

            def close(self):
                bar["closed"] = True

        return Bar()


@pytest.mark.parametrize("progress,sparse", [(True, False), (False, True)])
def test_fused_epoch_by_batches_shows_its_bar_and_trains_as_one_call(monkeypatch, progress, sparse):
    X = _binary(25)
    plain = RBM(n_components=H, batch_size=10, n_iter=2, random_state=0, dtype="float64").fit(X)
    log = _BarLog()
    monkeypatch.setattr(_rbm, "_bar", log)
    m = RBM(n_components=H, batch_size=10, n_iter=2, random_state=0, dtype="float64", progress=progress).fit(
        sp.csr_matrix(X) if sparse else X)
    assert [(b["total"], b["show"], b["desc"], b["updates"], b["closed"]) for b in log.bars] == [
        (3, progress, "epoch 1", [1, 1, 1], True), (3, progress, "epoch 2", [1, 1, 1], True)]
    assert type(log.bars[0]["total"]) is int
    for name in ("W", "b", "c"):  # batch by batch, the same updates as the whole-epoch kernel call
        np.testing.assert_allclose(m.params_[name].detach().numpy(), plain.params_[name].detach().numpy(),
                                   rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shuffle", [False, True])
def test_fused_epoch_order(monkeypatch, shuffle):
    X = _binary(23)
    m = RBM(n_components=H, batch_size=30, n_iter=0, shuffle=shuffle, random_state=0).fit(X)
    calls = []
    monkeypatch.setattr(m, "_cd", lambda data, order, size: calls.append((data.copy(), order.copy(), size)))
    rng = copy.deepcopy(m._rng)
    m._epoch(m._training_data(X), 0)
    (data, order, size), = calls
    np.testing.assert_array_equal(data, X.astype(np.float32))
    assert size == 23  # a batch larger than the data is all the rows
    np.testing.assert_array_equal(order, rng.permutation(23) if shuffle else np.arange(23))
    assert m._rng.random() == rng.random()  # no permutation drawn without shuffling


@pytest.mark.parametrize("n_iter", [1, 2])
def test_verbose_fused_training_reports_the_pseudo_likelihood(capsys, n_iter):
    X = _binary(30)
    m = RBM(n_components=H, n_iter=n_iter, verbose=1, random_state=0).fit(X)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == n_iter
    assert lines[-1] == f"[RBM] Iteration {n_iter}, pseudo-likelihood = {float(np.mean(m.score_samples(X))):.2f}"


# ---------------------------------------------------------------- tempered fused training


@pytest.mark.parametrize("tempering,k", [(1, 1), (1, 2), (2, 2)])
def test_fused_tempered_training_equals_the_autograd_loop_few_rungs(monkeypatch, tempering, k):
    X = (np.random.default_rng(1).random((8 * 7, 6)) < 0.5).astype(np.float64)
    w, b, c = _certain_rbm_arrays(np.float64)
    models = []
    for fused in (True, False):
        monkeypatch.setattr(RBM, "_fused", lambda self, f=fused: f)
        m = RBM(n_components=4, n_iter=0, batch_size=8, n_chains=5, k=k, dtype="float64", random_state=0,
                tempering=tempering).fit(X)
        with torch.no_grad():
            for name, value in (("W", w), ("b", b), ("c", c)):
                m.params_[name].copy_(torch.from_numpy(value))
        with m._threads():
            m._epoch(m._training_data(X), 0)
        models.append(m)
    fused, plain = models
    for name in ("W", "b", "c"):
        np.testing.assert_allclose(fused.params_[name].detach().numpy(), plain.params_[name].detach().numpy(),
                                   rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(fused._replicas.v.numpy(), plain._replicas.v.numpy())
    a, t = fused.tempering_, plain.tempering_
    assert type(a.n_sweeps) is int and a.n_sweeps == t.n_sweeps == 7 * k
    assert type(fused._replicas.n_sweeps) is int and fused._replicas.n_sweeps == 7 * k
    np.testing.assert_array_equal(a.swap_rates, t.swap_rates)
    assert fused._replicas.parity == plain._replicas.parity
    assert fused._replicas.rng.random() == plain._replicas.rng.random()


def test_loaded_tempered_rbm_trains_on_with_its_chains(tmp_path):
    X = _binary(40)
    m = RBM(n_components=H, n_chains=7, n_iter=1, batch_size=8, tempering=3, random_state=0).fit(X)
    m.save(tmp_path / "t.safetensors")
    loaded = RBM.load(tmp_path / "t.safetensors")
    assert loaded._replicas is None
    loaded.partial_fit(X[:8])
    rep = loaded._replicas
    assert rep.n_chains == 7 and tuple(rep.v.shape) == (7 * len(rep.betas), D)
    assert loaded.tempering_.n_sweeps == 1


# ---------------------------------------------------------------- binarised rows


def test_rbm_binarises_at_one_half_exclusive():
    X = _binary(12)
    m = RBM(n_components=H, n_iter=1, dtype="float64", random_state=0).fit(X)
    _set_weights(m)
    halves = X.copy()
    halves[X == 0] = 0.5  # 0.5 is not above 0.5: scored as 0
    np.testing.assert_array_equal(m.score_samples(halves), m.score_samples(X))
    above = X.copy()
    above[X == 0] = 0.5000001
    np.testing.assert_array_equal(m.score_samples(above), m.score_samples(np.ones_like(X)))
    assert average_log_likelihood(m, halves, 0.0) == average_log_likelihood(m, X, 0.0)
    assert average_log_likelihood(m, X, 0.0) != average_log_likelihood(m, np.ones_like(X), 0.0)


def test_pseudo_likelihood_flips_chunk_elements_at_a_time(monkeypatch):
    X = _binary(7)
    m = RBM(n_components=H, n_iter=1, dtype="float64", random_state=0).fit(X)
    _set_weights(m)
    whole = m.score_samples(X)
    softplus, shapes = _rbm.F.softplus, []

    def spy(x):
        shapes.append(tuple(x.shape))
        return softplus(x)

    monkeypatch.setattr(_rbm.F, "softplus", spy)
    for chunk, rows in ((1, 1), (3 * D * H, 3)):  # never fewer than one row at a time
        shapes.clear()
        np.testing.assert_allclose(m.score_samples(X, chunk_elements=chunk), whole, rtol=1e-12)
        flips = [s for s in shapes if len(s) == 3]
        assert flips[0] == (rows, D, H) and sum(s[0] for s in flips) == 7
