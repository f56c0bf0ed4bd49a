"""Parallel tempering: the swap kernel against its twin, detailed balance against exact
enumeration, the ladder, and the sampling / training surface."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp
from scipy.special import erfc
from sklearn.utils._param_validation import InvalidParameterError

from fastseq.boltzmann import BetaRBM, GaussianRBM, R3BM, RBM, RRBM, TemperingStats
from fastseq.boltzmann import _sampling_nb as nbs
from fastseq.boltzmann import _sampling_py as ref
from fastseq.boltzmann import _tempering as pt


def _both(energy, betas, parity, seed):
    """Run the kernel and its twin on copies of the same input; return both results."""
    out = []
    for impl in (nbs, ref):
        e, n = energy.copy(), energy.shape[1]
        order = np.repeat(np.arange(energy.shape[0], dtype=np.intp)[:, None], n, axis=1)
        acc = np.zeros(max(0, energy.shape[0] - 1), np.int64)
        impl.swap_replicas(e, betas, parity, np.random.default_rng(seed), order, acc)
        out.append((e, order, acc))
    return out


energies = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e300, max_value=1e300) | st.sampled_from(
    [0.0, 1.0, -1.0, 1e308, -1e308])


@settings(max_examples=150, deadline=None)
@given(m=st.integers(1, 6), n=st.integers(1, 5), parity=st.integers(0, 1), seed=st.integers(0, 2 ** 32 - 1),
       data=st.data())
def test_swap_kernel_matches_twin(m, n, parity, seed, data):
    energy = data.draw(hnp.arrays(np.float64, (m, n), elements=energies))
    gaps = data.draw(hnp.arrays(np.float64, m, elements=st.floats(0.01, 1.0)))
    betas = np.concatenate([[1.0], np.cumprod(1 / (1 + gaps))[:m - 1]])
    (e1, o1, a1), (e2, o2, a2) = _both(energy, betas, parity, seed)
    np.testing.assert_array_equal(o1, o2)
    np.testing.assert_array_equal(e1, e2)
    np.testing.assert_array_equal(a1, a2)
    # a permutation of each chain's states, the energies travel with them
    np.testing.assert_array_equal(np.sort(o1, axis=0), np.arange(m)[:, None].repeat(n, 1))
    np.testing.assert_array_equal(e1, np.take_along_axis(energy, o1, axis=0))
    # only pairs of the given parity move
    assert (a1[1 - parity::2] == 0).all()


def test_swap_corner_cases():
    one = np.array([[3.0, 4.0]])
    (e, o, a), _ = _both(one, np.ones(1), 0, 0)
    assert a.shape == (0,) and (o == 0).all() and (e == one).all()  # one temperature: nothing to swap
    # ties swap always (exp(0) = 1), and a hot rung with the lower energy always moves to beta = 1
    (_, o, a), _ = _both(np.array([[2.0] * 50, [2.0] * 50]), np.array([1.0, 0.5]), 0, 1)
    assert a.tolist() == [50] and (o[0] == 1).all()
    (_, o, a), _ = _both(np.array([[1e300, -1e308], [-1e300, 1e308]]), np.array([1.0, 0.5]), 0, 2)
    # the first moves down (difference overflows to +inf: accepted), the second never (exp(-inf) = 0)
    assert o[:, 0].tolist() == [1, 0] and o[:, 1].tolist() == [0, 1] and a.tolist() == [1]
    (_, o, a), _ = _both(np.array([[np.nan, np.inf], [0.0, np.inf]]), np.array([1.0, 0.5]), 0, 3)
    assert a.tolist() == [0] and (o[0] == 0).all()  # NaN differences (nan, inf - inf) are refused
    # the other parity leaves pair (0, 1) alone
    (_, o, a), _ = _both(np.array([[5.0], [1.0], [0.0]]), np.array([1.0, 0.5, 0.25]), 1, 0)
    assert o[0, 0] == 0 and a[0] == 0


def test_swap_rate_matches_metropolis_probability():
    n = 40_000
    energy = np.array([[0.0] * n, [2.0] * n])  # the hotter state is worse: accepted w.p. exp(-0.5 * 2)
    (_, _, a), _ = _both(energy, np.array([1.0, 0.5]), 0, 7)
    p = np.exp(-1.0)
    assert abs(a[0] / n - p) < 5 * np.sqrt(p * (1 - p) / n)


# ---------------------------------------------------------------- detailed balance, exact

def _states(n):
    return np.array(list(itertools.product([0.0, 1.0], repeat=n)))


def _tiny(cls, d=4, h=3, scale=3.0, **kw):
    """A fitted machine with d visible, h hidden units and strong random weights (several modes)."""
    rng = np.random.default_rng(0)
    X = rng.beta(2, 2, size=(50, d)) if cls is BetaRBM else (
        rng.normal(size=(50, d)) if cls is GaussianRBM else (rng.random((50, d)) < 0.5).astype(float))
    m = cls(n_components=h, n_iter=0, dtype="float64", random_state=0, **kw).fit(X)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in m.params_.items():
            if name in ("W", "b", "c"):
                p.copy_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return m


def _exact_hidden(m):
    """Exact p(h) at beta = 1 over the 2^H hidden states, from ``log sum_v exp(-E(v, h))``."""
    hs = torch.tensor(_states(int(m.n_components)))
    log_p = m._log_sum_visible(m._params64(), hs).numpy()
    return np.exp(log_p - np.logaddexp.reduce(log_p))


def _code(x):
    return (x @ (2 ** np.arange(x.shape[1])[::-1])).astype(int)


def _run_rung0_hidden(m, betas, n_chains=200, sweeps=300, seed=0):
    """Histogram of rung 0's hidden states over ``sweeps`` tempered sweeps of ``n_chains`` chains."""
    m._rng = np.random.default_rng(seed)
    with torch.no_grad():
        v0 = m._random_visible(n_chains).repeat(len(betas), 1)
        rep = pt.Replicas(m, np.asarray(betas, float), m._prepare_visible(v0), np.random.default_rng(seed))
        counts = np.zeros(2 ** int(m.n_components))
        for s in range(sweeps):
            rep.sweep()
            if s >= 20:
                counts += np.bincount(_code(rep.top(rep.h).numpy()), minlength=counts.size)
    return counts / counts.sum(), rep


