"""Plain array twins of the fused feedback kernels in :mod:`fastseq.bptt._feedback_nb`.

Same signatures and outputs, written step by step with whole-slot array operations.
They accept NumPy arrays (the reference the kernels are tested against) or torch
tensors on any device (the fused feedback path on CUDA, where they run as torch ops).
"""
from __future__ import annotations

from fastseq.bptt._fused_py import _pass_back, _previous, _sigmoid, _tanh, _where

__all__ = ["gru_forward", "gru_backward", "lstm_forward", "lstm_backward"]


def _fed(teacher_k, target_k, y):
    """The next visible input: the target where teacher-forced, else the output."""
    return _where(teacher_k[:, None], target_k, y)


def gru_forward(gc, target, teacher, reset, w_iv_t, w_hh_t, b_hh, w_out_t, b_out, v0, h0, seed_v, seed_h,
                ys, hs, vprev, hprev, gates):
    hid = gc.shape[2] // 3
    v, h = v0, h0
    for k in range(gc.shape[0]):
        vp, hp = _previous(reset[k], v, seed_v), _previous(reset[k], h, seed_h)
        x = gc[k] + vp @ w_iv_t
        gh = hp @ w_hh_t + b_hh
        r = _sigmoid(x[:, :hid] + gh[:, :hid])
        z = _sigmoid(x[:, hid:2 * hid] + gh[:, hid:2 * hid])
        hn = gh[:, 2 * hid:]
        n = _tanh(x[:, 2 * hid:] + r * hn)
        h = (1.0 - z) * n + z * hp
        y = h @ w_out_t + b_out
        hs[k], hprev[k], vprev[k], ys[k] = h, hp, vp, y
        for q, val in enumerate((r, z, n, hn)):
            gates[q][k] = val
        v = _fed(teacher[k], target[k], y)


def gru_backward(dys, dhs, teacher, reset, w_iv, w_hh, w_out, hprev, gates, dy, dgi, dgh, dv0, dh0,
                 dseed_v, dseed_h):
    hid = dhs.shape[2]
    dh, dv = 0.0 * dhs[0], 0.0 * dys[0]
    for k in range(dhs.shape[0] - 1, -1, -1):
        dy[k] = dys[k] + _where(teacher[k][:, None], 0.0 * dv, dv)
        d = dh + dhs[k] + dy[k] @ w_out
        r, z, n, hn = (g[k] for g in gates)
        dn = d * (1.0 - z) * (1.0 - n * n)
        dz = d * (hprev[k] - n) * z * (1.0 - z)
        dr = dn * hn * r * (1.0 - r)
        dgi[k, :, :hid], dgi[k, :, hid:2 * hid], dgi[k, :, 2 * hid:] = dr, dz, dn
        dgh[k, :, :hid], dgh[k, :, hid:2 * hid], dgh[k, :, 2 * hid:] = dr, dz, dn * r
        dh = _pass_back(reset[k], d * z + dgh[k] @ w_hh, dseed_h)
        dv = _pass_back(reset[k], dgi[k] @ w_iv, dseed_v)
    dh0[:] = dh
    dv0[:] = dv


def lstm_forward(gc, target, teacher, reset, w_iv_t, w_hh_t, b_hh, w_out_t, b_out, v0, h0, c0, seed_v, seed_h,
                 seed_c, ys, hs, cs, vprev, hprev, cprev, gates):
    hid = gc.shape[2] // 4
    v, h, c = v0, h0, c0
    for k in range(gc.shape[0]):
        vp, hp, cp = (_previous(reset[k], s, seed) for s, seed in ((v, seed_v), (h, seed_h), (c, seed_c)))
        a = gc[k] + vp @ w_iv_t + hp @ w_hh_t + b_hh
        i, f = _sigmoid(a[:, :hid]), _sigmoid(a[:, hid:2 * hid])
        g, o = _tanh(a[:, 2 * hid:3 * hid]), _sigmoid(a[:, 3 * hid:])
        c = f * cp + i * g
        tc = _tanh(c)
        h = o * tc
        y = h @ w_out_t + b_out
        hs[k], cs[k], vprev[k], hprev[k], cprev[k], ys[k] = h, c, vp, hp, cp, y
        for q, val in enumerate((i, f, g, o, tc)):
            gates[q][k] = val
        v = _fed(teacher[k], target[k], y)


def lstm_backward(dys, dhs, dc_last, teacher, reset, w_iv, w_hh, w_out, cprev, gates, dy, dga, dv0, dh0, dc0,
                  dseed_v, dseed_h, dseed_c):
    hid = dhs.shape[2]
    dh, dv, dc = 0.0 * dhs[0], 0.0 * dys[0], dc_last
    for k in range(dhs.shape[0] - 1, -1, -1):
        dy[k] = dys[k] + _where(teacher[k][:, None], 0.0 * dv, dv)
        d = dh + dhs[k] + dy[k] @ w_out
        i, f, g, o, tc = (q[k] for q in gates)
        dct = dc + d * o * (1.0 - tc * tc)
        dga[k, :, :hid] = dct * g * i * (1.0 - i)
        dga[k, :, hid:2 * hid] = dct * cprev[k] * f * (1.0 - f)
        dga[k, :, 2 * hid:3 * hid] = dct * i * (1.0 - g * g)
        dga[k, :, 3 * hid:] = d * tc * o * (1.0 - o)
        dh = _pass_back(reset[k], dga[k] @ w_hh, dseed_h)
        dc = _pass_back(reset[k], dct * f, dseed_c)
        dv = _pass_back(reset[k], dga[k] @ w_iv, dseed_v)
    dh0[:] = dh
    dc0[:] = dc
    dv0[:] = dv
