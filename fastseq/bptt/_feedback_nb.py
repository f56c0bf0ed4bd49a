"""Numba kernels of the fused feedback decoders: a whole window's steps, readout and feedback in one call.

A feedback decoder (:class:`fastseq.bptt.feedback.FeedbackGRU` / ``FeedbackLSTM``) reads
``concat(visible, context)``; its outputs ``y = h W_out^T + b_out`` are the next step's
visible input, or the true target where the teacher-forcing mask is set. Per step k the
kernel, for the ``K x W`` window (W slots, F features, H hidden units, G gates per unit):

- folds the reset in: where ``reset[k, b]`` the slot's visible and hidden state are the
  seeds, else its fed-back visible and its state after step ``k - 1``;
- adds the visible part of the input projection (``vprev W_iv^T``, one BLAS product) to the
  context part ``gc = ctx W_ic^T + b_ih`` that the caller computed for the whole window;
- runs the hidden product and the gate loops (as :mod:`fastseq.bptt._fused_nb`);
- reads out ``y_k`` (one BLAS product) and picks the next visible per slot.

The backward runs through time once: the gradient of a step's output is the cost's plus,
where it was fed back, the next step's visible-input gradient. It writes the gradients of
the outputs (the readout's whole gradient) and of the gate pre-activations for the whole
window, from which the caller takes every weight gradient as a whole-window product.

``fastseq.bptt._feedback_py`` holds the plain array twins (NumPy or torch).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from fastseq.bptt._fused_nb import _pass_back, _previous, _sigmoid, _tanh

__all__ = ["gru_forward", "gru_backward", "lstm_forward", "lstm_backward"]


@njit(inline="always")
def _readout(k, hs, w_out_t, b_out, target, teacher, ys, fed):
    """ys[k] = hs[k] W_out^T + b_out; fed[b] = target[k, b] where teacher[k, b], else ys[k, b]."""
    np.dot(hs[k], w_out_t, ys[k])
    for b in range(ys.shape[1]):
        y = ys[k, b]
        for j in range(y.shape[0]):
            y[j] += b_out[j]
    for b in range(ys.shape[1]):
        src = target[k, b] if teacher[k, b] else ys[k, b]
        dst = fed[b]
        for j in range(dst.shape[0]):
            dst[j] = src[j]


@njit(inline="always")
def _output_grad(k, dys, teacher, dv, dy):
    """dy[k, b] = dys[k, b] plus the next step's visible gradient where the output was fed back."""
    for b in range(dys.shape[1]):
        src, dst, back = dys[k, b], dy[k, b], dv[b]
        if teacher[k, b]:
            for j in range(dst.shape[0]):
                dst[j] = src[j]
        else:
            for j in range(dst.shape[0]):
                dst[j] = src[j] + back[j]


# As in _fused_nb, each loop over j writes one array (so LLVM vectorises it).


@njit(fastmath=True, cache=True, nogil=True, error_model="numpy")
def gru_forward(gc, target, teacher, reset, w_iv_t, w_hh_t, b_hh, w_out_t, b_out, v0, h0, seed_v, seed_h,
                ys, hs, vprev, hprev, gates):
    """GRU feedback decoder over a window. gc ``K x W x 3H``; target ``K x W x F``; teacher,
    reset ``K x W``; w_iv_t ``F x 3H``; w_hh_t ``H x 3H``; w_out_t ``H x F``; v0 ``W x F``,
    h0 ``W x H``; seeds ``F`` and ``H``. Writes ys ``K x W x F``, hs, hprev ``K x W x H``,
    vprev ``K x W x F`` and gates, four ``K x W x H`` arrays: r, z, n, n's hidden part."""
    n_steps, width, g3 = gc.shape
    hid = g3 // 3
    gi = np.empty((width, g3), gc.dtype)
    gh = np.empty((width, g3), gc.dtype)
    fed = np.empty_like(v0)
    gr, gz, gn, ghn = gates
    v, h = v0, h0
    for k in range(n_steps):
        _previous(k, v, seed_v, reset, vprev[k])
        _previous(k, h, seed_h, reset, hprev[k])
        np.dot(vprev[k], w_iv_t, gi)
        np.dot(hprev[k], w_hh_t, gh)
        for b in range(width):
            c, x, y, hp, out = gc[k, b], gi[b], gh[b], hprev[k, b], hs[k, b]
            r, z, n, hn = gr[k, b], gz[k, b], gn[k, b], ghn[k, b]
            for j in range(hid):
                r[j] = _sigmoid(c[j] + x[j] + y[j] + b_hh[j])
            for j in range(hid):
                z[j] = _sigmoid(c[hid + j] + x[hid + j] + y[hid + j] + b_hh[hid + j])
            for j in range(hid):
                hn[j] = y[2 * hid + j] + b_hh[2 * hid + j]
            for j in range(hid):
                n[j] = _tanh(c[2 * hid + j] + x[2 * hid + j] + r[j] * hn[j])
            for j in range(hid):
                out[j] = n[j] + z[j] * (hp[j] - n[j])
        _readout(k, hs, w_out_t, b_out, target, teacher, ys, fed)
        v, h = fed, hs[k]


