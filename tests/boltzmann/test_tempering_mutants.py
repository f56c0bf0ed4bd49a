"""Parallel tempering checked exactly: the tempered visible draws of each machine against the
formulas (with non-unit sigma and beta != 1) and twin random streams, the ladder rules, the
burn-in's schedule of re-placements, the swap bookkeeping and the training windows.

Every test builds its own machines (no shared fixtures), so each one is credited with the
functions it calls.
"""
from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.special import erfcinv

from fastseq.boltzmann import _sampling_nb as nbs
from fastseq.boltzmann import BetaRBM, GaussianRBM, RBM
from fastseq.boltzmann import _tempering as pt

D, H = 5, 4


def _machine(cls=RBM, seed=0, **kw):
    """A float64 machine with weights of realistic size (|W| ~ 1), so that the hidden states matter."""
    rng = np.random.default_rng(seed)
    X = (rng.beta(2, 3, size=(40, D)) if cls is BetaRBM else
         rng.normal(size=(40, D)) if cls is GaussianRBM else (rng.random((40, D)) < 0.4).astype(float))
    m = cls(n_components=H, n_iter=0, dtype="float64", random_state=seed, **kw).fit(X)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in m.params_.items():
            if name in ("W", "c", "Wa_raw", "Wb_raw"):
                p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) + (0.5 if name.endswith("_raw") else 0.0))
    return m


def _hidden_rows(n, seed=2):
    return torch.from_numpy((np.random.default_rng(seed).random((n, H)) < 0.5).astype(np.float64))


def _beta_column(n_per_rung, betas=(1.0, 0.6, 0.25)):
    return torch.tensor(np.repeat(betas, n_per_rung)[:, None])


# ---------------------------------------------------------------- the tempered paths


def test_base_path_pre_is_the_machines_hidden_pre_activation():
    m = _machine()
    v = torch.from_numpy((np.random.default_rng(1).random((6, D)) < 0.5).astype(np.float64))
    torch.testing.assert_close(pt._Path(m).pre(v), m._free_energy_pre(v)[1], rtol=0, atol=0)


def _gaussian_with_sigmas():
    """A GaussianRBM with a different sigma per unit; its path and detached parameters."""
    m = _machine(GaussianRBM)
    s = torch.tensor([0.4, 0.7, 1.3, 2.0, 3.0], dtype=torch.float64)
    with torch.no_grad():
        m.params_["log_sigma"].copy_(torch.log(s))
    return m, s, pt.path_for(m), {k: v.detach() for k, v in m.params_.items()}


def test_gaussian_path_divides_by_sigma_in_pre_and_visible_term():
    _, s, path, p = _gaussian_with_sigmas()
    v = torch.from_numpy(np.random.default_rng(1).normal(size=(6, D)))
    torch.testing.assert_close(path.pre(v), p["c"] + (v / s) @ p["W"])
    torch.testing.assert_close(path.visible_term(v), (((v - p["b"]) / s) ** 2).sum(1) / 2)


def test_gaussian_tempered_visible_is_the_mean_plus_sigma_noise_over_root_beta_from_the_machine_generator():
    m, s, path, p = _gaussian_with_sigmas()
    h, beta = _hidden_rows(12), _beta_column(4)
    twin = torch.Generator()
    twin.set_state(m._tgen.get_state())
    v = path.visible(h, beta)
    noise = torch.randn(12, D, generator=twin, dtype=torch.float64)
    torch.testing.assert_close(v, p["b"] + s * (h @ p["W"].T) + s * noise / torch.sqrt(beta), rtol=0, atol=1e-12)


def test_beta_tempered_visible_draws_beta_of_one_plus_beta_times_the_shapes_minus_one():
    m = _machine(BetaRBM)
    path = pt.path_for(m)
    A, B, Wa, Wb = (F.softplus(m.params_[k + "_raw"]).detach() for k in ("A", "B", "Wa", "Wb"))
    h, beta = _hidden_rows(12), _beta_column(4)
    a = 1 + beta * (A + h @ Wa.T - 1)
    b = 1 + beta * (B + h @ Wb.T - 1)
    assert (h @ Wa.T).abs().max() > 1 and (h @ Wb.T).abs().max() > 1
    twin = copy.deepcopy(m._streams)
    v = path.visible(h, beta)
    expected = m._prepare_sample(torch.from_numpy(nbs.beta_ab(a.numpy(), b.numpy(), twin)))
    torch.testing.assert_close(v, expected, rtol=0, atol=0)


# ---------------------------------------------------------------- the ladder


def test_check_ladder_gives_float64_for_a_ladder_of_ints():
    arr = pt.check_ladder("betas", [1])
    assert arr.dtype == np.float64 and arr.tolist() == [1.0]