@pytest.mark.parametrize("cls", [RBM, GaussianRBM, BetaRBM])
def test_tempered_chain_keeps_the_exact_distribution_at_beta_1(cls):
    m = _tiny(cls, scale=2.0 if cls is BetaRBM else 3.0)
    if cls is BetaRBM:
        with torch.no_grad():  # keep Wa, Wb moderate: softplus of the raw values
            for name in ("Wa_raw", "Wb_raw"):
                m.params_[name].copy_(torch.randn(m.params_[name].shape, generator=torch.Generator().manual_seed(2),
                                                  dtype=torch.float64) + 0.5)
    exact = _exact_hidden(m)
    betas = [1.0, 0.45, 0.2]
    emp, rep = _run_rung0_hidden(m, betas)
    tv = 0.5 * np.abs(emp - exact).sum()
    assert tv < 0.03, (tv, emp.round(3), exact.round(3))
    assert (rep.accepted > 0).all()  # the swaps did happen
    # the test can tell: the hottest rung's own distribution is far from beta = 1's
    hot, _ = _run_rung0_hidden(m, [0.2], sweeps=120)
    assert 0.5 * np.abs(hot - exact).sum() > 0.1


def test_pt_sample_matches_exact_visible_marginal_of_a_4x3_rbm():
    m = _tiny(RBM)
    vs = _states(4)
    log_p = -m.free_energy(vs)
    exact = np.exp(log_p - np.logaddexp.reduce(log_p))
    m._setup_random()
    draws = m.sample(6000, n_steps=40, return_means=False, sampler="pt", betas=[1.0, 0.5, 0.2])
    emp = np.bincount(_code(draws), minlength=16) / len(draws)
    assert 0.5 * np.abs(emp - exact).sum() < 0.03
    # chi-square over the states with expected count >= 5
    n, ok = len(draws), exact * len(draws) >= 5
    chi2 = (((emp - exact) * n) ** 2 / (exact * n))[ok].sum()
    from scipy.stats import chi2 as chi2_dist
    assert chi2 < chi2_dist.ppf(0.999, ok.sum() - 1)


