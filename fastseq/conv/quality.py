"""Quality measures for autoencoders and generative models of codes: a PCA baseline with
the same code size, and a classifier two-sample test."""
from __future__ import annotations

import numpy as np

from fastseq._util.validate import bounded_int, finite_array, flag, positive_int

__all__ = ["mean_squared_error", "pca_reconstruction_error", "two_sample_accuracy"]


def _rows(name: str, value) -> np.ndarray:
    """``N x ...`` finite rows, flattened to ``N x D`` with N, D >= 1."""
    arr = finite_array(name, value, allow_empty=True)
    if arr.ndim < 2 or arr.size == 0:
        raise ValueError(f"Expected {name} to be N x ... rows with N, D >= 1, got shape {arr.shape}.")
    return arr.reshape(len(arr), -1)


def mean_squared_error(a, b) -> float:
    """Mean of ``(a - b)^2`` over all entries (same shapes).

    Example:
        >>> mean_squared_error(np.zeros((2, 3)), np.ones((2, 3)))
        1.0
    """
    a = finite_array("a", a, allow_empty=True)
    b = finite_array("b", b, allow_empty=True)
    if a.shape != b.shape:
        raise ValueError(f"Expected a and b to have one shape, got {a.shape} and {b.shape}.")
    if a.size == 0:
        raise ValueError(f"Expected a and b to be non-empty, got shape {a.shape}.")
    return float(np.mean((a - b) ** 2))


def pca_reconstruction_error(train, test, n_components: int) -> tuple[float, int]:
    """Held-out mean squared error of PCA with ``n_components`` fitted on ``train``.

    Args:
        train: ``N x ...`` rows to fit on (flattened).
        test: ``M x ...`` rows to reconstruct.
        n_components: code size; at most ``min(N, features)`` components are used (``N``
            centred rows span at most ``N - 1`` directions, so a larger code would add
            nothing): with fewer training rows than ``n_components`` this is the best PCA
            can do on that data, but not a comparison at equal code size.

    Returns:
        ``(error, components used)``.

    Example:
        >>> x = np.random.default_rng(0).normal(size=(50, 4)) @ np.diag([3.0, 2.0, 0.0, 0.0])
        >>> err, k = pca_reconstruction_error(x[:40], x[40:], 2)
        >>> bool(err < 1e-20), k
        (True, 2)
    """
    xtr = _rows("train", train)
    xte = _rows("test", test)
    if xte.shape[1] != xtr.shape[1]:
        raise ValueError(f"Expected test rows of train's {xtr.shape[1]} features, got {xte.shape[1]}.")
    k = min(positive_int("n_components", n_components), *xtr.shape)
    mean = xtr.mean(0)
    _, _, vt = np.linalg.svd(xtr - mean, full_matrices=False)
    v = vt[:k]
    centred = xte - mean
    return float(np.mean((centred - centred @ v.T @ v) ** 2)), int(k)


def two_sample_accuracy(real, generated, folds: int = 5, seed: int = 0, quadratic: bool = False) -> float:
    """Cross-validated accuracy of a logistic regression telling generated rows from real ones.

    0.5 means the classifier cannot tell them apart; 1.0 that it always can. Features are
    standardised on each training fold; classes are balanced by using as many rows of each
    (the first ``min(len(real), len(generated))``). A linear classifier sees differences of
    the means only: samples collapsed onto the real mean pass it. ``quadratic=True`` adds
    the squared features, so differences of spread show too.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> round(two_sample_accuracy(rng.normal(size=(200, 3)), rng.normal(3, 1, size=(200, 3))), 2)
        1.0
    """
    try:
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import StratifiedKFold, cross_val_score
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
    except ImportError:  # an OSError, so the command line reports it in one line
        raise OSError("Expected scikit-learn for the two-sample test, got none (pip install 'fastseq[faces]').") from None

    a = finite_array("real", real, allow_empty=True)
    b = finite_array("generated", generated, allow_empty=True)
    seed, quadratic = bounded_int("seed", seed, 0, 2**32 - 1), flag("quadratic", quadratic)  # scikit-learn's range
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"Expected real and generated to be N x D with one D, got {a.shape} and {b.shape}.")
    n = min(len(a), len(b))
    folds = bounded_int("folds", folds, 2)  # a cross-validation needs two folds at least
    if n < folds:
        raise ValueError(f"Expected real and generated to hold at least folds = {folds} rows each for "
                         f"cross-validation, got {len(a)} real and {len(b)} generated.")
    x = np.concatenate([a[:n], b[:n]])
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is refused below, not warned about
        if quadratic:
            x = np.concatenate([x, (x - x.mean(0)) ** 2], axis=1)
        scalable = bool(np.isfinite(x).all() and np.isfinite(x.std(0)).all())
    if not scalable:  # the classifier would fit NaN, and every fold would score NaN
        raise ValueError(f"Expected real and generated to hold values small enough to standardise"
                         f"{' and square' if quadratic else ''}, got values up to {np.abs(np.r_[a.ravel(), b.ravel()]).max():.3g}.")
    y = np.r_[np.zeros(n), np.ones(n)]
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    return float(np.mean(cross_val_score(clf, x, y, cv=cv)))
