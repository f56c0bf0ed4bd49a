"""Numba kernels of the window-fused recurrent engine: a whole window's steps in one call.

Each kernel runs one layer over one ``K x W`` window (K steps, W slots, H hidden units,
G gates per unit: GRU 3, LSTM 4, RNN 1). The input projections ``gi = x W_ih^T + b_ih``
come in precomputed for the whole window (one matrix product by the caller), so a
step is one product ``h W_hh^T`` (a ``?gemm`` called by address on the block's rows, see
:mod:`fastseq.bptt._blas_nb`) and one fused loop over the gates. Slots run in fixed
blocks, each through all K steps (see below), so blocks can run on several threads. The reset folds in as the choice of each slot's previous
state: ``seed`` where ``reset[k, b]``, else the slot's state after step ``k - 1``.

The forward saves what the backward needs (previous states and activated gates); the
backward runs through time once and writes the gradients of the gate pre-activations
for the whole window, from which the caller takes the weight gradients as whole-window
matrix products. Kernels write into arrays the caller allocates (float32 or float64).

Sigmoid and tanh use an exp built from a polynomial and an exponent written straight
into the bits of the float, so LLVM vectorises the gate loops (Numba's ``math.exp`` is
a scalar libm call here, 5-10x slower per gate): degree 13 in float64 (within a few
ulp of double precision over the clamped range), Cephes' expf in float32 (~1e-7).

Gates are kept as separate arrays (a tuple) so each loop writes one array (see below).

``fastseq.bptt._fused_py`` holds the plain array twins (NumPy or torch) of these kernels.
"""
from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

from fastseq._util.exp_nb import LN2_HI, LN2_LO, LOG2E, exp_reduced
from fastseq._util.numba_cache import CACHE
from fastseq.bptt._blas_nb import gemm, matmul_rows
from fastseq.bptt._slot_threads import run_blocks

__all__ = ["gru_forward", "gru_backward", "lstm_forward", "lstm_backward", "rnn_forward", "rnn_backward"]

_LOG2E, _LN2_HI, _LN2_LO = LOG2E, LN2_HI, LN2_LO


@intrinsic
def _as_single(typingctx, bits):
    """Reinterpret the low 32 bits of an int64 as a float32 (LLVM trunc + bitcast, vectorisable)."""
    if bits != types.int64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(builder.trunc(args[0], ir.IntType(32)), ir.FloatType())

    return types.float32(types.int64), codegen


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
    return exp_reduced(r) * _as_double((np.int64(n) + 1023) << 52)


@njit(inline="always", fastmath=True, error_model="numpy")
def _exp32(x):
    """exp in float32 (Cephes' expf polynomial, relative error ~1e-7), clamped to +-80."""
    x = min(max(x, np.float32(-80.0)), np.float32(80.0))
    n = np.floor(x * np.float32(_LOG2E) + np.float32(0.5))
    r = x - n * np.float32(0.693359375) + n * np.float32(2.12194440e-4)
    p = np.float32(1.9875691500e-4)
    p = p * r + np.float32(1.3981999507e-3)
    p = p * r + np.float32(8.3334519073e-3)
    p = p * r + np.float32(4.1665795894e-2)
    p = p * r + np.float32(1.6666665459e-1)
    p = p * r + np.float32(5.0000001201e-1)
    p = p * r * r + r + np.float32(1.0)
    return p * _as_single((np.int64(n) + 127) << 23)


def _sigmoid(x):
    """Logistic function; float32 math for float32 data (half the vector work), else float64."""


def _tanh(x):
    """tanh as ``2 sigmoid(2x) - 1``; float32 math for float32 data, else float64."""


@overload(_sigmoid, inline="always", jit_options={"fastmath": True, "error_model": "numpy"})
def _sigmoid_impl(x):
    if x == types.float32:
        return lambda x: np.float32(1.0) / (np.float32(1.0) + _exp32(-x))
    return lambda x: 1.0 / (1.0 + _exp(-x))


