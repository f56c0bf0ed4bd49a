"""Plain NumPy twins of the Numba kernels in ``fastseq.boltzmann._sampling_nb`` (test references).

They use one ``np.random.Generator`` and whole-array operations; they match the kernels
in distribution, not draw for draw. Beta draws follow the kernel's algorithms (Cheng's
BB and BC, BC in log space) with NumPy's own log and exp.
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


_LN4 = np.log(4.0)


def _logit(u: np.ndarray) -> np.ndarray:
    return np.log(u / (1.0 - u))


def _cheng_bb(lo: np.ndarray, hi: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """w / (hi + w) of Cheng's (1978) BB for shapes lo = min > 1, hi = max: Beta(lo, hi)."""
    alpha = lo + hi
    beta = np.sqrt((alpha - 2.0) / (2.0 * lo * hi - alpha))
    gamma = lo + 1.0 / beta
    out = np.empty(lo.shape)
    todo = np.arange(lo.size)
    while todo.size:
        u1, u2 = rng.random(todo.size), rng.random(todo.size)
        u1 = np.where(u1 == 0.0, 0.5, u1)  # a zero has probability 2^-53; logit needs (0, 1)
        l, h, al, be, ga = lo[todo], hi[todo], alpha[todo], beta[todo], gamma[todo]
        v = be * _logit(u1)
        w = l * np.exp(v)
        z = u1 * u1 * u2
        r = ga * v - _LN4
        s = l + r - w
        with np.errstate(divide="ignore"):
            t = np.log(z)
        ok = (s + 2.609438 >= 5.0 * z) | (s > t) | (r + al * np.log(al / (h + w)) >= t)
        out[todo[ok]] = (w / (h + w))[ok]
        todo = todo[~ok]
    return out


def _cheng_bc(big: np.ndarray, small: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """log(w / small) of Cheng's BC for shapes small = min <= 1, big = max, with ``w = big e^v``:
    the draw of Beta(big, small) is sigmoid of it. Log space, so tiny shapes cannot overflow."""
    alpha = big + small
    beta = 1.0 / small
    delta = 1.0 + big - small
    k1 = delta * (0.0138889 + 0.0416667 * small) / (big * beta - 0.777778)
    k2 = 0.25 + (0.5 + 0.25 / delta) * small
    out = np.empty(big.shape)
    todo = np.arange(big.size)
    while todo.size:
        u1, u2 = rng.random(todo.size), rng.random(todo.size)
        u1 = np.where(u1 == 0.0, 0.5, u1)
        bg, sm, al, be = big[todo], small[todo], alpha[todo], beta[todo]
        low = u1 < 0.5
        y = u1 * u2
        z = np.where(low, u1 * y, u1 * u1 * u2)
        v = be * _logit(u1)
        lw = np.log(bg) + v
        lsum = np.logaddexp(np.log(sm), lw)  # log(small + w)
        with np.errstate(divide="ignore"):
            full = al * (np.log(al) - lsum + v) - _LN4 >= np.log(z)
        ok = np.where(low, (0.25 * u2 + z - y < k1[todo]) & full,
                      (z <= 0.25) | ((z < k2[todo]) & full))
        out[todo[ok]] = (lw - np.log(sm))[ok]
        todo = todo[~ok]
    return out


def beta_ab(alpha, beta, rng: np.random.Generator) -> np.ndarray:
    """Beta(alpha, beta) by Cheng's algorithms BB (both shapes > 1) and BC (else), as the kernel."""
    alpha = np.asarray(alpha)
    a = np.asarray(alpha, dtype=np.float64)
    b = np.broadcast_to(np.asarray(beta, dtype=np.float64), a.shape)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    out = np.empty(a.shape)
    bb = lo > 1.0
    x = _cheng_bb(lo[bb], hi[bb], rng)
    out[bb] = np.where(a[bb] <= b[bb], x, 1.0 - x)
    with np.errstate(over="ignore"):
        lr = _cheng_bc(hi[~bb], lo[~bb], rng)       # log(w / small): the draw of Beta(big, small) is sigmoid(lr)
        first_big = a[~bb] >= b[~bb]
        out[~bb] = 1.0 / (1.0 + np.exp(np.where(first_big, -lr, lr)))
    return out.astype(alpha.dtype)


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
