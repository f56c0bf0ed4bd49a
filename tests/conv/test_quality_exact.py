"""Exact behaviour of the quality measures: empty rows refused with the measures' own
messages (word for word, naming the argument), and the two-sample test's folds drawn
from its seed (the accuracy equals scikit-learn's with that seed's folds)."""
from __future__ import annotations

import re

import numpy as np
import pytest

from fastseq.conv.quality import pca_reconstruction_error, two_sample_accuracy


@pytest.mark.parametrize("empty", ["train", "test"])
def test_pca_error_refuses_empty_rows_naming_them(empty):
    rows = {"train": np.ones((4, 3)), "test": np.ones((2, 3)), empty: np.empty((0, 3))}
    msg = f"Expected {empty} to be N x ... rows with N, D >= 1, got shape (0, 3)."
    with pytest.raises(ValueError, match=re.escape(msg)):
        pca_reconstruction_error(rows["train"], rows["test"], 1)


def test_two_sample_accuracy_counts_empty_generated_rows_as_too_few_for_the_folds():
    msg = ("Expected real and generated to hold at least folds = 5 rows each for cross-validation, "
           "got 10 real and 0 generated.")
    with pytest.raises(ValueError, match=re.escape(msg)):
        two_sample_accuracy(np.zeros((10, 2)), np.empty((0, 2)))


def test_two_sample_accuracy_refuses_one_fold_naming_folds():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=re.escape("Expected folds to be an integer >= 2, got 1.")):
        two_sample_accuracy(rng.normal(size=(10, 2)), rng.normal(size=(10, 2)), folds=1)
    assert 0.0 <= two_sample_accuracy(rng.normal(size=(10, 2)), rng.normal(size=(10, 2)), folds=2) <= 1.0


@pytest.mark.parametrize("quadratic, scale", [(True, 1e160), (False, 1e300)])
def test_two_sample_accuracy_refuses_values_too_large_to_standardise(quadratic, scale):
    # squares (or a column's variance) overflow: every fold would fit and score NaN
    rng = np.random.default_rng(0)
    real, generated = rng.normal(size=(10, 2)) * scale, rng.normal(size=(10, 2))
    with pytest.raises(ValueError, match="Expected real and generated to hold values small enough to standardise"):
        two_sample_accuracy(real, generated, quadratic=quadratic)
    assert 0.0 <= two_sample_accuracy(real / scale * 1e100, generated, quadratic=False) <= 1.0


def test_two_sample_accuracy_uses_the_folds_of_its_seed():
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(30, 2)), rng.normal(0.4, 1.0, size=(30, 2))
    x, y = np.concatenate([a, b]), np.r_[np.zeros(30), np.ones(30)]
    got, want = [], []
    for seed in range(8):  # each value shows up for a quarter of the seeds at most: eight cannot match by chance
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        folds = StratifiedKFold(5, shuffle=True, random_state=seed)
        want.append(float(np.mean(cross_val_score(clf, x, y, cv=folds))))
        got.append(two_sample_accuracy(a, b, seed=seed))
    assert got == want and len(set(want)) > 2
