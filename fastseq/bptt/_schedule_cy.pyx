# distutils: language = c++
"""Thin wrappers over csrc/: typed memoryviews in, numpy arrays out, GIL released.

Arguments are validated by the Python layer (fastseq/schedule.py, fastseq/store.py);
these functions trust them.
"""
from cpython.buffer cimport PyBUF_C_CONTIGUOUS, PyBuffer_Release, PyObject_GetBuffer
from libc.stdint cimport int32_t, int64_t, intptr_t, uint8_t

import numpy as np

from fastseq.bptt._csrc_gather cimport gather_rows, gather_rows_parted
from fastseq.bptt._csrc_schedule cimport SlotScheduler, WindowShape


cdef class NativeSlotScheduler:
    """One epoch of the slot-swap schedule; see fastseq.bptt.schedule.SlotSchedule."""

    cdef SlotScheduler* _ptr
    cdef int64_t _batch
    cdef int64_t _bptt

    def __cinit__(self, const int64_t[::1] lengths, const int64_t[::1] order,
                  int64_t batch, int64_t bptt, bint compact=False, bint wrap=False):
        cdef const int64_t* lp = &lengths[0] if lengths.shape[0] else NULL
        cdef const int64_t* op = &order[0] if order.shape[0] else NULL
        self._ptr = new SlotScheduler(lp, lengths.shape[0], op, order.shape[0],
                                      batch, bptt, compact, wrap)
        self._batch = batch
        self._bptt = bptt

    def __dealloc__(self):
        del self._ptr

    @property
    def done(self):
        return self._ptr.done()

    def next_window(self):
        """Return (rows, seq, reset, valid, end, slot_map) or None when the epoch is over."""
        cdef int64_t cap = self._batch * self._bptt
        rows_buf = np.empty(cap, dtype=np.int64)
        seq_buf = np.empty(cap, dtype=np.int64)
        reset_buf = np.empty(cap, dtype=np.bool_)
        valid_buf = np.empty(cap, dtype=np.bool_)
        end_buf = np.empty(cap, dtype=np.bool_)
        map_buf = np.empty(self._batch, dtype=np.int64)
        cdef int64_t[::1] rows = rows_buf
        cdef int64_t[::1] seq = seq_buf
        cdef uint8_t[::1] reset = reset_buf.view(np.uint8)
        cdef uint8_t[::1] valid = valid_buf.view(np.uint8)
        cdef uint8_t[::1] end = end_buf.view(np.uint8)
        cdef int64_t[::1] slot_map = map_buf
        cdef WindowShape shape
        with nogil:
            shape = self._ptr.next(&rows[0], &seq[0], &reset[0], &valid[0], &end[0],
                                   &slot_map[0])
        if shape.steps == 0:
            return None
        n = shape.steps * shape.width
        k, w = shape.steps, shape.width
        return (
            rows_buf[:n].reshape(k, w),
            seq_buf[:n].reshape(k, w),
            reset_buf[:n].reshape(k, w),
            valid_buf[:n].reshape(k, w),
            end_buf[:n].reshape(k, w),
            map_buf[:w],
        )


def gather_rows_into(const unsigned char[:, :] table, const int64_t[::1] index,
                     unsigned char[:, ::1] out):
    """Copy table[index[i]] to out[i] (zeros where index < 0); bytes viewed as uint8.

    table may be strided between rows (a memory map, a slice) but each row must be
    contiguous; out must be C-contiguous with the same row width in bytes.
    """
    cdef int64_t n_rows = table.shape[0]
    cdef int64_t row_bytes = table.shape[1]
    cdef int64_t stride = table.strides[0]
    cdef int64_t n_index = index.shape[0]
    if n_index == 0:
        return
    cdef const char* src = <const char*> &table[0, 0] if n_rows and row_bytes else NULL
    with nogil:
        gather_rows(src, n_rows, row_bytes, stride, &index[0], n_index,
                    <char*> &out[0, 0])


def buffer_addresses(list arrays, int64_t[::1] out):
    """Write the address of each C-contiguous buffer in ``arrays`` to ``out``; return the
    position of the first item that is not one (its address left unset), or -1.

    The addresses stay valid while the caller holds the arrays (the buffers are released
    here, as NumPy arrays own their memory).
    """
    cdef Py_buffer view
    cdef Py_ssize_t i
    for i in range(len(arrays)):
        try:
            PyObject_GetBuffer(arrays[i], &view, PyBUF_C_CONTIGUOUS)
        except (BufferError, TypeError, ValueError):
            return i
        out[i] = <int64_t> <intptr_t> view.buf
        PyBuffer_Release(&view)
    return -1


def gather_rows_parted_into(const int64_t[::1] bases, const int64_t[::1] starts, const int32_t[::1] part_of_row,
                            int64_t row_bytes, const int64_t[::1] index, unsigned char[:, ::1] out):
    """Copy row index[i] of a table kept in parts to out[i] (zeros where index < 0): part p
    starts at address bases[p] and holds rows [starts[p], starts[p + 1]), row_bytes apart;
    part_of_row[r] is the part of row r. out is C-contiguous, row_bytes wide.
    """
    cdef int64_t n_index = index.shape[0]
    if n_index == 0:
        return
    cdef const int32_t* parts = &part_of_row[0] if part_of_row.shape[0] else NULL
    with nogil:
        gather_rows_parted(<const char* const*> &bases[0], &starts[0], parts, part_of_row.shape[0], row_bytes,
                           &index[0], n_index, <char*> &out[0, 0])