@pytest.mark.parametrize("cls", [RBM, GaussianRBM, BetaRBM])
def test_energy_is_visible_term_minus_h_dot_pre(cls):
    m = _tiny(cls)
    v = m._prepare_visible(torch.tensor(np.random.default_rng(1).random((7, 4))))
    path = pt.path_for(m)
    f, pre = m._free_energy_pre(v)
    torch.testing.assert_close(path.pre(v), pre)
    # F(v) = -log sum_h exp(-(U(v) - h.pre)) = U(v) - sum softplus(pre)
    torch.testing.assert_close(path.visible_term(v) - F.softplus(pre).sum(1), f.detach())


def test_gaussian_tempered_visible_has_variance_sigma2_over_beta():
    m = _tiny(GaussianRBM, d=2, h=2, sigma=0.7)
    path = pt.path_for(m)
    h = torch.ones(50_000, 2, dtype=torch.float64)
    beta = torch.full((50_000, 1), 0.25, dtype=torch.float64)
    v = path.visible(h, beta)
    torch.testing.assert_close(v.mean(0), m._visible_mean(h[:1])[0], atol=0.03, rtol=0)
    torch.testing.assert_close(v.var(0), torch.full((2,), 0.49 / 0.25, dtype=torch.float64), atol=0.06, rtol=0)


# ---------------------------------------------------------------- the ladder

def test_ladders():
    np.testing.assert_allclose(pt.geometric_ladder(3, 0.25), [1.0, 0.5, 0.25])
    assert pt.geometric_ladder(1).tolist() == [1.0]
    # equal rates keep a geometric ladder; unequal ones move rungs toward the slow gap
    lad = pt.geometric_ladder(5, 0.1)
    np.testing.assert_allclose(pt.respace(lad, np.full(4, 0.3), 5), lad)
    new = pt.respace(np.array([1.0, 0.5, 0.25]), np.array([0.9, 0.2]), 3)
    assert new[0] == 1.0 and new[-1] == 0.25 and 0.25 < new[1] < 0.5
    # a given count too small to span the ladder at the target rate ends above its old end
    new = pt.respace(np.array([1.0, 0.5, 0.25]), np.array([0.9, 0.01]), 3)
    assert new[0] == 1.0 and 0.25 < new[-1] < new[1] < 0.5
    # without a count, low rates ask for more rungs, high ones for fewer
    assert len(pt.respace(lad, np.full(4, 0.05))) > 5 and len(pt.respace(lad, np.full(4, 0.9))) < 5
    assert len(pt.respace(lad, np.zeros(4), max_rungs=9)) == 9
    for bad in ([0.9, 0.5], [1.0, 1.0], [1.0, 0.5, 0.7], [1.0, 0.0], [1.0, np.nan], [[1.0]], []):
        with pytest.raises(ValueError, match="betas"):
            pt.check_ladder("betas", bad)


def _gaussian_energy_rates(betas, sigma):
    """The swap rates of neighbours on a ladder whose energies are Gaussian with spread sigma."""
    return erfc(sigma * -np.diff(betas) / 2)


@pytest.mark.parametrize("n_rungs", [2, 4, 7])
def test_respace_brings_a_given_count_to_the_target_rate_when_the_ends_are_too_far_apart(n_rungs):
    """A machine whose energy spreads over sigma = 40: from 1 to 0.2, four rungs swap at rate
    0. Re-placed from the rates they measure, a given count of rungs closes up until every
    pair swaps near the target, and the hottest rung is as hot as that allows."""
    lad = pt.geometric_ladder(n_rungs)
    assert (_gaussian_energy_rates(lad, 40.0) < 0.1).all()
    for _ in range(12):
        lad = pt.respace(lad, _gaussian_energy_rates(lad, 40.0), n_rungs)
    rates = _gaussian_energy_rates(lad, 40.0)
    assert len(lad) == n_rungs and lad[0] == 1.0 and (np.diff(lad) < 0).all()
    np.testing.assert_allclose(rates, pt.TARGET_RATE, atol=0.05)
    # the same count on a machine that spans 1 to 0.2 easily keeps the ends, at equal rates
    wide = pt.geometric_ladder(n_rungs)
    for _ in range(12):
        wide = pt.respace(wide, _gaussian_energy_rates(wide, 1.0), n_rungs)
    assert wide[-1] == pt.BETA_MIN and np.ptp(_gaussian_energy_rates(wide, 1.0)) < 0.02


