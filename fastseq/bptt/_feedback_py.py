"""Plain array twins of the fused feedback kernels in :mod:`fastseq.bptt._feedback_nb`.

Same signatures, layouts (hidden side units first, ``units x W`` per step; visible side
slots first, ``W x F``) and outputs, written step by step with whole-window array
operations. They accept NumPy arrays (the reference the kernels are tested against) or
torch tensors on any device (the fused feedback path on CUDA, where they run as torch ops).
"""
from __future__ import annotations

from fastseq.bptt._fused_py import _sigmoid, _tanh, _where

__all__ = ["gru_forward", "gru_backward", "lstm_forward", "lstm_backward", "gru_folded_forward", "gru_folded_backward",
           "lstm_folded_forward", "lstm_folded_backward"]


def _previous(reset_k, state, seed):
    """Each slot's hidden state entering the step (``units x W``): the seed where it resets, else its own."""
    return _where(reset_k[None, :], seed[:, None], state)


def _previous_visible(reset_k, state, seed):
    """The same for the visible side (``W x F``)."""
    return _where(reset_k[:, None], seed[None, :], state)


def _pass_back(reset_k, dprev, dseed):
    """Add the resetting slots' gradient into the seed; return what flows to the previous step."""
    dseed += (dprev * reset_k[None, :]).sum(1)
    return _where(reset_k[None, :], 0.0 * dprev, dprev)


def _pass_back_visible(reset_k, dprev, dseed):
    dseed += (dprev * reset_k[:, None]).sum(0)
    return _where(reset_k[:, None], 0.0 * dprev, dprev)


def _inputs(k, gc, w_iv, vp):
    x = w_iv @ vp.T
    return x + gc[k] if gc.shape[0] else x


def gru_forward(gc, target, teacher, reset, w_iv, w_hh, b_ih, b_hh, w_out_t, b_out, v0, h0, seed_v, seed_h,
                ys, hs, vprev, hprev, gates):
    hid = w_hh.shape[1]
    v, h = v0, h0
    for k in range(target.shape[0]):
        vp, hp = _previous_visible(reset[k], v, seed_v), _previous(reset[k], h, seed_h)
        x = _inputs(k, gc, w_iv, vp) + b_ih[:, None]
        gh = w_hh @ hp + b_hh[:, None]
        r = _sigmoid(x[:hid] + gh[:hid])
        z = _sigmoid(x[hid:2 * hid] + gh[hid:2 * hid])
        hn = gh[2 * hid:]
        n = _tanh(x[2 * hid:] + r * hn)
        h = (1.0 - z) * n + z * hp
        y = h.T @ w_out_t + b_out
        hs[k], hprev[k], vprev[k], ys[k] = h, hp, vp, y
        for q, val in enumerate((r, z, n, hn)):
            gates[q][k] = val
        v = _where(teacher[k][:, None], target[k], y)


def gru_backward(dys, dhs, teacher, reset, w_iv, w_hh_t, w_out_t, hprev, gates, dy, dgi, dgh, dv0, dh0,
                 dseed_v, dseed_h):
    hid = dhs.shape[1]
    dh, dv = 0.0 * dhs[0], 0.0 * dys[0]
    for k in range(dhs.shape[0] - 1, -1, -1):
        dy[k] = dys[k] + _where(teacher[k][:, None], 0.0 * dv, dv)
        d = dh + dhs[k] + w_out_t @ dy[k].T
        r, z, n, hn = (g[k] for g in gates)
        dn = d * (1.0 - z) * (1.0 - n * n)
        dz = d * (hprev[k] - n) * z * (1.0 - z)
        dr = dn * hn * r * (1.0 - r)
        dgi[k, :hid], dgi[k, hid:2 * hid], dgi[k, 2 * hid:] = dr, dz, dn
        dgh[k, :hid], dgh[k, hid:2 * hid], dgh[k, 2 * hid:] = dr, dz, dn * r
        dh = _pass_back(reset[k], d * z + w_hh_t @ dgh[k], dseed_h)
        dv = _pass_back_visible(reset[k], dgi[k].T @ w_iv, dseed_v)
    dh0[:] = dh
    dv0[:] = dv


def lstm_forward(gc, target, teacher, reset, w_iv, w_hh, b_ih, b_hh, w_out_t, b_out, v0, h0, c0, seed_v, seed_h,
                 seed_c, ys, hs, cs, vprev, hprev, cprev, gates):
    hid = w_hh.shape[1]
    v, h, c = v0, h0, c0
    for k in range(target.shape[0]):
        vp = _previous_visible(reset[k], v, seed_v)
        hp, cp = _previous(reset[k], h, seed_h), _previous(reset[k], c, seed_c)
        a = _inputs(k, gc, w_iv, vp) + w_hh @ hp + (b_ih + b_hh)[:, None]
        i, f = _sigmoid(a[:hid]), _sigmoid(a[hid:2 * hid])
        g, o = _tanh(a[2 * hid:3 * hid]), _sigmoid(a[3 * hid:])
        c = f * cp + i * g
        tc = _tanh(c)
        h = o * tc
        y = h.T @ w_out_t + b_out
        hs[k], cs[k], vprev[k], hprev[k], cprev[k], ys[k] = h, c, vp, hp, cp, y
        for q, val in enumerate((i, f, g, o, tc)):
            gates[q][k] = val
        v = _where(teacher[k][:, None], target[k], y)


