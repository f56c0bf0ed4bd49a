"""A code model on the codes: autoencode (with the mixing knob), generate, interpolate."""
from __future__ import annotations

import numpy as np
import pytest

from fastseq.commands._face_machines import MachineCodes, make_machine
from fastseq.conv import CodeModel, StackedModel
from fastseq.conv.stacked import CodeScaler


@pytest.fixture(scope="module")
def stacked(small_net, faces16):
    codes = make_machine("RRBM", 16, 3, seed=0)
    return StackedModel(small_net, codes).fit(faces16[0])


def test_machine_adapter_is_a_code_model(stacked):
    assert isinstance(stacked.machine, CodeModel)
    h = stacked.machine.transform(stacked.visible(np.zeros((2, 16, 16), np.float32)))
    v = stacked.machine.inverse_transform(h)
    assert v.shape == (2, 128) and np.all((v > 0) & (v < 1))


@pytest.mark.parametrize("name", ["RRBM", "R3BM", "BetaRBM", "GaussianRBM"])
def test_inverse_transform_matches_the_machines_own_reconstruction(name, small_net, faces16):
    codes = make_machine(name, 8, 2, seed=0)
    s = StackedModel(small_net, codes, scaling=codes.scaling).fit(faces16[0][:40])
    v = s.visible(faces16[1])
    mean_field = codes.inverse_transform(codes.transform(v))
    np.testing.assert_allclose(mean_field, codes.machine.reconstruct(v), rtol=1e-4, atol=1e-4)


def test_interpolation_end_points_are_the_inputs_codes(stacked, faces16):
    a, b = faces16[1][:3], faces16[1][3:6]
    codes = stacked.interpolate_codes(a, b, steps=5)
    assert codes.shape == (5, 3, 128)
    np.testing.assert_allclose(codes[0], stacked.codes(a), atol=1e-6)
    np.testing.assert_allclose(codes[-1], stacked.codes(b), atol=1e-6)
    np.testing.assert_allclose(codes[2], (stacked.codes(a) + stacked.codes(b)) / 2, atol=1e-5)
    faces = stacked.interpolate(a, b, steps=5)
    np.testing.assert_allclose(faces[0], stacked.autoencoder.reconstruct(a), atol=1e-5)
    hidden = stacked.interpolate_codes(a, b, steps=3, at="hidden")
    np.testing.assert_allclose(hidden[0], stacked.through_machine(stacked.codes(a)), atol=1e-5)
    with pytest.raises(ValueError, match="at to be"):
        stacked.interpolate_codes(a, b, at="pixels")


def test_batched_results_equal_one_at_a_time(stacked, faces16):
    x = faces16[1][:5]
    whole = stacked.autoencode(x, mix=0.5, mix_layer=2)
    one = np.concatenate([stacked.autoencode(x[i:i + 1], mix=0.5, mix_layer=2) for i in range(5)])
    np.testing.assert_allclose(whole, one, atol=1e-5)
    inter = stacked.interpolate(x[:2], x[2:4], steps=4)
    one = np.stack([stacked.interpolate(x[i:i + 1], x[i + 2:i + 3], steps=4)[:, 0] for i in range(2)], 1)
    np.testing.assert_allclose(inter, one, atol=1e-5)


def test_mixing_knob_runs_from_the_cnn_to_the_machine(stacked, faces16):
    x = faces16[1][:6]
    np.testing.assert_allclose(stacked.autoencode(x, mix=0.0), stacked.autoencoder.reconstruct(x), atol=1e-5)
    full = stacked.autoencode(x, mix=1.0)
    cnn_top = stacked.autoencoder.decode(stacked.through_machine(stacked.codes(x)))
    np.testing.assert_allclose(full, cnn_top, atol=1e-5)
    half = stacked.autoencode(x, mix=0.5, mix_layer=1)
    assert not np.allclose(half, full, atol=1e-3)
    with pytest.raises(ValueError, match="mix_layer in 1..3"):
        stacked.autoencode(x, mix_layer=4)
    with pytest.raises(ValueError, match="mix in"):
        stacked.autoencode(x, mix=1.5)


def test_generation_is_reproducible_from_a_seed(small_net, faces16):
    runs = []
    for _ in range(2):
        s = StackedModel(small_net, make_machine("RRBM", 8, 2, seed=4)).fit(faces16[0][:40])
        runs.append(s.generate(6, n_steps=20, seed=9))
    assert runs[0].shape == (6, 16, 16)
    np.testing.assert_array_equal(runs[0], runs[1])
    other = StackedModel(small_net, make_machine("RRBM", 8, 2, seed=5)).fit(faces16[0][:40])
    assert not np.allclose(other.generate(6, n_steps=20, seed=9), runs[0])


def test_scaler_round_trip_and_bad_machines(small_net):
    c = np.random.default_rng(0).normal(size=(30, 4))
    for kind in ("unit", "standard"):
        s = CodeScaler(kind).fit(c)
        np.testing.assert_allclose(s.inverse_transform(s.transform(c)), c, atol=1e-5)
    assert CodeScaler("unit").fit(c).transform(c * 10).max() == 1.0
    from sklearn.neural_network import BernoulliRBM

    with pytest.raises(TypeError, match="without inverse_transform"):  # scikit-learn's RBM has none
        StackedModel(small_net, BernoulliRBM(n_components=4))
    StackedModel(small_net, make_machine("RRBM", 4, 1, 0).machine)  # fastseq's machines are code models as they are
    assert isinstance(make_machine("GaussianRBM", 4, 1, 0), MachineCodes)