def test_ladder_settings_name_betas_and_refuse_bools_and_floats():
    with pytest.raises(ValueError, match=r"^Expected betas to start at 1"):
        pt.ladder_settings(None, [1.0, 1.5])
    for bad in (True, np.True_, 2.5, 0):
        with pytest.raises(ValueError, match="n_temperatures to be a positive integer"):
            pt.ladder_settings(bad, None)


def test_ladder_settings_adapt_from_two_rungs_only():
    one, keep1, adapt1 = pt.ladder_settings(1, None)
    two, keep2, adapt2 = pt.ladder_settings(2, None)
    assert (one.tolist(), keep1, adapt1) == ([1.0], 1, False)
    assert (two.tolist(), keep2, adapt2) == ([1.0, pt.BETA_MIN], 2, True)
    auto, keep, adapt = pt.ladder_settings(None, None)
    assert len(auto) == pt.START_RUNGS and keep is None and adapt


def test_respace_keeps_two_rung_ladders_open_to_more_rungs():
    new = pt.respace(np.array([1.0, 0.5]), np.array([0.01]))
    np.testing.assert_allclose(new, 0.5 ** (np.arange(4) / 3))


def test_respace_clips_rates_of_one_so_that_equal_rates_keep_the_ladder():
    """A pair that always swaps (rate 1) counts as rate 0.995: equal steps, not zero-length
    ones that collapse the middle rungs onto the ends."""
    lad = np.array([1.0, 0.5, 0.25])
    np.testing.assert_allclose(pt.respace(lad, np.array([1.0, 1.0]), 3), lad, rtol=1e-12)
    step = erfcinv(np.array([0.995, 0.3]))
    expected = np.exp(np.interp(step.sum() / 2, [0.0, step[0], step.sum()], np.log(lad)))
    np.testing.assert_allclose(pt.respace(lad, np.array([1.0, 0.3]), 3), [1.0, expected, 0.25], rtol=1e-12)


def test_respace_counts_untried_pairs_at_the_target_rate():
    lad = np.array([1.0, 0.5, 0.25])
    np.testing.assert_array_equal(pt.respace(lad, np.array([np.nan, 0.1]), 3),
                                  pt.respace(lad, np.array([pt.TARGET_RATE, 0.1]), 3))


def test_respace_chooses_one_plus_the_ceiling_of_the_length_rungs_and_at_least_two():
    """Rates 0.3 and 0.01 give a length of (erfcinv(0.3) + erfcinv(0.01)) / erfcinv(0.3) = 3.48
    target steps: 1 + 4 rungs. High rates ask for fewer than two, and get two."""
    assert len(pt.respace(np.array([1.0, 0.5, 0.25]), np.array([0.3, 0.01]))) == 5
    assert pt.respace(pt.geometric_ladder(4), np.full(3, 0.9)).tolist() == [1.0, pt.BETA_MIN]


# ---------------------------------------------------------------- the sampler's burn-in


class _Bar:
    def __init__(self):
        self.updates = []

    def update(self, n):
        self.updates.append(n)


@pytest.mark.parametrize("n_temperatures,betas,n_steps,at", [
    (None, None, 3, []),                       # no burn-in: no re-placement
    (None, [1.0, 0.7, 0.4, 0.2], 40, []),      # an explicit ladder is kept as given
    (1, None, 40, []),                         # one rung: nothing to adapt
    (2, None, 40, [10]),                       # burn-in of 10: one round
    (None, None, 80, [10, 20]),                # burn-in of 20: two rounds of 10
    (3, None, 360, [11, 22, 33, 45, 56, 67, 78, 90]),  # burn-in of 90: at most 8 rounds
])
def test_run_sampler_replaces_the_ladder_in_rounds_and_counts_one_bar_step_a_sweep(
        monkeypatch, n_temperatures, betas, n_steps, at):
    m = _machine()
    bar, calls, respace = _Bar(), [], pt.respace
    monkeypatch.setattr(pt, "respace", lambda lad, rates, n_rungs=None: (
        calls.append((len(bar.updates), n_rungs)) or respace(lad, rates, n_rungs)))
    v0 = torch.from_numpy((np.random.default_rng(1).random((3, D)) < 0.5).astype(np.float64))
    with torch.no_grad():
        h, stats = pt.run_sampler(m, v0, n_steps, n_temperatures, betas, bar)
    assert calls == [(sweeps, n_temperatures) for sweeps in at]
    assert bar.updates == [1] * n_steps
    assert stats.n_sweeps == n_steps - (at[-1] if at else 0) and h.shape == (3, H)
    if betas is not None:
        assert stats.betas.tolist() == betas


