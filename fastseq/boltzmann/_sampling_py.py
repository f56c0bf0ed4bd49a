"""Plain NumPy twins of the Numba kernels in ``fastseq.boltzmann._sampling_nb`` (test references).

They use one ``np.random.Generator`` and whole-array operations; they match the kernels
in distribution, not draw for draw.
"""
from __future__ import annotations

import numpy as np

from fastseq.boltzmann._sampling_nb import BERNOULLI, EPS_MEAN, NU_MIN


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=np.float64)))


def bernoulli_logits(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    x = np.asarray(x)
    return (rng.random(x.shape) < sigmoid(x)).astype(x.dtype)


def beta_params(mean, sigma) -> tuple[np.ndarray, np.ndarray]:
    m = np.clip(np.asarray(mean, dtype=np.float64), EPS_MEAN, 1.0 - EPS_MEAN)
    mv = m * (1.0 - m)
    var = np.minimum(np.asarray(sigma, dtype=np.float64) ** 2, mv)
    nu = np.maximum(mv / var - 1.0, NU_MIN)
    return m * nu, (1.0 - m) * nu


def beta_ab(alpha, beta, rng: np.random.Generator) -> np.ndarray:
    alpha = np.asarray(alpha)
    return rng.beta(alpha, beta).astype(alpha.dtype)


def beta_mean_sigma(mean, sigma, rng: np.random.Generator) -> np.ndarray:
    mean = np.asarray(mean)
    return rng.beta(*beta_params(mean, sigma)).astype(mean.dtype)


def sigmoid_beta(x, sigma, rng: np.random.Generator) -> np.ndarray:
    x = np.asarray(x)
    return beta_mean_sigma(sigmoid(x), sigma, rng).astype(x.dtype)


def gibbs_chain(h0, w, b, c, k, rng, vis_kind=BERNOULLI, hid_kind=BERNOULLI, sigma_v=1.0, sigma_h=1.0):
    """Twin of ``fastseq.boltzmann._sampling_nb.gibbs_chain``: returns ``(v_k, h_{k-1})``."""
    def draw(kind, pre, sigma):
        return bernoulli_logits(pre, rng) if kind == BERNOULLI else sigmoid_beta(pre, sigma, rng)

    h = np.array(h0, dtype=w.dtype, copy=True)
    v = np.empty((h.shape[0], w.shape[0]), dtype=w.dtype)
    for step in range(k):
        v = draw(vis_kind, h @ w.T + b, sigma_v)
        if step + 1 < k:
            h = draw(hid_kind, v @ w + c, sigma_h)
    return v, h


def swap_replicas(energy, betas, parity, rng, order, accepted) -> None:
    """Twin of ``fastseq.boltzmann._sampling_nb.swap_replicas`` (same uniforms, same result)."""
    n_rungs, n_chains = energy.shape
    if n_rungs < 2:
        return
    u = rng.random((n_rungs - 1, n_chains))
    for m in range(parity, n_rungs - 1, 2):
        with np.errstate(over="ignore", invalid="ignore"):
            d = (betas[m] - betas[m + 1]) * (energy[m] - energy[m + 1])
            take = (d >= 0) | (u[m] < np.exp(d))
        energy[[m, m + 1]] = np.where(take, energy[[m + 1, m]], energy[[m, m + 1]])
        order[[m, m + 1]] = np.where(take, order[[m + 1, m]], order[[m, m + 1]])
        accepted[m] += int(take.sum())
