"""What the Beta-unit machines of ``fastseq.boltzmann._beta`` do, checked exactly: BetaRBM's
starting parameters recomputed from their formula with a copy of its generator, the warnings'
thresholds (clamped data, unresponsive hidden units), the range check's messages, which
parameters count as degenerate or train after loading, the centring of a loaded machine, the
clamp bookkeeping of ``_log_means``, RRBM's random chain starts and the centred optimizer's
``zero_grad``.

Every test builds its own machines (no shared fixtures).
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from fastseq.boltzmann import _base
from fastseq.boltzmann import BetaRBM, RRBM

D, H = 5, 3


def _beta_data(n=30, d=D, seed=0):
    return np.random.default_rng(seed).beta(2.0, 3.0, size=(n, d))


def _fitted(X=None, **kw):
    kw = {"n_components": H, "n_iter": 0, "dtype": "float64", "random_state": 0, **kw}
    return BetaRBM(**kw).fit(_beta_data() if X is None else X)


def _softplus_inv(x):
    return x + np.log(-np.expm1(-x))


# ---------------------------------------------------------------- starting parameters


def test_beta_rbm_starts_at_the_moment_formula_with_seeded_lognormal_weights():
    """Clamps of nu to [0.05, 1e3] and of a, b at 0.02, noise exp(s z - s^2 / 2) with s = 100 init_scale,
    weights (2 share / h) a noise, biases (1 - share) a, recomputed with a copy of the generator."""
    rng = np.random.default_rng(1)
    n = 40
    X = np.column_stack([
        np.where(np.arange(n) % 2, 0.01, 0.99),       # var ~ m(1 - m): nu clamped up to 0.05, b to 0.02
        np.full(n, 0.5),                              # no variance: var 1e-6, nu clamped down to 1e3
        0.9 + 0.002 * rng.random(n),                  # narrow near 1: nu at 1e3, (1 - m) nu ~ 100
        rng.beta(0.9, 0.3, size=n).clip(0.01, 0.99),  # wide near 1: b below 1
        np.where(np.arange(n) % 5, 0.99, 0.01),       # mean ~ 0.8, nu ~ 0.06: b clamped up to 0.02
    ])
    m = BetaRBM(n_components=H, n_iter=0, init_weight=0.3, init_scale=0.004, dtype="float64", random_state=7)
    states = []
    original = m._init_params
    m._init_params = lambda mean, var: (states.append(m._tgen.get_state()), original(mean, var))[1]
    m.fit(X)
    g = torch.Generator()
    g.set_state(states[0])
    Xc = np.clip(X, 1e-3, 1 - 1e-3)
    mean, var = Xc.mean(0), np.maximum((Xc * Xc).mean(0) - Xc.mean(0) ** 2, 1e-6)
    nu = np.clip(mean * (1 - mean) / var - 1, 0.05, 1e3)
    assert nu[0] == 0.05 and nu[1] == 1e3
    a, b = np.maximum(mean * nu, 0.02), np.maximum((1 - mean) * nu, 0.02)
    assert b[4] == 0.02 and b[3] < 1.0 and a[4] > 0.02
    s = 0.4
    za = torch.randn(D, H, generator=g, dtype=torch.float64).numpy()
    zb = torch.randn(D, H, generator=g, dtype=torch.float64).numpy()
    wa = (2 * 0.3 / H) * a[:, None] * np.exp(s * za - s * s / 2)
    wb = (2 * 0.3 / H) * b[:, None] * np.exp(s * zb - s * s / 2)
    p = {k: v.detach().numpy() for k, v in m.params_.items()}
    np.testing.assert_allclose(p["Wa_raw"], _softplus_inv(wa), rtol=1e-10)
    np.testing.assert_allclose(p["Wb_raw"], _softplus_inv(wb), rtol=1e-10)
    np.testing.assert_allclose(p["A_raw"], _softplus_inv(0.7 * a), rtol=1e-10)
    np.testing.assert_allclose(p["B_raw"], _softplus_inv(0.7 * b), rtol=1e-10)
    mu_a, mu_b = np.log(Xc).mean(0), np.log1p(-Xc).mean(0)
    np.testing.assert_allclose(p["c"], -(mu_a @ wa + mu_b @ wb), rtol=1e-10)


# ---------------------------------------------------------------- warnings after fit


def _warnings_of(fn):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn()
    return [str(w.message) for w in caught]


def test_check_features_samples_its_rows_with_seed_0():
    X = _beta_data(n=1010, d=2)
    m = _fitted(X[:20])
    seen = []
    m._map_valid = lambda rows, fn: (seen.append(rows), np.full((len(rows), H), 0.5))[1]
    _warnings_of(lambda: m._check_features(X))
    np.testing.assert_array_equal(seen[0], X[np.sort(np.random.default_rng(0).permutation(1010)[:1000])])


def test_check_features_does_not_warn_about_a_single_row():
    m = _fitted()
    assert not [w for w in _warnings_of(lambda: m._check_features(_beta_data(n=1))) if "do not respond" in w]


def test_check_features_warns_about_two_identical_rows():
    m = _fitted()
    X = np.repeat(_beta_data(n=1), 2, axis=0)
    assert [w for w in _warnings_of(lambda: m._check_features(X)) if "do not respond" in w]


def test_check_features_does_not_warn_at_a_spread_of_exactly_the_threshold():
    m = _fitted()
    m._map_valid = lambda rows, fn: np.array([[0.0, 0.5, 0.5], [0.002, 0.5, 0.5]])
    assert not [w for w in _warnings_of(lambda: m._check_features(_beta_data(n=2))) if "do not respond" in w]


def _with_edges(count, n=20, d=5):
    X = _beta_data(n=n, d=d).clip(0.1, 0.9)
    X.flat[:count] = 0.0
    return X


def test_warn_clamped_is_silent_at_exactly_one_percent_and_warns_above():
    quiet = _warnings_of(lambda: _fitted(_with_edges(1)))
    assert not [w for w in quiet if "are clamped" in w]
    loud = _warnings_of(lambda: _fitted(_with_edges(2)))
    assert [w for w in loud if "2.0% of the values passed to BetaRBM" in w]


def test_later_partial_fit_calls_do_not_warn_about_clamped_values():
    m = BetaRBM(n_components=H, dtype="float64", random_state=0)
    X = _beta_data()
    m.partial_fit(X)
    assert not [w for w in _warnings_of(lambda: m.partial_fit(X)) if "are clamped" in w]


def test_log_means_counts_values_on_either_edge_across_chunks(monkeypatch):
    m = _fitted()
    X = _beta_data(n=8, d=D).clip(0.1, 0.9)
    X[0, 0], X[3, 1], X[7, 2] = 1e-3, 1.0 - 1e-3, 0.0  # exactly eps, exactly 1 - eps, below
    monkeypatch.setattr(_base, "_CHUNK_ELEMENTS", 2 * D)  # two rows a chunk
    mu_a, mu_b, share = m._log_means(X)
    assert share == 3 / (8 * D)
    Xc = X.clip(1e-3, 1 - 1e-3)
    np.testing.assert_allclose(mu_a.numpy(), np.log(Xc).mean(0), rtol=1e-12)
    np.testing.assert_allclose(mu_b.numpy(), np.log1p(-Xc).mean(0), rtol=1e-12)


def test_log_means_of_one_clamped_value_is_all_on_the_edge():
    m = _fitted()
    assert m._log_means(np.array([[0.0]]))[2] == 1.0


# ---------------------------------------------------------------- range check


def test_check_range_names_negative_values_in_scikit_learns_words():
    with pytest.raises(ValueError, match=r"^Negative values in data passed to BetaRBM"):
        BetaRBM(n_components=H).fit(-_beta_data())


def test_check_range_reports_the_stored_values_of_sparse_input():
    X = sp.csr_matrix(np.array([[0.0, 1.5], [2.0, 0.0]]))
    with pytest.raises(ValueError, match=r"^Values above 1 in data .* got values in \[1\.5, 2\.0\]"):
        BetaRBM(n_components=H).fit(X)


# ---------------------------------------------------------------- degenerate and trained parameters


@pytest.mark.parametrize("name,value", [("A_raw", -1e4), ("B_raw", -1e4), ("c", float("nan"))])
def test_parameters_not_ok_with_a_zero_shape_or_a_nan(name, value):
    """softplus(-1e4) underflows to exactly 0: Beta(0, b) has no density."""
    m = _fitted()
    assert m._parameters_ok()
    with torch.no_grad():
        m.params_[name][0] = value
    assert not m._parameters_ok()


def test_loaded_beta_rbm_trains_every_parameter(tmp_path):
    path = tmp_path / "beta.fsq"
    _fitted().save(path)
    loaded = BetaRBM.load(path)
    assert set(loaded.params_) == {"Wa_raw", "Wb_raw", "A_raw", "B_raw", "c"}
    assert all(p.requires_grad for p in loaded.params_.values())
    trained = {id(p) for group in loaded._opt.param_groups for p in group["params"]}
    assert trained == {id(p) for p in loaded.params_.values()}


def test_loaded_beta_rbm_centres_on_its_first_mini_batch_only(tmp_path):
    path = tmp_path / "beta.fsq"
    _fitted().save(path)
    loaded = BetaRBM.load(path)
    first, second = _beta_data(n=10, seed=1), _beta_data(n=10, seed=2)
    loaded.partial_fit(first)
    mu_a, mu_b = (t.numpy() for t in loaded._centres)
    np.testing.assert_allclose(mu_a, np.log(first).mean(0), rtol=1e-12)
    np.testing.assert_allclose(mu_b, np.log1p(-first).mean(0), rtol=1e-12)
    loaded.partial_fit(second)
    np.testing.assert_array_equal(loaded._centres[0].numpy(), mu_a)
    np.testing.assert_array_equal(loaded._centres[1].numpy(), mu_b)


def test_centred_step_zero_grad_clears_the_gradients_to_none():
    m = BetaRBM(n_components=H, dtype="float64", random_state=0).partial_fit(_beta_data())
    assert all(p.grad is not None for p in m.params_.values())
    m._opt.zero_grad()
    assert all(p.grad is None for p in m.params_.values())


# ---------------------------------------------------------------- RRBM chain starts


def test_rrbm_random_visible_is_uniform_from_the_models_generator_in_its_dtype():
    m = RRBM(n_components=H, n_iter=0, dtype="float64", random_state=0).fit(_beta_data())
    g = torch.Generator()
    g.set_state(m._tgen.get_state())
    torch.manual_seed(123)  # the global generator stands elsewhere
    v = m._random_visible(4)
    assert v.dtype == torch.float64
    np.testing.assert_array_equal(v.numpy(), torch.rand(4, D, generator=g, dtype=torch.float64).numpy())