@overload(_tanh, inline="always", jit_options={"fastmath": True, "error_model": "numpy"})
def _tanh_impl(x):
    if x == types.float32:
        return lambda x: np.float32(2.0) / (np.float32(1.0) + _exp32(np.float32(-2.0) * x)) - np.float32(1.0)
    return lambda x: 2.0 / (1.0 + _exp(-2.0 * x)) - 1.0


@njit(inline="always")
def _previous_rows(k, h, seed, reset, prev, lo, hi):
    """prev[b] = seed if reset[k, b] else h[b], for slots lo <= b < hi (all three indexed by slot)."""
    for b in range(lo, hi):
        src = seed if reset[k, b] else h[b]
        dst = prev[b]
        for j in range(prev.shape[1]):
            dst[j] = src[j]


@njit(inline="always")
def _pass_back_rows(k, dprev, reset, dh, dseed, lo):
    """:func:`_pass_back` for a block: row i of ``dprev``/``dh`` is slot ``lo + i``."""
    for i in range(dprev.shape[0]):
        src, dst = dprev[i], dh[i]
        if reset[k, lo + i]:
            for j in range(dprev.shape[1]):
                dseed[j] += src[j]
            for j in range(dprev.shape[1]):
                dst[j] = 0.0
        else:
            for j in range(dprev.shape[1]):
                dst[j] = src[j]


@njit(inline="always")
def _previous(k, h, seed, reset, prev):
    """prev[b] = seed if reset[k, b] else h[b] (the reset folded into the step's input state)."""
    _previous_rows(k, h, seed, reset, prev, 0, prev.shape[0])


@njit(inline="always")
def _pass_back(k, dprev, reset, dh, dseed):
    """Route the previous state's gradient: to the seed where the slot reset, else to step k - 1."""
    _pass_back_rows(k, dprev, reset, dh, dseed, 0)


@njit(inline="always")
def _scratch(dtype):
    scal = np.zeros(2, dtype)
    scal[0] = 1.0
    return np.empty(7, np.int32), scal


@njit(inline="always")
def _rows(a, k, lo):
    """Address of row ``lo`` of step ``k`` of a C-contiguous ``K x W x n`` array."""
    return a.ctypes.data + (k * a.shape[1] + lo) * a.shape[2] * a.itemsize


@njit(inline="always")
def _hidden_product(fn, scratch, scal, k, h, seed, reset, hprev, lo, hi, w_hh_t, gh):
    """Step k of a block: each slot's previous state into ``hprev`` (the seed where it resets),
    then ``gh[:hi - lo] = hprev[k, lo:hi] @ w_hh_t``."""
    _previous_rows(k, h, seed, reset, hprev[k], lo, hi)
    matmul_rows(fn, scratch, scal, _rows(hprev, k, lo), hprev.shape[2], w_hh_t.ctypes.data, w_hh_t.shape[1],
                gh.ctypes.data, gh.shape[1], hi - lo, w_hh_t.shape[1], hprev.shape[2])


# Each loop over j below writes one array and reads others: LLVM vectorises such loops
# after a few run-time overlap checks, but gives up on a loop that writes several arrays
# or reads and writes one array at two offsets (measured 7x slower), hence the many
# short loops and the gates kept as separate arrays.
#
# Every kernel runs the slot blocks j0 <= j < j1 (block j: slots j * block to
# min((j + 1) * block, W)), each through all K steps: a slot's recurrence reads only its
# own previous state, so blocks are independent and callers may run disjoint block
# ranges on several threads at once. Per step one product of the block's rows with the
# hidden weights (fn: the ?gemm address, see fastseq.bptt._blas_nb).


