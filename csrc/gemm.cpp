#include "gemm.hpp"

#include <cstdlib>
#include <vector>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define FASTSEQ_X86 1
#else
#define FASTSEQ_X86 0
#endif

namespace fastseq {

#if FASTSEQ_X86

namespace {

constexpr int64_t kRows = 8;    // rows of a C tile
constexpr int64_t kCols = 32;   // columns of a C tile: two 16-float registers
constexpr int64_t kDepth = 256;  // terms of the sum per pass: a 256 x 32 panel of B is 32 KiB

// One tile of up to kRows x kCols: acc[r][h] holds C[r, 16 h : 16 h + 16]; cols < 32 masks the
// loads and stores at the right edge. With add, the tile's sum continues C's (a later pass
// over k); otherwise it starts from zero.
template <int R>
__attribute__((target("avx512f"))) void tile(int64_t k, const float* a, int64_t ars, int64_t acs,
                                             const float* b, int64_t ldb, float* c, int64_t ldc,
                                             int64_t cols, bool add) {
  const __mmask16 m0 = cols >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << cols) - 1u);
  const __mmask16 m1 =
      cols >= 32 ? __mmask16(0xFFFF) : (cols <= 16 ? __mmask16(0) : __mmask16((1u << (cols - 16)) - 1u));
  __m512 acc[R][2];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    acc[r][0] = add ? _mm512_maskz_loadu_ps(m0, c + r * ldc) : _mm512_setzero_ps();
    acc[r][1] = add ? _mm512_maskz_loadu_ps(m1, c + r * ldc + 16) : _mm512_setzero_ps();
  }
  for (int64_t p = 0; p < k; ++p) {
    const float* brow = b + p * ldb;
    const __m512 b0 = _mm512_maskz_loadu_ps(m0, brow);
    const __m512 b1 = _mm512_maskz_loadu_ps(m1, brow + 16);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m512 av = _mm512_set1_ps(a[r * ars + p * acs]);
      acc[r][0] = _mm512_fmadd_ps(av, b0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(av, b1, acc[r][1]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    _mm512_mask_storeu_ps(c + r * ldc, m0, acc[r][0]);
    _mm512_mask_storeu_ps(c + r * ldc + 16, m1, acc[r][1]);
  }
}

using Tile = void (*)(int64_t, const float*, int64_t, int64_t, const float*, int64_t, float*,
                      int64_t, int64_t, bool);
constexpr Tile kTiles[kRows + 1] = {nullptr, tile<1>, tile<2>, tile<3>, tile<4>,
                                    tile<5>, tile<6>, tile<7>, tile<8>};

// pack[block][p * 8 + r] = A(8 block + r, p) for A's element (i, p) at a[i * ars + p * acs]:
// row by row of A's storage (its k index), eight contiguous floats at a time where ars == 1.
__attribute__((target("avx512f"))) void pack_rows(const float* a, int64_t ars, int64_t acs,
                                                  int64_t m, int64_t depth, float* pack) {
  const int64_t whole = ars == 1 ? m / kRows : 0;
  for (int64_t p = 0; p < depth; ++p) {
    const float* src = a + p * acs;
    for (int64_t blk = 0; blk < whole; ++blk)
      _mm256_storeu_ps(pack + blk * kRows * depth + p * kRows, _mm256_loadu_ps(src + blk * kRows));
    for (int64_t i = whole * kRows; i < m; ++i)
      pack[(i / kRows) * kRows * depth + p * kRows + i % kRows] = src[i * ars];
  }
}

}  // namespace

bool gemm_available() {
  static const bool ok = __builtin_cpu_supports("avx512f");
  return ok;
}

bool processor_is_intel() {
  static const bool intel = __builtin_cpu_is("intel");
  return intel;
}

void sgemm_rows(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
                int64_t ldb, float* c, int64_t ldc) {
  sgemm_strided(m, n, k, a, lda, 1, b, ldb, c, ldc);
}

void sgemm_strided(int64_t m, int64_t n, int64_t k, const float* a, int64_t ars, int64_t acs,
                   const float* b, int64_t ldb, float* c, int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = 0.0f;
    return;
  }
  // A strided along k (a transposed view) is read in place, except at strides of a multiple of
  // 1 KiB: there successive terms fall in the same cache sets (a 4H = 512 gradient ran at 0.6x),
  // so A is copied pass by pass, each block of 8 rows k-major (pack[block][p * 8 + r])
  const bool packed = acs != 1 && acs % 256 == 0;
  std::vector<float> pack(packed ? static_cast<size_t>(((m + kRows - 1) / kRows) * kRows *
                                                       (k < kDepth ? k : kDepth))
                                 : 0);
  // passes over k outside, so a kDepth x 32 panel of B stays in L1 while every row block of C
  // uses it; within a pass, column panels outside and row blocks inside
  for (int64_t q = 0; q < k; q += kDepth) {
    const int64_t depth = k - q < kDepth ? k - q : kDepth;
    if (packed) pack_rows(a + q * acs, ars, acs, m, depth, pack.data());
    for (int64_t j = 0; j < n; j += kCols) {
      const int64_t cols = n - j < kCols ? n - j : kCols;
      for (int64_t i = 0; i < m; i += kRows) {
        const int64_t rows = m - i < kRows ? m - i : kRows;
        const float* ai = packed ? pack.data() + i * depth : a + i * ars + q * acs;
        kTiles[rows](depth, ai, packed ? 1 : ars, packed ? kRows : acs, b + q * ldb + j, ldb,
                     c + i * ldc + j, ldc, cols, q > 0);
      }
    }
  }
}

#else  // not x86-64 with GCC/Clang: the callers use another ?gemm

bool gemm_available() { return false; }

bool processor_is_intel() { return false; }

void sgemm_rows(int64_t, int64_t, int64_t, const float*, int64_t, const float*, int64_t, float*,
                int64_t) {
  std::abort();
}

void sgemm_strided(int64_t, int64_t, int64_t, const float*, int64_t, int64_t, const float*, int64_t,
                   float*, int64_t) {
  std::abort();
}

#endif

}  // namespace fastseq

extern "C" void fastseq_sgemm_fortran(const char* transa, const char* transb, const int* m,
                                      const int* n, const int* k, const float* alpha,
                                      const float* a, const int* lda, const float* b,
                                      const int* ldb, const float* beta, float* c, const int* ldc) {
  if (*transa != 'N' || *transb != 'N' || *alpha != 1.0f || *beta != 0.0f) std::abort();
  // column-major C(m x n) = A(m x k) B(k x n) is row-major C^T(n x m) = B^T(n x k) A^T(k x m)
  fastseq::sgemm_rows(*n, *m, *k, b, *ldb, a, *lda, c, *ldc);
}
