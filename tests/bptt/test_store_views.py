"""SequenceStore.coerce(copy=False): a store over the caller's own arrays, read in place."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fastseq.bptt.store import SequenceStore, gather_rows_reference

dtypes = st.sampled_from([np.float32, np.float64, np.int64, np.uint8, np.int16])


def _is_view_store(store, arrays) -> bool:
    """The store serves the caller's arrays themselves (no copy of them)."""
    return all(store[i] is a for i, a in enumerate(arrays))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(1, 7), min_size=1, max_size=8), st.integers(0, 4), dtypes, st.data())
def test_gather_in_place_matches_the_gather_of_the_concatenation(lengths, width, dtype, data):
    arrays = [data.draw(hnp.arrays(dtype, (t, width))) for t in lengths]
    kept = [a.copy() for a in arrays]
    store = SequenceStore.coerce(arrays, copy=False)
    assert _is_view_store(store, arrays)
    n_rows = sum(lengths)
    rows = data.draw(hnp.arrays(np.int64, data.draw(st.tuples(st.integers(0, 6), st.integers(0, 6))),
                                elements=st.integers(-1, n_rows - 1)))
    got = store.gather(rows)
    want = gather_rows_reference(np.concatenate(kept), rows)
    np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))
    assert store.lengths.tolist() == lengths and store.feature_shape == (width,) and store.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(store.data, np.concatenate(kept))
    for a, b in zip(arrays, kept):  # never written to
        np.testing.assert_array_equal(a, b)


def test_an_array_edited_in_place_is_read_as_edited():
    xs = [np.zeros((3, 2), np.float32), np.zeros((2, 2), np.float32)]
    tensors = [torch.zeros(2, 2), torch.zeros(1, 2)]
    store, tstore = SequenceStore.coerce(xs, copy=False), SequenceStore.coerce(tensors, copy=False)
    xs[1][1] = 7.0
    tensors[0][1] = 3.0
    assert store.gather(np.array([4, -1, 0])).tolist() == [[7.0, 7.0], [0.0, 0.0], [0.0, 0.0]]
    assert tstore.gather(np.array([1, 2])).tolist() == [[3.0, 3.0], [0.0, 0.0]]


def test_out_buffer_is_filled_and_bad_rows_or_buffers_are_refused():
    store = SequenceStore.coerce([np.ones((2, 3)), np.full((1, 3), 2.0)], copy=False)
    out = np.full((2, 3), -5.0)
    assert store.gather(np.array([2, -1]), out) is out and out.tolist() == [[2.0] * 3, [0.0] * 3]
    with pytest.raises(ValueError, match=r"row ids in \[-1, 3\).*got 3 at flat position 1"):
        store.gather(np.array([0, 3]))
    with pytest.raises(ValueError, match="Expected out to be C-contiguous float64 of shape"):
        store.gather(np.array([0]), np.zeros((1, 3), np.float32))
    with pytest.raises(TypeError, match="integer row ids"):
        store.gather(np.array([0.5]))


@pytest.mark.parametrize("arrays", [
    [np.zeros((3, 2), np.float32), np.ones((2, 2), np.float64)],  # a concatenation would convert them
    [np.arange(8.0).reshape(4, 2)[::2], np.ones((2, 2))],  # not C-contiguous
    [np.asfortranarray(np.arange(6.0).reshape(3, 2)), np.ones((2, 2))],
], ids=["mixed dtypes", "strided", "fortran"])
def test_lists_that_cannot_be_read_in_place_are_copied_as_before(arrays):
    store = SequenceStore.coerce(arrays, copy=False)
    want = SequenceStore.from_sequences(arrays)
    assert type(store) is SequenceStore and not _is_view_store(store, arrays)
    np.testing.assert_array_equal(store.data, want.data)
    assert store.data.dtype == want.data.dtype


def test_refusals_match_the_copying_store():
    for bad, message in [([np.zeros((2, 2)), np.zeros((2, 3))], "feature shape"),
                         ([np.zeros((2, 2)), np.zeros((0, 2))], "non-empty"), ("text", "list of arrays")]:
        for copy in (True, False):
            with pytest.raises((ValueError, TypeError), match=message):
                SequenceStore.coerce(bad, "contexts", copy=copy)
    assert len(SequenceStore.coerce([], copy=False)) == 0


def test_reads_like_a_list_of_the_callers_arrays():
    xs = [np.full((t, 1), t, np.int16) for t in (1, 2, 3)]
    store = SequenceStore.coerce(xs, copy=False)
    assert store[-1] is xs[-1] and [s.shape[0] for s in store[::2]] == [1, 3]
    assert [s is x for s, x in zip(store, xs)] == [True] * 3
    assert store.offsets.tolist() == [0, 1, 3, 6]