@njit(fastmath=True, cache=CACHE, nogil=True, error_model="numpy")
def gru_forward_blocks(fn, j0, j1, block, gi, w_hh_t, b_hh, h0, seed, reset, hs, hprev, gates):
    """GRU over a window. gi ``K x W x 3H``; w_hh_t ``H x 3H``; b_hh ``3H``; h0 ``W x H``;
    seed ``H``; reset ``K x W``. Writes hs, hprev ``K x W x H`` and gates, a tuple of four
    ``K x W x H`` arrays: r, z, n and the hidden part of n's pre-activation."""
    n_steps, width, g3 = gi.shape
    hid = g3 // 3
    gh = np.empty((block, g3), gi.dtype)
    scratch, scal = _scratch(gi.dtype)
    gr, gz, gn, ghn = gates
    for blk in range(j0, j1):
        lo = blk * block
        hi = min(lo + block, width)
        h = h0
        for k in range(n_steps):
            _hidden_product(fn, scratch, scal, k, h, seed, reset, hprev, lo, hi, w_hh_t, gh)
            for b in range(lo, hi):
                x, y, hp, out = gi[k, b], gh[b - lo], hprev[k, b], hs[k, b]
                r, z, n, hn = gr[k, b], gz[k, b], gn[k, b], ghn[k, b]
                for j in range(hid):
                    r[j] = _sigmoid(x[j] + y[j] + b_hh[j])
                for j in range(hid):
                    z[j] = _sigmoid(x[hid + j] + y[hid + j] + b_hh[hid + j])
                for j in range(hid):
                    hn[j] = y[2 * hid + j] + b_hh[2 * hid + j]
                for j in range(hid):
                    n[j] = _tanh(x[2 * hid + j] + r[j] * hn[j])
                for j in range(hid):
                    out[j] = n[j] + z[j] * (hp[j] - n[j])
            h = hs[k]


@njit(fastmath=True, cache=CACHE, nogil=True, error_model="numpy")
def gru_backward_blocks(fn, j0, j1, block, dhs, w_hh, hprev, gates, reset, dgi, dgh, dh0, dseed):
    """Backward of :func:`gru_forward_blocks`. dhs ``K x W x H`` (gradient of the outputs);
    w_hh ``3H x H``. Writes dgi, dgh ``K x W x 3H`` (gradients of the input and hidden
    pre-activations), dh0 ``W x H`` and adds into dseed ``n_blocks x H`` (one row a block)."""
    n_steps, width, hid = dhs.shape
    g3 = 3 * hid
    dh = np.empty((block, hid), dhs.dtype)
    dprev = np.empty((block, hid), dhs.dtype)
    d = np.empty(hid, dhs.dtype)
    scratch, scal = _scratch(dhs.dtype)
    gr, gz, gn, ghn = gates
    for blk in range(j0, j1):
        lo = blk * block
        hi = min(lo + block, width)
        dh[:] = 0.0
        for k in range(n_steps - 1, -1, -1):
            for b in range(lo, hi):
                dout, hp, dx, dy, dhb = dhs[k, b], hprev[k, b], dgi[k, b], dgh[k, b], dh[b - lo]
                r, z, n, hn = gr[k, b], gz[k, b], gn[k, b], ghn[k, b]
                for j in range(hid):
                    d[j] = dhb[j] + dout[j]
                for j in range(hid):
                    dx[j] = d[j] * (1.0 - z[j]) * (1.0 - n[j] * n[j]) * hn[j] * r[j] * (1.0 - r[j])
                for j in range(hid):
                    dx[hid + j] = d[j] * (hp[j] - n[j]) * z[j] * (1.0 - z[j])
                for j in range(hid):
                    dx[2 * hid + j] = d[j] * (1.0 - z[j]) * (1.0 - n[j] * n[j])
                for j in range(2 * hid):
                    dy[j] = dx[j]
                for j in range(hid):
                    dy[2 * hid + j] = dx[2 * hid + j] * r[j]
                for j in range(hid):
                    dhb[j] = d[j] * z[j]
            matmul_rows(fn, scratch, scal, _rows(dgh, k, lo), g3, w_hh.ctypes.data, hid, dprev.ctypes.data, hid,
                        hi - lo, hid, g3)
            for i in range(hi - lo):
                dp, dhb = dprev[i], dh[i]
                for j in range(hid):
                    dp[j] += dhb[j]
            _pass_back_rows(k, dprev[:hi - lo], reset, dh, dseed[blk], lo)
        for b in range(lo, hi):
            dh0[b] = dh[b - lo]


