"""What ``fastseq.boltzmann.deep`` does, checked exactly: the settings each method hands to the
machines, progress bars and memory checks, the error messages naming each argument, the
validation of X and of single rows, the likelihood bound's seeds and defaults, and what
``load_dbn`` accepts and refuses in a file.

Every test builds its own tiny net (no shared fixtures), so each is credited with the
functions it calls."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.utils import get_tags

from fastseq._util import files
from fastseq.boltzmann import BetaRBM, DeepBeliefNet, RBM
from fastseq.boltzmann import _deep_tempering, deep
from fastseq.boltzmann._base import BoltzmannMachine

D = 6


def _binary(n=20, d=D, seed=0):
    return (np.random.default_rng(seed).random((n, d)) < 0.4).astype(np.float64)


def _net(sizes=(4, 3), dtype="float64", seed=0, n=20):
    layers = [RBM(n_components=s, n_iter=2, batch_size=5, dtype=dtype, random_state=seed + i)
              for i, s in enumerate(sizes)]
    return DeepBeliefNet(layers).fit(_binary(n))


def _widths(net):
    return sum(m.n_features_in_ + m.n_components for m in net.layers_)


class _Recorder:
    def __init__(self, real=None, result=None):
        self.calls, self.real, self.result = [], real, result

    def __call__(self, *args, **kwargs):
        self.calls.append((args, kwargs))
        return self.real(*args, **kwargs) if self.real is not None else self.result


# ---------------------------------------------------------------- validation of X and rows


def test_validate_names_X_in_the_ragged_list_message():
    net = _net()
    with pytest.raises(ValueError, match=r"^Expected X to be an N x D array of numbers, got a ragged list"):
        net.transform([[0.0] * D, [0.0]])


def test_validate_converts_half_floats_to_float64_and_csc_to_csr():
    net = _net()
    X = _binary(5)
    assert net._validate(X.astype(np.float16)).dtype == np.float64
    assert net._validate(X.astype(np.int64)).dtype == np.float64
    out = net._validate(sp.csc_matrix(X))
    assert sp.issparse(out) and out.format == "csr"
    np.testing.assert_array_equal(out.toarray(), X)
    np.testing.assert_array_equal(net.transform(sp.csc_matrix(X)), net.transform(X))


def test_one_row_names_the_argument_in_the_ragged_list_message():
    net = _net()
    with pytest.raises(ValueError, match=r"^Expected b to be an \(D,\) array of numbers, got a ragged list"):
        net.interpolate(np.zeros(D), [[0.0], [0.0, 1.0]])


def test_one_row_casts_half_floats_to_float64():
    net = _net()
    row = net._one_row("a", np.ones(D, dtype=np.float16))
    assert row.dtype == np.float64 and row.shape == (1, D)
    out = net.interpolate(np.ones(D, dtype=np.float16), np.zeros(D, dtype=np.float32), n_steps=3)
    assert out.dtype == np.float64


# ---------------------------------------------------------------- memory checks


def test_check_rows_fit_names_the_call_and_counts_16_bytes_per_unit(monkeypatch):
    net = _net()
    rec = _Recorder()
    monkeypatch.setattr(deep, "check_fits", rec)
    w = _widths(net)
    assert w == (6 + 4) + (4 + 3)
    net.sample(3, n_steps=1)
    net.interpolate(np.zeros(D), np.ones(D), n_steps=4)
    net.sample_bottom_machine(2, n_steps=1)
    net.sample_bottom_machine(n_steps=1, start=_binary(5))
    assert rec.calls == [
        ((f"DeepBeliefNet.sample(n_samples=3) through layers of {w} units in all", 16.0 * 3 * w), {}),
        ((f"DeepBeliefNet.interpolate(n_steps=4) through layers of {w} units in all", 16.0 * 4 * w), {}),
        ((f"DeepBeliefNet.sample_bottom_machine(n_samples=2) through layers of {w} units in all", 16.0 * 2 * w), {}),
        ((f"DeepBeliefNet.sample_bottom_machine(start of 5 rows) through layers of {w} units in all",
          16.0 * 5 * w), {}),
    ]


# ---------------------------------------------------------------- sample


def test_sample_hands_its_defaults_and_flags_to_the_top_machine(monkeypatch):
    net = _net()
    top = net.layers_[-1]
    rec = _Recorder(result=np.zeros((16, 4)))
    monkeypatch.setattr(top, "sample", rec)
    assert net.sample().shape == (16, D)
    net.sample(2, 5, return_means=False, progress=True)
    assert rec.calls == [((16, 1000), {"start": None, "return_means": True, "progress": None}),
                         ((2, 5), {"start": None, "return_means": False, "progress": True})]


def test_sample_names_n_samples():
    with pytest.raises(ValueError, match=r"^Expected n_samples "):
        _net().sample(0, n_steps=1)


# ---------------------------------------------------------------- sample_bottom_machine


def test_sample_bottom_machine_defaults_bar_and_progress(monkeypatch):
    net = _net()
    bar = _Recorder(real=deep._bar)
    monkeypatch.setattr(deep, "_bar", bar)
    steps = []
    real = _deep_tempering.run_deep_tempering

    def fake(layers, v, n_steps, rng, b):
        steps.append((v.shape[0], n_steps))
        return real(layers, v, 1, rng, b)

    monkeypatch.setattr(_deep_tempering, "run_deep_tempering", fake)
    net.layers_[0].progress = False
    net.sample_bottom_machine()
    net.sample_bottom_machine(3, 2, progress=True)
    net.layers_[0].progress = True
    net.sample_bottom_machine(3, 2, progress=False)
    assert steps == [(16, 1000), (3, 2), (3, 2)]
    assert [c[0] for c in bar.calls] == [(1000, False, "deep tempering"), (2, True, "deep tempering"),
                                         (2, False, "deep tempering")]


def test_sample_bottom_machine_progress_none_takes_the_bottom_machines_setting(monkeypatch):
    net = _net()
    bar = _Recorder(real=deep._bar)
    monkeypatch.setattr(deep, "_bar", bar)
    net.layers_[0].progress = True
    net.sample_bottom_machine(2, 1)
    assert bar.calls[0][0] == (1, True, "deep tempering")


def test_sample_bottom_machine_names_n_steps_and_n_samples():
    net = _net()
    with pytest.raises(ValueError, match=r"^Expected n_steps "):
        net.sample_bottom_machine(2, 0)
    with pytest.raises(ValueError, match=r"^Expected n_samples "):
        net.sample_bottom_machine(0, 2)


def test_sample_bottom_machine_is_reproducible_from_the_seeds():
    a, b = _net(), _net()
    np.testing.assert_array_equal(a.sample_bottom_machine(8, 30, return_means=False),
                                  b.sample_bottom_machine(8, 30, return_means=False))
    assert a.last_deep_tempering_ == b.last_deep_tempering_ or str(a.last_deep_tempering_) == str(
        b.last_deep_tempering_)


def test_sample_bottom_machine_swap_stream_is_drawn_from_the_bottom_generator(monkeypatch):
    net = _net()
    seen = []
    real = _deep_tempering.run_deep_tempering

    def fake(layers, v, n_steps, rng, b):
        seen.append(rng.bit_generator.state)
        return real(layers, v, n_steps, rng, b)

    monkeypatch.setattr(_deep_tempering, "run_deep_tempering", fake)
    import copy
    g = copy.deepcopy(net.layers_[0]._rng)
    net.sample_bottom_machine(2, 1)
    assert seen[0] == np.random.default_rng(g.integers(1 << 63)).bit_generator.state


# ---------------------------------------------------------------- interpolate


def test_interpolate_defaults_to_eight_steps_in_the_codes_dtype():
    net = _net(dtype="float32")
    X = _binary(2).astype(np.float32)
    out = net.interpolate(X[0], X[1])
    assert out.shape == (8, D) and out.dtype == np.float32
    codes = net.transform(X)
    t = np.linspace(0.0, 1.0, 8, dtype=np.float32)[:, None]
    np.testing.assert_array_equal(out, net._down(np.clip((1 - t) * codes[0] + t * codes[1], 0, 1), net.layers_))


# ---------------------------------------------------------------- likelihood bound


def test_bound_hands_its_ais_defaults_and_seed_to_ais(monkeypatch):
    net = _net()
    rec = _Recorder(result=0.0)
    monkeypatch.setattr(deep, "ais_log_partition", rec)
    net.log_likelihood_bound(_binary(2), n_samples=1, random_state=5)
    assert rec.calls == [((net.layers_[-1],), {"n_betas": 14500, "n_runs": 100, "random_state": 5})]


def test_bound_default_n_samples_is_100_and_seeded():
    net = _net()
    X = _binary(3)
    a = net.log_likelihood_bound(X, log_z=1.5, random_state=3)
    b = net.log_likelihood_bound(X, log_z=1.5, n_samples=100, random_state=3)
    np.testing.assert_array_equal(a, b)
    c = net.log_likelihood_bound(X, log_z=1.5, n_samples=3, random_state=4)
    d = net.log_likelihood_bound(X, log_z=1.5, n_samples=3, random_state=4)
    np.testing.assert_array_equal(c, d)


def test_bound_names_n_samples_and_random_state():
    net = _net()
    with pytest.raises(ValueError, match=r"^Expected n_samples "):
        net.log_likelihood_bound(_binary(2), log_z=0.0, n_samples=0)
    with pytest.raises(ValueError, match=r"^Expected random_state "):
        net.log_likelihood_bound(_binary(2), log_z=0.0, random_state=-1)


def test_one_layer_bound_scores_every_row():
    net = _net(sizes=(3,))
    X = _binary(4)
    out = net.log_likelihood_bound(X, log_z=2.0, random_state=0)
    assert out.shape == (4,)
    np.testing.assert_allclose(out, -net.layers_[0].free_energy(X) - 2.0, rtol=1e-10)


def test_free_energy64_casts_rows_to_the_machines_dtype():
    net = _net(dtype="float32")
    layer = net.layers_[0]
    v = torch.from_numpy(_binary(3))
    f, pre = deep._free_energy64(layer, v)
    with torch.no_grad():
        f32, pre32 = layer._free_energy_pre(layer._likelihood_visible(v.float()))
        f, pre = deep._free_energy64(layer, v)
    assert f.dtype == torch.float64
    np.testing.assert_array_equal(f.numpy(), f32.double().numpy())
    np.testing.assert_array_equal(pre.numpy(), pre32.double().numpy())


def test_draw_is_one_only_strictly_below_the_probability():
    class Zeros:
        def random(self, shape):
            return np.zeros(shape)

    out = deep._draw(torch.tensor([[-1000.0, 1000.0]], dtype=torch.float64), Zeros())
    assert out.dtype == torch.float64
    np.testing.assert_array_equal(out.numpy(), [[0.0, 1.0]])


# ---------------------------------------------------------------- fit, from_sizes, tags, config


def test_fit_transforms_only_below_the_top(monkeypatch):
    rec = _Recorder(real=RBM.transform)
    monkeypatch.setattr(RBM, "transform", lambda self, X: rec(self, X))
    layers = [RBM(n_components=4, n_iter=1, random_state=0), RBM(n_components=3, n_iter=1, random_state=1)]
    DeepBeliefNet(layers).fit(_binary())
    assert len(rec.calls) == 1
    rec.calls.clear()
    DeepBeliefNet(layers).fit_transform(_binary())
    assert len(rec.calls) == 2


def test_from_sizes_names_bottom_and_lists_the_shared_settings():
    with pytest.raises(ValueError, match=r"^Expected bottom "):
        DeepBeliefNet.from_sizes((3,), bottom="poisson")
    shared = sorted(set(BoltzmannMachine._parameter_constraints) - {"n_components", "random_state"})
    msg = f"Expected settings that every machine takes ({', '.join(shared)}), got n_components."
    with pytest.raises(TypeError) as err:
        DeepBeliefNet.from_sizes((3,), n_components=2)
    assert str(err.value) == msg


def test_tags_take_positive_only_from_a_list_bottom_only():
    assert get_tags(BetaRBM()).input_tags.positive_only is True
    assert get_tags(DeepBeliefNet([BetaRBM(), RBM()])).input_tags.positive_only is True
    assert get_tags(DeepBeliefNet((BetaRBM(),))).input_tags.positive_only is True
    assert get_tags(DeepBeliefNet({0: BetaRBM()})).input_tags.positive_only is False
    assert get_tags(DeepBeliefNet([])).input_tags.positive_only is False


def test_config_keeps_default_layers_as_none():
    assert DeepBeliefNet(random_state=3)._config() == {"layers": None, "random_state": 3}


# ---------------------------------------------------------------- load


def _saved(tmp_path, net=None):
    net = net or _net()
    path = tmp_path / "n.fsq"
    net.save(path)
    return path, net


def _rewrite(path, change):
    header, tensors = files.read(path, "dbn")
    header = {k: v for k, v in header.items() if k not in ("format", "version", "kind")}
    change(header, tensors)
    files.write(path, "dbn", header, tensors)


def test_load_passes_the_device_to_every_layer(tmp_path):
    path, _ = _saved(tmp_path)

    def elsewhere(h, t):  # a file written on a GPU machine
        for part in h["layers"] + h["config"]["layers"]:
            part["config"]["device"] = "cuda:0"

    _rewrite(path, elsewhere)
    for m in (DeepBeliefNet.load(path, device="cpu"), deep.load_dbn(path, device="cpu")):
        assert [str(x.device) for x in m.layers_] == ["cpu", "cpu"]
        assert [x.device for x in m.layers] == ["cpu", "cpu"]


def test_load_names_the_device_argument(tmp_path):
    path, _ = _saved(tmp_path)
    with pytest.raises(TypeError, match=r"^Expected device to be"):
        deep.load_dbn(path, device=1.5)


def test_load_keeps_default_layers_as_none(tmp_path):
    net = _net()
    net.layers = None
    path, _ = _saved(tmp_path, net)
    assert deep.load_dbn(path).layers is None


def _refused(path, pattern):
    with pytest.raises(files.FileError) as err:
        deep.load_dbn(path)
    msg = str(err.value)
    assert repr(str(path)) in msg, msg
    assert pattern in msg, msg
    return msg


def test_load_names_the_file_and_kind_when_n_features_in_is_bad(tmp_path):
    path, _ = _saved(tmp_path)
    _rewrite(path, lambda h, t: h.__setitem__("n_features_in", 0))
    msg = _refused(path, "Expected n_features_in ")
    assert msg.startswith(f"Expected path {str(path)!r} to be {files._what('dbn')} whose contents fit together")


def test_load_names_the_file_and_kind_when_a_layer_is_bad(tmp_path):
    path, _ = _saved(tmp_path)

    def bad(h, t):
        h["layers"][1]["n_features_in"] = "x"

    _rewrite(path, bad)
    msg = _refused(path, "n_features_in")
    assert msg.startswith(f"Expected path {str(path)!r} to be {files._what('dbn')} whose contents fit together")


def test_load_names_the_file_when_a_layer_class_is_unknown(tmp_path):
    path, _ = _saved(tmp_path)
    _rewrite(path, lambda h, t: h["layers"][0].__setitem__("class", "Foo"))
    _refused(path, "to hold one of")


def test_load_names_the_file_when_an_original_layer_class_is_unknown(tmp_path):
    path, _ = _saved(tmp_path)
    _rewrite(path, lambda h, t: h["config"]["layers"][0].__setitem__("class", "Foo"))
    _refused(path, "got class 'Foo'")


def test_load_names_the_file_when_the_net_class_is_wrong(tmp_path):
    path, _ = _saved(tmp_path)
    _rewrite(path, lambda h, t: h.__setitem__("class", "Foo"))
    _refused(path, "to hold a DeepBeliefNet")


@pytest.mark.parametrize("bad", ["abc", True, 1.5])
def test_load_refuses_a_random_state_that_is_not_an_int(tmp_path, bad):
    path, _ = _saved(tmp_path)
    _rewrite(path, lambda h, t: h["config"].__setitem__("random_state", bad))
    _refused(path, f"Expected random_state in {str(path)!r} to be an int or None, got {bad!r}.")


def test_one_layer_bound_covers_every_chunk_of_rows(monkeypatch):
    """A one-layer net's bound is -F(v) - log Z for every row, however many chunks the rows
    are read in (here chunks of 2 rows)."""
    from fastseq.boltzmann import _base
    net = _net(sizes=(3,))
    X = _binary(7, seed=1)
    whole = net.log_likelihood_bound(X, log_z=1.5)
    monkeypatch.setattr(_base, "_CHUNK_ELEMENTS", 2 * D)
    chunked = net.log_likelihood_bound(X, log_z=1.5)
    assert chunked.shape == (7,)
    np.testing.assert_allclose(chunked, whole, rtol=1e-12)
    np.testing.assert_allclose(whole, -net.layers_[0].free_energy(X) - 1.5, rtol=1e-12)