def test_pt_sampler_with_few_rungs_on_a_wide_machine_swaps():
    """The case that left every pair at rate 0: a 4-rung ladder on a machine too large for 4
    rungs from 1 to 0.2. After the burn-in the rungs are close enough to swap."""
    rng = np.random.default_rng(1)
    X = (rng.random((300, 400)) < 0.5).astype(np.float32)
    X[:150, :200] = 1.0
    m = RBM(n_components=64, n_iter=3, learning_rate=0.1, random_state=0).fit(X)
    m.sample(20, 200, sampler="pt", n_temperatures=4)
    st_ = m.last_tempering_
    assert st_.betas[-1] > pt.BETA_MIN and (st_.swap_rates > 0.05).all(), st_


# ---------------------------------------------------------------- the estimator surface

@pytest.fixture(scope="module")
def binary():
    rng = np.random.default_rng(0)
    X = (rng.random((200, 16)) < 0.2).astype(np.float32)
    X[:100, :8] = 1.0
    return X


def test_sample_default_is_plain_gibbs(binary):
    a = RBM(n_components=6, n_iter=2, random_state=0).fit(binary)
    b = RBM(n_components=6, n_iter=2, random_state=0).fit(binary)
    np.testing.assert_array_equal(a.sample(5, 30), b.sample(5, 30, sampler="gibbs"))
    assert not hasattr(a, "last_tempering_")


def test_pt_sample_reports_ladder_and_rates(binary):
    m = RBM(n_components=6, n_iter=2, random_state=0).fit(binary)
    s = m.sample(20, 200, sampler="pt")
    st_ = m.last_tempering_
    assert isinstance(st_, TemperingStats) and s.shape == (20, 16) and s.dtype == np.float32
    assert st_.betas[0] == 1.0 and (np.diff(st_.betas) < 0).all() and len(st_.swap_rates) == len(st_.betas) - 1
    assert st_.n_sweeps == 150 and ((st_.swap_rates >= 0) & (st_.swap_rates <= 1)).all()
    m.sample(20, 200, sampler="pt", n_temperatures=4)
    assert len(m.last_tempering_.betas) == 4 and m.last_tempering_.betas[-1] == pytest.approx(pt.BETA_MIN)
    m.sample(20, 40, sampler="pt", betas=(1.0, 0.6, 0.3))
    assert m.last_tempering_.betas.tolist() == [1.0, 0.6, 0.3] and m.last_tempering_.n_sweeps == 40
    m.sample(3, 5, sampler="pt", n_temperatures=1)
    assert m.last_tempering_.swap_rates.shape == (0,)
    start = binary[:4].astype(np.float64)
    out = m.sample(n_steps=10, start=start, sampler="pt", n_temperatures=2)
    assert out.shape == (4, 16) and out.dtype == np.float64 and (start == binary[:4]).all()
    m._setup_random()
    x1 = m.sample(4, 30, sampler="pt")
    m._setup_random()
    np.testing.assert_array_equal(x1, m.sample(4, 30, sampler="pt"))


