"""Numba kernels of the fused feedback decoders: a whole window's steps, readout and feedback in one call.

Two families: the general kernels (``gru_forward`` ...: any teacher-forcing mask, the readout
inside each step) and the folded ones (``gru_folded_forward`` ...: no teacher forcing, the
readout folded into the hidden product; see the second half of this module).

A feedback decoder (:class:`fastseq.bptt.feedback.FeedbackGRU` / ``FeedbackLSTM``) reads
``concat(visible, context)``; its outputs ``y = W_out h + b_out`` are the next step's
visible input, or the true target where the teacher-forcing mask is set. Per step k the
kernel, for the ``K x W`` window (W slots, F features, H hidden units, G gates per unit):

- folds the reset in: where ``reset[k, b]`` the slot's visible and hidden state are the
  seeds, else its fed-back visible and its state after step ``k - 1``;
- adds the visible part of the input projection (``W_iv vprev``, one BLAS product) to the
  context part ``gc = W_ic ctx`` that the caller computed for the whole window;
- runs the hidden product and the gate loops;
- reads out ``y_k`` (one BLAS product) and picks the next visible per slot.

The backward runs through time once: the gradient of a step's output is the cost's plus,
where it was fed back, the next step's visible-input gradient. It writes the gradients of
the outputs (the readout's whole gradient) and of the gate pre-activations for the whole
window, from which the caller takes every weight gradient as whole-window products.

Layout: the hidden side runs units first, slots last: ``hs[k]`` is ``H x W``, ``gc[k]``
``G*H x W``, so each gate loop runs along a row of W slots with the row's bias a scalar.
With slots first (``W x H``, as :mod:`fastseq.bptt._fused_nb`) the loops run along H per
slot: at H = 32 LLVM's vector body (16 float32 lanes, unrolled) never runs and the gate
math goes scalar, 9 ns per unit against 0.2-3 here. The visible side (outputs, targets,
fed-back visible, ``W x F`` per step) keeps the caller's slots-first layout, so nothing is
transposed outside; the products between the two sides pass BLAS a transposed operand.
Without context ``gc`` has no steps (``0 x G*H x W``) and is not read.

The folded kernels run the slots in fixed blocks of columns (:func:`feedback_block`), on
the threads PyTorch allows (:mod:`fastseq.bptt._slot_threads`), with their products on
``?gemm`` by address (:mod:`fastseq.bptt._blas_nb`); the general kernels run the whole
width on the calling thread.

``fastseq.bptt._feedback_py`` holds the plain array twins (NumPy or torch).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from fastseq._util.numba_cache import CACHE
from fastseq.bptt._blas_nb import gemm, matmul_rows
from fastseq.bptt._fused_nb import _pass_back as _pass_back_visible
from fastseq.bptt._fused_nb import _previous as _previous_visible
from fastseq.bptt._fused_nb import _lstm_cell, _scratch, _sigmoid, _tanh, check_kernel_arrays, n_blocks
from fastseq.bptt._slot_threads import run_blocks

__all__ = ["gru_forward", "gru_backward", "lstm_forward", "lstm_backward", "gru_folded_forward", "gru_folded_backward",
           "lstm_folded_forward", "lstm_folded_backward"]


# Each innermost loop writes one array (so LLVM vectorises it, as in _fused_nb).


@njit(inline="always")
def _previous(k, state, seed, reset, prev):
    """prev[:, b] = seed where reset[k, b], else state[:, b] (the reset folded into the step's input)."""
    flags = reset[k]
    for j in range(prev.shape[0]):
        src, dst, s = state[j], prev[j], seed[j]
        for b in range(prev.shape[1]):
            dst[b] = s if flags[b] else src[b]


@njit(inline="always")
def _any(flags):
    for b in range(flags.shape[0]):
        if flags[b]:
            return True
    return False


@njit(inline="always")
def _pass_back(k, dstate, reset, dseed):
    """Route the previous state's gradient (in place): into the seed where the slot reset, else on
    to step k - 1. A step without resets costs nothing."""
    flags = reset[k]
    if not _any(flags):
        return
    for j in range(dstate.shape[0]):
        row = dstate[j]
        acc = 0.0
        for b in range(dstate.shape[1]):
            acc += row[b] if flags[b] else 0.0
        dseed[j] += acc
        for b in range(dstate.shape[1]):
            row[b] = 0.0 if flags[b] else row[b]


@njit(inline="always")
def _readout(k, hs, w_out_t, b_out, target, teacher, ys, fed):
    """ys[k] = hs[k]^T W_out^T + b_out (``W x F``); fed[b] = target[k, b] where teacher[k, b], else ys[k, b]."""
    np.dot(hs[k].T, w_out_t, ys[k])
    for b in range(ys.shape[1]):
        y = ys[k, b]
        for f in range(ys.shape[2]):
            y[f] += b_out[f]
    for b in range(ys.shape[1]):
        src = target[k, b] if teacher[k, b] else ys[k, b]
        dst = fed[b]
        for f in range(ys.shape[2]):
            dst[f] = src[f]


@njit(inline="always")
def _output_grad(k, dys, teacher, dv, dy):
    """dy[k, b] = dys[k, b] plus the next step's visible gradient where the output was fed back."""
    for b in range(dys.shape[1]):
        src, dst, back = dys[k, b], dy[k, b], dv[b]
        if teacher[k, b]:
            for f in range(dst.shape[0]):
                dst[f] = src[f]
        else:
            for f in range(dst.shape[0]):
                dst[f] = src[f] + back[f]


@njit(inline="always")
def _inputs(k, gc, w_iv, vprev, gi):
    """gi = W_iv vprev[k]^T (``G*H x W``) plus the context part gc[k] where there is context."""
    np.dot(w_iv, vprev[k].T, gi)
    if gc.shape[0]:
        for q in range(gi.shape[0]):
            dst, src = gi[q], gc[k, q]
            for b in range(gi.shape[1]):
                dst[b] += src[b]


@njit(inline="always")
def _gru_unit_output(x, y, bias_x, bias, r, z, hp, hn, n, out):
    """One GRU unit's candidate and output over every slot, from its n-gate inputs (x input
    side, y hidden side, with their biases) and the activated r and z gates."""
    for b in range(x.shape[0]):
        hn[b] = y[b] + bias
    for b in range(x.shape[0]):
        n[b] = _tanh(x[b] + bias_x + r[b] * hn[b])
    for b in range(x.shape[0]):
        out[b] = n[b] + z[b] * (hp[b] - n[b])


@njit(inline="always")
def _gru_unit_backward(d, hp, r, z, n, hn, dr, dz, dnx, dnh, dhj):
    """One unit's GRU gate gradients over every slot, from d (the gradient reaching its output):
    writes dr, dz, dnx (input-side pre-activations), dnh (the hidden part of n's) and dhj (to
    step k - 1 through z)."""
    for b in range(d.shape[0]):
        dnx[b] = d[b] * (1.0 - z[b]) * (1.0 - n[b] * n[b])
    for b in range(d.shape[0]):
        dr[b] = dnx[b] * hn[b] * r[b] * (1.0 - r[b])
    for b in range(d.shape[0]):
        dz[b] = d[b] * (hp[b] - n[b]) * z[b] * (1.0 - z[b])
    for b in range(d.shape[0]):
        dnh[b] = dnx[b] * r[b]
    for b in range(d.shape[0]):
        dhj[b] = d[b] * z[b]


@njit(inline="always")
def _lstm_unit_backward(d, dct, dcj, cp, i, f, g, o, tc, di, df, dg, do):
    """One unit's LSTM gate gradients over every slot, from d (the gradient reaching its output):
    writes dct (the cell's), di, df, dg, do (the gates' pre-activations) and dcj (to step k - 1)."""
    for b in range(d.shape[0]):
        dct[b] = dcj[b] + d[b] * o[b] * (1.0 - tc[b] * tc[b])
    for b in range(d.shape[0]):
        di[b] = dct[b] * g[b] * i[b] * (1.0 - i[b])
    for b in range(d.shape[0]):
        df[b] = dct[b] * cp[b] * f[b] * (1.0 - f[b])
    for b in range(d.shape[0]):
        dg[b] = dct[b] * i[b] * (1.0 - g[b] * g[b])
    for b in range(d.shape[0]):
        do[b] = d[b] * tc[b] * o[b] * (1.0 - o[b])
    for b in range(d.shape[0]):
        dcj[b] = dct[b] * f[b]


@njit(fastmath=True, cache=CACHE, nogil=True, error_model="numpy")
def gru_forward(gc, target, teacher, reset, w_iv, w_hh, b_ih, b_hh, w_out_t, b_out, v0, h0, seed_v, seed_h,
                ys, hs, vprev, hprev, gates):
    """GRU feedback decoder over a window. gc ``K x 3H x W`` (or ``0 x 3H x W``: no context);
    target ``K x W x F``; teacher, reset ``K x W``; w_iv ``3H x F``; w_hh ``3H x H``; biases
    ``3H``; w_out_t ``H x F``; v0 ``W x F``, h0 ``H x W``; seeds ``F`` and ``H``. Writes ys,
    vprev ``K x W x F``, hs, hprev ``K x H x W`` and gates, four ``K x H x W`` arrays: r, z,
    n and n's hidden part."""
    n_steps, width, feat = target.shape
    hid = w_hh.shape[1]
    gi = np.empty((3 * hid, width), ys.dtype)
    gh = np.empty((3 * hid, width), ys.dtype)
    fed = np.empty_like(v0)
    gr, gz, gn, ghn = gates
    v, h = v0, h0
    for k in range(n_steps):
        _previous_visible(k, v, seed_v, reset, vprev[k])
        _previous(k, h, seed_h, reset, hprev[k])
        _inputs(k, gc, w_iv, vprev, gi)
        np.dot(w_hh, hprev[k], gh)
        for j in range(hid):
            r, z, n, hn, hp, out = gr[k, j], gz[k, j], gn[k, j], ghn[k, j], hprev[k, j], hs[k, j]
            x, y, bias = gi[j], gh[j], b_ih[j] + b_hh[j]
            for b in range(width):
                r[b] = _sigmoid(x[b] + y[b] + bias)
            x, y, bias = gi[hid + j], gh[hid + j], b_ih[hid + j] + b_hh[hid + j]
            for b in range(width):
                z[b] = _sigmoid(x[b] + y[b] + bias)
            x, y, bias, bias_x = gi[2 * hid + j], gh[2 * hid + j], b_hh[2 * hid + j], b_ih[2 * hid + j]
            _gru_unit_output(x, y, bias_x, bias, r, z, hp, hn, n, out)
        _readout(k, hs, w_out_t, b_out, target, teacher, ys, fed)
        v, h = fed, hs[k]


@njit(fastmath=True, cache=CACHE, nogil=True, error_model="numpy")
def gru_backward(dys, dhs, teacher, reset, w_iv, w_hh_t, w_out_t, hprev, gates, dy, dgi, dgh, dv0, dh0,
                 dseed_v, dseed_h):
    """Backward of :func:`gru_forward`. dys ``K x W x F``, dhs ``K x H x W`` (gradients of the
    outputs and hidden states); w_iv ``3H x F``, w_hh_t ``H x 3H``, w_out_t ``H x F``. Writes
    dy ``K x W x F`` (the outputs' whole gradient), dgi, dgh ``K x 3H x W`` (input and hidden
    pre-activations), dv0 ``W x F``, dh0 ``H x W`` and adds into the seeds' gradients."""
    n_steps, hid, width = dhs.shape
    dh = np.zeros((hid, width), dhs.dtype)
    dv = np.zeros((width, dys.shape[2]), dhs.dtype)
    dread = np.empty((hid, width), dhs.dtype)
    dprev = np.empty((hid, width), dhs.dtype)
    d = np.empty(width, dhs.dtype)
    gr, gz, gn, ghn = gates
    for k in range(n_steps - 1, -1, -1):
        _output_grad(k, dys, teacher, dv, dy)
        np.dot(w_out_t, dy[k].T, dread)
        for j in range(hid):
            dout, dro, hp, dhj = dhs[k, j], dread[j], hprev[k, j], dh[j]
            r, z, n, hn = gr[k, j], gz[k, j], gn[k, j], ghn[k, j]
            dxr, dxz, dxn = dgi[k, j], dgi[k, hid + j], dgi[k, 2 * hid + j]
            dyr, dyz, dyn = dgh[k, j], dgh[k, hid + j], dgh[k, 2 * hid + j]
            for b in range(width):
                d[b] = dhj[b] + dout[b] + dro[b]
            _gru_unit_backward(d, hp, r, z, n, hn, dxr, dxz, dxn, dyn, dhj)
            for b in range(width):
                dyr[b] = dxr[b]
            for b in range(width):
                dyz[b] = dxz[b]
        np.dot(w_hh_t, dgh[k], dprev)
        for j in range(hid):
            dp, dhj = dprev[j], dh[j]
            for b in range(width):
                dhj[b] += dp[b]
        _pass_back(k, dh, reset, dseed_h)
        np.dot(dgi[k].T, w_iv, dv)
        _pass_back_visible(k, dv, reset, dv, dseed_v)
    dh0[:] = dh
    dv0[:] = dv


@njit(fastmath=True, cache=CACHE, nogil=True, error_model="numpy")
def lstm_forward(gc, target, teacher, reset, w_iv, w_hh, b_ih, b_hh, w_out_t, b_out, v0, h0, c0, seed_v, seed_h,
                 seed_c, ys, hs, cs, vprev, hprev, cprev, gates):
    """LSTM feedback decoder over a window. gc ``K x 4H x W`` (or ``0 x 4H x W``); w_iv
    ``4H x F``; w_hh ``4H x H``; c0 ``H x W``; seed_c ``H``. Writes ys, vprev ``K x W x F``,
    hs, cs, hprev, cprev ``K x H x W`` and gates, five ``K x H x W`` arrays: i, f, g, o
    activated and tanh of the new cell state."""
    n_steps, width, feat = target.shape
    hid = w_hh.shape[1]
    gi = np.empty((4 * hid, width), ys.dtype)
    gh = np.empty((4 * hid, width), ys.dtype)
    fed = np.empty_like(v0)
    gi_, gf, gg, go, gt = gates
    v, h, c = v0, h0, c0
    for k in range(n_steps):
        _previous_visible(k, v, seed_v, reset, vprev[k])
        _previous(k, h, seed_h, reset, hprev[k])
        _previous(k, c, seed_c, reset, cprev[k])
        _inputs(k, gc, w_iv, vprev, gi)
        np.dot(w_hh, hprev[k], gh)
        for j in range(hid):
            i, f, g, o, tc = gi_[k, j], gf[k, j], gg[k, j], go[k, j], gt[k, j]
            cp, out, cell = cprev[k, j], hs[k, j], cs[k, j]
            x, y, bias = gi[j], gh[j], b_ih[j] + b_hh[j]
            for b in range(width):
                i[b] = _sigmoid(x[b] + y[b] + bias)
            x, y, bias = gi[hid + j], gh[hid + j], b_ih[hid + j] + b_hh[hid + j]
            for b in range(width):
                f[b] = _sigmoid(x[b] + y[b] + bias)
            x, y, bias = gi[2 * hid + j], gh[2 * hid + j], b_ih[2 * hid + j] + b_hh[2 * hid + j]
            for b in range(width):
                g[b] = _tanh(x[b] + y[b] + bias)
            x, y, bias = gi[3 * hid + j], gh[3 * hid + j], b_ih[3 * hid + j] + b_hh[3 * hid + j]
            for b in range(width):
                o[b] = _sigmoid(x[b] + y[b] + bias)
            _lstm_cell(i, f, g, o, cp, cell, tc, out)
        _readout(k, hs, w_out_t, b_out, target, teacher, ys, fed)
        v, h, c = fed, hs[k], cs[k]


@njit(fastmath=True, cache=CACHE, nogil=True, error_model="numpy")
def lstm_backward(dys, dhs, dc_last, teacher, reset, w_iv, w_hh_t, w_out_t, cprev, gates, dy, dga, dv0, dh0, dc0,
                  dseed_v, dseed_h, dseed_c):
    """Backward of :func:`lstm_forward`. dc_last ``H x W`` is the gradient of the final cell
    state. Writes dy ``K x W x F``, dga ``K x 4H x W``, dv0, dh0, dc0 and adds into the seeds'."""
    n_steps, hid, width = dhs.shape
    dh = np.zeros((hid, width), dhs.dtype)
    dv = np.zeros((width, dys.shape[2]), dhs.dtype)
    dc = dc_last.copy()
    dread = np.empty((hid, width), dhs.dtype)
    d = np.empty(width, dhs.dtype)
    dct = np.empty(width, dhs.dtype)
    gi_, gf, gg, go, gt = gates
    for k in range(n_steps - 1, -1, -1):
        _output_grad(k, dys, teacher, dv, dy)
        np.dot(w_out_t, dy[k].T, dread)
        for j in range(hid):
            dout, dro, cp, dhj, dcj = dhs[k, j], dread[j], cprev[k, j], dh[j], dc[j]
            i, f, g, o, tc = gi_[k, j], gf[k, j], gg[k, j], go[k, j], gt[k, j]
            di, df, dg, do = dga[k, j], dga[k, hid + j], dga[k, 2 * hid + j], dga[k, 3 * hid + j]
            for b in range(width):
                d[b] = dhj[b] + dout[b] + dro[b]
            _lstm_unit_backward(d, dct, dcj, cp, i, f, g, o, tc, di, df, dg, do)
        np.dot(w_hh_t, dga[k], dh)
        _pass_back(k, dh, reset, dseed_h)
        _pass_back(k, dc, reset, dseed_c)
        np.dot(dga[k].T, w_iv, dv)
        _pass_back_visible(k, dv, reset, dv, dseed_v)
    dh0[:] = dh
    dc0[:] = dc
    dv0[:] = dv


# ---------------------------------------------------------------------------- folded feedback
#
# Without teacher forcing a slot's visible input is its previous output, y = W_out h + b_out,
# so its input projection is W_iv y = (W_iv W_out) h + W_iv b_out: the readout folds into the
# hidden product. The caller passes the stacked weight ``wcat`` (LSTM: W_hh + W_iv W_out;
# GRU: its r, z rows likewise, then W_iv W_out's n rows, then W_hh's n rows: ``4H x H``), so a
# step is one product ``wcat hprev``; the outputs are one product over the whole window after
# it. Where the visible input is not the previous output (step 0: the carried visible; a
# reset: the seed) the caller's corrections ``W_iv (v - y)`` are added to the input rows.


# The folded kernels run the window's slots in fixed blocks of columns (``feedback_block(W)``
# slots; block j: columns j * block to min((j + 1) * block, W)), each block through all K
# steps, so blocks run on several threads at once (fastseq.bptt._slot_threads) and the
# result does not depend on how many threads ran. A block's columns of a ``units x W`` row
# are a contiguous slice; its products go to ``?gemm`` by address (fastseq.bptt._blas_nb)
# with the row stride W, into a ``rows x block`` scratch. Gradients that sum over slots
# (the seeds', the reset correction's) are summed per block into one row each, and the
# rows in block order by the caller.

MAX_BLOCK = 512
"""Most slots per block of the folded kernels."""


def feedback_block(width: int) -> int:
    """Slots per block for a window of ``width`` slots: a function of the width alone, never of
    the thread count, so results do not depend on how many threads ran. One block below 128
    slots, else at least two of at most 512 slots (1024 slots: two blocks), rounded up to 16.

    Measured, the kernels alone, forward and backward, K=32, float32: a block costs more per
    slot the narrower it is (GRU H=32, 1024 slots, 1 thread: 8.2-9.2 ms in blocks of 512,
    8.4-8.9 ms in one block, 9.0-10.2 ms in blocks of 256, 19.6 ms in blocks of 32; 64 slots,
    LSTM H=128: 3.7-3.9 ms in one block, 5.3-5.6 ms in two), so a narrow window stays whole
    and loses the second core rather than pay that on every thread count."""
    parts = 1 if width < 128 else max(2, -(-width // MAX_BLOCK))
    return max(16, -(-(-(-width // parts)) // 16) * 16)


@njit(inline="always")
def _col(a, k, q, lo):
    """Address of column ``lo`` of row ``q`` of step ``k`` of a C-contiguous ``K x R x W`` array."""
    return a.ctypes.data + ((k * a.shape[1] + q) * a.shape[2] + lo) * a.itemsize


@njit(inline="always")
def _previous_cols(k, state, seed, reset, prev, lo, hi):
    """prev[:, b] = seed where reset[k, b], else state[:, b], for the columns lo <= b < hi."""
    flags = reset[k, lo:hi]
    for j in range(prev.shape[0]):
        src, dst, s = state[j, lo:hi], prev[j, lo:hi], seed[j]
        for b in range(hi - lo):
            dst[b] = s if flags[b] else src[b]


@njit(inline="always")
def _pass_back_cols(k, dstate, reset, dseed, lo, hi):
    """Route a block's previous-state gradient (``units x block`` scratch, in place): into the
    block's seed row where the slot reset, else on to step k - 1. A step without resets costs nothing."""
    flags = reset[k, lo:hi]
    if not _any(flags):
        return
    nb = hi - lo
    for j in range(dstate.shape[0]):
        row = dstate[j, :nb]
        acc = 0.0
        for b in range(nb):
            acc += row[b] if flags[b] else 0.0
        dseed[j] += acc
        for b in range(nb):
            row[b] = 0.0 if flags[b] else row[b]


@njit(inline="always")
def _corrections(k, gc, corr0, corr_reset, reset, rows, pre, lo, hi):
    """Add to the input rows of a block's pre (``4H x block`` scratch, its first ``rows``) the
    context part and, where the visible input is not the folded previous output, the
    difference: corr0 at step 0, corr_reset at resets."""
    flags = reset[k, lo:hi]
    nb = hi - lo
    if gc.shape[0]:
        for q in range(rows):
            dst, src = pre[q, :nb], gc[k, q, lo:hi]
            for b in range(nb):
                dst[b] += src[b]
    if k == 0:
        for q in range(rows):
            dst, src, cr = pre[q, :nb], corr0[q, lo:hi], corr_reset[q]
            for b in range(nb):
                dst[b] += cr if flags[b] else src[b]
        return
    for b in range(nb):
        if flags[b]:
            for q in range(rows):
                pre[q, b] += corr_reset[q]


@njit(inline="always")
def _correction_grads(k, dpre, reset, rows, dcorr0, dcorr_reset, lo, hi):
    """The corrections' gradients over a block's columns of ``dpre`` (``4H x W``, step k): into
    dcorr0's columns at step 0 and the block's dcorr_reset row where slots reset."""
    flags = reset[k, lo:hi]
    if k and not _any(flags):
        return
    nb = hi - lo
    for q in range(rows):
        src = dpre[q, lo:hi]
        acc = 0.0
        for b in range(nb):
            acc += src[b] if flags[b] else 0.0
        dcorr_reset[q] += acc
    if k == 0:
        for q in range(rows):
            src, dst = dpre[q, lo:hi], dcorr0[q, lo:hi]
            for b in range(nb):
                dst[b] = 0.0 if flags[b] else src[b]


@njit(inline="always")
def _sigmoid_into(x, bias, out):
    """out = sigmoid(x + bias) over a block's slots (x may be longer than out)."""
    for b in range(out.shape[0]):
        out[b] = _sigmoid(x[b] + bias)


@njit(inline="always")
def _block(blk, block, width):
    lo = blk * block
    return lo, min(lo + block, width)


@njit(fastmath=True, cache=CACHE, nogil=True, error_model="numpy")
def gru_folded_forward_blocks(fn, j0, j1, block, gc, reset, wcat, bcat, corr0, corr_reset, h0, seed_h, hs, hprev,
                              gates):
    """Folded GRU feedback decoder over the slot blocks j0 <= j < j1 of a window. gc ``K x 3H x W``
    (or ``0 x 3H x W``); reset ``K x W``; wcat ``4H x H`` and bcat ``4H`` (rows r, z, n's input
    part, n's hidden part); corr0 ``3H x W``; corr_reset ``3H``; h0 ``H x W``; seed_h ``H``.
    Writes the blocks' columns of hs, hprev and gates (r, z, n, n's hidden part), ``K x H x W``."""
    n_steps, width = reset.shape
    hid = wcat.shape[1]
    pre = np.empty((4 * hid, block), hs.dtype)
    scratch, scal = _scratch(hs.dtype)
    gr, gz, gn, ghn = gates
    for blk in range(j0, j1):
        lo, hi = _block(blk, block, width)
        nb = hi - lo
        h = h0
        for k in range(n_steps):
            _previous_cols(k, h, seed_h, reset, hprev[k], lo, hi)
            matmul_rows(fn, scratch, scal, wcat.ctypes.data, hid, _col(hprev, k, 0, lo), width, pre.ctypes.data,
                        block, 4 * hid, nb, hid)
            _corrections(k, gc, corr0, corr_reset, reset, 3 * hid, pre, lo, hi)
            for j in range(hid):
                r, z, n, hn = gr[k, j, lo:hi], gz[k, j, lo:hi], gn[k, j, lo:hi], ghn[k, j, lo:hi]
                hp, out = hprev[k, j, lo:hi], hs[k, j, lo:hi]
                _sigmoid_into(pre[j], bcat[j], r)
                _sigmoid_into(pre[hid + j], bcat[hid + j], z)
                x, y, bias_x, bias = pre[2 * hid + j, :nb], pre[3 * hid + j, :nb], bcat[2 * hid + j], bcat[3 * hid + j]
                _gru_unit_output(x, y, bias_x, bias, r, z, hp, hn, n, out)
            h = hs[k]


@njit(fastmath=True, cache=CACHE, nogil=True, error_model="numpy")
def gru_folded_backward_blocks(fn, j0, j1, block, dhs, reset, wcat_t, hprev, gates, dpre, dh0, dseed_h, dcorr0,
                               dcorr_reset):
    """Backward of :func:`gru_folded_forward_blocks`. dhs ``K x H x W``; wcat_t ``H x 4H``. Writes
    the blocks' columns of dpre ``K x 4H x W`` (pre-activation gradients), dh0 and dcorr0, and
    adds into the blocks' rows of dseed_h ``n_blocks x H`` and dcorr_reset ``n_blocks x 3H``."""
    n_steps, hid, width = dhs.shape
    dh = np.empty((hid, block), dhs.dtype)
    dprev = np.empty((hid, block), dhs.dtype)
    d = np.empty(block, dhs.dtype)
    scratch, scal = _scratch(dhs.dtype)
    gr, gz, gn, ghn = gates
    for blk in range(j0, j1):
        lo, hi = _block(blk, block, width)
        nb = hi - lo
        dh[:] = 0.0
        for k in range(n_steps - 1, -1, -1):
            for j in range(hid):
                dout, hp, dhj = dhs[k, j, lo:hi], hprev[k, j, lo:hi], dh[j, :nb]
                r, z, n, hn = gr[k, j, lo:hi], gz[k, j, lo:hi], gn[k, j, lo:hi], ghn[k, j, lo:hi]
                dr, dz = dpre[k, j, lo:hi], dpre[k, hid + j, lo:hi]
                dnx, dnh = dpre[k, 2 * hid + j, lo:hi], dpre[k, 3 * hid + j, lo:hi]
                for b in range(nb):
                    d[b] = dhj[b] + dout[b]
                _gru_unit_backward(d[:nb], hp, r, z, n, hn, dr, dz, dnx, dnh, dhj)
            matmul_rows(fn, scratch, scal, wcat_t.ctypes.data, 4 * hid, _col(dpre, k, 0, lo), width,
                        dprev.ctypes.data, block, hid, nb, 4 * hid)
            for j in range(hid):
                dp, dhj = dprev[j, :nb], dh[j, :nb]
                for b in range(nb):
                    dhj[b] += dp[b]
            _pass_back_cols(k, dh, reset, dseed_h[blk], lo, hi)
            _correction_grads(k, dpre[k], reset, 3 * hid, dcorr0, dcorr_reset[blk], lo, hi)
        for j in range(hid):
            dh0[j, lo:hi] = dh[j, :nb]


@njit(fastmath=True, cache=CACHE, nogil=True, error_model="numpy")
def lstm_folded_forward_blocks(fn, j0, j1, block, gc, reset, wcat, bcat, corr0, corr_reset, h0, c0, seed_h, seed_c,
                               hs, cs, hprev, cprev, gates):
    """Folded LSTM feedback decoder over the slot blocks j0 <= j < j1 of a window. wcat ``4H x H``,
    bcat ``4H``; corr0 ``4H x W``; corr_reset ``4H``. Writes the blocks' columns of hs, cs,
    hprev, cprev and gates (i, f, g, o, tanh of the cell)."""
    n_steps, width = reset.shape
    hid = wcat.shape[1]
    pre = np.empty((4 * hid, block), hs.dtype)
    scratch, scal = _scratch(hs.dtype)
    gi_, gf, gg, go, gt = gates
    for blk in range(j0, j1):
        lo, hi = _block(blk, block, width)
        nb = hi - lo
        h, c = h0, c0
        for k in range(n_steps):
            _previous_cols(k, h, seed_h, reset, hprev[k], lo, hi)
            _previous_cols(k, c, seed_c, reset, cprev[k], lo, hi)
            matmul_rows(fn, scratch, scal, wcat.ctypes.data, hid, _col(hprev, k, 0, lo), width, pre.ctypes.data,
                        block, 4 * hid, nb, hid)
            _corrections(k, gc, corr0, corr_reset, reset, 4 * hid, pre, lo, hi)
            for j in range(hid):
                i, f, g, o, tc = gi_[k, j, lo:hi], gf[k, j, lo:hi], gg[k, j, lo:hi], go[k, j, lo:hi], gt[k, j, lo:hi]
                cp, out, cell = cprev[k, j, lo:hi], hs[k, j, lo:hi], cs[k, j, lo:hi]
                _sigmoid_into(pre[j], bcat[j], i)
                _sigmoid_into(pre[hid + j], bcat[hid + j], f)
                x, bias = pre[2 * hid + j], bcat[2 * hid + j]
                for b in range(nb):
                    g[b] = _tanh(x[b] + bias)
                _sigmoid_into(pre[3 * hid + j], bcat[3 * hid + j], o)
                _lstm_cell(i, f, g, o, cp, cell, tc, out)
            h, c = hs[k], cs[k]


@njit(fastmath=True, cache=CACHE, nogil=True, error_model="numpy")
def lstm_folded_backward_blocks(fn, j0, j1, block, dhs, dc_last, reset, wcat_t, cprev, gates, dpre, dh0, dc0,
                                dseed_h, dseed_c, dcorr0, dcorr_reset):
    """Backward of :func:`lstm_folded_forward_blocks`; writes the blocks' columns of dpre
    ``K x 4H x W``, dh0, dc0 and dcorr0, and adds into the blocks' rows of the seeds' gradients
    (``n_blocks x H``) and of dcorr_reset (``n_blocks x 4H``)."""
    n_steps, hid, width = dhs.shape
    dh = np.empty((hid, block), dhs.dtype)
    dc = np.empty((hid, block), dhs.dtype)
    d = np.empty(block, dhs.dtype)
    dct = np.empty(block, dhs.dtype)
    scratch, scal = _scratch(dhs.dtype)
    gi_, gf, gg, go, gt = gates
    for blk in range(j0, j1):
        lo, hi = _block(blk, block, width)
        nb = hi - lo
        dh[:] = 0.0
        for j in range(hid):
            dc[j, :nb] = dc_last[j, lo:hi]
        for k in range(n_steps - 1, -1, -1):
            for j in range(hid):
                dout, cp, dhj, dcj = dhs[k, j, lo:hi], cprev[k, j, lo:hi], dh[j, :nb], dc[j, :nb]
                i, f, g, o, tc = gi_[k, j, lo:hi], gf[k, j, lo:hi], gg[k, j, lo:hi], go[k, j, lo:hi], gt[k, j, lo:hi]
                di, df = dpre[k, j, lo:hi], dpre[k, hid + j, lo:hi]
                dg, do = dpre[k, 2 * hid + j, lo:hi], dpre[k, 3 * hid + j, lo:hi]
                for b in range(nb):
                    d[b] = dhj[b] + dout[b]
                _lstm_unit_backward(d[:nb], dct[:nb], dcj, cp, i, f, g, o, tc, di, df, dg, do)
            matmul_rows(fn, scratch, scal, wcat_t.ctypes.data, 4 * hid, _col(dpre, k, 0, lo), width,
                        dh.ctypes.data, block, hid, nb, 4 * hid)
            _pass_back_cols(k, dh, reset, dseed_h[blk], lo, hi)
            _pass_back_cols(k, dc, reset, dseed_c[blk], lo, hi)
            _correction_grads(k, dpre[k], reset, 4 * hid, dcorr0, dcorr_reset[blk], lo, hi)
        for j in range(hid):
            dh0[j, lo:hi] = dh[j, :nb]
            dc0[j, lo:hi] = dc[j, :nb]


# ---------------------------------------------------------------------------- whole windows
#
# The twins' signatures (fastseq.bptt._feedback_py): every block of the window, spread over
# the threads PyTorch allows; the per-block sums added in block order.


def _run(kernel, width: int, *args) -> None:
    check_kernel_arrays("feedback", args, args[0].dtype)
    block = feedback_block(width)
    run_blocks(kernel, gemm().address(args[0].dtype), n_blocks(width, block), block, *args)


def _block_rows(width: int, n: int, dtype) -> np.ndarray:
    return np.zeros((n_blocks(width, feedback_block(width)), n), dtype)


def gru_folded_forward(gc, reset, wcat, bcat, corr0, corr_reset, h0, seed_h, hs, hprev, gates):
    _run(gru_folded_forward_blocks, reset.shape[1], gc, reset, wcat, bcat, corr0, corr_reset, h0, seed_h, hs, hprev,
         gates)


def gru_folded_backward(dhs, reset, wcat_t, hprev, gates, dpre, dh0, dseed_h, dcorr0, dcorr_reset):
    width = reset.shape[1]
    rows_h, rows_c = _block_rows(width, dseed_h.size, dhs.dtype), _block_rows(width, dcorr_reset.size, dhs.dtype)
    _run(gru_folded_backward_blocks, width, dhs, reset, wcat_t, hprev, gates, dpre, dh0, rows_h, dcorr0, rows_c)
    dseed_h += rows_h.sum(0)
    dcorr_reset += rows_c.sum(0)


def lstm_folded_forward(gc, reset, wcat, bcat, corr0, corr_reset, h0, c0, seed_h, seed_c, hs, cs, hprev, cprev,
                        gates):
    _run(lstm_folded_forward_blocks, reset.shape[1], gc, reset, wcat, bcat, corr0, corr_reset, h0, c0, seed_h, seed_c,
         hs, cs, hprev, cprev, gates)


def lstm_folded_backward(dhs, dc_last, reset, wcat_t, cprev, gates, dpre, dh0, dc0, dseed_h, dseed_c, dcorr0,
                         dcorr_reset):
    width = reset.shape[1]
    rows_h, rows_c = _block_rows(width, dseed_h.size, dhs.dtype), _block_rows(width, dseed_h.size, dhs.dtype)
    rows_r = _block_rows(width, dcorr_reset.size, dhs.dtype)
    _run(lstm_folded_backward_blocks, width, dhs, dc_last, reset, wcat_t, cprev, gates, dpre, dh0, dc0, rows_h,
         rows_c, dcorr0, rows_r)
    dseed_h += rows_h.sum(0)
    dseed_c += rows_c.sum(0)
    dcorr_reset += rows_r.sum(0)
