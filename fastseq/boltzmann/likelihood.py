"""Likelihoods of Boltzmann machines: exact log Z by enumeration, annealed importance
sampling (AIS), average log-likelihood, and the exact pseudo-likelihood.

Exact log Z sums over every state of the smaller side (at most ``max_units`` = 20 units,
about a million states, in chunks). AIS follows Salakhutdinov & Murray (2008): it starts
from a base-rate model with the same visible family and no hidden-visible weights (its
log Z is known in closed form), anneals through ``p_beta(v) ~ p_A(v)^(1 - beta) p_B(v)^beta``
with exact Gibbs transitions at each inverse temperature, and averages the importance
weights of ``n_runs`` independent runs. Log weights are accumulated in float64 from the
model-dtype pre-activations, so a float32 model loses nothing over 14,500 steps.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from fastseq._util.memory import check_fits
from fastseq._util.validate import bounded_int, finite_float, positive_int
from sklearn.utils.validation import check_is_fitted

from fastseq.boltzmann._base import BoltzmannMachine, _bar

__all__ = ["AISResult", "exact_log_partition", "ais_log_partition", "average_log_likelihood",
           "pseudo_likelihood", "ais_schedule"]


@dataclass(frozen=True)
class AISResult:
    """Estimate of log Z from annealed importance sampling.

    Attributes:
        log_z: ``log mean(w)`` plus the base model's log Z.
        log_z_std: delta-method standard error of ``log_z``.
        log_z_low: ``log(mean(w) - 3 sd)`` as in Salakhutdinov & Murray (-inf if negative).
        log_z_high: ``log(mean(w) + 3 sd)``.
        log_weights: the ``n_runs`` log importance weights.
        log_z_base: exact log Z of the base-rate model.
    """

    log_z: float
    log_z_std: float
    log_z_low: float
    log_z_high: float
    log_weights: np.ndarray
    log_z_base: float


def ais_schedule(n_betas: int = 14500) -> np.ndarray:
    """Inverse temperatures 0 = beta_0 < ... < beta_K = 1 spaced like Salakhutdinov & Murray.

    The default 14,500 is 500 evenly in [0, 0.5), 4,000 in [0.5, 0.9) and 10,000 in
    [0.9, 1]; other counts keep these proportions.

    >>> b = ais_schedule(); (len(b), float(b[0]), float(b[-1]))
    (14500, 0.0, 1.0)
    """
    n = bounded_int("n_betas", n_betas, low=3)
    check_fits(f"n_betas={n}", 16.0 * n)  # the three float64 pieces and their concatenation
    n1 = max(1, round(n * 500 / 14500))
    # the last piece needs two points (0.9 and 1) so that the schedule ends at 1
    n2 = min(max(1, round(n * 4000 / 14500)), n - n1 - 2)
    n3 = n - n1 - n2
    return np.concatenate([np.linspace(0.0, 0.5, n1, endpoint=False),
                           np.linspace(0.5, 0.9, n2, endpoint=False), np.linspace(0.9, 1.0, n3)])


def _check_model(model) -> None:
    if not isinstance(model, BoltzmannMachine):
        raise TypeError(f"Expected model to be a fitted fastseq Boltzmann machine (RBM, BetaRBM, GaussianRBM), "
                        f"got {type(model).__name__}.")
    check_is_fitted(model)
    if not model._normalisable_energy:
        raise TypeError(f"Expected model to have a normalisable energy (RBM, BetaRBM, GaussianRBM), "
                        f"got {type(model).__name__}, whose Beta sampler has no matching energy.")


def _states(lo: int, hi: int, n: int, dtype=torch.float64) -> torch.Tensor:
    """Binary states lo..hi-1 of n units as rows."""
    idx = torch.arange(lo, hi, dtype=torch.int64)
    return ((idx[:, None] >> torch.arange(n, dtype=torch.int64)) & 1).to(dtype)


def exact_log_partition(model, max_units: int = 20, chunk: int = 1 << 14) -> float:
    """Exact log partition function by enumerating the smaller side (<= ``max_units`` units).

    Hidden states are enumerated for every model; a Bernoulli ``RBM`` with more hidden than
    visible units enumerates its visible states instead. Computed in float64 on the CPU.

    Example:
        >>> import numpy as np
        >>> from fastseq.boltzmann import RBM
        >>> X = (np.random.default_rng(0).random((50, 6)) < 0.5).astype(float)
        >>> m = RBM(n_components=3, n_iter=1, random_state=0).fit(X)
        >>> round(exact_log_partition(m), 6) == round(float(np.log(np.exp(-m.free_energy(
        ...     ((np.arange(64)[:, None] >> np.arange(6)) & 1).astype(float))).sum())), 6)
        True
    """
    _check_model(model)
    max_units = bounded_int("max_units", max_units, low=0)
    chunk = positive_int("chunk", chunk)
    d, h = model.n_features_in_, int(model.n_components)
    p = model._params64()
    by_visible = model._binary_visible and d < h
    n = d if by_visible else h
    if n > max_units:
        raise ValueError(f"Expected at most max_units={max_units} hidden units (or visible units for RBM) for "
                         f"exact log Z, got {d} visible and {h} hidden; use ais_log_partition.")
    parts = []
    for lo in range(0, 1 << n, chunk):
        s = _states(lo, min(1 << n, lo + chunk), n)
        parts.append(model._log_sum_hidden(p, s) if by_visible else model._log_sum_visible(p, s))
    return float(torch.logsumexp(torch.cat(parts), 0))


def ais_log_partition(model, data=None, n_betas: int = 14500, n_runs: int = 100, betas=None,
                      random_state: int | None = None, progress: bool = False) -> AISResult:
    """Estimate log Z by annealed importance sampling.

    Args:
        model: fitted ``RBM``, ``BetaRBM`` or ``GaussianRBM``.
        data: ``N x D`` rows whose base rates define the ``RBM`` base model (default: the
            model's visible biases). BetaRBM and GaussianRBM start from their own visible
            terms with the weights switched off.
        n_betas: number of inverse temperatures (see :func:`ais_schedule`).
        n_runs: independent annealing runs (importance weights).
        betas: explicit increasing schedule from 0 to 1, overriding ``n_betas``.
        random_state: reseed the model's random streams first (reproducible estimate).
        progress: tqdm bar over temperatures.

    Example:
        >>> import numpy as np
        >>> from fastseq.boltzmann import RBM
        >>> X = (np.random.default_rng(0).random((50, 8)) < 0.5).astype(float)
        >>> m = RBM(n_components=4, n_iter=2, random_state=0).fit(X)
        >>> r = ais_log_partition(m, X, n_betas=300, n_runs=50, random_state=0)
        >>> bool(abs(r.log_z - exact_log_partition(m)) < 0.1)
        True
    """
    _check_model(model)
    runs = positive_int("n_runs", n_runs)
    d, h = model.n_features_in_, int(model.n_components)
    # per run: the visible states (model dtype, a few copies) and the float64 pre-activations and weights
    check_fits(f"n_runs={runs}", runs * (4.0 * 8 * (d + h) + 16))
    sched = ais_schedule(n_betas) if betas is None else np.asarray(betas, dtype=np.float64)
    if sched.ndim != 1:  # a scalar cannot be sliced for the message below
        raise ValueError(f"Expected betas to be 1-D, got shape {sched.shape}.")
    if sched.size < 2 or sched[0] != 0 or sched[-1] != 1 or np.any(np.diff(sched) < 0):
        raise ValueError(f"Expected betas to increase from 0 to 1, got {sched.size} values "
                         f"from {sched[:1]} to {sched[-1:]}.")
    if random_state is not None:
        saved = model.random_state
        model.random_state = random_state
        model._setup_random()
        model.random_state = saved
    path = model._anneal_path(data)
    logw = torch.zeros(runs, dtype=torch.float64, device=model.params_["c"].device)
    bar = _bar(sched.size - 1, progress, "AIS")
    with torch.no_grad(), model._threads():
        v = path.start(runs)
        for k in range(1, sched.size):
            pre = path.pre(v)
            logw += path.delta(v, pre, float(sched[k]), float(sched[k - 1]))
            if k + 1 < sched.size:
                v = path.step(v, pre, float(sched[k]))
            bar.update(1)
    bar.close()
    lw = logw.cpu().numpy()
    top = lw.max()
    w = np.exp(lw - top)
    mean, sd = w.mean(), w.std(ddof=1) / math.sqrt(runs) if runs > 1 else 0.0
    base = path.log_z_base()
    log_z = base + top + math.log(mean)
    low = base + top + math.log(mean - 3 * sd) if mean > 3 * sd else -math.inf
    return AISResult(log_z=log_z, log_z_std=float(sd / mean), log_z_low=low,
                     log_z_high=base + top + math.log(mean + 3 * sd), log_weights=lw, log_z_base=base)


def average_log_likelihood(model, X, log_z: float | AISResult) -> float:
    """Mean log p(v) = mean(-F(v)) - log Z over the rows of X (binarised at 0.5 for ``RBM``)."""
    _check_model(model)
    lz = _log_z_value(log_z)
    X = model._validate(X)
    total = 0.0
    with torch.no_grad():
        for v in model._rows(X):
            total += float(model._free_energy_pre(model._likelihood_visible(v))[0].double().sum())
    return -total / X.shape[0] - lz


def _log_z_value(log_z: float | AISResult) -> float:
    """The number a ``log_z`` argument stands for: a finite number, or an AISResult's estimate."""
    if isinstance(log_z, AISResult):
        return log_z.log_z
    if isinstance(log_z, (bool, np.bool_)) or not isinstance(log_z, (int, float, np.integer, np.floating)):
        raise TypeError(f"Expected log_z to be a number or an AISResult, got {type(log_z).__name__} {log_z!r}.")
    return finite_float("log_z", log_z)


def pseudo_likelihood(model, X, chunk_elements: int = 1 << 22) -> np.ndarray:
    """Exact pseudo-log-likelihood ``sum_i log p(v_i | v_-i)`` of each row, ``(N,)``.

    Defined for binary visible units (``RBM``); rows are binarised at 0.5. Each of the D
    conditionals is ``log sigmoid(F(v with unit i flipped) - F(v))``, computed for all i
    at once from the hidden pre-activations. scikit-learn's ``score_samples`` instead flips
    one random unit per row and multiplies by D, an unbiased but noisy estimate of this.

    Example:
        >>> import numpy as np
        >>> from fastseq.boltzmann import RBM
        >>> X = (np.random.default_rng(0).random((20, 5)) < 0.5).astype(float)
        >>> m = RBM(n_components=3, n_iter=1, random_state=0).fit(X)
        >>> bool(np.all(pseudo_likelihood(m, X) < 0))
        True
    """
    if not isinstance(model, BoltzmannMachine) or not model._binary_visible:
        raise TypeError(f"Expected model to be an RBM (binary visible units) for the pseudo-likelihood, "
                        f"got {type(model).__name__}.")
    check_is_fitted(model)
    return model.score_samples(X, chunk_elements=positive_int("chunk_elements", chunk_elements))