def test_pt_sample_errors(binary):
    m = RBM(n_components=4, n_iter=1, random_state=0).fit(binary)
    with pytest.raises(ValueError, match="sampler to be 'gibbs' or 'pt', got 'metropolis'"):
        m.sample(2, 5, sampler="metropolis")
    with pytest.raises(ValueError, match="only with sampler='pt'"):
        m.sample(2, 5, n_temperatures=3)
    with pytest.raises(ValueError, match="n_temperatures to match the 2 betas"):
        m.sample(2, 5, sampler="pt", n_temperatures=3, betas=[1.0, 0.5])
    with pytest.raises(ValueError, match="n_temperatures to be a positive integer"):
        m.sample(2, 5, sampler="pt", n_temperatures=0)
    with pytest.raises(ValueError, match="start at 1 and fall strictly"):
        m.sample(2, 5, sampler="pt", betas=[1.0, 1.5])
    X = np.random.default_rng(0).random((30, 5))
    for cls in (RRBM, R3BM):
        with pytest.raises(TypeError, match=f"got {cls.__name__}: no energy"):
            cls(n_components=3, n_iter=1).fit(X).sample(2, 5, sampler="pt")


def test_tempered_training(binary):
    m = RBM(n_components=6, n_iter=3, n_chains=10, random_state=0, tempering=4).fit(binary)
    st_ = m.tempering_
    assert len(st_.betas) == 4 and st_.betas[0] == 1.0 and st_.n_sweeps > 0
    assert m._replicas.v.shape == (40, 16) and m.h_samples_.shape == (10, 6)
    # the persistent chains' hidden rows are rung 0's (beta = 1) of the replicas, as a copy
    np.testing.assert_array_equal(m.h_samples_, m._replicas.h[:10].numpy())
    assert m.h_samples_.any() and not np.shares_memory(m.h_samples_, m._replicas.h.numpy())
    again = RBM(n_components=6, n_iter=3, n_chains=10, random_state=0, tempering=4).fit(binary)
    np.testing.assert_array_equal(m.components_, again.components_)
    plain = RBM(n_components=6, n_iter=3, n_chains=10, random_state=0).fit(binary)
    assert not np.array_equal(plain.components_, m.components_)
    with pytest.raises(AttributeError, match="without tempering"):
        plain.tempering_
    fixed = RBM(n_components=6, n_iter=1, random_state=0, tempering=[1.0, 0.5]).fit(binary)
    assert fixed.tempering_.betas.tolist() == [1.0, 0.5]
    auto = RBM(n_components=6, n_iter=2, random_state=0, tempering="auto").fit(binary)
    assert np.isfinite(auto.components_).all()
    auto.partial_fit(binary[:10])
    G = np.random.default_rng(0).normal(size=(60, 4))
    g = GaussianRBM(n_components=3, n_iter=2, learning_rate=0.01, random_state=0, tempering=3).fit(G)
    assert len(g.tempering_.betas) == 3


def test_beta_rbm_trains_with_tempering():
    X = np.clip(np.random.default_rng(1).beta(2, 3, size=(80, 6)), 0.02, 0.98)
    m = BetaRBM(n_components=4, n_iter=2, n_chains=8, optimizer="adam", learning_rate=0.01, random_state=0,
                tempering=3).fit(X)
    assert len(m.tempering_.betas) == 3 and m._replicas.v.shape == (24, 6)
    plain = BetaRBM(n_components=4, n_iter=2, n_chains=8, optimizer="adam", learning_rate=0.01,
                    random_state=0).fit(X)
    assert not np.array_equal(plain.components_, m.components_)  # the tempered chains gave the statistics
    samples = m.sample(5, n_steps=20)
    assert samples.shape == (5, 6) and ((samples > 0) & (samples < 1)).all()


def test_tempered_training_errors(binary):
    with pytest.raises(ValueError, match="persistent=True with tempering=3"):
        RBM(n_components=4, n_iter=1, persistent=False, tempering=3).fit(binary)
    for bad in (0, "hot", 1.5):
        with pytest.raises(InvalidParameterError, match="tempering"):
            RBM(n_components=4, n_iter=1, tempering=bad).fit(binary)
    with pytest.raises(ValueError, match="tempering to start at 1"):
        RBM(n_components=4, n_iter=1, tempering=[0.5, 0.2]).fit(binary)


