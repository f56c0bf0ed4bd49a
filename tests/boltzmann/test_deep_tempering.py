"""Deep tempering (DeepBeliefNet.sample_bottom_machine): exact for the bottom machine, checked
against enumeration, with a control showing the check would notice a wrong exchange."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy import stats
from sklearn.exceptions import NotFittedError

from fastseq.boltzmann import RBM, RRBM, BetaRBM, DeepBeliefNet, GaussianRBM
from fastseq.boltzmann import _deep_tempering as dtm

D, H0, H1 = 4, 3, 2


def _bits(n: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=n)), dtype=torch.float64)


def _data(bottom) -> np.ndarray:
    rng = np.random.default_rng(0)
    if bottom is GaussianRBM:
        return rng.normal(size=(40, D))
    if bottom is RBM:
        return (rng.random((40, D)) < 0.4).astype(np.float64)
    return rng.uniform(0.1, 0.9, (40, D))


def _net(bottom=RBM, seed: int = 0, upper_bias: float = 2.0, scale: float = 1.5) -> DeepBeliefNet:
    """A fitted 2-layer net with parameters set by hand: a bottom with strong weights (several
    modes) and a top whose visible marginal differs from the bottom's hidden marginal (biased
    toward all-ones), so exchanges are neither all accepted nor all refused."""
    kw = {"learning_rate": 0.01} if bottom is not RBM else {}
    layers = [bottom(n_components=H0, n_iter=1, dtype="float64", random_state=seed, **kw),
              RBM(n_components=H1, n_iter=1, dtype="float64", random_state=seed + 1)]
    dbn = DeepBeliefNet(layers).fit(_data(bottom))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        low, top = dbn.layers_
        if bottom is BetaRBM:
            for k in ("Wa_raw", "Wb_raw"):
                low.params_[k].copy_(torch.randn(D, H0, generator=g, dtype=torch.float64) * scale)
            low.params_["c"].copy_(torch.randn(H0, generator=g, dtype=torch.float64))
        else:
            low.params_["W"].copy_(torch.randn(D, H0, generator=g, dtype=torch.float64) * scale)
            low.params_["c"].copy_(torch.randn(H0, generator=g, dtype=torch.float64))
        top.params_["W"].copy_(torch.randn(H0, H1, generator=g, dtype=torch.float64))
        top.params_["b"].fill_(upper_bias)
    return dbn


def _hidden_marginal(machine) -> tuple[torch.Tensor, np.ndarray]:
    """Every hidden state of the bottom and its exact probability under the bottom machine."""
    hs = _bits(H0)
    log_q = machine._log_sum_visible(machine._params64(), hs)
    return hs, torch.softmax(log_q, 0).numpy()


def _hidden_counts(machine, means: np.ndarray) -> np.ndarray:
    """Which hidden state each returned row E[v | h] came from (the means differ state by state)."""
    hs, _ = _hidden_marginal(machine)
    table = machine.visible_mean(hs.numpy())
    nearest = ((means[:, None, :] - table[None]) ** 2).sum(-1).argmin(1)
    assert np.allclose(means, table[nearest], atol=1e-9)  # every row is one of the 2^H0 means
    return np.bincount(nearest, minlength=len(hs))


def _p_value(counts: np.ndarray, probs: np.ndarray) -> float:
    return float(stats.chisquare(counts, probs * counts.sum()).pvalue)


# ---------------------------------------------------------------------- the exchange ratio
@pytest.mark.parametrize("bottom", (RBM, GaussianRBM, BetaRBM), ids=lambda c: c.__name__)
def test_exchange_ratio_is_the_ratio_of_the_two_marginals(bottom):
    dbn = _net(bottom)
    low, top = dbn.layers_
    pl, pt = low._params64(), top._params64()
    hs = _bits(H0)
    # the top's visible marginal by enumerating its hidden states
    log_r = hs @ pt["b"] + torch.logsumexp(hs @ pt["W"] @ _bits(H1).T + (_bits(H1) @ pt["c"])[None], 1)
    # the bottom's hidden marginal: -E(v, h) - log p(v | h) for any v (two different v agree)
    v1 = torch.as_tensor(np.random.default_rng(1).uniform(0.2, 0.8, D), dtype=torch.float64)
    v2 = torch.as_tensor(np.random.default_rng(2).uniform(0.2, 0.8, D), dtype=torch.float64)
    if bottom is RBM:
        v1, v2 = (v1 > 0.5).double(), torch.tensor([1.0, 0.0, 1.0, 1.0], dtype=torch.float64)
    log_q = torch.stack([_log_q_by_identity(low, pl, h, v1) for h in hs])
    log_q2 = torch.stack([_log_q_by_identity(low, pl, h, v2) for h in hs])
    torch.testing.assert_close(log_q, log_q2, rtol=0, atol=1e-10)
    pairs = [(a, b) for a in range(len(hs)) for b in range(len(hs))]
    y, x = hs[[a for a, _ in pairs]], hs[[b for _, b in pairs]]
    want = (log_q[[b for _, b in pairs]] + log_r[[a for a, _ in pairs]]
            - log_q[[a for a, _ in pairs]] - log_r[[b for _, b in pairs]])
    got = dtm.exchange_log_ratio(low, pl, top, pt, y.float(), x.float())
    torch.testing.assert_close(got, want, rtol=0, atol=1e-9)


def _log_q_by_identity(machine, p, h, v) -> torch.Tensor:
    """``log sum_v exp(-E(v, h)) = -E(v, h) - log p(v | h)`` for one v, from the energy and the
    conditional written out here (not the machine's code)."""
    if isinstance(machine, GaussianRBM):
        s = p["sigma"]
        u = p["W"] @ h
        energy = (((v - p["b"]) / s) ** 2).sum() / 2 - (v / s) @ u - p["c"] @ h
        log_cond = stats.norm.logpdf(v.numpy(), (p["b"] + s * u).numpy(), s.numpy()).sum()
    elif isinstance(machine, BetaRBM):
        a, b = p["A"] + p["Wa"] @ h, p["B"] + p["Wb"] @ h
        energy = -((a - 1) * torch.log(v) + (b - 1) * torch.log1p(-v)).sum() - p["c"] @ h
        log_cond = stats.beta.logpdf(v.numpy(), a.numpy(), b.numpy()).sum()
    else:
        pre = p["b"] + p["W"] @ h
        energy = -(p["b"] @ v) - p["c"] @ h - v @ p["W"] @ h
        log_cond = (v * pre - torch.nn.functional.softplus(pre)).sum().item()
    return -energy - torch.as_tensor(log_cond, dtype=torch.float64)


# ---------------------------------------------------------------------- exactness
@pytest.mark.parametrize("bottom", (RBM, GaussianRBM, BetaRBM), ids=lambda c: c.__name__)
def test_the_bottom_chains_sample_the_bottom_machine(bottom):
    # settings where the bottom's hidden marginal is spread and the top's visible marginal
    # differs from it (so the exchanges matter, and some are refused)
    dbn = _net(bottom, **{RBM: {}, GaussianRBM: {"scale": 0.6}, BetaRBM: {"upper_bias": -1.0, "scale": 1.0}}[bottom])
    low = dbn.layers_[0]
    _, probs = _hidden_marginal(low)
    means = dbn.sample_bottom_machine(6000, 40)
    rates = dbn.last_deep_tempering_.swap_rates
    assert rates.shape == (1,) and 0.05 < rates[0] < 0.95, rates
    assert _p_value(_hidden_counts(low, means), probs) > 1e-4


def test_a_wrong_exchange_is_noticed_by_the_same_check(monkeypatch):
    # the control: accepting every exchange pulls the bottom's codes toward the top's visible
    # marginal, and the check above fails by a wide margin
    dbn = _net(RBM)
    low = dbn.layers_[0]
    _, probs = _hidden_marginal(low)
    monkeypatch.setattr(dtm, "exchange_log_ratio", lambda *a: torch.zeros(a[-1].shape[0], dtype=torch.float64))
    means = dbn.sample_bottom_machine(6000, 12)
    assert dbn.last_deep_tempering_.swap_rates[0] == 1.0
    assert _p_value(_hidden_counts(low, means), probs) < 1e-12


def test_three_layers_exchange_on_both_pairs_and_stay_exact():
    layers = [RBM(n_components=H0, n_iter=1, dtype="float64", random_state=0),
              RBM(n_components=H1, n_iter=1, dtype="float64", random_state=1),
              RBM(n_components=2, n_iter=1, dtype="float64", random_state=2)]
    dbn = DeepBeliefNet(layers).fit(_data(RBM))
    with torch.no_grad():
        dbn.layers_[0].params_["W"].mul_(6)
    _, probs = _hidden_marginal(dbn.layers_[0])
    means = dbn.sample_bottom_machine(6000, 12)
    stats_ = dbn.last_deep_tempering_
    assert stats_.swap_rates.shape == (2,) and (stats_.swap_rates > 0).all() and stats_.n_sweeps == 12
    assert _p_value(_hidden_counts(dbn.layers_[0], means), probs) > 1e-4


# ---------------------------------------------------------------------- the surface
def test_samples_have_the_shape_and_dtype_asked_and_repeat_from_the_seeds():
    a = _net(RBM).sample_bottom_machine(7, 5, return_means=False)
    b = _net(RBM).sample_bottom_machine(7, 5, return_means=False)
    assert a.shape == (7, D) and a.dtype == np.float64 and set(np.unique(a)) <= {0.0, 1.0}
    np.testing.assert_array_equal(a, b)
    start = np.random.default_rng(3).random((5, D)).astype(np.float32) < 0.5
    start = start.astype(np.float32)
    before = start.copy()
    s = _net(RBM).sample_bottom_machine(n_steps=3, start=start)
    assert s.shape == (5, D) and s.dtype == np.float32
    np.testing.assert_array_equal(start, before)


def test_bad_nets_and_arguments_are_named():
    with pytest.raises(NotFittedError):
        DeepBeliefNet([RBM(), RBM()]).sample_bottom_machine(2, 2)
    one = DeepBeliefNet([RBM(n_components=2, n_iter=1)]).fit(_data(RBM))
    with pytest.raises(ValueError, match="at least two layers.*got one layer"):
        one.sample_bottom_machine(2, 2)
    rr = DeepBeliefNet([RRBM(n_components=2, n_iter=1), RBM(n_components=2, n_iter=1)]).fit(_data(RRBM))
    with pytest.raises(TypeError, match="Expected a machine with an energy.*got RRBM"):
        rr.sample_bottom_machine(2, 2)
    with pytest.raises(ValueError, match="n_steps"):
        _net(RBM).sample_bottom_machine(2, 0)
    with pytest.raises(ValueError, match="n_samples"):
        _net(RBM).sample_bottom_machine(0, 2)


# ---------------------------------------------------------------------- the schedule
def _four_layers() -> DeepBeliefNet:
    layers = [RBM(n_components=3, n_iter=1, dtype="float64", random_state=0)] + [
        RBM(n_components=n, n_iter=1, dtype="float64", random_state=i) for i, n in enumerate((3, 2, 2), 1)]
    return DeepBeliefNet(layers).fit(_data(RBM))


class _CountingBar:
    def __init__(self):
        self.steps = []

    def update(self, n):
        self.steps.append(n)


def test_even_and_odd_layer_pairs_take_turns_and_the_bar_counts_sweeps(monkeypatch):
    dbn = _four_layers()
    layers = dbn.layers_
    pairs = []

    def refuse(lower, p_lower, upper, p_upper, y, x):
        pairs.append((layers.index(lower), layers.index(upper)))
        return torch.full((y.shape[0],), -np.inf, dtype=torch.float64)

    monkeypatch.setattr(dtm, "exchange_log_ratio", refuse)
    bar = _CountingBar()
    with torch.no_grad():
        v0 = torch.rand(5, D, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        _, stats_ = dtm.run_deep_tempering(layers, v0, 3, np.random.default_rng(0), bar)
    assert pairs == [(0, 1), (2, 3), (1, 2), (0, 1), (2, 3)]
    assert bar.steps == [1, 1, 1] and stats_.n_sweeps == 3
    np.testing.assert_array_equal(stats_.swap_rates, [0.0, 0.0, 0.0])


@pytest.mark.parametrize("log_r, swapped", [(np.inf, True), (-np.inf, False)])
def test_an_accepted_exchange_swaps_the_two_shared_space_states(monkeypatch, log_r, swapped):
    dbn = _four_layers()
    monkeypatch.setattr(dtm, "exchange_log_ratio", lambda *a: torch.full((a[-1].shape[0],), log_r, dtype=torch.float64))
    with torch.no_grad():
        v0 = torch.rand(6, D, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        chains = dtm._Chains(dbn.layers_, v0, np.random.default_rng(0))
        chains.parity = 1  # the pair (1, 2)
        chains.v[2] = 1.0 - chains.h[1]  # upper chains start from the codes below: make the two differ
        y, x = chains.h[1].clone(), chains.v[2].clone()
        chains.exchange()
    assert not torch.equal(y, x)
    torch.testing.assert_close(chains.h[1], x if swapped else y, rtol=0, atol=0)
    torch.testing.assert_close(chains.v[2], y if swapped else x, rtol=0, atol=0)
    assert chains.accepted.tolist() == [0, 6 if swapped else 0, 0] and chains.proposed.tolist() == [0, 6, 0]


def test_a_pair_never_proposed_reports_nan_without_a_warning():
    import warnings

    dbn = _four_layers()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dbn.sample_bottom_machine(4, 1)
    rates = dbn.last_deep_tempering_.swap_rates
    assert np.isnan(rates[1]) and not np.isnan(rates[0]) and not np.isnan(rates[2])


def _mixed_dtype_net(low: str, top: str) -> DeepBeliefNet:
    """A bottom and a top of different dtypes: each chain must keep its own layer's dtype."""
    layers = [RBM(n_components=H0, n_iter=1, dtype=low, random_state=0),
              RBM(n_components=H1, n_iter=1, dtype=top, random_state=1)]
    return DeepBeliefNet(layers).fit(_data(RBM))


@pytest.mark.parametrize("low, top", [("float32", "float64"), ("float64", "float32")])
def test_each_layers_chains_keep_that_layers_dtype_through_accepted_exchanges(monkeypatch, low, top):
    dbn = _mixed_dtype_net(low, top)
    want = [getattr(torch, low), getattr(torch, top)]
    monkeypatch.setattr(dtm, "exchange_log_ratio", lambda *a: torch.full((a[-1].shape[0],), np.inf, dtype=torch.float64))
    with torch.no_grad():
        chains = dtm._Chains(dbn.layers_, torch.tensor(_data(RBM)[:6], dtype=want[0]), np.random.default_rng(0))
        assert chains.v[1].dtype == want[1]  # the top starts from the bottom's codes, converted
        for _ in range(3):
            chains.sweep()
    assert chains.accepted[0] > 0
    assert [v.dtype for v in chains.v] == want and [h.dtype for h in chains.h] == want


def test_each_chain_draws_its_own_uniform_for_the_exchange():
    """Row i is accepted where log(u_i) < log_r_i, with one uniform per row from the numpy
    generator: checked against the same draws made by hand."""
    dbn = _net()
    with torch.no_grad():
        v0 = torch.rand(64, D, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
        chains = dtm._Chains(dbn.layers_, v0, np.random.default_rng(5))
        chains.v[1] = 1.0 - chains.h[0]  # the top starts from the codes below: make the two differ
        low, top = dbn.layers_
        log_r = dtm.exchange_log_ratio(low, chains.params[0], top, chains.params[1], chains.h[0], chains.v[1])
        y, x = chains.h[0].clone(), chains.v[1].clone()
        mirror = np.random.default_rng(5)
        expected = np.log(mirror.random(64)) < log_r.numpy()
        chains.exchange()
    assert 0 < expected.sum() < 64  # some rows swap, some do not: one shared uniform would do all or none
    assert chains.accepted[0] == expected.sum() and chains.proposed[0] == 64
    rows = torch.as_tensor(expected)[:, None]
    torch.testing.assert_close(chains.h[0], torch.where(rows, x, y), rtol=0, atol=0)
    assert chains.rng.random() == mirror.random()  # exactly 64 draws were taken