@njit(inline="always")
def _lstm_cell(i, f, g, o, cp, cell, tc, out):
    """An LSTM's new cell, its tanh and the output from activated gates, over flat (1-D) arrays."""
    for j in range(cell.shape[0]):
        cell[j] = f[j] * cp[j] + i[j] * g[j]
    for j in range(cell.shape[0]):
        tc[j] = _tanh(cell[j])
    for j in range(cell.shape[0]):
        out[j] = o[j] * tc[j]


@njit(fastmath=True, cache=CACHE, nogil=True, error_model="numpy")
def lstm_forward_blocks(fn, j0, j1, block, gi, w_hh_t, b_hh, h0, c0, seed_h, seed_c, reset, hs, cs, hprev, cprev,
                        gates):
    """LSTM over a window. gi ``K x W x 4H``; w_hh_t ``H x 4H``; h0, c0 ``W x H``; seeds
    ``H``. Writes hs, cs, hprev, cprev ``K x W x H`` and gates, a tuple of five ``K x W x H``
    arrays: i, f, g, o activated and tanh of the new cell state."""
    n_steps, width, g4 = gi.shape
    hid = g4 // 4
    gh = np.empty((block, g4), gi.dtype)
    scratch, scal = _scratch(gi.dtype)
    gi_, gf, gg, go, gt = gates
    for blk in range(j0, j1):
        lo = blk * block
        hi = min(lo + block, width)
        nb = hi - lo
        n = nb * hid
        h, c = h0, c0
        for k in range(n_steps):
            _previous_rows(k, c, seed_c, reset, cprev[k], lo, hi)
            _hidden_product(fn, scratch, scal, k, h, seed_h, reset, hprev, lo, hi, w_hh_t, gh)
            # the block's rows of step k as 2-D (gate columns) and flat (cell) views, made once
            # a step: views made per slot cost more than the gate arithmetic at H = 128
            x, i, f, g, o = gi[k, lo:hi], gi_[k, lo:hi], gf[k, lo:hi], gg[k, lo:hi], go[k, lo:hi]
            for r in range(nb):
                for j in range(hid):
                    i[r, j] = _sigmoid(x[r, j] + gh[r, j] + b_hh[j])
                for j in range(hid):
                    f[r, j] = _sigmoid(x[r, hid + j] + gh[r, hid + j] + b_hh[hid + j])
                for j in range(hid):
                    g[r, j] = _tanh(x[r, 2 * hid + j] + gh[r, 2 * hid + j] + b_hh[2 * hid + j])
                for j in range(hid):
                    o[r, j] = _sigmoid(x[r, 3 * hid + j] + gh[r, 3 * hid + j] + b_hh[3 * hid + j])
            _lstm_cell(i.reshape(n), f.reshape(n), g.reshape(n), o.reshape(n), cprev[k, lo:hi].reshape(n),
                       cs[k, lo:hi].reshape(n), gt[k, lo:hi].reshape(n), hs[k, lo:hi].reshape(n))
            h, c = hs[k], cs[k]


