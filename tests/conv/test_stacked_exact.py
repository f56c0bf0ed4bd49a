"""Exact behaviour of StackedModel around its code model: the chain starts and step counts
it passes on, the batch size it hands to the network, the shapes, dtype and end points of
interpolations (one and two steps included), and its argument messages word for word.

A tiny untrained network and a transparent code model (its chains return their starts)
make every expected value computable in the test.
"""
from __future__ import annotations

import re

import numpy as np
import pytest

from fastseq.conv import ConvAutoencoder, ConvConfig, StackedModel

D = 32  # codes of ConvConfig(8, (2,), (2,)): 2 channels of 4 x 4


class StartChains:
    """A code model whose chains stay at their starts; hidden means are the squares."""

    def __init__(self):
        self.steps = []

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return np.asarray(X, dtype=np.float64) ** 2

    def inverse_transform(self, H):
        return np.asarray(H, dtype=np.float64)

    def gibbs(self, v):
        return v

    def sample(self, n_samples=1, n_steps=1, start=None):
        self.steps.append(n_steps)
        assert start.shape[0] == n_samples
        return start


@pytest.fixture  # per test: mutmut credits a module fixture's calls to the first test that uses it
def net():
    return ConvAutoencoder(ConvConfig(8, (2,), (2,)), seed=0)


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(1).uniform(-0.5, 0.5, (6, 8, 8)).astype(np.float32)


def stacked(net, images, **kwargs):
    return StackedModel(net, StartChains(), **kwargs).fit(images)


def test_generate_decodes_chains_started_from_the_seeds_uniform_draws(net, images):
    s = stacked(net, images)
    want = net.decode(s.scaler.inverse_transform(np.random.default_rng(7).random((3, D))))
    np.testing.assert_array_equal(s.generate(3, n_steps=5, seed=7), want)
    assert s.machine.steps == [5]


def test_generate_defaults_are_64_chains_of_1000_steps_from_seed_0(net, images):
    s = stacked(net, images)
    out = s.generate()
    assert out.shape == (64, 8, 8) and s.machine.steps == [1000]
    want = net.decode(s.scaler.inverse_transform(np.random.default_rng(0).random((64, D))))
    np.testing.assert_array_equal(out, want)


def test_network_sees_batches_of_at_most_batch_size_images(net, images):
    assert StackedModel(net, StartChains()).batch_size == 256
    s = stacked(net, images, batch_size=2)
    seen = {"up": [], "down": []}
    hooks = [net.encoders[0].register_forward_pre_hook(lambda m, a: seen["up"].append(a[0].shape[0])),
             net.decoders[0].register_forward_pre_hook(lambda m, a: seen["down"].append(a[0].shape[0]))]
    try:
        s.codes(images[:5])
        s.generate(5, n_steps=1)
        s.interpolate(images[:1], images[1:2], steps=3)
    finally:
        for h in hooks:
            h.remove()
    # codes: 5 images; interpolate encodes a and b (one image each), then decodes 3 codes
    assert seen["up"] == [2, 2, 1, 1, 1]
    assert seen["down"] == [2, 2, 1, 2, 1]


def test_interpolation_defaults_to_eight_steps(net, images):
    s = stacked(net, images)
    a, b = images[:2], images[2:4]
    assert s.interpolate_codes(a, b).shape == (8, 2, D)
    assert s.interpolate(a, b).shape == (8, 2, 8, 8)


@pytest.mark.parametrize("steps", [1, 2, 3])
def test_cnn_interpolation_is_float32_and_linear_from_a_to_b(net, images, steps):
    s = stacked(net, images)
    a, b = images[:3], images[3:6]
    ca, cb = net.encode(a).astype(np.float64), net.encode(b).astype(np.float64)
    codes = s.interpolate_codes(a, b, steps=steps)
    assert codes.dtype == np.float32 and codes.shape == (steps, 3, D)
    t = [0.0] if steps == 1 else np.linspace(0.0, 1.0, steps)
    for i, ti in enumerate(t):
        np.testing.assert_allclose(codes[i], (1 - ti) * ca + ti * cb, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("steps", [1, 2])
def test_hidden_interpolation_mixes_the_hidden_means(net, images, steps):
    s = stacked(net, images)
    a, b = images[:3], images[3:6]
    ha, hb = s.visible(a) ** 2, s.visible(b) ** 2  # StartChains' hidden means
    codes = s.interpolate_codes(a, b, steps=steps, at="hidden")
    assert codes.shape == (steps, 3, D)
    np.testing.assert_allclose(codes[0], s.scaler.inverse_transform(ha), rtol=1e-6)
    np.testing.assert_allclose(codes[-1], s.scaler.inverse_transform(hb if steps > 1 else ha), rtol=1e-6)


def test_interpolate_decodes_the_codes_of_the_chosen_space(net, images):
    s = stacked(net, images)
    a, b = images[:2], images[2:4]
    faces = s.interpolate(a, b, steps=3, at="hidden")
    want = net.decode(s.interpolate_codes(a, b, steps=3, at="hidden").reshape(-1, D)).reshape(3, 2, 8, 8)
    np.testing.assert_array_equal(faces, want)
    assert not np.allclose(faces, s.interpolate(a, b, steps=3, at="cnn"), atol=1e-3)


def test_count_arguments_are_named_in_their_messages(net, images):
    s = stacked(net, images)
    with pytest.raises(ValueError, match=re.escape("Expected steps to be an integer >= 1, got 0.")):
        s.interpolate_codes(images[:1], images[1:2], steps=0)
    with pytest.raises(ValueError, match=re.escape("Expected n to be an integer >= 1, got 0.")):
        s.generate_codes(0)
    with pytest.raises(ValueError, match=re.escape("Expected n_steps to be an integer >= 1, got 0.")):
        s.generate_codes(2, n_steps=0)