def lstm_backward(dys, dhs, dc_last, teacher, reset, w_iv, w_hh_t, w_out_t, cprev, gates, dy, dga, dv0, dh0, dc0,
                  dseed_v, dseed_h, dseed_c):
    hid = dhs.shape[1]
    dh, dv, dc = 0.0 * dhs[0], 0.0 * dys[0], dc_last
    for k in range(dhs.shape[0] - 1, -1, -1):
        dy[k] = dys[k] + _where(teacher[k][:, None], 0.0 * dv, dv)
        d = dh + dhs[k] + w_out_t @ dy[k].T
        i, f, g, o, tc = (q[k] for q in gates)
        dct = dc + d * o * (1.0 - tc * tc)
        dga[k, :hid] = dct * g * i * (1.0 - i)
        dga[k, hid:2 * hid] = dct * cprev[k] * f * (1.0 - f)
        dga[k, 2 * hid:3 * hid] = dct * i * (1.0 - g * g)
        dga[k, 3 * hid:] = d * tc * o * (1.0 - o)
        dh = _pass_back(reset[k], w_hh_t @ dga[k], dseed_h)
        dc = _pass_back(reset[k], dct * f, dseed_c)
        dv = _pass_back_visible(reset[k], dga[k].T @ w_iv, dseed_v)
    dh0[:] = dh
    dc0[:] = dc
    dv0[:] = dv


def _corrections(k, gc, corr0, corr_reset, reset_k, rows, pre):
    extra = _where(reset_k[None, :], corr_reset[:, None], corr0 if k == 0 else 0.0 * corr0)
    if gc.shape[0]:
        extra = extra + gc[k]
    pre[:rows] = pre[:rows] + extra
    return pre


def _correction_grads(k, dpre, reset_k, rows, dcorr0, dcorr_reset):
    dcorr_reset += (dpre[:rows] * reset_k[None, :]).sum(1)
    if k == 0:
        dcorr0[:] = _where(reset_k[None, :], 0.0 * dpre[:rows], dpre[:rows])


def gru_folded_forward(gc, reset, wcat, bcat, corr0, corr_reset, h0, seed_h, hs, hprev, gates):
    hid = wcat.shape[1]
    h = h0
    for k in range(reset.shape[0]):
        hp = _previous(reset[k], h, seed_h)
        pre = _corrections(k, gc, corr0, corr_reset, reset[k], 3 * hid, wcat @ hp) + bcat[:, None]
        r, z = _sigmoid(pre[:hid]), _sigmoid(pre[hid:2 * hid])
        hn = pre[3 * hid:]
        n = _tanh(pre[2 * hid:3 * hid] + r * hn)
        h = (1.0 - z) * n + z * hp
        hs[k], hprev[k] = h, hp
        for q, val in enumerate((r, z, n, hn)):
            gates[q][k] = val


def gru_folded_backward(dhs, reset, wcat_t, hprev, gates, dpre, dh0, dseed_h, dcorr0, dcorr_reset):
    hid = dhs.shape[1]
    dh = 0.0 * dhs[0]
    for k in range(dhs.shape[0] - 1, -1, -1):
        d = dh + dhs[k]
        r, z, n, hn = (g[k] for g in gates)
        dn = d * (1.0 - z) * (1.0 - n * n)
        dpre[k, :hid] = dn * hn * r * (1.0 - r)
        dpre[k, hid:2 * hid] = d * (hprev[k] - n) * z * (1.0 - z)
        dpre[k, 2 * hid:3 * hid], dpre[k, 3 * hid:] = dn, dn * r
        dh = _pass_back(reset[k], d * z + wcat_t @ dpre[k], dseed_h)
        _correction_grads(k, dpre[k], reset[k], 3 * hid, dcorr0, dcorr_reset)
    dh0[:] = dh


def lstm_folded_forward(gc, reset, wcat, bcat, corr0, corr_reset, h0, c0, seed_h, seed_c, hs, cs, hprev, cprev,
                        gates):
    hid = wcat.shape[1]
    h, c = h0, c0
    for k in range(reset.shape[0]):
        hp, cp = _previous(reset[k], h, seed_h), _previous(reset[k], c, seed_c)
        a = _corrections(k, gc, corr0, corr_reset, reset[k], 4 * hid, wcat @ hp) + bcat[:, None]
        i, f = _sigmoid(a[:hid]), _sigmoid(a[hid:2 * hid])
        g, o = _tanh(a[2 * hid:3 * hid]), _sigmoid(a[3 * hid:])
        c = f * cp + i * g
        tc = _tanh(c)
        h = o * tc
        hs[k], cs[k], hprev[k], cprev[k] = h, c, hp, cp
        for q, val in enumerate((i, f, g, o, tc)):
            gates[q][k] = val


def lstm_folded_backward(dhs, dc_last, reset, wcat_t, cprev, gates, dpre, dh0, dc0, dseed_h, dseed_c, dcorr0,
                         dcorr_reset):
    hid = dhs.shape[1]
    dh, dc = 0.0 * dhs[0], dc_last
    for k in range(dhs.shape[0] - 1, -1, -1):
        d = dh + dhs[k]
        i, f, g, o, tc = (q[k] for q in gates)
        dct = dc + d * o * (1.0 - tc * tc)
        dpre[k, :hid] = dct * g * i * (1.0 - i)
        dpre[k, hid:2 * hid] = dct * cprev[k] * f * (1.0 - f)
        dpre[k, 2 * hid:3 * hid] = dct * i * (1.0 - g * g)
        dpre[k, 3 * hid:] = d * tc * o * (1.0 - o)
        dh = _pass_back(reset[k], wcat_t @ dpre[k], dseed_h)
        dc = _pass_back(reset[k], dct * f, dseed_c)
        _correction_grads(k, dpre[k], reset[k], 4 * hid, dcorr0, dcorr_reset)
    dh0[:] = dh
    dc0[:] = dc