def test_run_sampler_seeds_its_swaps_from_the_machine_generator():
    m = _machine()
    twin = copy.deepcopy(m._rng)
    v0 = torch.from_numpy((np.random.default_rng(1).random((3, D)) < 0.5).astype(np.float64))
    with torch.no_grad():
        pt.run_sampler(m, v0, 5, None, [1.0, 0.5], _Bar())
    twin.integers(1 << 63)
    assert m._rng.random() == twin.random()


# ---------------------------------------------------------------- the replicas


def _replicas(betas, n_chains=3, **kw):
    m = _machine(**kw)
    v = torch.from_numpy((np.random.default_rng(1).random((len(betas) * n_chains, D)) < 0.5).astype(np.float64))
    return pt.Replicas(m, np.asarray(betas, np.float64), v, np.random.default_rng(0))


def test_swaps_start_with_the_even_pairs_and_try_one_parity_at_a_time():
    rep = _replicas(pt.geometric_ladder(5))
    assert rep.parity == 0
    with torch.no_grad():
        rep.sweep()
        assert rep.attempted.tolist() == [1, 0, 1, 0] and rep.parity == 1
        rep.sweep()
    assert rep.attempted.tolist() == [1, 1, 1, 1] and rep.parity == 0


def test_rates_of_untried_pairs_are_nan_without_a_warning():
    rep = _replicas([1.0, 0.5, 0.25])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(rep.rates()).all() and rep.rates().shape == (2,)


def test_swap_moves_the_states_when_every_chain_swaps():
    """Rung 0 holds v = 0 (energy 0) and rung 1 v = 1 (energy -sum b < 0): the lower energy
    always moves to beta = 1, so every row changes place and must be moved."""
    rep = _replicas([1.0, 0.5], n_chains=4)
    with torch.no_grad():
        rep.path.W.zero_()
        rep.path.c.zero_()
        rep.path.b.fill_(1.0)
    rep.v = torch.cat([torch.zeros(4, D), torch.ones(4, D)]).double()
    rep.h = torch.cat([torch.ones(4, H), torch.zeros(4, H)]).double()
    rep.swap(rep.path.pre(rep.v))
    assert rep.accepted.tolist() == [4]
    torch.testing.assert_close(rep.top(rep.v), torch.ones(4, D, dtype=torch.float64))
    torch.testing.assert_close(rep.top(rep.h), torch.zeros(4, H, dtype=torch.float64))
    torch.testing.assert_close(rep.v[4:], torch.zeros(4, D, dtype=torch.float64))


@pytest.mark.parametrize("new,near", [([1.0, 0.6, 0.3], [0, 1, 2]), ([1.0, 0.55, 0.45, 0.26], [0, 1, 1, 2])])
def test_set_betas_gives_each_new_rung_the_states_of_the_nearest_old_rung(new, near):
    rep = _replicas([1.0, 0.5, 0.25], n_chains=2)
    v, h = rep.v.clone(), torch.arange(6 * H, dtype=torch.float64).reshape(6, H)
    rep.h = h.clone()
    rep.accepted[:] = 1
    rep.set_betas(np.array(new))
    rows = [m * 2 + n for m in near for n in range(2)]
    torch.testing.assert_close(rep.v, v[rows], rtol=0, atol=0)
    torch.testing.assert_close(rep.h, h[rows], rtol=0, atol=0)
    torch.testing.assert_close(rep.beta_col[:, 0], torch.tensor(np.repeat(new, 2)))
    assert rep.accepted.tolist() == [0] * (len(new) - 1)


# ---------------------------------------------------------------- training windows


def test_training_ladder_moves_every_adapt_every_updates_and_reports_the_last_full_window():
    m = _machine(n_chains=5, tempering=3)
    rep = m._replicas
    first = rep.betas.copy()
    assert m._pt_updates == 0 and pt.updates_before_adapting(m) == pt.ADAPT_EVERY == 50
    with torch.no_grad():
        for _ in range(4):
            rep.sweep()
    pt.count_updates(m, 20)
    assert pt.updates_before_adapting(m) == 30 and rep.n_sweeps == 4
    np.testing.assert_array_equal(rep.betas, first)
    assert pt.training_stats(m).n_sweeps == 4  # no full window yet: the current one
    rep.accepted[:], rep.attempted[:] = [9, 1], [2, 2]
    pt.count_updates(m, 30)
    assert pt.updates_before_adapting(m) == 50 and rep.n_sweeps == 0
    np.testing.assert_allclose(rep.betas, pt.respace(first, np.array([0.9, 0.1]), 3))
    assert not np.allclose(rep.betas, first)
    with torch.no_grad():
        rep.sweep()
    stats = pt.training_stats(m)
    assert stats is m._pt_last and stats.n_sweeps == 4
    np.testing.assert_array_equal(stats.betas, first)
    np.testing.assert_allclose(stats.swap_rates, [0.9, 0.1])
