# Declarations of csrc/schedule.hpp; keep side by side with it.
from libc.stdint cimport int64_t, uint8_t
from libcpp cimport bool


cdef extern from "schedule.hpp" namespace "fastseq" nogil:
    cdef struct WindowShape:
        int64_t steps
        int64_t width

    cdef cppclass SlotScheduler:
        SlotScheduler(const int64_t* lengths, int64_t n_sequences, const int64_t* order,
                      int64_t n_order, int64_t batch, int64_t bptt, bool compact,
                      bool wrap) except +
        WindowShape next(int64_t* rows, int64_t* seq, uint8_t* reset, uint8_t* valid,
                         uint8_t* end, int64_t* slot_map)
        bool done()
        int64_t batch()
        int64_t bptt()
        int64_t windows_emitted()