@njit(fastmath=True, cache=CACHE, nogil=True, error_model="numpy")
def lstm_backward_blocks(fn, j0, j1, block, dhs, dc_last, w_hh, cprev, gates, reset, dga, dh0, dc0, dseed_h,
                         dseed_c):
    """Backward of :func:`lstm_forward_blocks`. dc_last ``W x H`` is the gradient of the final
    cell state. Writes dga ``K x W x 4H`` (gate pre-activations), dh0, dc0 and adds into the
    seeds' ``n_blocks x H`` rows."""
    n_steps, width, hid = dhs.shape
    g4 = 4 * hid
    dh = np.empty((block, hid), dhs.dtype)
    dc = np.empty((block, hid), dhs.dtype)
    dprev = np.empty((block, hid), dhs.dtype)
    d = np.empty(hid, dhs.dtype)
    dct = np.empty(hid, dhs.dtype)
    scratch, scal = _scratch(dhs.dtype)
    gi_, gf, gg, go, gt = gates
    for blk in range(j0, j1):
        lo = blk * block
        hi = min(lo + block, width)
        nb = hi - lo
        dh[:] = 0.0
        dc[:nb] = dc_last[lo:hi]
        for k in range(n_steps - 1, -1, -1):
            # the block's rows of step k as 2-D views, made once a step (as in the forward)
            dout, cp, dy = dhs[k, lo:hi], cprev[k, lo:hi], dga[k, lo:hi]
            i, f, g, o, tc = gi_[k, lo:hi], gf[k, lo:hi], gg[k, lo:hi], go[k, lo:hi], gt[k, lo:hi]
            for r in range(nb):
                for j in range(hid):
                    d[j] = dh[r, j] + dout[r, j]
                for j in range(hid):
                    dct[j] = dc[r, j] + d[j] * o[r, j] * (1.0 - tc[r, j] * tc[r, j])
                for j in range(hid):
                    dy[r, j] = dct[j] * g[r, j] * i[r, j] * (1.0 - i[r, j])
                for j in range(hid):
                    dy[r, hid + j] = dct[j] * cp[r, j] * f[r, j] * (1.0 - f[r, j])
                for j in range(hid):
                    dy[r, 2 * hid + j] = dct[j] * i[r, j] * (1.0 - g[r, j] * g[r, j])
                for j in range(hid):
                    dy[r, 3 * hid + j] = d[j] * tc[r, j] * o[r, j] * (1.0 - o[r, j])
                for j in range(hid):
                    dc[r, j] = dct[j] * f[r, j]
            matmul_rows(fn, scratch, scal, _rows(dga, k, lo), g4, w_hh.ctypes.data, hid, dprev.ctypes.data, hid,
                        nb, hid, g4)
            _pass_back_rows(k, dprev[:nb], reset, dh, dseed_h[blk], lo)
            _pass_back_rows(k, dc[:nb], reset, dc, dseed_c[blk], lo)
        for b in range(lo, hi):
            dh0[b] = dh[b - lo]
            dc0[b] = dc[b - lo]


@njit(fastmath=True, cache=CACHE, nogil=True, error_model="numpy")
def rnn_forward_blocks(fn, j0, j1, block, gi, w_hh_t, b_hh, h0, seed, reset, relu, hs, hprev):
    """Elman RNN (tanh, or relu if ``relu``) over a window. gi ``K x W x H``; w_hh_t ``H x H``."""
    n_steps, width, hid = gi.shape
    gh = np.empty((block, hid), gi.dtype)
    scratch, scal = _scratch(gi.dtype)
    for blk in range(j0, j1):
        lo = blk * block
        hi = min(lo + block, width)
        h = h0
        for k in range(n_steps):
            _hidden_product(fn, scratch, scal, k, h, seed, reset, hprev, lo, hi, w_hh_t, gh)
            for b in range(lo, hi):
                x, y, out = gi[k, b], gh[b - lo], hs[k, b]
                if relu:
                    for j in range(hid):
                        out[j] = max(x[j] + y[j] + b_hh[j], 0.0)
                else:
                    for j in range(hid):
                        out[j] = _tanh(x[j] + y[j] + b_hh[j])
            h = hs[k]


@njit(fastmath=True, cache=CACHE, nogil=True, error_model="numpy")
def rnn_backward_blocks(fn, j0, j1, block, dhs, w_hh, hs, reset, relu, dga, dh0, dseed):
    """Backward of :func:`rnn_forward_blocks`; writes dga ``K x W x H``, dh0 and adds into dseed's rows."""
    n_steps, width, hid = dhs.shape
    dh = np.empty((block, hid), dhs.dtype)
    dprev = np.empty((block, hid), dhs.dtype)
    scratch, scal = _scratch(dhs.dtype)
    for blk in range(j0, j1):
        lo = blk * block
        hi = min(lo + block, width)
        nb = hi - lo
        dh[:] = 0.0
        for k in range(n_steps - 1, -1, -1):
            for b in range(lo, hi):
                dout, y, dy, dhb = dhs[k, b], hs[k, b], dga[k, b], dh[b - lo]
                if relu:
                    for j in range(hid):
                        dy[j] = (dhb[j] + dout[j]) if y[j] > 0.0 else 0.0
                else:
                    for j in range(hid):
                        dy[j] = (dhb[j] + dout[j]) * (1.0 - y[j] * y[j])
            matmul_rows(fn, scratch, scal, _rows(dga, k, lo), hid, w_hh.ctypes.data, hid, dprev.ctypes.data, hid,
                        nb, hid, hid)
            _pass_back_rows(k, dprev[:nb], reset, dh, dseed[blk], lo)
        for b in range(lo, hi):
            dh0[b] = dh[b - lo]


