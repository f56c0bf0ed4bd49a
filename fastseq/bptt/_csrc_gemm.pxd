# Declarations of csrc/gemm.hpp; keep side by side with it.
from libc.stdint cimport int64_t


cdef extern from "gemm.hpp" namespace "fastseq" nogil:
    bint gemm_available()
    bint processor_is_intel()
    void sgemm_rows(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
                    int64_t ldb, float* c, int64_t ldc)
    void sgemm_strided(int64_t m, int64_t n, int64_t k, const float* a, int64_t ars, int64_t acs,
                       const float* b, int64_t ldb, float* c, int64_t ldc)


cdef extern from "gemm.hpp" nogil:
    void fastseq_sgemm_fortran(const char* transa, const char* transb, const int* m, const int* n,
                               const int* k, const float* alpha, const float* a, const int* lda,
                               const float* b, const int* ldb, const float* beta, float* c,
                               const int* ldc)
