// Row-major single-precision matrix product for small, per-step shapes, on one thread.
//
// The fused recurrent kernels multiply a block of rows (e.g. 32 x 128) by the hidden weights
// (128 x 512) at every step of a window. General BLAS libraries tune for large products and
// may not use the widest vector unit they find (Intel's MKL takes an AVX2 path on AMD parts);
// this kernel does one thing: C = A B with every operand in place (no packing: the shapes fit
// in L1/L2), 8 x 32 tiles of C held in sixteen AVX-512 registers. The sum over k runs in
// order with one fused multiply-add per term, so a product's result does not depend on
// anything but its operands.
#pragma once

#include <cstdint>

namespace fastseq {

// True when this processor runs the AVX-512 kernel (checked at run time; built without
// -march so that the library runs on any x86-64).
bool gemm_available();

// Whether the processor is Intel's: MKL then takes its own AVX-512 path (on others, AVX2).
bool processor_is_intel();

// C[m x n] = A[m x k] @ B[k x n], row-major with row strides lda, ldb, ldc (in elements).
// Requires gemm_available(). m, n or k may be 0 (k == 0 writes zeros).
void sgemm_rows(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
                int64_t ldb, float* c, int64_t ldc);

// The same with A's element (i, p) at a[i * ars + p * acs]: a transposed A (acs = lda,
// ars = 1) is read in place.
void sgemm_strided(int64_t m, int64_t n, int64_t k, const float* a, int64_t ars, int64_t acs,
                   const float* b, int64_t ldb, float* c, int64_t ldc);

}  // namespace fastseq

// The same product behind the Fortran ?gemm calling convention (every argument by reference,
// column-major), for callers that take a ?gemm address. Only transa = transb = 'N', alpha = 1
// and beta = 0 are supported (anything else aborts): the fused kernels pass nothing else.
extern "C" void fastseq_sgemm_fortran(const char* transa, const char* transb, const int* m,
                                      const int* n, const int* k, const float* alpha,
                                      const float* a, const int* lda, const float* b,
                                      const int* ldb, const float* beta, float* c, const int* ldc);
