"""The Boltzmann machines as scikit-learn estimators: scikit-learn's own checks, pipelines,
sparse and out-of-range input, dtypes, feature names and pandas output."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import parametrize_with_checks

from fastseq.boltzmann import R3BM, RBM, RRBM, BetaRBM, GaussianRBM
from fastseq.boltzmann._base import _CHUNK_ELEMENTS

# BetaRBM's energy uses log v and log(1 - v), so it refuses data outside [0, 1]; these
# checks feed values above 1 (scikit-learn has no "unit interval" tag to ask for such data)
_ABOVE_ONE = "the check feeds values above 1; BetaRBM's energy needs log(1 - v), so data must lie in [0, 1]"
_BETA_XFAIL = {name: _ABOVE_ONE for name in (
    "check_estimators_overwrite_params", "check_dont_overwrite_parameters", "check_estimators_fit_returns_self",
    "check_readonly_memmap_input", "check_n_features_in_after_fitting", "check_estimators_dtypes",
    "check_pipeline_consistency", "check_estimators_pickle", "check_f_contiguous_array_estimator",
    "check_transformer_data_not_an_array", "check_transformer_general", "check_transformer_preserve_dtypes",
    "check_methods_sample_order_invariance", "check_methods_subset_invariance", "check_fit2d_1sample",
    "check_fit2d_1feature", "check_dict_unchanged", "check_fit_idempotent", "check_fit_check_is_fitted",
    "check_n_features_in", "check_fit2d_predict1d",
)}
EXPECTED_FAILURES = {"RBM": {}, "GaussianRBM": {}, "RRBM": {}, "R3BM": {}, "BetaRBM": _BETA_XFAIL}

# small machines keep scikit-learn's ~50 checks per class quick
SMALL = dict(n_components=8, n_iter=5)


@parametrize_with_checks([RBM(**SMALL), GaussianRBM(**SMALL), RRBM(**SMALL), R3BM(**SMALL), BetaRBM(**SMALL)],
                         expected_failed_checks=lambda est: EXPECTED_FAILURES[type(est).__name__])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_rbm_passes_every_check_that_bernoulli_rbm_passes():
    # the checks BernoulliRBM is excused from are ones its random score_samples fails; ours is exact
    from sklearn.neural_network import BernoulliRBM
    from sklearn.utils._test_common.instance_generator import _get_expected_failed_checks

    assert EXPECTED_FAILURES["RBM"] == {}
    assert set(_get_expected_failed_checks(BernoulliRBM())) <= {
        "check_methods_subset_invariance", "check_methods_sample_order_invariance"}


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    return load_digits().data  # 0..16, as scikit-learn ships them


def test_pipeline_check_is_fitted_and_grid_search(digits):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import make_scorer
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler
    from sklearn.utils.validation import check_is_fitted

    X = digits[:300]
    pipe = make_pipeline(MinMaxScaler(), RBM(n_components=16, n_iter=2, random_state=0))
    assert pipe.fit(X).transform(X).shape == (300, 16)
    check_is_fitted(pipe[-1])
    with pytest.raises(NotFittedError):
        check_is_fitted(RBM())

    def mean_pl(model, X, y=None):
        return float(np.mean(model.score_samples(X)))

    grid = GridSearchCV(RBM(n_iter=2, random_state=0), {"n_components": [4, 8]}, scoring=mean_pl, cv=2)
    grid.fit(X / 16.0)
    assert grid.best_params_["n_components"] in (4, 8)
    y = np.arange(300) % 2
    clf = make_pipeline(MinMaxScaler(), RBM(n_components=8, n_iter=1, random_state=0), LogisticRegression())
    assert 0 <= clf.fit(X, y).score(X, y) <= 1
    GridSearchCV(clf, {"rbm__n_components": [4]}, scoring=make_scorer(lambda a, b: 1.0), cv=2).fit(X, y)


@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_sparse_input_equals_dense(fmt):
    from sklearn.preprocessing import OneHotEncoder

    cats = np.random.default_rng(0).integers(0, 5, size=(120, 4))
    Xs = OneHotEncoder().fit_transform(cats).asformat(fmt)
    Xd = Xs.toarray()
    a = RBM(n_components=6, n_iter=3, random_state=0).fit(Xs)
    b = RBM(n_components=6, n_iter=3, random_state=0).fit(Xd)
    np.testing.assert_allclose(a.components_, b.components_, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a.transform(Xs), b.transform(Xd), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a.score_samples(Xs), b.score_samples(Xd), rtol=1e-5)
    np.testing.assert_allclose(a.free_energy(Xs), b.free_energy(Xd), rtol=1e-5)
    np.testing.assert_array_equal(a.gibbs(Xs), b.gibbs(Xd))  # same seed, same draws
    a.partial_fit(Xs[:10])
    b.partial_fit(Xd[:10])
    np.testing.assert_allclose(a.components_, b.components_, rtol=1e-5, atol=1e-6)


def test_sparse_input_is_never_densified_whole(monkeypatch):
    from scipy.sparse._compressed import _cs_matrix

    densified = []
    original = _cs_matrix.toarray

    def spy(self, *args, **kwargs):
        densified.append(self.shape[0])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(_cs_matrix, "toarray", spy)
    n, d = 1000, 5_000  # 5 M entries, more than one chunk of _CHUNK_ELEMENTS
    X = sp.random(n, d, density=1e-3, format="csr", random_state=0, dtype=np.float64)
    X.data[:] = 1.0
    m = RBM(n_components=2, n_iter=1, batch_size=50, random_state=0).fit(X)
    m.partial_fit(X[:50])  # one update on the batch given, as BernoulliRBM
    assert m.transform(X).shape == (n, 2) and m.score_samples(X).shape == (n,) and m.gibbs(X).shape == (n, d)
    assert m.free_energy(X.tocsc()).shape == (n,)
    # per batch or per chunk of _CHUNK_ELEMENTS entries, never the whole matrix
    assert densified and max(densified) <= max(50, _CHUNK_ELEMENTS // d) < n


def test_out_of_range_data_trains_as_in_bernoulli_rbm(digits):
    from sklearn.neural_network import BernoulliRBM
    from sklearn.preprocessing import StandardScaler

    for X in (digits[:200], StandardScaler().fit_transform(digits[:200])):
        BernoulliRBM(n_components=8, n_iter=2, random_state=0).fit(X)  # the drop-in's behaviour
        for cls in (RBM, RRBM, R3BM, GaussianRBM):
            h = cls(n_components=8, n_iter=2, random_state=0).fit(X).transform(X)
            assert np.all(np.isfinite(h)) and h.shape == (200, 8)
        with pytest.raises(ValueError, match="passed to BetaRBM"):
            BetaRBM(n_components=8, n_iter=2).fit(X)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtypes_are_preserved(dtype):
    X = np.random.default_rng(0).random((40, 5)).astype(dtype)
    for model_dtype in ("float32", "float64"):
        m = RBM(n_components=3, n_iter=1, dtype=model_dtype, random_state=0).fit(X)
        for out in (m.transform(X), m.fit_transform(X), m.gibbs(X), m.reconstruct(X), m.free_energy(X)):
            assert out.dtype == dtype
    assert RBM(n_components=3, n_iter=1, dtype="float64").fit(X).components_.dtype == np.float64


def test_empty_complex_and_unfitted_input_rejected():
    m = RBM(n_components=3, n_iter=1)
    with pytest.raises(ValueError, match="0 sample"):
        m.fit(np.zeros((0, 4)))
    with pytest.raises(ValueError, match="0 feature"):
        m.fit(np.zeros((4, 0)))
    with pytest.raises(ValueError, match="Complex data not supported"):
        m.fit(np.ones((4, 3)) + 1j)
    with pytest.raises(NotFittedError, match="RBM instance is not fitted yet"):
        m.transform(np.zeros((2, 3)))
    with pytest.raises(NotFittedError):
        m.sample(2)


def test_feature_names_and_pandas_output():
    pd = pytest.importorskip("pandas")
    X = pd.DataFrame(np.random.default_rng(0).random((30, 4)), columns=["a", "b", "c", "d"])
    m = RBM(n_components=3, n_iter=1, random_state=0).set_output(transform="pandas").fit(X)
    assert list(m.feature_names_in_) == ["a", "b", "c", "d"]
    out = m.transform(X)
    assert isinstance(out, pd.DataFrame) and list(out.columns) == ["rbm0", "rbm1", "rbm2"]
    assert list(out.index) == list(X.index)
    assert list(BetaRBM(n_components=2, n_iter=1).fit(X).get_feature_names_out()) == ["betarbm0", "betarbm1"]
    with pytest.warns(UserWarning, match="feature names"):
        m.transform(X.to_numpy())


def test_repr_shows_non_default_parameters_and_params_are_explicit():
    import inspect

    assert repr(GaussianRBM(n_components=5, learn_sigma=True)) == "GaussianRBM(learn_sigma=True, n_components=5)"
    for cls in (RBM, GaussianRBM, RRBM, R3BM, BetaRBM):
        kinds = {p.kind for p in inspect.signature(cls.__init__).parameters.values()}
        assert inspect.Parameter.VAR_KEYWORD not in kinds
        assert set(cls().get_params()) == set(cls._parameter_constraints)
