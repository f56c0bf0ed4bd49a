"""Quality measures: the PCA baseline and the classifier two-sample test."""
from __future__ import annotations

import numpy as np
import pytest

from fastseq.conv import pca_reconstruction_error, two_sample_accuracy


def test_pca_error_falls_with_components_and_is_capped_by_the_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 10)) @ rng.normal(size=(10, 30))
    errs = [pca_reconstruction_error(x[:40], x[40:], k)[0] for k in (1, 5, 10)]
    assert errs[0] > errs[1] > errs[2] and errs[2] < 1e-20
    assert pca_reconstruction_error(x[:8], x[40:], 20)[1] == 8


def test_two_sample_accuracy_is_near_half_for_one_distribution_and_high_for_two():
    rng = np.random.default_rng(0)
    same = two_sample_accuracy(rng.normal(size=(120, 5)), rng.normal(size=(120, 5)))
    shifted = two_sample_accuracy(rng.normal(size=(120, 5)), rng.normal(1.0, 1, size=(120, 5)))
    assert 0.35 < same < 0.65 and shifted > 0.8
    with pytest.raises(ValueError, match=r"^Expected real and generated to hold at least folds = 5 rows each for "
                                         r"cross-validation, got 3 real and 4 generated\.$"):
        two_sample_accuracy(np.zeros((3, 2)), np.zeros((4, 2)))


def test_squares_catch_samples_collapsed_onto_the_mean():
    rng = np.random.default_rng(1)
    real = rng.normal(size=(120, 4))
    collapsed = np.zeros((120, 4)) + rng.normal(scale=0.01, size=(120, 4))
    linear = two_sample_accuracy(real, collapsed)  # nearly blind: the means agree
    assert two_sample_accuracy(real, collapsed, quadratic=True) > max(0.9, linear + 0.15)