def test_tempering_setting_survives_save_and_load(binary, tmp_path):
    import fastseq

    for setting, kept in ((np.array([1.0, 0.5]), [1.0, 0.5]), ("auto", "auto"), (3, 3)):
        m = RBM(n_components=4, n_iter=1, random_state=0, tempering=setting).fit(binary)
        m.save(tmp_path / "m.safetensors")
        back = fastseq.load(tmp_path / "m.safetensors")
        assert back.tempering == kept
        back.partial_fit(binary[:20])  # a loaded machine trains on with fresh tempered chains
        assert back.tempering_.betas[0] == 1.0


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("cls", [RBM, GaussianRBM, BetaRBM])
def test_cuda_tempering_samples_and_trains(binary, cls):
    X = np.clip(binary * 0.9 + 0.05, 0, 1)
    kw = {} if cls is BetaRBM else {"tempering": 3}
    m = cls(n_components=8, n_iter=1, learning_rate=0.01, device="cuda", random_state=0, **kw).fit(X)
    s = m.sample(5, n_steps=20, sampler="pt", n_temperatures=3)
    assert s.shape == (5, 16) and np.isfinite(s).all() and len(m.last_tempering_.betas) == 3
    if kw:
        assert m._replicas.v.device.type == "cuda" and len(m.tempering_.betas) == 3


# ---------------------------------------------------------------- the fused tempered epoch

def _certain_rbm_arrays(dtype, d=6, h=4, seed=0):
    """Weights and biases of +-300: every unit's probability is within 1e-26 of 0 or 1 at each
    beta >= 0.2, so the draws are certain while the gradients are not zero."""
    g = np.random.default_rng(seed)
    return (g.normal(scale=0.3, size=(d, h)).astype(dtype), (300 * g.choice([-1.0, 1.0], d)).astype(dtype),
            (300 * g.choice([-1.0, 1.0], h)).astype(dtype))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fused_tempered_epoch_equals_its_twin(dtype):
    from fastseq.boltzmann import _cd_nb, _cd_py

    d, h, n_rungs, n = 6, 4, 3, 5
    X = (np.random.default_rng(1).random((37, d)) < 0.5).astype(dtype)
    order = np.random.default_rng(2).permutation(37)
    u = np.random.default_rng(5).random((5 * 2, n_rungs - 1, n))
    outs = []
    for kernel, extra in ((_cd_nb.pt_epoch, (nbs.make_streams(0),)),
                          (_cd_py.pt_epoch, (np.random.default_rng(0),))):
        w, b, c = _certain_rbm_arrays(dtype)
        arrays = dict(w=w, b=b, c=c, mw=np.zeros_like(w), mb=np.zeros_like(b), mc=np.zeros_like(c),
                      rv=np.zeros((n_rungs * n, d), dtype),
                      rh=np.zeros((n_rungs * n, h), dtype), state=np.array([1]),
                      accepted=np.zeros(n_rungs - 1, np.int64), attempted=np.zeros(n_rungs - 1, np.int64))
        a = arrays
        kernel(X, order, 8, a["w"], a["b"], a["c"], a["mw"], a["mb"], a["mc"], a["rv"], a["rh"],
               np.array([1.0, 0.6, 0.3]), 2, 0.1, 0.5, 0.01, u, a["state"], a["accepted"], a["attempted"], *extra)
        outs.append(arrays)
    fused, twin = outs
    tol = 1e-12 if dtype == np.float64 else 1e-5
    for name in fused:
        np.testing.assert_allclose(fused[name], twin[name], rtol=tol, atol=tol, err_msg=name)
    assert not np.allclose(fused["w"], _certain_rbm_arrays(dtype)[0])  # the updates did something
    # 5 updates x 2 sweeps, parities 1, 0, 1, ...: pair 1 tried 5 times, pair 0 5 times; equal
    # energies (every rung holds the same certain state) always swap
    assert fused["attempted"].tolist() == [5, 5] and fused["accepted"].tolist() == [25, 25]
    assert fused["state"][0] == 1


