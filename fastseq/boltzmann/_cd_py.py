"""Plain NumPy twin of ``fastseq.boltzmann._cd_nb.cd_epoch`` (the test reference).

Same update, written with whole-array operations; draws come from one
``np.random.Generator``, so the two agree exactly only where the draws are certain.
"""
from __future__ import annotations

import numpy as np

from fastseq.boltzmann import _sampling_py as ref


def cd_epoch(X, order, batch_size, w, b, c, mw, mb, mc, chain, k, persistent, lr, momentum, weight_decay,
             vis_kind, hid_kind, sigma_v, sigma_h, rng):
    """One epoch of CD-k / PCD-k with SGD; updates w, b, c, mw, mb, mc and chain in place."""
    def draw(kind, pre, sigma):
        return ref.bernoulli_logits(pre, rng) if kind == ref.BERNOULLI else ref.sigmoid_beta(pre, sigma, rng)

    for s in range(0, len(order), batch_size):
        v0 = X[order[s:s + batch_size]].astype(w.dtype)
        h0 = ref.sigmoid(v0 @ w + c)
        start = chain.copy() if persistent else draw(hid_kind, v0 @ w + c, sigma_h)
        vneg, _ = ref.gibbs_chain(start, w, b, c, k, rng, vis_kind, hid_kind, sigma_v, sigma_h)
        pren = vneg @ w + c
        hn = ref.sigmoid(pren)
        grads = (vneg.T @ hn / len(vneg) - v0.T @ h0 / len(v0) + weight_decay * w,
                 vneg.mean(0) - v0.mean(0), hn.mean(0) - h0.mean(0))
        for p, buf, g in zip((w, b, c), (mw, mb, mc), grads):
            buf *= momentum
            buf += g
            p -= lr * buf
        if persistent:
            chain[...] = draw(hid_kind, pren, sigma_h)


def pt_epoch(X, order, batch_size, w, b, c, mw, mb, mc, rv, rh, betas, k, lr, momentum, weight_decay,
             u, state, accepted, attempted, rng):
    """Twin of ``_cd_nb.pt_epoch``: tempered PCD-k with SGD; updates its arrays in place."""
    n_rungs = len(betas)
    n = len(rv) // n_rungs
    beta = np.repeat(betas, n)[:, None].astype(w.dtype)
    sweep = 0
    for s in range(0, len(order), batch_size):
        v0 = X[order[s:s + batch_size]].astype(w.dtype)
        h0 = ref.sigmoid(v0 @ w + c)
        for _ in range(k):
            pre = rv @ w + c
            rh[...] = ref.bernoulli_logits(beta * pre, rng)
            if n_rungs > 1:
                energy = (-(rv @ b) - (rh * pre).sum(1)).astype(np.float64).reshape(n_rungs, n)
                where = np.repeat(np.arange(n_rungs)[:, None], n, axis=1)
                parity = int(state[0])
                for m in range(parity, n_rungs - 1, 2):
                    with np.errstate(over="ignore", invalid="ignore"):
                        d = (betas[m] - betas[m + 1]) * (energy[m] - energy[m + 1])
                        take = (d >= 0) | (u[sweep, m] < np.exp(d))
                    where[[m, m + 1]] = np.where(take, where[[m + 1, m]], where[[m, m + 1]])
                    accepted[m] += int(take.sum())
                    attempted[m] += 1
                state[0] = 1 - parity
                rh[...] = rh[(where * n + np.arange(n)).ravel()]
            rv[...] = ref.bernoulli_logits(beta * (rh @ w.T + b), rng)
            sweep += 1
        vneg = rv[:n]
        pren = vneg @ w + c
        hn = ref.sigmoid(pren)
        grads = (vneg.T @ hn / n - v0.T @ h0 / len(v0) + weight_decay * w,
                 vneg.mean(0) - v0.mean(0), hn.mean(0) - h0.mean(0))
        for p, buf, g in zip((w, b, c), (mw, mb, mc), grads):
            buf *= momentum
            buf += g
            p -= lr * buf
