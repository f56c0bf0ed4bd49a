# Declarations of csrc/gather.hpp; keep side by side with it.
from libc.stdint cimport int32_t, int64_t


cdef extern from "gather.hpp" namespace "fastseq" nogil:
    void gather_rows(const char* src, int64_t n_rows, int64_t row_bytes, int64_t row_stride,
                     const int64_t* index, int64_t n_index, char* dst) except +
    void gather_rows_parted(const char* const* bases, const int64_t* starts, const int32_t* part_of_row,
                            int64_t n_rows, int64_t row_bytes, const int64_t* index, int64_t n_index,
                            char* dst) except +
