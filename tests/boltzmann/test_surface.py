"""Every Boltzmann machine offers one scikit-learn surface, and its public conditionals
give what the private machinery computes."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError

from fastseq.boltzmann import (R3BM, RBM, RRBM, BetaRBM, BoltzmannMachine, GaussianRBM, average_log_likelihood,
                               exact_log_partition, pseudo_likelihood)

MACHINES = (RBM, GaussianRBM, RRBM, R3BM, BetaRBM)
METHODS = ("fit", "partial_fit", "transform", "fit_transform", "score_samples", "free_energy", "gibbs", "sample",
           "reconstruct", "hidden_mean", "visible_mean", "sample_hidden", "sample_visible", "inverse_transform", "save",
           "load")
ATTRIBUTES = ("components_", "intercept_hidden_", "intercept_visible_", "h_samples_")
D, H, N = 7, 4, 30


@pytest.fixture(scope="module")
def data():
    return np.random.default_rng(0).uniform(0.05, 0.95, (N, D))


@pytest.fixture(scope="module", params=MACHINES, ids=lambda c: c.__name__)
def machine(request, data):
    return request.param(n_components=H, n_iter=3, batch_size=10, dtype="float64", random_state=0).fit(data)


def _private_hidden_pre(m, X):
    return m._free_energy_pre(m._prepare_visible(torch.tensor(X)))[1]


@pytest.mark.parametrize("cls", (BoltzmannMachine, *MACHINES), ids=lambda c: c.__name__)
def test_every_class_has_the_same_surface(cls):
    for name in METHODS:
        assert callable(getattr(cls, name, None)), f"{cls.__name__}.{name}"
    for name in ATTRIBUTES:
        assert isinstance(getattr(cls, name, None), property), f"{cls.__name__}.{name}"
    # one definition of each conditional, in the base: the machines differ only in their hooks
    # no method argument beyond X/y that scikit-learn would treat as routed metadata (it then adds
    # set_<method>_request methods, and the documentation build documents their docstrings)
    assert not [m for m in dir(cls) if m.startswith("set_") and m.endswith("_request")]
    for name in ("hidden_mean", "visible_mean", "sample_hidden", "sample_visible", "inverse_transform", *ATTRIBUTES):
        assert getattr(cls, name) is getattr(BoltzmannMachine, name), f"{cls.__name__}.{name}"


def test_a_machine_is_a_code_model_as_it_is(machine, data):
    from fastseq.conv import CodeModel

    assert isinstance(machine, CodeModel)
    h = machine.transform(data[:5])
    np.testing.assert_array_equal(machine.inverse_transform(h), machine.visible_mean(h))
    assert getattr(machine, "scaling", "unit") == ("standard" if isinstance(machine, GaussianRBM) else "unit")


def test_fitted_attributes_are_numpy_of_the_documented_shapes(machine, data):
    assert machine.n_features_in_ == D
    assert isinstance(machine.components_, np.ndarray) and machine.components_.shape == (H, D)
    assert isinstance(machine.intercept_hidden_, np.ndarray) and machine.intercept_hidden_.shape == (H,)
    assert isinstance(machine.intercept_visible_, np.ndarray) and machine.intercept_visible_.shape == (D,)
    chains = machine.h_samples_
    assert isinstance(chains, np.ndarray) and chains.shape == (10, H) and chains.dtype == np.float64
    np.testing.assert_array_equal(chains, machine._h_chain.numpy())


def test_h_samples_is_a_copy_that_later_training_leaves_alone(data):
    m = RBM(n_components=H, n_iter=1, batch_size=10, random_state=0).fit(data)
    chains = m.h_samples_
    before = chains.copy()
    chains[:] = 7.0
    assert not np.any(m._h_chain.numpy() == 7.0)
    again = m.h_samples_
    for _ in range(5):
        m.partial_fit(data[:10])
    np.testing.assert_array_equal(again, before)
    assert not np.array_equal(m.h_samples_, before)  # the chains themselves moved on


def test_parameters_behind_components_and_intercepts(machine):
    p = {k: v.detach().numpy() for k, v in machine.params_.items()}
    np.testing.assert_array_equal(machine.intercept_hidden_, p["c"])
    if isinstance(machine, BetaRBM):
        s = {k: v.numpy() for k, v in machine.shapes().items()}
        np.testing.assert_allclose(machine.components_, (s["Wa"] - s["Wb"]).T)
        np.testing.assert_allclose(machine.intercept_visible_, np.log(s["A"]) - np.log(s["B"]))
    else:
        np.testing.assert_array_equal(machine.components_, p["W"].T)
        np.testing.assert_array_equal(machine.intercept_visible_, p["b"])
    # the documented meaning of intercept_visible_: the visible means with every hidden unit off
    off = machine.visible_mean(np.zeros((1, H)))[0]
    expected = machine.intercept_visible_
    if not isinstance(machine, GaussianRBM):
        expected = 1.0 / (1.0 + np.exp(-expected))
    np.testing.assert_allclose(off, expected, rtol=1e-10)


def test_conditionals_agree_with_the_private_methods(machine, data):
    X = data.copy()
    pre = _private_hidden_pre(machine, X)
    with torch.no_grad():
        means = machine._hidden_mean(pre).numpy()
    np.testing.assert_array_equal(machine.hidden_mean(X), means)
    np.testing.assert_array_equal(machine.transform(X), means)
    h = np.random.default_rng(1).random((N, H))
    with torch.no_grad():
        np.testing.assert_array_equal(machine.visible_mean(h), machine._visible_mean(torch.tensor(h)).numpy())
    np.testing.assert_allclose(machine.visible_mean(machine.hidden_mean(X)), machine.reconstruct(X), rtol=1e-12)
    # the draws: the same random streams give the same values
    machine._setup_random()
    drawn_h = machine.sample_hidden(X)
    machine._setup_random()
    with torch.no_grad():
        np.testing.assert_array_equal(drawn_h, machine._sample_hidden(pre).numpy())
    machine._setup_random()
    drawn_v = machine.sample_visible(h)
    machine._setup_random()
    with torch.no_grad():
        np.testing.assert_array_equal(drawn_v, machine._sample_visible(torch.tensor(h)).numpy())
    assert drawn_h.shape == (N, H) and drawn_v.shape == (N, D)
    assert np.all((drawn_h >= 0) & (drawn_h <= 1))
    np.testing.assert_array_equal(X, data)  # the caller's rows untouched


def test_score_samples_is_the_documented_score(machine, data):
    scores = machine.score_samples(data)
    assert scores.shape == (N,) and np.all(np.isfinite(scores))
    if isinstance(machine, RBM):
        np.testing.assert_array_equal(scores, pseudo_likelihood(machine, data))
    else:
        np.testing.assert_array_equal(scores, -machine.free_energy(data))
    if isinstance(machine, (BetaRBM, GaussianRBM)):  # log p(v) + log Z: minus log Z, the log-likelihood
        log_z = exact_log_partition(machine)
        assert float(np.mean(scores)) - log_z == pytest.approx(average_log_likelihood(machine, data, log_z), rel=1e-12)


def test_conditionals_keep_the_input_dtype_and_take_torch_tensors(machine, data):
    h32 = np.random.default_rng(2).random((5, H)).astype(np.float32)
    assert machine.visible_mean(h32).dtype == np.float32
    assert machine.hidden_mean(data[:5].astype(np.float32)).dtype == np.float32
    np.testing.assert_array_equal(machine.visible_mean(torch.from_numpy(h32)), machine.visible_mean(h32))
    np.testing.assert_array_equal(machine.hidden_mean(torch.from_numpy(data)), machine.hidden_mean(data))


def test_hidden_inputs_are_checked(machine):
    with pytest.raises(ValueError, match=rf"Expected h to have {H} columns.*got shape \(2, 3\)"):
        machine.visible_mean(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"Expected h to hold hidden values in \[0, 1\]"):
        machine.sample_visible(np.full((2, H), 1.5))
    with pytest.raises(ValueError, match="NaN"):
        machine.visible_mean(np.full((2, H), np.nan))
    with pytest.raises(ValueError, match="Expected h to be an N x H array"):
        machine.visible_mean([[0.5] * H, [0.5]])
    with pytest.raises(ValueError, match="X has 3 features"):
        machine.hidden_mean(np.zeros((2, 3)))


@pytest.mark.parametrize("cls", MACHINES, ids=lambda c: c.__name__)
def test_unfitted_machines_say_so(cls):
    m = cls(n_components=H)
    for call in (lambda: m.visible_mean(np.zeros((1, H))), lambda: m.hidden_mean(np.zeros((1, D))),
                 lambda: m.score_samples(np.zeros((1, D))), lambda: m.components_, lambda: m.h_samples_):
        with pytest.raises(NotFittedError):
            call()
    assert not hasattr(m, "components_") and not hasattr(m, "h_samples_")
