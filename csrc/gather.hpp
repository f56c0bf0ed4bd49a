// Row gathering: copy selected rows of a row-major table into a dense buffer.
#pragma once

#include <cstdint>

namespace fastseq {

// Copies row index[i] of src (n_rows rows, row_stride bytes apart, row_bytes used)
// to dst + i * row_bytes for i < n_index. A negative index writes a row of zeros.
// Throws std::out_of_range for an index >= n_rows; nothing is promised about dst then.
void gather_rows(const char* src, int64_t n_rows, int64_t row_bytes, int64_t row_stride,
                 const int64_t* index, int64_t n_index, char* dst);

// The same gather from a table kept in parts (one array per sequence, none copied):
// rows [starts[p], starts[p + 1]) of the table are the rows of part p, row_bytes apart
// from bases[p]; part_of_row[r] names the part that holds row r (n_rows rows in all).
// A negative index writes a row of zeros; an index >= n_rows throws std::out_of_range.
void gather_rows_parted(const char* const* bases, const int64_t* starts, const int32_t* part_of_row,
                        int64_t n_rows, int64_t row_bytes, const int64_t* index, int64_t n_index,
                        char* dst);

}  // namespace fastseq
