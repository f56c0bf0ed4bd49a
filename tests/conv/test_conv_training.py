"""Layer-wise training lowers each layer's error; fine-tuning lowers the whole network's."""
from __future__ import annotations

import numpy as np
import pytest

from fastseq.conv import ConvAutoencoder, ConvConfig, fine_tune, train_layerwise


def test_each_layer_lowers_its_error_on_real_faces(faces16):
    train = faces16[0]
    before = train.copy()
    net = ConvAutoencoder(ConvConfig(16, (8, 8, 4), (2, 2, 1)), seed=0)
    reports = train_layerwise(net, train, epochs=4, batch_size=16, learning_rate=3e-3)
    assert [r.layer for r in reports] == [1, 2, 3]
    for r in reports:
        assert r.error_after < 0.5 * r.error_before, r
        assert r.images_per_second > 0 and len(r.epoch_losses) == 4
        assert r.epoch_losses[-1] < r.epoch_losses[0]
    assert np.array_equal(train, before)
    ft = fine_tune(net, train, epochs=3, batch_size=16, learning_rate=1e-3)
    assert ft.error_after < ft.error_before


def test_training_one_layer_leaves_the_others(faces16):
    net = ConvAutoencoder(ConvConfig(16, (4, 4), (2, 2)), seed=0)
    w0 = net.encoders[0].weight.detach().clone()
    train_layerwise(net, faces16[0][:20], epochs=1, layers=[2])
    assert np.array_equal(w0.numpy(), net.encoders[0].weight.detach().numpy())
    with pytest.raises(ValueError, match="layers in 1..2"):
        train_layerwise(net, faces16[0][:20], epochs=1, layers=[3])


def test_same_seed_same_training(faces16):
    nets = []
    for _ in range(2):
        net = ConvAutoencoder(ConvConfig(16, (4,), (2,)), seed=0)
        train_layerwise(net, faces16[0][:32], epochs=2, batch_size=8, seed=5)
        nets.append(net.encode(faces16[1]))
    np.testing.assert_array_equal(nets[0], nets[1])


def test_bad_arguments(faces16):
    net = ConvAutoencoder(ConvConfig(16, (4,), (2,)), seed=0)
    with pytest.raises(ValueError, match="epochs"):
        train_layerwise(net, faces16[0], epochs=0)
    with pytest.raises(ValueError, match="learning_rate"):
        fine_tune(net, faces16[0], learning_rate=-1.0)
    with pytest.raises(ValueError, match="images to be N x 16 x 16"):
        train_layerwise(net, np.zeros((3, 8, 8)))


def test_progress_bars_name_each_layer_and_vanish(faces16, capsys):
    net = ConvAutoencoder(ConvConfig(16, (4, 4), (2, 2)), seed=0)
    train_layerwise(net, faces16[0][:8], epochs=1, batch_size=4, progress=True)
    fine_tune(net, faces16[0][:8], epochs=1, batch_size=4, progress=True)
    err = capsys.readouterr().err
    for desc in ("layer 1/2", "layer 2/2", "fine-tune"):
        assert desc in err and "2/2" in err
    train_layerwise(net, faces16[0][:8], epochs=1, batch_size=4)
    assert capsys.readouterr().err == ""
