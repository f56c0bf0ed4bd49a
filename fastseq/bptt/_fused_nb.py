"""Numba kernels of the window-fused recurrent engine: a whole window's steps in one call.

Each kernel runs one layer over one ``K x W`` window (K steps, W slots, H hidden units,
G gates per unit: GRU 3, LSTM 4, RNN 1). The input projections ``gi = x W_ih^T + b_ih``
come in precomputed for the whole window (one matrix product by the caller), so a
step is one BLAS product ``h W_hh^T`` (Numba's ``np.dot`` calls scipy's BLAS) and one
fused loop over the gates. The reset folds in as the choice of each slot's previous
state: ``seed`` where ``reset[k, b]``, else the slot's state after step ``k - 1``.

The forward saves what the backward needs (previous states and activated gates); the
backward runs through time once and writes the gradients of the gate pre-activations
for the whole window, from which the caller takes the weight gradients as whole-window
matrix products. Kernels write into arrays the caller allocates (float32 or float64).

Sigmoid and tanh use an exp built from a degree-13 polynomial and an exponent written
straight into the bits of a double, so LLVM vectorises the gate loops (Numba's
``math.exp`` is a scalar libm call here, 5-10x slower per gate). Its relative error
is within a few ulp of double precision over the clamped range.

``fastseq.bptt._fused_py`` holds the plain array twins (NumPy or torch) of these kernels.
"""
from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

__all__ = ["gru_forward", "gru_backward", "lstm_forward", "lstm_backward", "rnn_forward", "rnn_backward"]

_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # low bits zero: n * _LN2_HI is exact for |n| < 2^11
_LN2_LO = 1.90821492927058770002e-10


@intrinsic
def _as_double(typingctx, bits):
    """Reinterpret an int64's bits as a float64 (LLVM bitcast, vectorisable)."""
    if bits != types.int64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


@njit(inline="always", fastmath=True, error_model="numpy")
def _exp(x):
    x = min(max(x, -700.0), 700.0)
    n = math.floor(x * _LOG2E + 0.5)
    r = x - n * _LN2_HI - n * _LN2_LO
    p = 1.0 / 6227020800.0
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    return p * _as_double((np.int64(n) + 1023) << 52)


@njit(inline="always", fastmath=True, error_model="numpy")
def _sigmoid(x):
    return 1.0 / (1.0 + _exp(-x))


@njit(inline="always", fastmath=True, error_model="numpy")
def _tanh(x):
    return 2.0 / (1.0 + _exp(-2.0 * x)) - 1.0


@njit(inline="always")
def _previous(k, h, seed, reset, prev):
    """prev[b] = seed if reset[k, b] else h[b] (the reset folded into the step's input state)."""
    for b in range(prev.shape[0]):
        src = seed if reset[k, b] else h[b]
        for j in range(prev.shape[1]):
            prev[b, j] = src[j]


@njit(inline="always")
def _pass_back(k, dprev, reset, dh, dseed):
    """Route the previous state's gradient: to the seed where the slot reset, else to step k - 1."""
    for b in range(dprev.shape[0]):
        if reset[k, b]:
            for j in range(dprev.shape[1]):
                dseed[j] += dprev[b, j]
                dh[b, j] = 0.0
        else:
            for j in range(dprev.shape[1]):
                dh[b, j] = dprev[b, j]


