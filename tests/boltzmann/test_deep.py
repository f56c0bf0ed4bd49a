"""DeepBeliefNet: greedy training equals fitting the machines by hand, generation and
interpolation, the likelihood bound against exact enumeration, save/load, scikit-learn's checks,
and features that classify the embedded digits."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError
from sklearn.utils import check_random_state
from sklearn.utils.estimator_checks import parametrize_with_checks

import fastseq
from fastseq._util import files
from fastseq.boltzmann import R3BM, RBM, RRBM, BetaRBM, DeepBeliefNet, GaussianRBM
from fastseq.boltzmann._base import load_rbm
from fastseq.boltzmann.deep import _free_energy64, _log_conditional, load_dbn

D, N = 12, 40
BOTTOMS = (RBM, GaussianRBM, BetaRBM, RRBM, R3BM)


@pytest.fixture(scope="module")
def X():
    return np.random.default_rng(0).uniform(0.05, 0.95, (N, D))


@pytest.fixture(scope="module")
def binary():
    # three prototypes with 10% of the bits flipped: data with structure for a machine to learn
    rng = np.random.default_rng(0)
    prototypes = rng.random((3, D)) < 0.5
    return (prototypes[np.arange(N) % 3] ^ (rng.random((N, D)) < 0.1)).astype(np.float64)


def _stack(bottom=RBM, dtype="float64", sizes=(6, 4), seed=0):
    first = bottom(n_components=sizes[0], n_iter=3, batch_size=10, dtype=dtype, random_state=seed,
                   **({"learning_rate": 0.01} if bottom is GaussianRBM else {}))
    return [first] + [RBM(n_components=s, n_iter=3, batch_size=10, dtype=dtype, random_state=seed + i + 1)
                      for i, s in enumerate(sizes[1:])]


@pytest.fixture(scope="module")
def net(binary):
    return DeepBeliefNet(_stack()).fit(binary)


def _params(machine):
    return {k: v.detach().clone() for k, v in machine.params_.items()}


def _assert_same_params(a, b):
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].dtype == b[name].dtype and torch.equal(a[name], b[name]), name


# ---------------------------------------------------------------------- greedy training
@pytest.mark.parametrize("bottom", BOTTOMS, ids=lambda c: c.__name__)
def test_greedy_training_equals_fitting_the_layers_by_hand(bottom, X):
    layers = _stack(bottom, sizes=(6, 5, 3))
    dbn = DeepBeliefNet(layers).fit(X)
    data = X
    for mine, theirs in zip(_stack(bottom, sizes=(6, 5, 3)), dbn.layers_):
        mine.fit(data)
        _assert_same_params(_params(mine), _params(theirs))
        data = mine.transform(data)  # the hidden means feed the next layer
    np.testing.assert_array_equal(dbn.transform(X), data)


def test_a_net_seed_gives_each_layer_the_next_integer_drawn_from_it(binary):
    dbn = DeepBeliefNet(_stack(seed=100), random_state=7).fit(binary)
    rng = check_random_state(7)
    data = binary
    for layer, theirs in zip(_stack(seed=100), dbn.layers_):
        seed = int(rng.randint(np.iinfo(np.int32).max))
        assert theirs.random_state == seed
        layer.set_params(random_state=seed).fit(data)
        _assert_same_params(_params(layer), _params(theirs))
        data = layer.transform(data)


def test_fit_leaves_the_callers_machines_alone_and_trains_clones(binary):
    layers = _stack()
    before = [repr(m.get_params()) for m in layers]
    dbn = DeepBeliefNet(layers, random_state=3).fit(binary)
    assert dbn.layers is layers
    assert [repr(m.get_params()) for m in layers] == before
    assert not any(hasattr(m, "params_") for m in layers)
    assert all(fitted is not given for fitted, given in zip(dbn.layers_, layers))


def test_fit_transform_equals_fit_then_transform(binary):
    a = DeepBeliefNet(_stack()).fit_transform(binary)
    b = DeepBeliefNet(_stack()).fit(binary).transform(binary)
    np.testing.assert_array_equal(a, b)


def test_from_sizes_builds_the_layers_it_names():
    dbn = DeepBeliefNet.from_sizes((7, 5, 2), bottom="beta", bottom_params={"eps": 0.01}, n_iter=4, random_state=1)
    assert [type(m) for m in dbn.layers] == [BetaRBM, RBM, RBM]
    assert [m.n_components for m in dbn.layers] == [7, 5, 2]
    assert all(m.n_iter == 4 for m in dbn.layers) and dbn.layers[0].eps == 0.01 and dbn.random_state == 1
    assert isinstance(DeepBeliefNet.from_sizes((3,), bottom="gaussian").layers[0], GaussianRBM)


# ---------------------------------------------------------------------- errors
def test_bad_layers_are_named(binary):
    with pytest.raises(ValueError, match=r"Expected layers to be a non-empty list .* got an empty list"):
        DeepBeliefNet([]).fit(binary)
    with pytest.raises(TypeError, match=r"Expected layers\[1\] to be a fastseq Boltzmann machine .* got str"):
        DeepBeliefNet([RBM(3), "rbm"]).fit(binary)
    with pytest.raises(TypeError, match=r"Expected layers\[1\] to be an RBM .* got GaussianRBM"):
        DeepBeliefNet([RBM(3), GaussianRBM(2)]).fit(binary)
    with pytest.raises(ValueError, match=r"'layers' parameter of DeepBeliefNet must be .*Got 3 instead"):
        DeepBeliefNet(3).fit(binary)
    with pytest.raises(ValueError, match="n_components"):  # each machine checks its own settings
        DeepBeliefNet([RBM(3), RBM(0)]).fit(binary)


def test_mismatched_sizes_are_named(net, binary):
    with pytest.raises(ValueError, match=f"X has 5 features, but DeepBeliefNet is expecting {D} features"):
        net.transform(binary[:, :5])
    with pytest.raises(ValueError, match=rf"Expected a to be one input row of {D} features, .* got shape \(5,\)"):
        net.interpolate(binary[0, :5], binary[1])
    with pytest.raises(ValueError, match=rf"Expected b to be one input row .* got shape \(2, {D}\)"):
        net.interpolate(binary[0], binary[:2])
    with pytest.raises(ValueError, match=r"Expected n_steps to be an integer >= 2, got 1"):
        net.interpolate(binary[0], binary[1], n_steps=1)
    with pytest.raises(ValueError, match=f"X has 3 features, but DeepBeliefNet is expecting {D}"):
        net.sample(start=binary[:2, :3])
    with pytest.raises(ValueError, match=r"Expected n_steps to be an integer >= 1, got 0"):
        net.sample(2, n_steps=0)


def test_every_method_refuses_an_unfitted_net(binary, tmp_path):
    dbn = DeepBeliefNet(_stack())
    calls = [lambda: dbn.transform(binary), lambda: dbn.reconstruct(binary), lambda: dbn.sample(2, 3),
             lambda: dbn.interpolate(binary[0], binary[1]), lambda: dbn.log_likelihood_bound(binary),
             lambda: dbn.save(tmp_path / "x.safetensors"), lambda: dbn.get_feature_names_out()]
    for call in calls:
        with pytest.raises(NotFittedError):
            call()


def test_from_sizes_names_bad_arguments():
    with pytest.raises(ValueError, match=r"Expected hidden_layer_sizes to be a non-empty sequence .* got \(\)"):
        DeepBeliefNet.from_sizes(())
    with pytest.raises(ValueError, match=r"Expected hidden_layer_sizes\[1\] to be an integer >= 1, got 0"):
        DeepBeliefNet.from_sizes((4, 0))
    with pytest.raises(ValueError, match="bottom"):
        DeepBeliefNet.from_sizes((4,), bottom="poisson")
    with pytest.raises(TypeError, match="got sigma"):
        DeepBeliefNet.from_sizes((4,), sigma=0.5)
    with pytest.raises(TypeError, match="Expected bottom_params to be a dict"):
        DeepBeliefNet.from_sizes((4,), bottom_params=[("sigma", 1.0)])


# ---------------------------------------------------------------------- generation
@pytest.mark.parametrize("bottom", (RBM, GaussianRBM, BetaRBM), ids=lambda c: c.__name__)
def test_samples_have_the_documented_shape_dtype_and_range(bottom, X):
    dbn = DeepBeliefNet(_stack(bottom, dtype="float32", sizes=(6, 5, 3))).fit(X)
    means = dbn.sample(5, n_steps=20)
    draws = dbn.sample(5, n_steps=20, return_means=False)
    started = dbn.sample(n_steps=3, start=X[:4])
    assert means.shape == draws.shape == (5, D) and started.shape == (4, D)
    assert means.dtype == draws.dtype == np.float32 and started.dtype == np.float64
    for out in (means, draws, started):
        assert np.all(np.isfinite(out))
    if bottom is RBM:
        assert set(np.unique(draws)) <= {0.0, 1.0}
    if bottom is not GaussianRBM:
        for out in (means, draws, started):
            assert out.min() >= 0 and out.max() <= 1
    if bottom is BetaRBM:
        assert np.all((means > 0) & (means < 1))


def test_samples_are_reproducible_from_the_seeds(binary):
    a = DeepBeliefNet(_stack()).fit(binary).sample(4, n_steps=10, return_means=False)
    b = DeepBeliefNet(_stack()).fit(binary).sample(4, n_steps=10, return_means=False)
    np.testing.assert_array_equal(a, b)


def test_sample_from_start_runs_the_top_machine_from_the_up_pass(binary):
    # by hand on a twin (same seeds, so the same random streams): the top machine's own
    # sample from the penultimate hidden means, then visible means down
    net, twin = DeepBeliefNet(_stack()).fit(binary), DeepBeliefNet(_stack()).fit(binary)
    mine = twin.layers_[-1].sample(n_steps=4, start=twin.layers_[0].transform(binary[:3]))
    mine = twin.layers_[0].visible_mean(mine)
    np.testing.assert_array_equal(net.sample(n_steps=4, start=binary[:3]), mine)


def test_reconstruct_is_up_with_means_then_down_with_means(net, binary):
    h = net.layers_[1].transform(net.layers_[0].transform(binary))
    down = net.layers_[0].visible_mean(net.layers_[1].visible_mean(h))
    np.testing.assert_array_equal(net.reconstruct(binary), down)


# ---------------------------------------------------------------------- interpolation
def test_interpolation_ends_are_the_reconstructions_of_a_and_b(binary):
    layers = [RBM(n_components=8, n_iter=100, learning_rate=0.5, batch_size=10, dtype="float64", random_state=0),
              RBM(n_components=4, n_iter=100, learning_rate=0.5, batch_size=10, dtype="float64", random_state=1)]
    net = DeepBeliefNet(layers).fit(binary)
    a, b = binary[0], binary[1]  # two prototypes
    strip = net.interpolate(a, b, n_steps=6)
    assert strip.shape == (6, D) and strip.dtype == np.float64
    # the same arithmetic on other batch sizes: equal up to the order of the matrix products' sums
    np.testing.assert_allclose(strip[0], net.reconstruct(a[None])[0], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(strip[-1], net.reconstruct(b[None])[0], rtol=1e-12, atol=1e-14)
    assert np.all((strip >= 0) & (strip <= 1))
    codes = net.transform(np.stack([a, b]))
    mid = net.layers_[0].visible_mean(net.layers_[1].visible_mean((codes[0] + codes[1])[None] / 2))
    np.testing.assert_allclose(net.interpolate(a, b, n_steps=3)[1], mid[0], rtol=1e-12)
    assert np.abs(strip[0] - strip[-1]).max() > 0.3


# ---------------------------------------------------------------------- the likelihood bound
def _bits(n):
    return ((np.arange(2**n)[:, None] >> np.arange(n)) & 1).astype(np.float64)


def _softplus(x):
    return np.logaddexp(0, x)


def _exact(dbn, V):
    """Independent enumeration for a Bernoulli net of two or three layers, from the public
    parameters: exact log p(v) and the exact variational bound of the up-pass posterior."""
    layers = dbn.layers_
    W = [m.components_.T for m in layers]  # D x H
    b = [m.intercept_visible_ for m in layers]
    c = [m.intercept_hidden_ for m in layers]
    top = len(layers) - 1
    s_in, s_out = _bits(W[top].shape[0]), _bits(W[top].shape[1])
    joint = s_in @ b[top][:, None] + (s_out @ c[top])[None] + s_in @ W[top] @ s_out.T
    log_z = np.logaddexp.reduce(joint.ravel())
    log_top = np.logaddexp.reduce(joint, axis=1) - log_z  # log p(h_{L-1}) for every state

    def log_cond(l, lower, upper):  # log p(lower | upper) under layer l's visible conditional, all pairs
        pre = upper @ W[l].T + b[l]  # states x D
        return lower @ pre.T - _softplus(pre).sum(1)[None]

    def log_q(l, lower, upper):  # log q(upper | lower) of layer l's posterior, all pairs
        pre = lower @ W[l] + c[l]
        return upper @ pre.T - _softplus(pre).sum(1)  # upper-states x lower-rows

    if top == 0:  # one machine: log p(v) = log sum_h exp(-E(v, h)) - log Z, no bound
        rows = V @ b[0][:, None] + (s_out @ c[0])[None] + V @ W[0] @ s_out.T
        return np.logaddexp.reduce(rows, axis=1) - log_z, None, log_z
    # p(v) by summing over every hidden state, and the bound E_q[log p(v, h) - log q(h | v)]
    hs = [_bits(W[l].shape[1]) for l in range(top)]
    log_joint = log_cond(0, V, hs[0]) + (log_top if top == 1 else 0)  # rows x states of h1
    log_qs = log_q(0, V, hs[0]).T  # rows x h1
    if top == 2:
        inner = log_cond(1, hs[0], hs[1]) + log_top[None]  # h1 x h2: log p(h1 | h2) + log p(h2)
        log_ll = np.logaddexp.reduce(log_joint[:, :, None] + inner[None], axis=(1, 2))
        q2 = log_q(1, hs[0], hs[1]).T  # h1 x h2
        per_h1 = (np.exp(q2) * (inner - q2)).sum(1)  # E_q(h2|h1)[log p(h1, h2) - log q(h2 | h1)]
        bound = (np.exp(log_qs) * (log_joint + per_h1[None] - log_qs)).sum(1)
        return log_ll, bound, log_z
    log_ll = np.logaddexp.reduce(log_joint, axis=1)
    bound = (np.exp(log_qs) * (log_joint - log_qs)).sum(1)
    return log_ll, bound, log_z


@pytest.fixture(scope="module")
def tiny(binary):
    layers = [RBM(n_components=4, n_iter=50, learning_rate=0.3, batch_size=5, dtype="float64", random_state=0),
              RBM(n_components=3, n_iter=50, learning_rate=0.3, batch_size=5, dtype="float64", random_state=1)]
    return DeepBeliefNet(layers).fit(binary[:, :6])


def test_the_bound_is_below_the_exact_log_likelihood_and_the_estimator_matches_it(tiny, binary):
    V = binary[:8, :6]
    log_ll, bound, log_z = _exact(tiny, V)
    p_all = np.exp(_exact(tiny, _bits(6))[0])
    assert abs(p_all.sum() - 1) < 1e-9  # the enumeration is a distribution
    assert np.all(bound <= log_ll + 1e-12) and np.all(log_ll - bound > 1e-4)
    est = tiny.log_likelihood_bound(V, log_z=log_z, n_samples=4000, random_state=0)
    assert est.shape == (8,) and est.dtype == np.float64
    np.testing.assert_allclose(est, bound, atol=0.05)
    assert abs(est.mean() - bound.mean()) < 0.02
    ais = tiny.log_likelihood_bound(V, n_samples=4000, n_betas=2000, n_runs=100, random_state=0)
    np.testing.assert_allclose(ais, bound, atol=0.1)


def test_the_bound_of_three_layers_is_below_the_exact_log_likelihood(binary):
    layers = _stack(sizes=(4, 3, 2))
    dbn = DeepBeliefNet(layers).fit(binary[:, :5])
    V = binary[:6, :5]
    log_ll, bound, log_z = _exact(dbn, V)
    assert np.all(bound <= log_ll + 1e-12)
    est = dbn.log_likelihood_bound(V, log_z=log_z, n_samples=4000, random_state=1)
    np.testing.assert_allclose(est, bound, atol=0.08)


def test_one_layer_bound_is_the_exact_log_likelihood(binary):
    dbn = DeepBeliefNet([RBM(n_components=3, n_iter=5, dtype="float64", random_state=0)]).fit(binary[:, :5])
    log_ll, _, log_z = _exact(dbn, binary[:5, :5])
    np.testing.assert_allclose(dbn.log_likelihood_bound(binary[:5, :5], log_z=log_z), log_ll, rtol=1e-12)


@pytest.mark.parametrize("cls", (RBM, GaussianRBM), ids=lambda c: c.__name__)
def test_the_visible_conditional_is_a_normalised_density(cls):
    rng = np.random.default_rng(1)
    data = rng.random((30, 3)) if cls is RBM else rng.normal(size=(30, 3))
    m = cls(n_components=2, n_iter=3, dtype="float64", random_state=0).fit(data)
    h = torch.tensor([[1.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    v = _bits(3) if cls is RBM else rng.normal(size=(5, 3))
    for row in h:
        hs = row.expand(len(v), 2).clone()
        f, pre = _free_energy64(m, torch.tensor(v))
        logp = _log_conditional(m, m._params64(), f, pre, hs).numpy()
        if cls is RBM:
            assert abs(np.exp(logp).sum() - 1) < 1e-12
        else:
            from scipy.stats import norm

            mean = m.visible_mean(hs.numpy())
            sd = np.exp(m.params_["log_sigma"].detach().numpy())
            np.testing.assert_allclose(logp, norm.logpdf(v, mean, sd).sum(1), rtol=1e-10)


def test_the_bound_refuses_machines_without_an_energy(X):
    dbn = DeepBeliefNet(_stack(RRBM)).fit(X)
    with pytest.raises(TypeError, match=r"layers\[0\] RRBM"):
        dbn.log_likelihood_bound(X, log_z=0.0)
    with pytest.raises(TypeError, match="Expected log_z to be a number or an AISResult"):
        DeepBeliefNet(_stack()).fit(X).log_likelihood_bound(X, log_z="1")


# ---------------------------------------------------------------------- save / load
@pytest.mark.parametrize("bottom", (RBM, GaussianRBM, BetaRBM), ids=lambda c: c.__name__)
def test_save_load_round_trips_bit_for_bit(bottom, X, tmp_path):
    dbn = DeepBeliefNet(_stack(bottom, dtype="float32", sizes=(6, 5, 3)), random_state=4).fit(X)
    path = tmp_path / "dbn.safetensors"
    fastseq.save(dbn, path)
    back = fastseq.load(path)
    assert type(back) is DeepBeliefNet and files.read_header(path)["kind"] == "dbn"
    assert repr(back) == repr(dbn) and back.n_features_in_ == D
    assert [repr(m) for m in back.layers_] == [repr(m) for m in dbn.layers_]
    for mine, theirs in zip(back.layers_, dbn.layers_):
        _assert_same_params(_params(mine), _params(theirs))
        assert mine.n_features_in_ == theirs.n_features_in_
    np.testing.assert_array_equal(back.transform(X), dbn.transform(X))
    np.testing.assert_array_equal(back.reconstruct(X), dbn.reconstruct(X))
    again = tmp_path / "again.safetensors"
    DeepBeliefNet.load(path, device="cpu").save(again)
    assert again.read_bytes() == path.read_bytes()


def test_load_refuses_other_kinds_and_broken_stacks(net, binary, tmp_path):
    rbm_path = tmp_path / "rbm.safetensors"
    RBM(n_components=2, n_iter=1).fit(binary).save(rbm_path)
    with pytest.raises(ValueError, match=r"deep belief net \(DeepBeliefNet\) file, got a fastseq Boltzmann machine"):
        DeepBeliefNet.load(rbm_path)
    path = tmp_path / "dbn.safetensors"
    net.save(path)
    with pytest.raises(ValueError, match=r"Boltzmann machine \(RBM\) file, got a fastseq deep belief net"):
        load_rbm(path)
    header, tensors = files.read(path)
    for key in ("format", "version", "kind"):
        del header[key]
    header["n_features_in"] = D + 1
    files.write(tmp_path / "bad.safetensors", "dbn", header, tensors)
    with pytest.raises(ValueError, match=rf"layers whose inputs are \[{D + 1}, 6\] .* got \[{D}, 6\]"):
        fastseq.load(tmp_path / "bad.safetensors")
    header["n_features_in"], header["layers"] = D, []
    files.write(tmp_path / "empty.safetensors", "dbn", header, tensors)
    with pytest.raises(ValueError, match="at least one layer"):
        fastseq.load(tmp_path / "empty.safetensors")


def test_save_refuses_settings_that_are_no_json(binary, tmp_path):
    dbn = DeepBeliefNet(_stack(), random_state=np.random.RandomState(0)).fit(binary)
    with pytest.raises(TypeError, match="random_state an int or None"):
        dbn.save(tmp_path / "x.safetensors")
    assert not (tmp_path / "x.safetensors").exists()


# ---------------------------------------------------------------------- scikit-learn
SMALL = dict(n_components=8, n_iter=5)


# The Gaussian net trains in float64: in float32 the BLAS rounds a row's products differently
# at another position in the batch, and through two layers that reached 1 ulp past the
# float64 tolerance of check_methods_sample_order_invariance.
@parametrize_with_checks([DeepBeliefNet([RBM(**SMALL), RBM(n_components=4, n_iter=5)]),
                          DeepBeliefNet([GaussianRBM(**SMALL, dtype="float64"),
                                         RBM(n_components=4, n_iter=5, dtype="float64")])])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_feature_names_out_and_default_layers(binary):
    dbn = DeepBeliefNet(_stack()).fit(binary)
    assert list(dbn.get_feature_names_out()) == [f"deepbeliefnet{i}" for i in range(4)]
    assert [type(m) for m in DeepBeliefNet()._checked_layers()] == [RBM, RBM]


def test_digits_features_classify_well_above_chance():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from fastseq.datasets import embedded_digits, held_out_split

    images, labels = embedded_digits(flat=True)
    X = (images / 255.0 > 0.5).astype(np.float32)
    train, test = held_out_split(labels, fraction=0.2, seed=0)
    train = np.random.default_rng(0).permutation(train)[:2000]  # the split lists each class in turn
    dbn = DeepBeliefNet.from_sizes((100, 50), learning_rate=0.05, batch_size=20, n_iter=5, random_state=0)
    model = make_pipeline(dbn, LogisticRegression(max_iter=1000)).fit(X[train], labels[train])
    accuracy = model.score(X[test], labels[test])
    assert accuracy > 0.6, accuracy  # chance is 0.1