@njit(fastmath=True, cache=True, nogil=True, error_model="numpy")
def gru_backward(dys, dhs, teacher, reset, w_iv, w_hh, w_out, hprev, gates, dy, dgi, dgh, dv0, dh0,
                 dseed_v, dseed_h):
    """Backward of :func:`gru_forward`. dys ``K x W x F``, dhs ``K x W x H`` (gradients of the
    outputs and hidden states); w_iv ``3H x F``, w_hh ``3H x H``, w_out ``F x H``. Writes dy
    ``K x W x F`` (the outputs' whole gradient), dgi, dgh ``K x W x 3H``, dv0, dh0 and adds into
    the seeds' gradients."""
    n_steps, width, hid = dhs.shape
    dh = np.zeros((width, hid), dhs.dtype)
    dv = np.zeros((width, dys.shape[2]), dhs.dtype)
    dread = np.empty((width, hid), dhs.dtype)
    dprev = np.empty((width, hid), dhs.dtype)
    d = np.empty(hid, dhs.dtype)
    gr, gz, gn, ghn = gates
    for k in range(n_steps - 1, -1, -1):
        _output_grad(k, dys, teacher, dv, dy)
        np.dot(dy[k], w_out, dread)
        for b in range(width):
            dout, dro, hp, dx, dq, dhb = dhs[k, b], dread[b], hprev[k, b], dgi[k, b], dgh[k, b], dh[b]
            r, z, n, hn = gr[k, b], gz[k, b], gn[k, b], ghn[k, b]
            for j in range(hid):
                d[j] = dhb[j] + dout[j] + dro[j]
            for j in range(hid):
                dx[j] = d[j] * (1.0 - z[j]) * (1.0 - n[j] * n[j]) * hn[j] * r[j] * (1.0 - r[j])
            for j in range(hid):
                dx[hid + j] = d[j] * (hp[j] - n[j]) * z[j] * (1.0 - z[j])
            for j in range(hid):
                dx[2 * hid + j] = d[j] * (1.0 - z[j]) * (1.0 - n[j] * n[j])
            for j in range(2 * hid):
                dq[j] = dx[j]
            for j in range(hid):
                dq[2 * hid + j] = dx[2 * hid + j] * r[j]
            for j in range(hid):
                dhb[j] = d[j] * z[j]
        np.dot(dgh[k], w_hh, dprev)
        for b in range(width):
            dp, dhb = dprev[b], dh[b]
            for j in range(hid):
                dp[j] += dhb[j]
        _pass_back(k, dprev, reset, dh, dseed_h)
        np.dot(dgi[k], w_iv, dv)
        _pass_back(k, dv, reset, dv, dseed_v)
    dh0[:] = dh
    dv0[:] = dv


