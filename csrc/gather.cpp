#include "gather.hpp"

#include <cstring>
#include <stdexcept>
#include <string>

namespace fastseq {

void gather_rows(const char* src, int64_t n_rows, int64_t row_bytes, int64_t row_stride,
                 const int64_t* index, int64_t n_index, char* dst) {
  for (int64_t i = 0; i < n_index; ++i) {
    const int64_t r = index[i];
    char* out = dst + i * row_bytes;
    if (r < 0) {
      std::memset(out, 0, static_cast<size_t>(row_bytes));
    } else if (r >= n_rows) {
      throw std::out_of_range("row index " + std::to_string(r) + " at position " +
                              std::to_string(i) + " is out of range for " +
                              std::to_string(n_rows) + " rows");
    } else {
      std::memcpy(out, src + r * row_stride, static_cast<size_t>(row_bytes));
    }
  }
}

}  // namespace fastseq