@njit(fastmath=True, cache=True, nogil=True, error_model="numpy")
def gru_forward(gi, w_hh_t, b_hh, h0, seed, reset, hs, hprev, gates):
    """GRU over a window. gi ``K x W x 3H``; w_hh_t ``H x 3H``; b_hh ``3H``; h0 ``W x H``;
    seed ``H``; reset ``K x W``. Writes hs, hprev ``K x W x H`` and gates ``K x W x 4H``
    (r, z, n and the hidden part of n's pre-activation)."""
    n_steps, width, g3 = gi.shape
    hid = g3 // 3
    gh = np.empty((width, g3), gi.dtype)
    h = h0
    for k in range(n_steps):
        hp = hprev[k]
        _previous(k, h, seed, reset, hp)
        np.dot(hp, w_hh_t, gh)
        x, out, g = gi[k], hs[k], gates[k]
        for b in range(width):
            for j in range(hid):
                r = _sigmoid(x[b, j] + gh[b, j] + b_hh[j])
                z = _sigmoid(x[b, hid + j] + gh[b, hid + j] + b_hh[hid + j])
                hn = gh[b, 2 * hid + j] + b_hh[2 * hid + j]
                n = _tanh(x[b, 2 * hid + j] + r * hn)
                out[b, j] = n + z * (hp[b, j] - n)
                g[b, j] = r
                g[b, hid + j] = z
                g[b, 2 * hid + j] = n
                g[b, 3 * hid + j] = hn
        h = out


@njit(fastmath=True, cache=True, nogil=True, error_model="numpy")
def gru_backward(dhs, w_hh, hprev, gates, reset, dgi, dgh, dh0, dseed):
    """Backward of :func:`gru_forward`. dhs ``K x W x H`` (gradient of the outputs); w_hh
    ``3H x H``. Writes dgi, dgh ``K x W x 3H`` (gradients of the input and hidden
    pre-activations), dh0 ``W x H`` and adds into dseed ``H``."""
    n_steps, width, hid = dhs.shape
    dh = np.zeros((width, hid), dhs.dtype)
    dprev = np.empty((width, hid), dhs.dtype)
    for k in range(n_steps - 1, -1, -1):
        dout, g, hp, dx, dy = dhs[k], gates[k], hprev[k], dgi[k], dgh[k]
        for b in range(width):
            for j in range(hid):
                d = dh[b, j] + dout[b, j]
                r, z, n, hn = g[b, j], g[b, hid + j], g[b, 2 * hid + j], g[b, 3 * hid + j]
                dn = d * (1.0 - z) * (1.0 - n * n)
                dz = d * (hp[b, j] - n) * z * (1.0 - z)
                dr = dn * hn * r * (1.0 - r)
                dx[b, j] = dr
                dx[b, hid + j] = dz
                dx[b, 2 * hid + j] = dn
                dy[b, j] = dr
                dy[b, hid + j] = dz
                dy[b, 2 * hid + j] = dn * r
                dh[b, j] = d * z
        np.dot(dy, w_hh, dprev)
        for b in range(width):
            for j in range(hid):
                dprev[b, j] += dh[b, j]
        _pass_back(k, dprev, reset, dh, dseed)
    dh0[:] = dh


@njit(fastmath=True, cache=True, nogil=True, error_model="numpy")
def lstm_forward(gi, w_hh_t, b_hh, h0, c0, seed_h, seed_c, reset, hs, cs, hprev, cprev, gates):
    """LSTM over a window. gi ``K x W x 4H``; w_hh_t ``H x 4H``; h0, c0 ``W x H``; seeds
    ``H``. Writes hs, cs, hprev, cprev ``K x W x H`` and gates ``K x W x 5H`` (i, f, g, o
    activated and tanh of the new cell state)."""
    n_steps, width, g4 = gi.shape
    hid = g4 // 4
    gh = np.empty((width, g4), gi.dtype)
    h, c = h0, c0
    for k in range(n_steps):
        hp, cp = hprev[k], cprev[k]
        _previous(k, h, seed_h, reset, hp)
        _previous(k, c, seed_c, reset, cp)
        np.dot(hp, w_hh_t, gh)
        x, out, cell, g = gi[k], hs[k], cs[k], gates[k]
        for b in range(width):
            for j in range(hid):
                i = _sigmoid(x[b, j] + gh[b, j] + b_hh[j])
                f = _sigmoid(x[b, hid + j] + gh[b, hid + j] + b_hh[hid + j])
                gg = _tanh(x[b, 2 * hid + j] + gh[b, 2 * hid + j] + b_hh[2 * hid + j])
                o = _sigmoid(x[b, 3 * hid + j] + gh[b, 3 * hid + j] + b_hh[3 * hid + j])
                cn = f * cp[b, j] + i * gg
                tc = _tanh(cn)
                cell[b, j] = cn
                out[b, j] = o * tc
                g[b, j] = i
                g[b, hid + j] = f
                g[b, 2 * hid + j] = gg
                g[b, 3 * hid + j] = o
                g[b, 4 * hid + j] = tc
        h, c = out, cell


