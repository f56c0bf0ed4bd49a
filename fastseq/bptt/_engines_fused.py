"""The ``"fused"`` sequence-mode engine: one autograd node per layer and window.

PyTorch's CPU recurrent layers record a graph of small operations per step and
accumulate the hidden weights' gradient step by step. Here each layer is one
:class:`torch.autograd.Function` over the whole ``K x W`` window:

- the input projections of all ``K * W`` rows are one matrix product (autograd's
  ``F.linear``, whose backward gives the input-weight and input gradients, again as
  whole-window products); LSTM and RNN leave the input bias to the step kernels, which
  add it to the hidden bias once (the two meet only in their sum), so one sum over the
  window's gate gradients gives both bias gradients;
- the steps run in compiled calls (:mod:`fastseq.bptt._fused_nb`): the window's slots
  in fixed blocks of 32, each block through all K steps with one BLAS product per
  step and one fused loop over the gates, the reset folded in as the choice of each
  slot's previous state (seed or carried). Blocks are independent, so they run on
  the threads ``torch.get_num_threads()`` allows with no barrier per step
  (:mod:`fastseq.bptt._slot_threads`); what the blocks compute does not depend on the
  count (the input projection they start from does where PyTorch computes it, below);
- the backward runs through time the same way, and the hidden weights' gradient is
  one product over all ``K * W`` rows (PyTorch's, on its threads: its rounding may
  depend on the thread count, as any PyTorch product's does). So may the input
  projection's and the input gradient's, where MKL computes them rather than fastseq's
  kernel: on an AVX2 AMD processor MKL rounded a 621-row projection differently on 3 or
  more threads than on 1 or 2 (computing it in fixed units of 256 or 512 rows on one
  thread each, the same bits on any count, took 1.14-1.5x the time on two threads;
  measured, not adopted).

On CUDA the same steps run as torch ops (:mod:`fastseq.bptt._fused_py`); the packed
engine (one cuDNN call per window) stays the CUDA default.

The per-step products call MKL (from PyTorch's wheel) pinned to one thread per
calling thread, or scipy's BLAS where MKL is not there (:mod:`fastseq.bptt._blas_nb`);
scipy's pool is process-wide, so each call then runs it on one thread and restores
its setting afterwards.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor

from fastseq._util.blas import serial_blas
from fastseq.bptt import _fused_py, _products

__all__ = ["run_fused", "fused_unsupported"]

_GATES = {"GRU": 3, "LSTM": 4, "RNN_TANH": 1, "RNN_RELU": 1}


def fused_unsupported(rnn) -> str | None:
    """Why ``rnn`` cannot run on the fused engine, or None if it can."""
    if getattr(rnn, "proj_size", 0):
        return "nn.LSTM with proj_size > 0 (the projected state is not fused)"
    return None


@contextmanager
def _blas_threads():
    """Run scipy's BLAS on one thread, then restore its setting (when the kernels use it).

    The kernels' products are per step (``W x H`` by ``H x 3H``): too small to gain from
    threads, and a second BLAS pool beside PyTorch's OpenMP pool fights it for the cores.
    With BLAS at PyTorch's 2 threads on 2 cores the fused engine ran at 0.4x its one-thread
    speed (bench/bptt/compare_batching.py --threads 2); on one thread it keeps its speed.
    """
    from fastseq.bptt._blas_nb import gemm

    if "scipy" not in gemm().source:  # fastseq's kernel, or MKL pinned per thread by the runner
        yield
        return
    with serial_blas():
        yield


def _kernels(device: torch.device):
    if device.type == "cpu":
        from fastseq.bptt import _fused_nb

        return _fused_nb, lambda t: t.detach().numpy()
    return _fused_py, lambda t: t


class _FusedLayer(torch.autograd.Function):
    """One recurrent layer over one window; see the module docstring."""

    @staticmethod
    def forward(ctx, mode: str, reset: Tensor, gi: Tensor, w_hh: Tensor, b_hh: Tensor | None,
                h0: Tensor, c0: Tensor | None, seed_h: Tensor, seed_c: Tensor | None, b_ih: Tensor | None = None):
        kernels, arr = _kernels(gi.device)
        k_steps, width = gi.shape[:2]
        hid = w_hh.shape[1]
        new = lambda *shape: gi.new_empty(shape)  # noqa: E731
        w_hh = w_hh.detach().contiguous()
        b = w_hh.new_zeros(w_hh.shape[0]) if b_hh is None else b_hh.detach().contiguous()
        if b_ih is not None:  # LSTM, RNN: both biases meet only in the sum, so the kernel adds them once
            b = b + b_ih.detach()
        args = [arr(gi.detach().contiguous()), arr(w_hh.t().contiguous()), arr(b),
                arr(h0.detach().contiguous())]
        hs, hprev = new(k_steps, width, hid), new(k_steps, width, hid)
        ctx.mode, ctx.has_bias, ctx.hid = mode, b_hh is not None, hid
        ctx.has_b_ih = b_ih is not None
        with _blas_threads():
            if mode == "GRU":
                gates = new(4, k_steps, width, hid)
                kernels.gru_forward(*args, arr(seed_h.detach().reshape(hid).contiguous()), arr(reset),
                                    arr(hs), arr(hprev), tuple(arr(g) for g in gates))
                ctx.save_for_backward(reset, w_hh, hprev, gates)
                return hs
            if mode == "LSTM":
                cs, cprev, gates = new(k_steps, width, hid), new(k_steps, width, hid), new(5, k_steps, width, hid)
                kernels.lstm_forward(*args, arr(c0.detach().contiguous()), arr(seed_h.detach().reshape(hid).contiguous()),
                                     arr(seed_c.detach().reshape(hid).contiguous()), arr(reset),
                                     arr(hs), arr(cs), arr(hprev), arr(cprev), tuple(arr(g) for g in gates))
                ctx.save_for_backward(reset, w_hh, hprev, cprev, gates)
                return hs, cs[-1]
            relu = mode == "RNN_RELU"
            kernels.rnn_forward(*args, arr(seed_h.detach().reshape(hid).contiguous()), arr(reset), relu, arr(hs), arr(hprev))
            ctx.save_for_backward(reset, w_hh, hprev, hs)
            return hs

    @staticmethod
    def backward(ctx, dhs: Tensor, dc_last: Tensor | None = None):
        if torch.is_grad_enabled():
            raise RuntimeError("run_window(engine='fused') does not support double backward "
                               "(backward with create_graph=True); use engine='steps'.")
        kernels, arr = _kernels(dhs.device)
        mode, hid = ctx.mode, ctx.hid
        dhs = dhs.contiguous()
        k_steps, width = dhs.shape[:2]
        dh0, dseed_h = dhs.new_empty(width, hid), dhs.new_zeros(hid)
        dc0 = dseed_c = d_bias = None
        with _blas_threads():
            if mode == "GRU":
                reset, w_hh, hprev, gates = ctx.saved_tensors
                dgi, dgh = dhs.new_empty(k_steps, width, 3 * hid), dhs.new_empty(k_steps, width, 3 * hid)
                kernels.gru_backward(arr(dhs), arr(w_hh), arr(hprev), tuple(arr(g) for g in gates), arr(reset),
                                     arr(dgi), arr(dgh), arr(dh0), arr(dseed_h))
            elif mode == "LSTM":
                reset, w_hh, hprev, cprev, gates = ctx.saved_tensors
                dgi = dgh = dhs.new_empty(k_steps, width, 4 * hid)
                dc0, dseed_c = dhs.new_empty(width, hid), dhs.new_zeros(hid)
                kernels.lstm_backward(arr(dhs), arr(dc_last.contiguous()), arr(w_hh), arr(cprev), tuple(arr(g) for g in gates),
                                      arr(reset), arr(dgi), arr(dh0), arr(dc0), arr(dseed_h), arr(dseed_c))
            else:
                reset, w_hh, hprev, hs = ctx.saved_tensors
                dgi = dgh = dhs.new_empty(k_steps, width, hid)
                kernels.rnn_backward(arr(dhs), arr(w_hh), arr(hs), arr(reset), mode == "RNN_RELU",
                                     arr(dgi), arr(dh0), arr(dseed_h))
        flat = dgh.view(k_steps * width, -1)
        need = ctx.needs_input_grad
        d_w = None
        if need[3]:
            rows = hprev.view(k_steps * width, hid)
            d_w = _products.matmul(flat.t(), rows) if _products.usable(flat) else flat.t().mm(rows)
        if ctx.has_bias and need[4] or ctx.has_b_ih and need[9]:
            d_bias = flat.sum(0)  # one sum for both biases where the input bias was folded in
        d_b = d_bias if ctx.has_bias and need[4] else None
        d_seed_h = dseed_h.view(1, hid) if need[7] else None
        d_seed_c = dseed_c.view(1, hid) if dseed_c is not None and need[8] else None
        d_b_ih = d_bias if ctx.has_b_ih and need[9] else None
        return None, None, dgi, d_w, d_b, dh0, dc0, d_seed_h, d_seed_c, d_b_ih


def run_fused(rnn, x: Tensor, reset: Tensor, valid: Tensor | None, carried, seeds, mode: str):
    """Run ``rnn`` over window ``x`` (``K x W x F``), one fused node per layer.

    ``carried`` and ``seeds`` are tuples of ``L x W x H`` and ``L x 1 x H`` tensors (LSTM:
    ``(h, c)``). Returns ``(outputs K x W x H, final state parts)`` like the steps engine.
    """
    lstm = mode == "LSTM"
    k_steps, width = x.shape[:2]
    reset = reset.contiguous()
    finals_h, finals_c = [], []
    seq = x
    for layer in range(rnn.num_layers):
        sfx = f"_l{layer}"
        w_ih, w_hh = getattr(rnn, "weight_ih" + sfx), getattr(rnn, "weight_hh" + sfx)
        b_ih, b_hh = (getattr(rnn, "bias_ih" + sfx), getattr(rnn, "bias_hh" + sfx)) if rnn.bias else (None, None)
        if layer and rnn.dropout and rnn.training:
            seq = F.dropout(seq, rnn.dropout, True)
        # LSTM and RNN add the input bias inside the layer (it meets the hidden bias only in
        # their sum): the projection skips a pass over its output and the backward a sum
        fold = mode != "GRU" and b_ih is not None
        gi = _products.linear(seq, w_ih, None if fold else b_ih)
        c0, s_c = (carried[1][layer], seeds[1][layer]) if lstm else (None, None)
        out = _FusedLayer.apply(mode, reset, gi, w_hh, b_hh, carried[0][layer], c0, seeds[0][layer], s_c,
                                b_ih if fold else None)
        if lstm:
            seq, c_last = out
            finals_c.append(c_last)
        else:
            seq = out
        finals_h.append(seq[-1])
    final = (torch.stack(finals_h),) + ((torch.stack(finals_c),) if lstm else ())
    if valid is not None:
        seq = seq * valid.unsqueeze(-1).to(seq.dtype)
    return seq, final
