"""The convolutional autoencoder: shapes, batching, files, bad configurations."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fastseq.conv import ConvAutoencoder, ConvConfig, default_config
from fastseq.conv.model import load_autoencoder


def test_default_shapes():
    c64 = default_config(64)
    assert c64.depth == 5 and c64.strides == (2, 2, 2, 2, 1)
    assert c64.code_shape == (32, 4, 4) and c64.code_size == 512
    assert default_config(25).code_size == 288
    assert default_config(28).code_shape == (8, 7, 7)
    digits = default_config(28, "digits")
    assert digits.code_shape == (8, 3, 3) and digits.activation == "elu"
    with pytest.raises(ValueError, match="Expected data to be one of 'faces', 'digits', got 'mnist'"):
        default_config(28, "mnist")


@pytest.mark.parametrize("size", [9, 13, 16, 25, 31])
def test_encode_decode_shapes_for_odd_and_even_sizes(size):
    net = ConvAutoencoder(ConvConfig(size, (3, 4, 2), (2, 2, 1)), seed=0)
    x = np.random.default_rng(0).uniform(-1, 1, (5, size, size)).astype(np.float32)
    codes = net.encode(x)
    assert codes.shape == (5, net.config.code_size)
    assert net.decode(codes).shape == (5, size, size)


def test_size_too_small_for_the_depth_names_size():
    with pytest.raises(ValueError, match=r"Expected size to be at least 16 .* got 8"):
        ConvConfig(8, (4, 4, 4, 4, 4), (2, 2, 2, 2, 1))
    assert ConvConfig(16, (4, 4, 4, 4, 4), (2, 2, 2, 2, 1)).code_shape == (4, 1, 1)
    with pytest.raises(ValueError, match="channels and strides"):
        ConvConfig(16, (4, 4), (2,))
    with pytest.raises(ValueError, match="activation"):
        ConvConfig(16, (4,), (2,), activation="sigmoid")


def test_round_trip_after_training(small_net, faces16):
    test = faces16[1]
    err = float(np.mean((small_net.reconstruct(test) - test) ** 2))
    fresh = ConvAutoencoder(small_net.config, seed=1)
    err_fresh = float(np.mean((fresh.reconstruct(test) - test) ** 2))
    assert err < 0.6 * err_fresh and err < 0.6 * float(np.var(test))


def test_batched_equals_one_at_a_time(small_net, faces16):
    x = faces16[1][:7]
    before = x.copy()
    codes = small_net.encode(x, batch_size=256)
    one = np.concatenate([small_net.encode(x[i:i + 1]) for i in range(len(x))])
    np.testing.assert_allclose(codes, one, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(small_net.encode(x, batch_size=3), codes, rtol=1e-5, atol=1e-6)
    dec = small_net.decode(codes)
    one = np.concatenate([small_net.decode(codes[i:i + 1]) for i in range(len(x))])
    np.testing.assert_allclose(dec, one, rtol=1e-5, atol=1e-6)
    assert np.array_equal(x, before)


def test_bad_shapes_name_the_argument(small_net):
    with pytest.raises(ValueError, match=r"images to be N x 16 x 16, got shape \(2, 15, 15\)"):
        small_net.encode(np.zeros((2, 15, 15)))
    with pytest.raises(ValueError, match="codes to be N x 128"):
        small_net.decode(np.zeros((2, 63)))


@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
def test_save_load_round_trip_and_configuration_check(small_net, faces16, tmp_path, suffix):
    path = tmp_path / f"net{suffix}"
    small_net.save(path)
    back = load_autoencoder(path, config=small_net.config)
    np.testing.assert_array_equal(back.encode(faces16[1]), small_net.encode(faces16[1]))
    other = ConvConfig(16, (8, 8, 4), (2, 2, 1))
    with pytest.raises(ValueError, match="Expected model to hold a network for .*got one for"):
        load_autoencoder(path, config=other)
    assert not list(tmp_path.glob("*.tmp*"))  # atomic: no temp file left


def test_foreign_files_are_refused(tmp_path):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="model.*unreadable"):
        load_autoencoder(junk)
    np.savez(tmp_path / "plain.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="format"):
        load_autoencoder(tmp_path / "plain.npz")
    with pytest.raises(FileNotFoundError, match="model"):
        load_autoencoder(tmp_path / "none.safetensors")
    with pytest.raises(ValueError, match=".safetensors or .npz"):
        ConvAutoencoder(ConvConfig(8, (2,), (2,))).save(tmp_path / "x.pt")


def test_seed_gives_the_same_weights_and_leaves_global_rng_alone():
    state = torch.random.get_rng_state()
    a, b = ConvAutoencoder(ConvConfig(8, (2,), (2,)), seed=3), ConvAutoencoder(ConvConfig(8, (2,), (2,)), seed=3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert torch.equal(state, torch.random.get_rng_state())


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu(small_net, faces16):
    gpu = ConvAutoencoder(small_net.config, seed=None)
    gpu.load_state_dict(small_net.state_dict())
    gpu = gpu.to("cuda")
    np.testing.assert_allclose(gpu.encode(faces16[1]), small_net.encode(faces16[1]), atol=1e-4)