@pytest.mark.parametrize("n_updates", [7, 60])
def test_fused_tempered_training_equals_the_autograd_loop(monkeypatch, n_updates):
    # 60 updates cross a re-placement of the ladder (every 50), which both paths make alike
    X = (np.random.default_rng(1).random((8 * n_updates, 6)) < 0.5).astype(np.float64)
    w, b, c = _certain_rbm_arrays(np.float64)
    models = []
    for fused in (True, False):
        monkeypatch.setattr(RBM, "_fused", lambda self, f=fused: f)
        m = RBM(n_components=4, n_iter=0, batch_size=8, n_chains=5, momentum=0.5, weight_decay=0.01,
                dtype="float64", random_state=0, tempering=3).fit(X)
        with torch.no_grad():
            for name, value in (("W", w), ("b", b), ("c", c)):
                m.params_[name].copy_(torch.from_numpy(value))
        with m._threads():
            m._epoch(m._training_data(X), 0)
        m.partial_fit(X[:8])
        models.append(m)
    fused, plain = models
    for name in ("W", "b", "c"):
        np.testing.assert_allclose(fused.params_[name].detach().numpy(), plain.params_[name].detach().numpy(),
                                   rtol=1e-12, atol=1e-12)
    assert not np.allclose(fused.params_["W"].detach().numpy(), w)
    np.testing.assert_array_equal(fused.h_samples_, plain.h_samples_)
    np.testing.assert_array_equal(fused._replicas.v.numpy(), plain._replicas.v.numpy())
    np.testing.assert_array_equal(fused._replicas.h.numpy(), plain._replicas.h.numpy())
    for a, t in ((fused.tempering_, plain.tempering_), (fused._replicas.stats(), plain._replicas.stats())):
        np.testing.assert_array_equal(a.betas, t.betas)
        np.testing.assert_array_equal(a.swap_rates, t.swap_rates)
        assert a.n_sweeps == t.n_sweeps
    assert fused._pt_updates == plain._pt_updates == n_updates + 1
    assert fused._replicas.parity == plain._replicas.parity
    # the swap uniforms came from the same stream, so it stands where the loop left it
    assert fused._replicas.rng.random() == plain._replicas.rng.random()


def test_fused_tempered_sweeps_keep_the_exact_distribution_at_beta_1():
    # learning rate 0: the kernel's replicas are a tempered sampler of a fixed 4 x 3 RBM; rung 0's
    # hidden states must follow the exact p(h)
    from fastseq.boltzmann import _cd_nb

    m = _tiny(RBM)
    exact = _exact_hidden(m)
    betas = np.array([1.0, 0.45, 0.2])
    n, d, h = 200, 4, 3
    p = {k: v.detach().numpy().copy() for k, v in m.params_.items()}
    rng = np.random.default_rng(3)
    rv, rh = (rng.random((3 * n, d)) < 0.5).astype(np.float64), np.zeros((3 * n, h))
    state, acc, att = np.array([0]), np.zeros(2, np.int64), np.zeros(2, np.int64)
    streams, counts = nbs.make_streams(4), np.zeros(2 ** h)
    for s in range(300):
        _cd_nb.pt_epoch(np.zeros((1, d)), np.zeros(1, np.intp), 1, p["W"], p["b"], p["c"], np.zeros((d, h)),
                        np.zeros(d), np.zeros(h), rv, rh, betas, 1, 0.0, 0.0, 0.0,
                        rng.random((1, 2, n)), state, acc, att, streams)
        if s >= 20:
            counts += np.bincount(_code(rh[:n]), minlength=counts.size)
    tv = 0.5 * np.abs(counts / counts.sum() - exact).sum()
    assert tv < 0.03, tv
    assert (acc > 0).all() and (acc < att * n).all()  # swaps happened, and not all of them
    np.testing.assert_array_equal(p["W"], m.params_["W"].detach().numpy())  # rate 0 left the model alone


def _deterministic_rbm_arrays(dtype, d=6, h=4, seed=16):
    """Weights of +-1000 and biases of +-500: every pre-activation is an odd multiple of 500, so
    every draw is certain at each beta near 1, while different visible rows lead to different
    hidden rows (unlike large biases, which make every rung hold the same state). With this
    seed the Gibbs map has several fixed points, so rungs started apart stay apart."""
    g = np.random.default_rng(seed)
    return ((1000 * g.choice([-1.0, 1.0], (d, h))).astype(dtype), (500 * g.choice([-1.0, 1.0], d)).astype(dtype),
            (500 * g.choice([-1.0, 1.0], h)).astype(dtype))


