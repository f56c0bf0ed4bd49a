"""Exact behaviour of the convolutional autoencoder's configuration and network: the
default networks' channels and strides, per-layer settings kept as tuples of ints, the
JSON form, the smallest usable size, the memory estimate handed to the memory check, the
default seed, batching in ``reconstruct``, and argument and file messages word for word.
"""
from __future__ import annotations

import os
import re

import numpy as np
import pytest
import torch

import fastseq.conv.model as model_mod
from fastseq._util import files
from fastseq.conv import ConvAutoencoder, ConvConfig, default_config
from fastseq.conv.model import load_autoencoder


def test_default_config_networks_are_exact():
    assert default_config() == ConvConfig(64, (32, 64, 64, 64, 32), (2, 2, 2, 2, 1))
    assert default_config(48) == ConvConfig(48, (32, 64, 64, 64, 32), (2, 2, 2, 2, 1))
    assert default_config(47) == ConvConfig(47, (32, 32, 8), (2, 2, 1))
    assert default_config(28, "digits") == ConvConfig(28, (32, 32, 8), (2, 2, 2), activation="elu")
    with pytest.raises(ValueError, match=re.escape("Expected size to be an integer >= 1, got 0.")):
        default_config(0)


@pytest.mark.parametrize("kwargs, exc, msg", [
    (dict(size=0, channels=(4,), strides=(2,)), ValueError, "Expected size to be an integer >= 1, got 0."),
    (dict(size=8, channels=(4,), strides=(2,), in_channels=0), ValueError,
     "Expected in_channels to be an integer >= 1, got 0."),
    (dict(size=8, channels=(4, 0), strides=(2, 2)), ValueError, "Expected channels to be an integer >= 1, got 0."),
    (dict(size=8, channels=(4,), strides=(0,)), ValueError, "Expected strides to be an integer >= 1, got 0."),
    (dict(size=8, channels=(4,), strides=(2,), kernels=(0,)), ValueError,
     "Expected kernels to be an integer >= 1, got 0."),
    (dict(size=8, channels="ab", strides=(2,)), TypeError,
     "Expected channels to be a sequence with one integer per layer, got str 'ab'."),
    (dict(size=8, channels=(4,), strides="ab"), TypeError,
     "Expected strides to be a sequence with one integer per layer, got str 'ab'."),
    (dict(size=8, channels=(4,), strides=(2,), kernels="ab"), TypeError,
     "Expected kernels to be a sequence with one integer per layer, got str 'ab'."),
    (dict(size=8, channels=np.array([[4, 2]]), strides=(2,)), TypeError,
     "Expected channels to be a sequence with one integer per layer, got ndarray array([[4, 2]])."),
    (dict(size=8, channels=np.array(4), strides=(2,)), TypeError,
     "Expected channels to be a sequence with one integer per layer, got ndarray array(4)."),
])
def test_config_messages_word_for_word(kwargs, exc, msg):
    with pytest.raises(exc, match="^" + re.escape(msg) + "$"):
        ConvConfig(**kwargs)


def test_config_keeps_per_layer_settings_as_tuples_of_ints():
    c = ConvConfig(16, np.array([4, 2]), [2, 1])
    assert c.channels == (4, 2) and type(c.channels) is tuple and all(type(v) is int for v in c.channels)
    assert c.strides == (2, 1) and type(c.strides) is tuple and all(type(v) is int for v in c.strides)
    assert c.kernels == (4, 3)
    assert hash(c) == hash(ConvConfig(16, (4, 2), (2, 1)))


def test_to_json_is_sorted_and_from_json_round_trips():
    c = ConvConfig(16, (4,), (2,))
    text = c.to_json()
    assert text == ('{"activation": "tanh", "channels": [4], "in_channels": 1, "kernels": [4], '
                    '"size": 16, "strides": [2]}')
    assert ConvConfig.from_json(text) == c
    # a missing or null kernels entry takes the default kernels
    assert ConvConfig.from_json('{"size": 16, "channels": [4], "strides": [1], "kernels": null}').kernels == (3,)


def _min_size_reference(c):
    size = 1
    while True:
        n = size
        for layer, (s, k) in enumerate(zip(c.strides, c.kernels)):
            if n < s:
                break
            n = (n + 2 * c.padding(layer) - k) // s + 1
        else:
            return size
        size += 1


