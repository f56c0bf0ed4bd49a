"""Fused contrastive-divergence training for sigmoid-mean machines (RBM, RRBM, R3BM) on the CPU.

One Numba call runs a whole epoch: gather a mini-batch, hidden means of the data, k Gibbs
steps of the negative chain (``_sampling_nb._gibbs_chain_kernel``), hidden means of the
negative sample, and the SGD step (momentum, weight decay) in place on the parameters. The
update is exactly the gradient of ``mean F(v_data) - mean F(v_model)`` that the autograd
loop of ``_base.BoltzmannMachine`` takes, with ``torch.optim.SGD``'s momentum rule, so the
two paths train the same model; this one spends no time in Python or PyTorch per batch
(which dominates small problems) and does the weight gradient as one matrix product of the
stacked positive and negative statistics. Matrix products go to the BLAS that Numba's
``np.dot`` calls (scipy's), run under ``_blas.serial_blas`` on one thread like the sampling
between them: a product split over BLAS threads waits, on a busy machine, for a second
thread to win a core (see ``_blas``). ``fastseq.boltzmann._cd_py`` is the NumPy twin.

``pt_epoch`` is the same epoch for an ``RBM`` trained with tempered persistent chains
(``fastseq.boltzmann._tempering``): the negative statistics come from the ``beta = 1`` rung of
M x N replicas, each sweep drawing h at every rung's beta, swapping neighbours on the joint
energy (``_sampling_nb._swap_kernel``, uniforms drawn beforehand by the caller) and drawing v
at every rung's beta, all in the one call.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from fastseq._util.numba_cache import CACHE
from fastseq.boltzmann._sampling_nb import (BERNOULLI, _bernoulli_units, _gibbs_chain_kernel, _sample_units, _sigmoid_block,
                                           _swap_kernel)

__all__ = ["cd_epoch", "pt_epoch"]


@njit(cache=CACHE, fastmath=True)
def _sigmoid_rows(pre, bias, out, scale):
    """out = scale * sigmoid(pre + bias), row by row: float32 by the vectorised polynomial of
    the Bernoulli sampler (relative error ~1e-7, float32's own), float64 exactly."""
    rows, cols = pre.shape
    if pre.itemsize == 4:
        p = np.empty(cols, np.float32)
        bits = np.empty(cols, np.int32)
        x = np.empty(cols, np.float32)
        for i in range(rows):
            for j in range(cols):
                x[j] = pre[i, j] + bias[j]
            _sigmoid_block(x, 0, cols, p, bits)
            for j in range(cols):
                out[i, j] = scale * p[j]
    else:
        for i in range(rows):
            for j in range(cols):
                out[i, j] = scale / (1.0 + math.exp(-(pre[i, j] + bias[j])))


@njit(cache=CACHE)
def _descend(sv, sh, n, mneg, w, b, c, mw, mb, mc, lr, momentum, weight_decay):
    """The SGD step from the stacked statistics: rows ``[v0; v_neg]`` of ``sv`` and
    ``[-E[h|v0] / n; E[h|v_neg] / mneg]`` of ``sh``."""
    d, h = w.shape
    grad_w = np.dot(sv.T, sh)
    # biases: b's gradient is mean(v_neg) - mean(v0), c's the stacked hidden column sums
    gb = np.zeros(d, dtype=w.dtype)
    gc = np.zeros(h, dtype=w.dtype)
    for r in range(n + mneg):
        scale = 1.0 / mneg if r >= n else -1.0 / n
        row_v, row_h = sv[r], sh[r]
        for i in range(d):
            gb[i] += scale * row_v[i]
        for j in range(h):
            gc[j] += row_h[j]
    for j in range(h):
        mc[j] = momentum * mc[j] + gc[j]
        c[j] -= lr * mc[j]
    for i in range(d):
        mb[i] = momentum * mb[i] + gb[i]
        b[i] -= lr * mb[i]
        for j in range(h):
            mw[i, j] = momentum * mw[i, j] + grad_w[i, j] + weight_decay * w[i, j]
            w[i, j] -= lr * mw[i, j]


@njit(cache=CACHE)
def _cd_update(v0, w, b, c, mw, mb, mc, chain, k, persistent, lr, momentum, weight_decay,
               vis_kind, hid_kind, sigma_v, sigma_h, gens, stack_v, stack_h):
    n = v0.shape[0]
    mneg = chain.shape[0] if persistent else n  # negative rows: chains (PCD) or the batch's (CD)
    # stacked statistics: rows [v0; v_neg] and [-E[h|v0] / n; E[h|v_neg] / mneg], so the weight
    # gradient mean(v_neg h_neg) - mean(v0 h0) is one matrix product
    sv = stack_v[:n + mneg]
    sh = stack_h[:n + mneg]
    sv[:n] = v0
    pre0 = np.dot(v0, w)
    _sigmoid_rows(pre0, c, sh[:n], -1.0 / n)
    if persistent:
        hk = chain.copy()
    else:
        hk = np.empty((n, w.shape[1]), dtype=w.dtype)
        _sample_units(hid_kind, gens, pre0, c, sigma_h, hk)
    vneg = sv[n:]
    _gibbs_chain_kernel(gens, hk, w, b, c, k, vis_kind, hid_kind, sigma_v, sigma_h, vneg)
    pren = np.dot(vneg, w)
    _sigmoid_rows(pren, c, sh[n:], 1.0 / mneg)
    c_old = c.copy()
    _descend(sv, sh, n, mneg, w, b, c, mw, mb, mc, lr, momentum, weight_decay)
    if persistent:
        # the next chain state: hidden units drawn from the negative sample (with the old
        # parameters, as the autograd loop does)
        _sample_units(hid_kind, gens, pren, c_old, sigma_h, chain)


@njit(cache=CACHE)
def cd_epoch(X, order, batch_size, w, b, c, mw, mb, mc, chain, k, persistent, lr, momentum, weight_decay,
             vis_kind, hid_kind, sigma_v, sigma_h, gens):
    """One epoch of CD-k / PCD-k with SGD over the rows ``X[order]`` in mini-batches.

    ``w`` (D x H), ``b`` (D,), ``c`` (H,) and the momentum buffers ``mw``, ``mb``, ``mc`` are
    updated in place, as is the persistent ``chain`` (n_chains x H) when ``persistent``.
    """
    n = order.shape[0]
    d, h = w.shape
    rows = batch_size + max(batch_size, chain.shape[0])
    stack_v = np.empty((rows, d), dtype=w.dtype)
    stack_h = np.empty((rows, h), dtype=w.dtype)
    for s in range(0, n, batch_size):
        e = min(n, s + batch_size)
        v0 = np.empty((e - s, d), dtype=w.dtype)
        for r in range(s, e):
            v0[r - s] = X[order[r]]
        _cd_update(v0, w, b, c, mw, mb, mc, chain, k, persistent, lr, momentum, weight_decay,
                   vis_kind, hid_kind, sigma_v, sigma_h, gens, stack_v, stack_h)


@njit(cache=CACHE, fastmath=True)
def _tempered_logits(pre, bias, betas, n, out):
    """pre += bias, then out = beta * pre row by row, rung m's n rows at ``betas[m]``
    (``out`` may be ``pre``)."""
    rows, cols = pre.shape
    for r in range(rows):
        beta = betas[r // n]
        for j in range(cols):
            x = pre[r, j] + bias[j]
            pre[r, j] = x
            out[r, j] = beta * x


@njit(cache=CACHE, fastmath=True)
def _joint_energies(rv, rh, pre, b, out):
    """out[r] = E(v_r, h_r) = -b.v_r - h_r.pre_r, with ``pre`` = v W + c, summed in float64."""
    rows, d = rv.shape
    hdim = rh.shape[1]
    for r in range(rows):
        e = 0.0
        for i in range(d):
            e -= b[i] * rv[r, i]
        for j in range(hdim):
            e -= rh[r, j] * pre[r, j]
        out[r] = e


@njit(cache=CACHE)
def _tempered_sweeps(rv, rh, w, b, c, betas, k, parity, u, accepted, attempted, gens):
    """k tempered sweeps of the replicas ``rv`` (M N x D) and ``rh`` (M N x H), rung-major, in
    place: h at each rung's beta, one round of swaps of pairs of the current parity on the
    joint energy ``E = -b.v - h.(v W + c)``, then v at each rung's beta. ``u[s]`` holds the
    (M - 1) x N uniforms of sweep s. Returns the parity of the next sweep.

    Both half-steps use the current parameters, so the visible rows the update reads were
    drawn wholly under them. Sweeping from h instead (as a PCD chain steps, saving the product
    v W of every rung) was tried: an update then costs 0.91x a PCD update with as many chains,
    but the machines it trained scored 1.5 nats (2 rungs x 50 chains) to 5 nats (4 x 25) lower
    held out, on each of 4 seeds, than with this order."""
    rows = rv.shape[0]
    n_rungs = betas.shape[0]
    n = rows // n_rungs
    energy = np.empty((n_rungs, n))
    order = np.empty((n_rungs, n), dtype=np.intp)
    scaled = np.empty_like(rh)
    wt = w.T
    for s in range(k):
        pre = np.dot(rv, w)
        _tempered_logits(pre, c, betas, n, scaled)
        _bernoulli_units(gens, scaled, rh)
        if n_rungs > 1:
            _joint_energies(rv, rh, pre, b, energy.reshape(-1))
            for m in range(n_rungs):
                order[m] = m
            _swap_kernel(energy, betas, parity, u[s], order, accepted)
            for m in range(parity, n_rungs - 1, 2):
                attempted[m] += 1
                for j in range(n):
                    if order[m, j] != m:  # pairs of one parity are disjoint: a swap exchanges two rows
                        _exchange_rows(rh, m * n + j, (m + 1) * n + j)  # (v is drawn anew from h)
            parity = 1 - parity
        pv = np.dot(rh, wt)
        _tempered_logits(pv, b, betas, n, pv)
        _bernoulli_units(gens, pv, rv)
    return parity


@njit(cache=CACHE)
def _exchange_rows(a, i, j):
    for col in range(a.shape[1]):
        a[i, col], a[j, col] = a[j, col], a[i, col]


@njit(cache=CACHE)
def pt_epoch(X, order, batch_size, w, b, c, mw, mb, mc, rv, rh, betas, k, lr, momentum, weight_decay,
             u, state, accepted, attempted, gens):
    """One pass of tempered PCD-k with SGD over the rows ``X[order]`` in mini-batches (an RBM).

    ``rv``, ``rh`` are the replicas (M N x D, M N x H, rung-major), ``betas`` the M inverse
    temperatures, ``u`` ``(updates k, M - 1, N)`` swap uniforms, ``state[0]`` the parity of
    the next sweep; ``accepted`` / ``attempted`` ``(M - 1,)`` count the swaps. The negative
    statistics are rung 0's visible rows (``beta = 1``); the persistent state is the replicas
    alone (the chains' hidden rows are rung 0's rows of ``rh``). Everything is updated in place.
    """
    n_rows = order.shape[0]
    d, h = w.shape
    n_chains = rv.shape[0] // betas.shape[0]
    rows = batch_size + n_chains
    stack_v = np.empty((rows, d), dtype=w.dtype)
    stack_h = np.empty((rows, h), dtype=w.dtype)
    parity = state[0]
    t = 0
    for s in range(0, n_rows, batch_size):
        e = min(n_rows, s + batch_size)
        n = e - s
        sv = stack_v[:n + n_chains]
        sh = stack_h[:n + n_chains]
        for r in range(s, e):
            sv[r - s] = X[order[r]]
        pre0 = np.dot(sv[:n], w)
        _sigmoid_rows(pre0, c, sh[:n], -1.0 / n)
        parity = _tempered_sweeps(rv, rh, w, b, c, betas, k, parity, u[t * k:(t + 1) * k], accepted, attempted,
                                  gens)
        sv[n:] = rv[:n_chains]
        pren = np.dot(sv[n:], w)
        _sigmoid_rows(pren, c, sh[n:], 1.0 / n_chains)
        _descend(sv, sh, n, n_chains, w, b, c, mw, mb, mc, lr, momentum, weight_decay)
        t += 1
    state[0] = parity
