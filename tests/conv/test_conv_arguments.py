"""Bad arguments to fastseq.conv are refused by name (found by the fuzz suite)."""
from __future__ import annotations

import numpy as np
import pytest

from fastseq.conv import ConvAutoencoder, ConvConfig, mean_squared_error, pca_reconstruction_error, two_sample_accuracy
from fastseq.conv.stacked import CodeScaler

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("call,error,words", [
    (lambda: ConvAutoencoder(None), TypeError, "config"),
    (lambda: ConvAutoencoder(-1), ValueError, "config"),
    (lambda: ConvAutoencoder(16, seed=-1), ValueError, "seed"),
    (lambda: ConvAutoencoder(ConvConfig(16, (2**20, 2**20), (2, 2))), ValueError, "would need"),
    (lambda: ConvConfig(16, None, (2, 2)), TypeError, "channels"),
    (lambda: ConvConfig(16, (4, 4), (2, 2), kernels=True), TypeError, "kernels"),
    (lambda: ConvConfig(16, (4, 4), (2, 2), kernels=[]), ValueError, "kernels"),
    (lambda: ConvConfig(16, (4, 4), (2, 2), activation=[]), ValueError, "activation"),
    (lambda: CodeScaler(margin=None), TypeError, "margin"),
    (lambda: CodeScaler(kind=np.array([])), ValueError, "kind"),
    (lambda: mean_squared_error(np.zeros((3, 4)), None), TypeError, "b to hold real numbers"),
    (lambda: mean_squared_error(np.zeros((3, 4)), np.zeros(3)), ValueError, "a and b to have one shape"),
    (lambda: mean_squared_error(np.zeros(3), np.array([0, np.nan, 0])), ValueError, "b to hold finite"),
    (lambda: pca_reconstruction_error(RNG.random((8, 4)), np.zeros((1, 0)), 2), ValueError, "test"),
    (lambda: pca_reconstruction_error(RNG.random((8, 4)), "", 2), TypeError, "test"),
    (lambda: two_sample_accuracy(RNG.random((20, 3)), RNG.random((20, 3)), folds=2, seed=2**63), ValueError, "seed"),
    (lambda: two_sample_accuracy(RNG.random((20, 3)), RNG.random((20, 3)), folds=2**31), ValueError, "folds"),
])
def test_bad_arguments_are_named(call, error, words):
    with pytest.raises(error, match=words):
        call()
