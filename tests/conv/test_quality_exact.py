"""Exact behaviour of the quality measures: empty rows refused with the measures' own
messages (word for word, naming the argument), the two-sample test's folds drawn from its
seed (the accuracy equals scikit-learn's with that seed's folds), and every value
recomputed here from its definition, on data where a wrong sign, power, axis or missing
step gives another answer."""
from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

from fastseq.conv.quality import mean_squared_error, pca_reconstruction_error, two_sample_accuracy


def _rng():
    return np.random.default_rng(7)


def _reference_accuracy(a, b, seed, features):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    n = min(len(a), len(b))
    x, y = features(np.concatenate([a[:n], b[:n]])), np.r_[np.zeros(n), np.ones(n)]
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    return float(np.mean(cross_val_score(clf, x, y, cv=StratifiedKFold(5, shuffle=True, random_state=seed))))


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
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow warning before the error would fail here
        with pytest.raises(ValueError, match="Expected real and generated to hold values small enough to standardise"):
            two_sample_accuracy(real, generated, quadratic=quadratic)
    assert 0.0 <= two_sample_accuracy(real / scale * 1e100, generated, quadratic=False) <= 1.0


def test_two_sample_accuracy_uses_the_folds_of_its_seed():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(30, 2)), rng.normal(0.4, 1.0, size=(30, 2))
    got, want = [], []
    for seed in range(8):  # each value shows up for a quarter of the seeds at most: eight cannot match by chance
        want.append(_reference_accuracy(a, b, seed, lambda x: x))
        got.append(two_sample_accuracy(a, b, seed=seed))
    assert got == want and len(set(want)) > 2


def test_mean_squared_error_is_the_mean_of_squared_differences():
    rng = _rng()
    a, b = rng.normal(1.0, 1.0, size=(4, 3, 2)), rng.normal(-0.5, 2.0, size=(4, 3, 2))
    assert mean_squared_error(a, b) == float(np.mean((a - b) ** 2))
    assert mean_squared_error(a[:1, :1, :1], b[:1, :1, :1]) == float((a[0, 0, 0] - b[0, 0, 0]) ** 2)


@pytest.mark.parametrize("which", ["a", "b"])
def test_mean_squared_error_names_the_empty_or_non_finite_argument(which):
    good, bad = np.ones((2, 2)), np.array([[1.0, np.nan], [0.0, 1.0]])
    args = {"a": good, "b": good, which: bad}
    with pytest.raises(ValueError, match=rf"^Expected {which} to "):
        mean_squared_error(args["a"], args["b"])
    with pytest.raises(ValueError, match=re.escape("Expected a and b to be non-empty, got shape (0, 2).")):
        mean_squared_error(np.empty((0, 2)), np.empty((0, 2)))


def test_pca_error_equals_a_reconstruction_through_the_training_rows_components():
    rng = _rng()
    # an offset far from 0: centring on the training mean (and only it) matters
    train = 5.0 + rng.normal(size=(30, 6)) @ rng.normal(size=(6, 6))
    test = 5.0 + rng.normal(size=(10, 6)) @ rng.normal(size=(6, 6))
    mean = train.mean(0)
    v = np.linalg.svd(train - mean)[2][:2]
    centred = test - mean
    want = float(np.mean((centred - centred @ v.T @ v) ** 2))
    got, k = pca_reconstruction_error(train, test, 2)
    assert k == 2 and got == pytest.approx(want, rel=1e-12)


def test_pca_error_names_n_components():
    with pytest.raises(ValueError, match=r"^Expected n_components to "):
        pca_reconstruction_error(np.ones((4, 3)), np.ones((2, 3)), 0)


def test_two_sample_accuracy_standardises_features_of_very_different_scales():
    """Unscaled, the weak penalty of a logistic regression on a column 1e4 times larger than the
    other changes the fitted boundary; the measure standardises each training fold first."""
    rng = _rng()
    a = np.c_[rng.normal(0, 1e4, 40), rng.normal(0.0, 1.0, 40)]
    b = np.c_[rng.normal(0, 1e4, 40), rng.normal(0.6, 1.0, 40)]
    got = [two_sample_accuracy(a, b, seed=s) for s in range(4)]
    assert got == [_reference_accuracy(a, b, s, lambda x: x) for s in range(4)]


def test_two_sample_accuracy_squares_deviations_from_each_columns_mean():
    """quadratic=True adds (x - column mean)^2: equal means and different spreads, on columns
    whose means differ from each other and from 0, so another centre gives other features."""
    rng = _rng()
    a = np.c_[rng.normal(3.0, 1.0, 60), rng.normal(-8.0, 1.0, 60)]
    b = np.c_[rng.normal(3.0, 2.5, 60), rng.normal(-8.0, 0.4, 60)]
    square = lambda x: np.concatenate([x, (x - x.mean(0)) ** 2], axis=1)  # noqa: E731
    got = [two_sample_accuracy(a, b, seed=s, quadratic=True) for s in range(4)]
    assert got == [_reference_accuracy(a, b, s, square) for s in range(4)]
    assert min(got) > 0.65  # the spreads show (chance: 0.5)


@pytest.mark.parametrize("name, kwargs", [
    ("real", {"real": np.full((6, 2), np.inf)}),
    ("generated", {"generated": np.full((6, 2), np.nan)}),
    ("seed", {"seed": -1}),
    ("seed", {"seed": 2**32}),
    ("quadratic", {"quadratic": "yes"}),
])
def test_two_sample_accuracy_names_the_bad_argument(name, kwargs):
    args = {"real": np.zeros((6, 2)), "generated": np.ones((6, 2)), **kwargs}
    with pytest.raises((ValueError, TypeError), match=rf"^Expected {name} to "):
        two_sample_accuracy(**args)


def test_two_sample_accuracy_takes_the_largest_seed_and_empty_real_rows_count_as_too_few():
    rng = _rng()
    a, b = rng.normal(size=(10, 2)), rng.normal(size=(10, 2))
    assert two_sample_accuracy(a, b, seed=2**32 - 1) == _reference_accuracy(a, b, 2**32 - 1, lambda x: x)
    with pytest.raises(ValueError, match=re.escape("got 0 real and 10 generated")):
        two_sample_accuracy(np.empty((0, 2)), b)


def test_two_sample_accuracy_draws_its_folds_from_seed_0_by_default():
    rng = _rng()
    a, b = rng.normal(size=(30, 2)), rng.normal(0.4, 1.0, size=(30, 2))
    assert two_sample_accuracy(a, b) == _reference_accuracy(a, b, 0, lambda x: x)


def test_two_sample_accuracy_checks_each_columns_spread_not_the_whole_arrays_or_a_rows():
    """Values near 1e153 over 400 columns: each column's variance is finite (20 squares of about
    1e306), while the variance of a row (400 of them) or of the whole array overflows."""
    rng = _rng()
    a, b = 1e153 * rng.normal(size=(10, 400)), 1e153 * rng.normal(0.5, 1.0, size=(10, 400))
    assert two_sample_accuracy(a, b) == _reference_accuracy(a, b, 0, lambda x: x)