@njit(fastmath=True, cache=True, nogil=True, error_model="numpy")
def lstm_forward(gc, target, teacher, reset, w_iv_t, w_hh_t, b_hh, w_out_t, b_out, v0, h0, c0, seed_v, seed_h,
                 seed_c, ys, hs, cs, vprev, hprev, cprev, gates):
    """LSTM feedback decoder over a window. gc ``K x W x 4H``; w_iv_t ``F x 4H``; w_hh_t
    ``H x 4H``; c0 ``W x H``; seed_c ``H``. Writes ys, hs, cs, vprev, hprev, cprev and gates,
    five ``K x W x H`` arrays: i, f, g, o activated and tanh of the new cell state."""
    n_steps, width, g4 = gc.shape
    hid = g4 // 4
    gi = np.empty((width, g4), gc.dtype)
    gh = np.empty((width, g4), gc.dtype)
    fed = np.empty_like(v0)
    gi_, gf, gg, go, gt = gates
    v, h, c = v0, h0, c0
    for k in range(n_steps):
        _previous(k, v, seed_v, reset, vprev[k])
        _previous(k, h, seed_h, reset, hprev[k])
        _previous(k, c, seed_c, reset, cprev[k])
        np.dot(vprev[k], w_iv_t, gi)
        np.dot(hprev[k], w_hh_t, gh)
        for b in range(width):
            a, x, y, cp, out, cell = gc[k, b], gi[b], gh[b], cprev[k, b], hs[k, b], cs[k, b]
            i, f, g, o, tc = gi_[k, b], gf[k, b], gg[k, b], go[k, b], gt[k, b]
            for j in range(hid):
                i[j] = _sigmoid(a[j] + x[j] + y[j] + b_hh[j])
            for j in range(hid):
                f[j] = _sigmoid(a[hid + j] + x[hid + j] + y[hid + j] + b_hh[hid + j])
            for j in range(hid):
                g[j] = _tanh(a[2 * hid + j] + x[2 * hid + j] + y[2 * hid + j] + b_hh[2 * hid + j])
            for j in range(hid):
                o[j] = _sigmoid(a[3 * hid + j] + x[3 * hid + j] + y[3 * hid + j] + b_hh[3 * hid + j])
            for j in range(hid):
                cell[j] = f[j] * cp[j] + i[j] * g[j]
            for j in range(hid):
                tc[j] = _tanh(cell[j])
            for j in range(hid):
                out[j] = o[j] * tc[j]
        _readout(k, hs, w_out_t, b_out, target, teacher, ys, fed)
        v, h, c = fed, hs[k], cs[k]


@njit(fastmath=True, cache=True, nogil=True, error_model="numpy")
def lstm_backward(dys, dhs, dc_last, teacher, reset, w_iv, w_hh, w_out, cprev, gates, dy, dga, dv0, dh0, dc0,
                  dseed_v, dseed_h, dseed_c):
    """Backward of :func:`lstm_forward`. dc_last ``W x H`` is the gradient of the final cell
    state. Writes dy ``K x W x F``, dga ``K x W x 4H``, dv0, dh0, dc0 and adds into the seeds'."""
    n_steps, width, hid = dhs.shape
    dh = np.zeros((width, hid), dhs.dtype)
    dv = np.zeros((width, dys.shape[2]), dhs.dtype)
    dc = dc_last.copy()
    dread = np.empty((width, hid), dhs.dtype)
    dprev = np.empty((width, hid), dhs.dtype)
    d = np.empty(hid, dhs.dtype)
    dct = np.empty(hid, dhs.dtype)
    gi_, gf, gg, go, gt = gates
    for k in range(n_steps - 1, -1, -1):
        _output_grad(k, dys, teacher, dv, dy)
        np.dot(dy[k], w_out, dread)
        for b in range(width):
            dout, dro, cp, dq, dhb, dcb = dhs[k, b], dread[b], cprev[k, b], dga[k, b], dh[b], dc[b]
            i, f, g, o, tc = gi_[k, b], gf[k, b], gg[k, b], go[k, b], gt[k, b]
            for j in range(hid):
                d[j] = dhb[j] + dout[j] + dro[j]
            for j in range(hid):
                dct[j] = dcb[j] + d[j] * o[j] * (1.0 - tc[j] * tc[j])
            for j in range(hid):
                dq[j] = dct[j] * g[j] * i[j] * (1.0 - i[j])
            for j in range(hid):
                dq[hid + j] = dct[j] * cp[j] * f[j] * (1.0 - f[j])
            for j in range(hid):
                dq[2 * hid + j] = dct[j] * i[j] * (1.0 - g[j] * g[j])
            for j in range(hid):
                dq[3 * hid + j] = d[j] * tc[j] * o[j] * (1.0 - o[j])
            for j in range(hid):
                dcb[j] = dct[j] * f[j]
        np.dot(dga[k], w_hh, dprev)
        _pass_back(k, dprev, reset, dh, dseed_h)
        _pass_back(k, dc, reset, dc, dseed_c)
        np.dot(dga[k], w_iv, dv)
        _pass_back(k, dv, reset, dv, dseed_v)
    dh0[:] = dh
    dc0[:] = dc
    dv0[:] = dv
