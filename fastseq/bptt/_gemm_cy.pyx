"""Thin wrapper of csrc/gemm.hpp: the products of the fused engine on CPU (twin: ``a @ b``)."""
from libc.stdint cimport int64_t, uintptr_t

from fastseq.bptt._csrc_gemm cimport fastseq_sgemm_fortran, gemm_available, processor_is_intel, sgemm_strided


def available() -> bool:
    """Whether this processor runs the kernel (AVX-512)."""
    return gemm_available()


def intel() -> bool:
    """Whether the processor is Intel's, where MKL runs its own AVX-512 path."""
    return processor_is_intel()


def fortran_address() -> int:
    """Address of the kernel behind the Fortran ``sgemm`` convention ('N', 'N', alpha 1, beta 0)."""
    return <uintptr_t>&fastseq_sgemm_fortran


def matmul(const float[:, :] a, const float[:, :] b, float[:, :] out) -> None:
    """``out = a @ b`` in float32; ``a`` may have any strides (a transposed view is read in
    place), ``b`` and ``out`` any row stride with unit column stride (C-contiguous arrays or
    column ranges of them). Releases the GIL."""
    cdef int64_t m = a.shape[0], k = a.shape[1], n = b.shape[1]
    if b.shape[0] != k or out.shape[0] != m or out.shape[1] != n:
        raise ValueError(f"Expected a (m x k), b (k x n), out (m x n), got ({a.shape[0]}, {a.shape[1]}), "
                         f"({b.shape[0]}, {b.shape[1]}), ({out.shape[0]}, {out.shape[1]}).")
    if (n > 1 and (b.strides[1] != sizeof(float) or out.strides[1] != sizeof(float))) or \
            b.strides[0] % sizeof(float) or out.strides[0] % sizeof(float):
        raise ValueError(f"Expected b and out with unit column strides, got strides ({b.strides[0]}, {b.strides[1]}) "
                         f"and ({out.strides[0]}, {out.strides[1]}) (bytes).")
    if not gemm_available():
        raise RuntimeError("Expected a processor with AVX-512 for the fastseq gemm kernel, this one has none.")
    if m == 0 or n == 0:
        return
    cdef int64_t ars = a.strides[0] // sizeof(float), acs = a.strides[1] // sizeof(float)
    cdef int64_t ldb = b.strides[0] // sizeof(float), ldc = out.strides[0] // sizeof(float)
    with nogil:
        sgemm_strided(m, n, k, &a[0, 0] if k else NULL, ars, acs, &b[0, 0] if k else NULL, ldb, &out[0, 0], ldc)
