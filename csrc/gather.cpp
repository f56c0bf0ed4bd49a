#include "gather.hpp"

#include <cstring>
#include <stdexcept>
#include <string>

namespace fastseq {

namespace {

// The loop both gathers share; row_at(r) is the address of row r (r in [0, n_rows)).
template <class RowAt>
void gather_with(RowAt row_at, int64_t n_rows, int64_t row_bytes, const int64_t* index, int64_t n_index,
                 char* dst) {
  for (int64_t i = 0; i < n_index; ++i) {
    const int64_t r = index[i];
    char* out = dst + i * row_bytes;
    if (r < 0) {
      std::memset(out, 0, static_cast<size_t>(row_bytes));
    } else if (r >= n_rows) {
      throw std::out_of_range("row index " + std::to_string(r) + " at position " + std::to_string(i) +
                              " is out of range for " + std::to_string(n_rows) + " rows");
    } else {
      std::memcpy(out, row_at(r), static_cast<size_t>(row_bytes));
    }
  }
}

}  // namespace

void gather_rows(const char* src, int64_t n_rows, int64_t row_bytes, int64_t row_stride,
                 const int64_t* index, int64_t n_index, char* dst) {
  gather_with([=](int64_t r) { return src + r * row_stride; }, n_rows, row_bytes, index, n_index, dst);
}

void gather_rows_parted(const char* const* bases, const int64_t* starts, const int32_t* part_of_row,
                        int64_t n_rows, int64_t row_bytes, const int64_t* index, int64_t n_index,
                        char* dst) {
  gather_with(
      [=](int64_t r) {
        const int32_t p = part_of_row[r];
        return bases[p] + (r - starts[p]) * row_bytes;
      },
      n_rows, row_bytes, index, n_index, dst);
}

}  // namespace fastseq
