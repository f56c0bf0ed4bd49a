"""BetaRBM on data of realistic width: centred training, weight decay, and the warnings for
data it cannot model."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from fastseq.boltzmann import BetaRBM, exact_log_partition


@pytest.fixture(scope="module")
def grey_digits():
    """Real digits, 2 x 2 blocks summed (196 grey inputs), dequantised and squeezed into [0.02, 0.98], with labels."""
    from fastseq.datasets import embedded_digits

    images, labels = embedded_digits()
    rows = np.random.default_rng(0).permutation(len(images))[:1200]
    grey = images[rows].reshape(-1, 14, 2, 14, 2).astype(np.float64).sum(axis=(2, 4))  # 0..1020
    noise = np.random.default_rng(1).random(grey.shape)
    return (0.02 + 0.96 * (grey + noise) / 1021.0).reshape(len(rows), -1).astype(np.float32), labels[rows]


def _quiet_fit(model, X):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # none of this module's own data should warn
        return model.fit(X)


def test_features_vary_and_classify_on_digits(grey_digits):
    # 196 inputs: before centring every hidden input was far below zero and transform gave zeros
    from sklearn.linear_model import LogisticRegression

    X, y = grey_digits
    m = _quiet_fit(BetaRBM(n_components=32, n_iter=3, optimizer="adam", learning_rate=0.01, batch_size=20,
                           random_state=0), X[:900])
    h = m.transform(X)
    assert h.std(axis=0).max() > 0.1 and h.std(axis=0).mean() > 0.02  # the hidden means vary across rows
    score = LogisticRegression(max_iter=500).fit(h[:900], y[:900]).score(h[900:], y[900:])
    assert score > 0.5  # chance is 0.1


def test_initial_hidden_input_is_centred_on_the_data(grey_digits):
    X, _ = grey_digits
    m = BetaRBM(n_components=16, n_iter=0, random_state=0).fit(X)
    pre = m._hidden_pre(torch.from_numpy(X)).double()
    np.testing.assert_allclose(pre.mean(0).numpy(), 0.0, atol=1e-3)


def test_centred_step_is_a_step_on_the_centred_bias():
    # the optimizer runs on (c' = c + mu_a.Wa + mu_b.Wb, Wa, Wb); c is what is stored
    X = np.random.default_rng(0).beta(2.0, 3.0, size=(40, 5))
    m = BetaRBM(n_components=3, n_iter=0, learning_rate=0.05, dtype="float64", random_state=0).fit(X)
    mu_a, mu_b = m._centres
    s = m.shapes()
    c_centred = m.params_["c"].detach() + mu_a @ s["Wa"] + mu_b @ s["Wb"]
    v = torch.from_numpy(m._prepare_visible(torch.from_numpy(X)).numpy())
    # the gradient of the positive phase alone, at fixed c': the same step by hand
    p = {k: t.detach().clone().requires_grad_() for k, t in m.params_.items()}
    cc = c_centred.clone().requires_grad_()
    wa, wb = torch.nn.functional.softplus(p["Wa_raw"]), torch.nn.functional.softplus(p["Wb_raw"])
    pre = cc + (torch.log(v) - mu_a) @ wa + (torch.log1p(-v) - mu_b) @ wb
    (-torch.nn.functional.softplus(pre).sum(1).mean()).backward()
    with torch.no_grad():
        want_wa = torch.nn.functional.softplus(p["Wa_raw"] - 0.05 * p["Wa_raw"].grad)
        want_wb = torch.nn.functional.softplus(p["Wb_raw"] - 0.05 * p["Wb_raw"].grad)
        want_c = (cc - 0.05 * cc.grad) - mu_a @ want_wa - mu_b @ want_wb
    f, _ = m._free_energy_pre(v)
    base = torch.log(v) @ (torch.nn.functional.softplus(m.params_["A_raw"]) - 1)
    base = base + torch.log1p(-v) @ (torch.nn.functional.softplus(m.params_["B_raw"]) - 1)
    m._opt.zero_grad()
    (f + base).mean().backward()  # minus the visible terms: the hidden part only, as above
    m._opt.step()
    got = m.shapes()
    np.testing.assert_allclose(got["Wa"].numpy(), want_wa.numpy(), rtol=1e-10)
    np.testing.assert_allclose(got["Wb"].numpy(), want_wb.numpy(), rtol=1e-10)
    np.testing.assert_allclose(m.params_["c"].detach().numpy(), want_c.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_weight_decay_shrinks_the_weights(optimizer):
    X = np.random.default_rng(0).beta(2.0, 5.0, size=(200, 12))
    kw = dict(n_components=6, n_iter=5, learning_rate=0.01, optimizer=optimizer, random_state=0)
    plain = BetaRBM(**kw).fit(X).shapes()
    decayed = BetaRBM(weight_decay=0.5, **kw).fit(X).shapes()
    for name in ("Wa", "Wb"):
        assert not torch.equal(plain[name], decayed[name])
        assert decayed[name].sum() < plain[name].sum()
    # only the weights: the visible shapes differ only through them, far less
    assert (decayed["Wa"].sum() + decayed["Wb"].sum()) < 0.9 * (plain["Wa"].sum() + plain["Wb"].sum())


def test_samples_keep_the_spread_of_continuous_data():
    # a stand-in of the faces codes' shape (160 rows x 288 units in [0.05, 0.95], correlated)
    rng = np.random.default_rng(0)
    z = rng.normal(size=(160, 8)) @ rng.normal(size=(8, 288)) / np.sqrt(8)
    X = 0.05 + 0.9 / (1 + np.exp(-0.8 * z))
    m = _quiet_fit(BetaRBM(n_components=64, n_iter=60, batch_size=16, optimizer="adam", learning_rate=0.01,
                           persistent=False, random_state=0), X)
    g = m.sample(64, n_steps=300, start=rng.random((64, 288)))
    ratio = g.std(0).mean() / X.std(0).mean()
    assert 0.5 < ratio < 2.0


def test_warns_about_values_at_zero_and_one():
    X = (np.random.default_rng(0).random((60, 10)) < 0.5).astype(np.float64)  # binary: all on the clamp
    with pytest.warns(UserWarning, match=r"100\.0% of the values passed to BetaRBM lie within eps=0\.001 of 0 or 1.*"
                                         r"use RBM"):
        BetaRBM(n_components=4, n_iter=1, random_state=0).fit(X)
    with pytest.warns(UserWarning, match="clamped"):
        BetaRBM(n_components=4, random_state=0).partial_fit(X)
    inside = np.clip(X, 0.1, 0.9)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        BetaRBM(n_components=4, n_iter=1, random_state=0).fit(inside)


def test_warns_when_the_features_do_not_vary():
    X = np.full((30, 6), 0.3)  # every row the same: every feature is the same
    with pytest.warns(UserWarning, match="hidden units do not respond to the data"):
        BetaRBM(n_components=4, n_iter=2, random_state=0).fit(X)


def test_the_stored_hidden_bias_is_the_energys():
    # the energy (and so log Z) of a machine is what its stored parameters say, centring or not
    X = np.random.default_rng(0).beta(2.0, 3.0, size=(50, 4))
    m = BetaRBM(n_components=3, n_iter=2, learning_rate=0.02, random_state=0).fit(X)
    p = m._params64()
    assert torch.equal(p["c"], m.params_["c"].detach().double())
    assert np.isfinite(exact_log_partition(m))


def test_a_loaded_machine_trains_on(tmp_path):
    X = np.random.default_rng(0).beta(2.0, 3.0, size=(50, 4))
    m = BetaRBM(n_components=3, n_iter=2, learning_rate=0.02, random_state=0).fit(X)
    m.save(tmp_path / "beta.safetensors")
    back = BetaRBM.load(tmp_path / "beta.safetensors")
    before = back.shapes()["Wa"].clone()
    back.partial_fit(X[:10])  # centred on this first mini-batch: it has no training data of its own
    assert not torch.equal(back.shapes()["Wa"], before) and back._parameters_ok()


def test_the_model_samples_below_eps():
    X = np.random.default_rng(0).beta(0.3, 0.3, size=(80, 6))  # U-shaped: draws land on 0 or 1 in float32
    m = BetaRBM(n_components=4, n_iter=2, k=3, learning_rate=0.02, eps=0.01, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # many values within eps of 0 or 1, as intended here
        m.fit(X)
    s = m.sample(50, n_steps=20, return_means=False)
    assert np.all(np.isfinite(s)) and np.all((s >= 0) & (s <= 1))
    assert (s < 0.01).mean() > 0.05  # the model's own draws are not clamped to [eps, 1 - eps]