def test_min_size_matches_a_direct_search():
    assert ConvConfig(16, (4,), (1,)).min_size() == 1
    for strides, kernels in [((2,), (2,)), ((2, 2), None), ((3, 2), (5, 2)), ((2, 2, 1), (2, 6, 3))]:
        c = ConvConfig(64, (2,) * len(strides), strides, kernels)
        assert c.min_size() == _min_size_reference(c)
    # networks that need more than 65535 pixels a side
    assert ConvConfig(70000, (1,), (70000,)).min_size() == 70000
    assert ConvConfig(1 << 16, (1,) * 16, (2,) * 16).min_size() == 1 << 16
    with pytest.raises(ValueError, match=re.escape("Expected size to be at least 70000 for 1 layers with strides [70000], got 10.")):
        ConvConfig(10, (1,), (70000,))
    # a kernel without padding: the too-small size is refused naming the smallest one
    with pytest.raises(ValueError, match=re.escape("Expected size to be at least 2 for 1 layers with strides [2], got 1.")):
        ConvConfig(1, (4,), (2,), kernels=(2,))
    with pytest.raises(ValueError, match=re.escape("Expected size to be at least 6 for 2 layers with strides [3, 2], got 5.")):
        ConvConfig(5, (2, 2), (3, 2), kernels=(5, 2))


def test_memory_estimate_counts_every_weight_in_four_bytes(monkeypatch):
    seen = []
    real = model_mod.check_fits
    monkeypatch.setattr(model_mod, "check_fits", lambda what, nbytes: (seen.append((what, nbytes)), real(what, nbytes)))
    c = ConvConfig(16, (3, 5), (2, 1), kernels=(4, 5), in_channels=2)
    net = ConvAutoencoder(c)
    weights = sum(m.weight.numel() for m in list(net.encoders) + list(net.decoders))
    assert weights == 2 * (2 * 3 * 16 + 3 * 5 * 25)
    assert seen == [("ConvAutoencoder with channels=(3, 5) and kernels=(4, 5)", 4 * weights)]


def test_default_seed_is_zero_and_seed_messages():
    c = ConvConfig(8, (2,), (2,))
    a, b = ConvAutoencoder(c), ConvAutoencoder(c, seed=0)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
    with pytest.raises(ValueError, match="^" + re.escape("Expected seed to be an integer >= 0, got -1.") + "$"):
        ConvAutoencoder(c, seed=-1)


def test_reconstruct_passes_its_batch_size_to_both_halves():
    net = ConvAutoencoder(ConvConfig(8, (2,), (2,)), seed=0)
    enc_batches, dec_batches = [], []
    net.encoders[0].register_forward_hook(lambda m, i, o: enc_batches.append(i[0].shape[0]))
    net.decoders[0].register_forward_hook(lambda m, i, o: dec_batches.append(i[0].shape[0]))
    net.reconstruct(np.zeros((5, 8, 8), np.float32), batch_size=2)
    assert enc_batches == [2, 2, 1] and dec_batches == [2, 2, 1]


def test_save_refuses_a_folder_naming_path(tmp_path):
    net = ConvAutoencoder(ConvConfig(8, (2,), (2,)), seed=0)
    with pytest.raises(IsADirectoryError, match="^" + re.escape(f"Expected path to be a file, got the folder {str(tmp_path)!r}.") + "$"):
        net.save(tmp_path)


def test_load_messages_and_device(tmp_path):
    c = ConvConfig(8, (2,), (2,))
    p = str(tmp_path / "net.safetensors")
    ConvAutoencoder(c, seed=3).save(p)
    with pytest.raises(TypeError, match="^" + re.escape(
            "Expected device to be a torch.device, a device name or an index, got float 1.5.") + "$"):
        load_autoencoder(p, device=1.5)
    other = ConvConfig(8, (3,), (2,))
    with pytest.raises(ValueError, match="^" + re.escape(
            f"Expected model to hold a network for {other.describe()}, got one for {c.describe()} in {p!r}.") + "$"):
        load_autoencoder(p, other)
    assert load_autoencoder(p, device="meta").device == torch.device("meta")
    assert load_autoencoder(tmp_path / "net.safetensors").config == c


def test_load_names_the_file_when_its_contents_do_not_fit(tmp_path):
    good = ConvAutoencoder(ConvConfig(8, (2,), (2,)), seed=0)
    bad_config = str(tmp_path / "bad_config.safetensors")
    files.write(bad_config, "conv_autoencoder", {"config": {"size": "x", "channels": [2], "strides": [2]}},
                good.state_dict())
    with pytest.raises(ValueError, match="^" + re.escape(
            f"Expected path {bad_config!r} to be a fastseq ConvAutoencoder model file whose contents fit together, "
            "got TypeError: Expected size to be an integer >= 1, got str 'x'..") + "$"):
        load_autoencoder(bad_config)
    bad_tensors = str(tmp_path / "bad_tensors.safetensors")
    files.write(bad_tensors, "conv_autoencoder", {"config": {"size": 8, "channels": [3], "strides": [2]}},
                good.state_dict())
    with pytest.raises(ValueError, match="^" + re.escape(
            f"Expected path {bad_tensors!r} to be a fastseq ConvAutoencoder model file whose contents fit together, "
            "got RuntimeError: ")):
        load_autoencoder(bad_tensors)
