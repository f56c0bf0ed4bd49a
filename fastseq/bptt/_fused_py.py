"""Plain array twins of the window-fused kernels in :mod:`fastseq.bptt._fused_nb`.

Same signatures and outputs, written step by step with whole-slot array operations.
They accept NumPy arrays (the reference the kernels are tested against) or torch
tensors on any device (the fused engine's path on CUDA, where they run as torch ops).
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["gru_forward", "gru_backward", "lstm_forward", "lstm_backward", "rnn_forward", "rnn_backward"]


def _sigmoid(a):
    return torch.sigmoid(a) if isinstance(a, torch.Tensor) else 0.5 + 0.5 * np.tanh(0.5 * a)


def _tanh(a):
    return torch.tanh(a) if isinstance(a, torch.Tensor) else np.tanh(a)


def _where(cond, a, b):
    return torch.where(cond, a, b) if isinstance(b, torch.Tensor) else np.where(cond, a, b)


def _previous(reset_k, h, seed):
    """Each slot's state entering the step: the seed where it resets, else its carried state."""
    return _where(reset_k[:, None], seed, h)


def _pass_back(reset_k, dprev, dseed):
    """Add the resetting slots' gradient into the seed; return what flows to the previous step."""
    dseed += (dprev * reset_k[:, None]).sum(0)
    return _where(reset_k[:, None], 0.0 * dprev, dprev)


def gru_forward(gi, w_hh_t, b_hh, h0, seed, reset, hs, hprev, gates):
    hid = gi.shape[2] // 3
    h = h0
    for k in range(gi.shape[0]):
        hp = _previous(reset[k], h, seed)
        gh = hp @ w_hh_t + b_hh
        x = gi[k]
        r = _sigmoid(x[:, :hid] + gh[:, :hid])
        z = _sigmoid(x[:, hid:2 * hid] + gh[:, hid:2 * hid])
        hn = gh[:, 2 * hid:]
        n = _tanh(x[:, 2 * hid:] + r * hn)
        h = (1.0 - z) * n + z * hp
        hs[k], hprev[k] = h, hp
        for q, v in enumerate((r, z, n, hn)):
            gates[q][k] = v


def gru_backward(dhs, w_hh, hprev, gates, reset, dgi, dgh, dh0, dseed):
    hid = dhs.shape[2]
    dh = 0.0 * dhs[0]
    for k in range(dhs.shape[0] - 1, -1, -1):
        d = dh + dhs[k]
        r, z, n, hn = (g[k] for g in gates)
        dn = d * (1.0 - z) * (1.0 - n * n)
        dz = d * (hprev[k] - n) * z * (1.0 - z)
        dr = dn * hn * r * (1.0 - r)
        dgi[k, :, :hid], dgi[k, :, hid:2 * hid], dgi[k, :, 2 * hid:] = dr, dz, dn
        dgh[k, :, :hid], dgh[k, :, hid:2 * hid], dgh[k, :, 2 * hid:] = dr, dz, dn * r
        dh = _pass_back(reset[k], d * z + dgh[k] @ w_hh, dseed)
    dh0[:] = dh


def lstm_forward(gi, w_hh_t, b_hh, h0, c0, seed_h, seed_c, reset, hs, cs, hprev, cprev, gates):
    hid = gi.shape[2] // 4
    h, c = h0, c0
    for k in range(gi.shape[0]):
        hp, cp = _previous(reset[k], h, seed_h), _previous(reset[k], c, seed_c)
        a = gi[k] + hp @ w_hh_t + b_hh
        i, f = _sigmoid(a[:, :hid]), _sigmoid(a[:, hid:2 * hid])
        g, o = _tanh(a[:, 2 * hid:3 * hid]), _sigmoid(a[:, 3 * hid:])
        c = f * cp + i * g
        tc = _tanh(c)
        h = o * tc
        hs[k], cs[k], hprev[k], cprev[k] = h, c, hp, cp
        for q, v in enumerate((i, f, g, o, tc)):
            gates[q][k] = v


def lstm_backward(dhs, dc_last, w_hh, cprev, gates, reset, dga, dh0, dc0, dseed_h, dseed_c):
    hid = dhs.shape[2]
    dh, dc = 0.0 * dhs[0], dc_last
    for k in range(dhs.shape[0] - 1, -1, -1):
        d = dh + dhs[k]
        i, f, g, o, tc = (g[k] for g in gates)
        dct = dc + d * o * (1.0 - tc * tc)
        dga[k, :, :hid] = dct * g * i * (1.0 - i)
        dga[k, :, hid:2 * hid] = dct * cprev[k] * f * (1.0 - f)
        dga[k, :, 2 * hid:3 * hid] = dct * i * (1.0 - g * g)
        dga[k, :, 3 * hid:] = d * tc * o * (1.0 - o)
        dh = _pass_back(reset[k], dga[k] @ w_hh, dseed_h)
        dc = _pass_back(reset[k], dct * f, dseed_c)
    dh0[:] = dh
    dc0[:] = dc


def rnn_forward(gi, w_hh_t, b_hh, h0, seed, reset, relu, hs, hprev):
    h = h0
    for k in range(gi.shape[0]):
        hp = _previous(reset[k], h, seed)
        a = gi[k] + hp @ w_hh_t + b_hh
        h = a * (a > 0) if relu else _tanh(a)
        hs[k], hprev[k] = h, hp


def rnn_backward(dhs, w_hh, hs, reset, relu, dga, dh0, dseed):
    dh = 0.0 * dhs[0]
    for k in range(dhs.shape[0] - 1, -1, -1):
        d = dh + dhs[k]
        dga[k] = d * (hs[k] > 0) if relu else d * (1.0 - hs[k] * hs[k])
        dh = _pass_back(reset[k], dga[k] @ w_hh, dseed)
    dh0[:] = dh
