"""SequenceStore and the native row gather against the NumPy twin."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fastseq.bptt.store import SequenceStore, gather_rows, gather_rows_reference

dtypes = st.sampled_from([np.float32, np.float64, np.int64, np.uint8, np.int16])


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 30), st.integers(0, 5), dtypes, st.data())
def test_native_gather_matches_twin(n_rows, width, dtype, data):
    table = data.draw(hnp.arrays(dtype, (n_rows, width)))
    lo = -1
    hi = n_rows - 1
    rows = data.draw(hnp.arrays(np.int64, data.draw(st.tuples(st.integers(0, 6), st.integers(0, 6))),
                                elements=st.integers(lo, max(hi, lo))))
    if n_rows == 0:
        rows = np.full_like(rows, -1)
    got = gather_rows(table, rows)
    want = gather_rows_reference(table, rows)
    np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))


def test_gather_strided_and_memmap(tmp_path):
    base = np.arange(60, dtype=np.float32).reshape(10, 6)
    strided = base[::2, :3]  # rows not adjacent, each row contiguous
    rows = np.array([[4, -1], [0, 2]])
    np.testing.assert_array_equal(gather_rows(strided, rows), gather_rows_reference(strided, rows))
    store = SequenceStore.from_sequences([base[:4], base[4:]])
    store.save(tmp_path / "s")
    mm = SequenceStore.load(tmp_path / "s")
    assert isinstance(mm.data, np.memmap)
    np.testing.assert_array_equal(mm.gather(rows), base[np.maximum(rows, 0)] * (rows[..., None] >= 0))
    np.testing.assert_array_equal(mm.lengths, [4, 6])


def test_gather_out_buffer_is_filled_and_checked():
    table = np.arange(12.0).reshape(6, 2)
    out = np.empty((2, 2), np.float64)
    assert gather_rows(table, np.array([5, 0]), out) is out
    np.testing.assert_array_equal(out, [[10, 11], [0, 1]])
    with pytest.raises(ValueError, match="Expected out"):
        gather_rows(table, np.array([5, 0]), np.empty((2, 2), np.float32))


def test_gather_out_of_range_raises():
    with pytest.raises(IndexError, match="out of range"):
        gather_rows(np.zeros((3, 2)), np.array([3]))


def test_store_from_tensors_and_errors():
    seqs = [torch.ones(3, 2), torch.zeros(1, 2)]
    store = SequenceStore.from_sequences(seqs)
    assert store.lengths.tolist() == [3, 1] and store.dtype == np.float32
    np.testing.assert_array_equal(store[0], np.ones((3, 2)))
    store.data[0, 0] = 7  # the store owns a copy
    assert seqs[0][0, 0] == 1
    with pytest.raises(ValueError, match="feature shape"):
        SequenceStore.from_sequences([np.ones((2, 2)), np.ones((2, 3))])
    with pytest.raises(ValueError, match="non-empty"):
        SequenceStore.from_sequences([np.ones((2, 2)), np.ones((0, 2))])
    with pytest.raises(ValueError, match="sum\\(lengths\\)"):
        SequenceStore(np.zeros((5, 2)), [2, 2])
    with pytest.raises(FileNotFoundError, match="data.npy"):
        SequenceStore.load("/nonexistent/store")


def test_load_refuses_pickled_objects(tmp_path):
    (tmp_path / "s").mkdir()
    np.save(tmp_path / "s" / "data.npy", np.array([object()], dtype=object), allow_pickle=True)
    np.save(tmp_path / "s" / "lengths.npy", np.array([1]))
    with pytest.raises(ValueError, match="pickle"):
        SequenceStore.load(tmp_path / "s", mmap=False)