# ---------------------------------------------------------------------------- whole windows
#
# The twins' signatures (fastseq.bptt._fused_py): every block of the window, spread over
# the threads PyTorch allows (fastseq.bptt._slot_threads), the seeds' gradient added into
# one H row (each block's row summed in block order, so the sum does not depend on threads).

SLOT_BLOCK = 32
"""Slots per block. Fixed, never derived from the thread count, so results do not depend on
how many threads ran; 32 rows keep the per-step product efficient (a 16-row product took
about 0.6 of a 32-row one here) and give a 64-slot window two blocks, one per core here."""


def n_blocks(width: int, block: int = SLOT_BLOCK) -> int:
    """Blocks of ``block`` slots that cover ``width`` slots (the last may be narrower)."""
    return -(-width // block)


def check_kernel_arrays(what: str, arrays, dtype=None) -> None:
    """Refuse what kernels reading through raw pointers would read wrongly: a strided array
    (tuples are looked into), and with ``dtype`` a float array of another type."""
    for a in arrays:
        for part in (a if isinstance(a, tuple) else (a,)):
            if not isinstance(part, np.ndarray):
                continue
            if not part.flags.c_contiguous:
                raise ValueError(f"Expected C-contiguous arrays for the {what} kernels, got strides {part.strides}.")
            if dtype is not None and part.dtype != bool and part.dtype != dtype:
                raise ValueError(f"Expected {dtype} arrays for the {what} kernels (the window's), got {part.dtype}.")


def _run(kernel, first, *args) -> None:
    check_kernel_arrays("fused", (first,) + args, first.dtype)  # one float type: the products are by address
    run_blocks(kernel, gemm().address(first.dtype), n_blocks(first.shape[1]), SLOT_BLOCK, first, *args)


def _seed_rows(dhs):
    return np.zeros((n_blocks(dhs.shape[1]), dhs.shape[2]), dhs.dtype)


def gru_forward(gi, w_hh_t, b_hh, h0, seed, reset, hs, hprev, gates):
    _run(gru_forward_blocks, gi, w_hh_t, b_hh, h0, seed, reset, hs, hprev, gates)


def gru_backward(dhs, w_hh, hprev, gates, reset, dgi, dgh, dh0, dseed):
    rows = _seed_rows(dhs)
    _run(gru_backward_blocks, dhs, w_hh, hprev, gates, reset, dgi, dgh, dh0, rows)
    dseed += rows.sum(0)


def lstm_forward(gi, w_hh_t, b_hh, h0, c0, seed_h, seed_c, reset, hs, cs, hprev, cprev, gates):
    _run(lstm_forward_blocks, gi, w_hh_t, b_hh, h0, c0, seed_h, seed_c, reset, hs, cs, hprev, cprev, gates)


def lstm_backward(dhs, dc_last, w_hh, cprev, gates, reset, dga, dh0, dc0, dseed_h, dseed_c):
    rows_h, rows_c = _seed_rows(dhs), _seed_rows(dhs)
    _run(lstm_backward_blocks, dhs, dc_last, w_hh, cprev, gates, reset, dga, dh0, dc0, rows_h, rows_c)
    dseed_h += rows_h.sum(0)
    dseed_c += rows_c.sum(0)


def rnn_forward(gi, w_hh_t, b_hh, h0, seed, reset, relu, hs, hprev):
    _run(rnn_forward_blocks, gi, w_hh_t, b_hh, h0, seed, reset, relu, hs, hprev)


def rnn_backward(dhs, w_hh, hs, reset, relu, dga, dh0, dseed):
    rows = _seed_rows(dhs)
    _run(rnn_backward_blocks, dhs, w_hh, hs, reset, relu, dga, dh0, rows)
    dseed += rows.sum(0)
