"""The fused engine's whole-window matrix products on CPU, float32: fastseq's kernel, all threads.

The input projection of a window (``K * W`` rows times the input weights), its gradients and
the hidden weights' gradient (a sum over the window's ``K * W`` rows) are the larger half
of a recurrent layer's arithmetic. PyTorch computes them with MKL, which on AMD's processors
takes an AVX2 path; fastseq's AVX-512 kernel (``csrc/gemm.cpp``) ran them 1.3-2.6x faster
there (``bench/bptt/compare_gemm.py``). On Intel's, MKL's own AVX-512 code is faster and
PyTorch's operations run them (:func:`kernel_preferred`). Here they are split by rows of the result
across the threads PyTorch allows (:mod:`fastseq.bptt._slot_threads`), and a result of few
rows by columns too (in fixed units of whole column panels): each element of the result is
one sum in one order, so the result does not depend on the thread count.

:func:`usable` says when the kernel applies (a CPU float32 tensor on an AVX-512 processor);
otherwise callers use PyTorch's own operations. The twin is ``a @ b``.
"""
from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import Tensor

from fastseq.bptt._slot_threads import run_split

__all__ = ["kernel_in_use", "kernel_preferred", "usable", "matmul", "linear"]

_ROWS = 64  # rows of the result per unit of work split across threads (a multiple of the kernel's 8)
_COLS = 128  # columns per unit where the result has only one unit of rows (a multiple of the kernel's 32)
_AVAILABLE: bool | None = None


def kernel_preferred() -> bool:
    """Whether fastseq's float32 kernel runs the fused engine's products (else MKL or scipy's BLAS).

    Where the processor has AVX-512 and is not Intel's: MKL takes an AVX2 path there, and the
    kernel ran 1.3-2.6x faster. On Intel's AVX-512 processors MKL runs its own AVX-512 code and
    won on these shapes (0.59-0.96x for the kernel, ``bench/bptt/compare_gemm.py``), and
    sequence mode ran 2-28% faster on it (GRU, LSTM and RNN, H=32 to 512, 1 and 2 threads).
    ``FASTSEQ_GEMM=mkl`` or ``scipy`` forces a library, ``FASTSEQ_GEMM=fastseq`` the kernel
    (where the processor has AVX-512)."""
    from fastseq.bptt import _gemm_cy

    setting = os.environ.get("FASTSEQ_GEMM", "").lower()
    if setting in ("mkl", "scipy") or not _gemm_cy.available():
        return False
    return setting == "fastseq" or not _gemm_cy.intel()


def kernel_in_use() -> bool:
    """Whether fastseq's kernel runs the float32 products in this process (:func:`kernel_preferred`,
    decided once)."""
    global _AVAILABLE
    if _AVAILABLE is None:
        _AVAILABLE = kernel_preferred()
    return _AVAILABLE


def usable(t: Tensor) -> bool:
    """Whether :func:`matmul` runs for tensors like ``t``."""
    return t.device.type == "cpu" and t.dtype == torch.float32 and kernel_in_use()


def _flip(m: int, n: int, k: int, stride: int) -> bool:
    """Whether ``A^T B`` (``A^T``: ``m x k``, read along ``stride``) runs faster as ``(B^T A)^T``.

    Measured here (bench/bptt/compare_gemm.py shapes, CPU time): a weight gradient with few columns
    (``x^T g`` for F = 32 inputs, 2048 x 512 by 2048 x 32: 2.8x), and one whose rows lie a
    multiple of 1 KiB apart with at most 128 columns (an LSTM's ``g^T h`` at H=128, 512 x 2048
    by 2048 x 128: 1.5x); not a GRU's (384 rows, equal) nor H=512's (2048 x 512: 0.85x)."""
    if n < 64 <= m and k <= 8192:
        return True
    return stride % 256 == 0 and n <= 128 < m


def matmul(a: Tensor, b: Tensor) -> Tensor:
    """``a @ b`` for 2-D float32 CPU tensors; ``a`` may be a transposed view (read in place)."""
    from fastseq.bptt._gemm_cy import matmul as kernel

    if a.stride(0) == 1 and a.shape[1] > 1 and _flip(a.shape[0], b.shape[1], a.shape[1], a.stride(1)):
        return matmul(b.t(), a.t()).t().contiguous()
    b = b.contiguous()
    out = a.new_empty(a.shape[0], b.shape[1])
    if a.stride(0) != 1 and a.stride(1) != 1:
        a = a.contiguous()
    an, bn, on = a.detach().numpy(), b.detach().numpy(), out.numpy()
    rows, cols = a.shape[0], b.shape[1]
    row_units = -(-rows // _ROWS)
    # a product with one unit of rows (a weight gradient with F = 32 rows, after the flip above)
    # is split by columns too, so it does not run on one thread while the others wait
    col_width = _COLS if row_units == 1 else cols
    col_units = -(-cols // col_width)

    def task(j0: int, j1: int) -> None:
        for unit in range(j0, j1):
            r, c = divmod(unit, col_units)
            lo, hi = r * _ROWS, min((r + 1) * _ROWS, rows)
            c0, c1 = c * col_width, min((c + 1) * col_width, cols)
            kernel(an[lo:hi], bn[:, c0:c1], on[lo:hi, c0:c1])

    run_split(task, row_units * col_units)
    return out


class _Linear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        flat = x.reshape(-1, x.shape[-1])
        out = matmul(flat, weight.t())
        if bias is not None:
            out += bias
        ctx.save_for_backward(flat, weight)
        ctx.has_bias, ctx.shape = bias is not None, x.shape
        return out.view(*x.shape[:-1], weight.shape[0])

    @staticmethod
    def backward(ctx, grad: Tensor):
        if torch.is_grad_enabled():
            raise RuntimeError("the fused engine's input projection does not support double backward "
                               "(backward with create_graph=True); use engine='steps'.")
        flat, weight = ctx.saved_tensors
        g = grad.reshape(-1, weight.shape[0]).contiguous()
        need = ctx.needs_input_grad
        dx = matmul(g, weight).view(ctx.shape) if need[0] else None
        dw = matmul(g.t(), flat) if need[1] else None
        db = g.sum(0) if ctx.has_bias and need[2] else None
        return dx, dw, db


def linear(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """``F.linear(x, weight, bias)``, through the kernel where :func:`usable`."""
    if not (usable(x) and usable(weight)) or (bias is not None and not usable(bias)):
        return F.linear(x, weight, bias)
    return _Linear.apply(x, weight, bias)