@pytest.mark.parametrize("n_rungs", [1, 2, 4])
def test_fused_tempered_epoch_equals_its_twin_when_the_rungs_hold_different_states(n_rungs):
    """The rungs start from different visible rows and stay apart, so the joint energies differ
    and each swap depends on its uniform: the twin must make the same swaps, count them alike
    and move the same hidden rows with them."""
    from fastseq.boltzmann import _cd_nb, _cd_py

    d, h, n, dtype = 6, 4, 5, np.float64
    betas = 1.0 - 1e-4 * np.arange(n_rungs)  # close rungs: energy gaps of thousands give d of order 1
    X = (np.random.default_rng(1).random((37, d)) < 0.5).astype(dtype)
    order = np.random.default_rng(2).permutation(37)
    u = np.random.default_rng(5).random((5, n_rungs - 1, n))  # 5 updates of one sweep: an odd count
    rv0 = (np.random.default_rng(3).random((n_rungs * n, d)) < 0.5).astype(dtype)
    outs = []
    for kernel, extra in ((_cd_nb.pt_epoch, (nbs.make_streams(0),)),
                          (_cd_py.pt_epoch, (np.random.default_rng(0),))):
        w, b, c = _deterministic_rbm_arrays(dtype)
        a = dict(w=w, b=b, c=c, mw=np.zeros_like(w), mb=np.zeros_like(b), mc=np.zeros_like(c),
                 rv=rv0.copy(), rh=np.zeros((n_rungs * n, h), dtype),
                 state=np.array([0]), accepted=np.zeros(max(n_rungs - 1, 0), np.int64),
                 attempted=np.zeros(max(n_rungs - 1, 0), np.int64))
        kernel(X, order, 8, a["w"], a["b"], a["c"], a["mw"], a["mb"], a["mc"], a["rv"], a["rh"],
               betas, 1, 0.1, 0.5, 0.01, u, a["state"], a["accepted"], a["attempted"], *extra)
        outs.append(a)
    fused, twin = outs
    for name in fused:
        np.testing.assert_allclose(fused[name], twin[name], rtol=1e-12, atol=1e-9, err_msg=name)
    if n_rungs == 1:  # nothing to swap: the parity stays where it was (5 flips would leave it at 1)
        assert fused["state"][0] == 0 and fused["attempted"].size == 0
        return
    # 5 sweeps, parities 0, 1, 0, 1, 0: even pairs are tried 3 times, odd pairs twice
    assert fused["attempted"].tolist() == [2 if m % 2 else 3 for m in range(n_rungs - 1)]
    assert fused["state"][0] == 1
    assert 0 < fused["accepted"].sum() < fused["attempted"].sum() * n  # swaps depend on their uniforms
    assert len({tuple(r) for r in fused["rv"]}) > 1  # the rungs do hold different states


def test_tempered_twin_refuses_far_swaps_without_an_overflow_warning():
    """Rungs far apart with energies thousands apart: exp of the swap's log-ratio overflows to
    inf (an accepted swap) or underflows to 0 (a refused one) quietly, as the kernel does."""
    import warnings

    from fastseq.boltzmann import _cd_py

    d, h, n, betas = 6, 4, 5, np.array([1.0, 0.5, 0.25])
    w, b, c = _deterministic_rbm_arrays(np.float64)
    rv = (np.random.default_rng(3).random((3 * n, d)) < 0.5).astype(np.float64)
    accepted, attempted = np.zeros(2, np.int64), np.zeros(2, np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _cd_py.pt_epoch(np.ones((8, d)), np.arange(8), 8, w, b, c, np.zeros_like(w), np.zeros_like(b),
                        np.zeros_like(c), rv, np.zeros((3 * n, h)), betas, 4, 0.0, 0.0, 0.0,
                        np.random.default_rng(5).random((4, 2, n)), np.array([0]), accepted, attempted,
                        np.random.default_rng(0))
    assert attempted.tolist() == [2, 2] and 0 < accepted.sum() < 4 * n