@njit(fastmath=True, cache=True, nogil=True, error_model="numpy")
def lstm_backward(dhs, dc_last, w_hh, cprev, gates, reset, dga, dh0, dc0, dseed_h, dseed_c):
    """Backward of :func:`lstm_forward`. dc_last ``W x H`` is the gradient of the final cell
    state. Writes dga ``K x W x 4H`` (gate pre-activations), dh0, dc0 and adds into the seeds'."""
    n_steps, width, hid = dhs.shape
    dh = np.zeros((width, hid), dhs.dtype)
    dc = dc_last.copy()
    dprev = np.empty((width, hid), dhs.dtype)
    for k in range(n_steps - 1, -1, -1):
        dout, g, cp, dy = dhs[k], gates[k], cprev[k], dga[k]
        for b in range(width):
            for j in range(hid):
                d = dh[b, j] + dout[b, j]
                i, f, gg, o, tc = g[b, j], g[b, hid + j], g[b, 2 * hid + j], g[b, 3 * hid + j], g[b, 4 * hid + j]
                dct = dc[b, j] + d * o * (1.0 - tc * tc)
                dy[b, j] = dct * gg * i * (1.0 - i)
                dy[b, hid + j] = dct * cp[b, j] * f * (1.0 - f)
                dy[b, 2 * hid + j] = dct * i * (1.0 - gg * gg)
                dy[b, 3 * hid + j] = d * tc * o * (1.0 - o)
                dc[b, j] = dct * f
        np.dot(dy, w_hh, dprev)
        _pass_back(k, dprev, reset, dh, dseed_h)
        _pass_back(k, dc, reset, dc, dseed_c)
    dh0[:] = dh
    dc0[:] = dc


@njit(fastmath=True, cache=True, nogil=True, error_model="numpy")
def rnn_forward(gi, w_hh_t, b_hh, h0, seed, reset, relu, hs, hprev):
    """Elman RNN (tanh, or relu if ``relu``) over a window. gi ``K x W x H``; w_hh_t ``H x H``."""
    n_steps, width, hid = gi.shape
    gh = np.empty((width, hid), gi.dtype)
    h = h0
    for k in range(n_steps):
        hp = hprev[k]
        _previous(k, h, seed, reset, hp)
        np.dot(hp, w_hh_t, gh)
        x, out = gi[k], hs[k]
        for b in range(width):
            for j in range(hid):
                a = x[b, j] + gh[b, j] + b_hh[j]
                out[b, j] = max(a, 0.0) if relu else _tanh(a)
        h = out


@njit(fastmath=True, cache=True, nogil=True, error_model="numpy")
def rnn_backward(dhs, w_hh, hs, reset, relu, dga, dh0, dseed):
    """Backward of :func:`rnn_forward`; writes dga ``K x W x H``, dh0 and adds into dseed."""
    n_steps, width, hid = dhs.shape
    dh = np.zeros((width, hid), dhs.dtype)
    dprev = np.empty((width, hid), dhs.dtype)
    for k in range(n_steps - 1, -1, -1):
        dout, out, dy = dhs[k], hs[k], dga[k]
        for b in range(width):
            for j in range(hid):
                d = dh[b, j] + dout[b, j]
                y = out[b, j]
                dy[b, j] = (d if y > 0.0 else 0.0) if relu else d * (1.0 - y * y)
        np.dot(dy, w_hh, dprev)
        _pass_back(k, dprev, reset, dh, dseed)
    dh0[:] = dh
