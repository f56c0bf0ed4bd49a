"""Shared fixtures of the conv tests: real faces and a small trained network."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fastseq.conv import ConvAutoencoder, ConvConfig, fine_tune, train_layerwise
from fastseq.datasets import lfw_subset_faces


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """Small convolutions: one thread is fastest, and far faster on a shared, busy machine."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="session")
def faces16():
    """The 100 embedded faces at 16 x 16: 80 to train, 20 held out."""
    f = lfw_subset_faces(size=16).images
    return np.ascontiguousarray(f[:80]), np.ascontiguousarray(f[80:])


@pytest.fixture(scope="session")
def small_net(faces16):
    """A three-layer network (4 x 4 x 8 = 128 codes) trained briefly on the faces."""
    net = ConvAutoencoder(ConvConfig(16, (8, 8, 8), (2, 2, 1)), seed=0)
    train_layerwise(net, faces16[0], epochs=2, batch_size=16, learning_rate=3e-3)
    fine_tune(net, faces16[0], epochs=6, batch_size=16, learning_rate=2e-3)
    return net
