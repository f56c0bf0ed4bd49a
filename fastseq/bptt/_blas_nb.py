"""A matrix product callable from Numba kernels on row blocks, on one thread.

The fused engine's kernels run a window's slots in fixed blocks of rows, possibly
several blocks at once on several threads. Each step multiplies one block of rows
(``rows x H``, a contiguous slice of a ``W x H`` array) by the hidden weights. Numba's
``np.dot`` cannot take such a slice without a copy and calls scipy's OpenBLAS, whose
thread pool is process-wide. Here the kernels call a Fortran ``?gemm`` by address:

- float32 on a processor with AVX-512 that is not Intel's: fastseq's own kernel
  (``csrc/gemm.cpp``), made for these shapes; on AMD's it ran 2.4-2.7x MKL on them
  (``bench/bptt/compare_gemm.py``), as MKL takes an AVX2 path there. On Intel's MKL runs
  AVX-512 code and is used (:func:`fastseq.bptt._products.kernel_preferred`);
- PyTorch's CPU wheel for x86-64 links Intel MKL statically and exports ``sgemm_``,
  ``dgemm_`` and ``MKL_Set_Num_Threads_Local``; when they are there, MKL is used and
  each calling thread pins it to one thread for itself alone (PyTorch's own use of MKL
  on other threads keeps its setting).
- Otherwise scipy's BLAS (``scipy.linalg.cython_blas``) is used, with its pool pinned
  to one thread by the caller (see :mod:`fastseq.bptt._engines_fused`).

``FASTSEQ_GEMM=mkl`` or ``FASTSEQ_GEMM=scipy`` forces one of the libraries for float32 too,
``FASTSEQ_GEMM=fastseq`` the kernel (tests and benchmarks). Both take the
Fortran (column-major, all-by-reference) arguments; a row-major product
``C = A @ B`` is computed as ``C^T = B^T A^T``. The plain twin is ``A @ B``.
"""
from __future__ import annotations

import ctypes
import os

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

__all__ = ["Gemm", "gemm", "matmul_rows"]


@intrinsic
def _call_gemm(typingctx, fn, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
    """Call the Fortran ``?gemm`` at address ``fn`` with 13 pointer arguments given as integers."""
    args = (fn, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
    if not all(isinstance(t, types.Integer) for t in args):
        return None

    def codegen(context, builder, signature, llargs):
        ptr = ir.IntType(8).as_pointer()
        fnty = ir.FunctionType(ir.VoidType(), [ptr] * 13)
        callee = builder.inttoptr(llargs[0], fnty.as_pointer())
        builder.call(callee, [builder.inttoptr(v, ptr) for v in llargs[1:]])
        return context.get_dummy_value()

    return types.void(*args), codegen


@njit(inline="always")
def matmul_rows(fn, scratch, scal, a, lda, b, ldb, c, ldc, m, n, k):
    """``C[m x n] = A[m x k] @ B[k x n]``, row-major, ``a``/``b``/``c`` the addresses of the
    first elements and ``ld*`` the row strides in elements. ``scratch``: an int32 array of 7
    (dimensions and the 'N' flag); ``scal``: ``[1, 0]`` in the data's dtype."""
    if m == 0:
        return
    scratch[0] = n
    scratch[1] = m
    scratch[2] = k
    scratch[3] = ldb
    scratch[4] = lda
    scratch[5] = ldc
    scratch[6] = 78  # 'N' (little-endian: the first byte of the int32)
    d = scratch.ctypes.data
    s = scal.ctypes.data
    _call_gemm(fn, d + 24, d + 24, d, d + 4, d + 8, s, b, d + 12, a, d + 16, s + scal.itemsize, c, d + 20)


class Gemm:
    """The ``?gemm`` in use: addresses for float32 and float64, and how to pin its threads."""

    def __init__(self) -> None:
        self.source, self.sgemm, self.dgemm, self._local = _find()
        from fastseq.bptt import _gemm_cy, _products

        if _products.kernel_preferred():
            self.source, self.sgemm = f"fastseq avx512 (float64: {self.source})", _gemm_cy.fortran_address()

    def address(self, dtype) -> int:
        return self.sgemm if np.dtype(dtype) == np.float32 else self.dgemm

    def one_thread_here(self) -> int | None:
        """Pin this thread's MKL to one thread; return the setting to restore (None: not MKL)."""
        return None if self._local is None else int(self._local(1))  # 0: none was set

    def restore_here(self, saved: int | None) -> None:
        if saved is not None and self._local is not None and saved != 1:
            self._local(saved)


def _capsule_address(capsule) -> int:
    get = ctypes.pythonapi.PyCapsule_GetPointer
    get.restype, get.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    name = ctypes.pythonapi.PyCapsule_GetName
    name.restype, name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    return int(get(capsule, name(capsule)))


def _find():
    if os.environ.get("FASTSEQ_GEMM", "").lower() != "scipy":
        try:
            import torch

            lib = ctypes.CDLL(os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so"))
            s, d = (ctypes.cast(getattr(lib, name), ctypes.c_void_p).value for name in ("sgemm_", "dgemm_"))
            local = lib.MKL_Set_Num_Threads_Local
            local.restype, local.argtypes = ctypes.c_int, [ctypes.c_int]
            return "mkl (torch)", int(s), int(d), local
        except (OSError, AttributeError):
            pass
    from scipy.linalg import cython_blas

    capi = cython_blas.__pyx_capi__
    return "scipy", _capsule_address(capi["sgemm"]), _capsule_address(capi["dgemm"]), None


_GEMM: Gemm | None = None


def gemm() -> Gemm:
    """The process's :class:`Gemm`, found once."""
    global _GEMM
    if _GEMM is None:
        _GEMM = Gemm()
    return _GEMM
