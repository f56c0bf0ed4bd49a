"""The in-place store (``coerce(copy=False)``): row ids of every integer type, rows of no bytes,
and lists long enough to matter."""
import numpy as np
import pytest

from fastseq.bptt.store import SequenceStore, gather_rows_reference


def _arrays(count: int, width: int = 2) -> list[np.ndarray]:
    return [np.arange(3 * width, dtype=np.float32).reshape(3, width) + 10 * i for i in range(count)]


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64])
def test_row_ids_of_any_integer_type_gather_the_rows_they_name(dtype):
    arrays = _arrays(5)
    store = SequenceStore.coerce(arrays, copy=False)
    rows = np.array([[14, 0], [3, 7]], dtype=dtype)
    want = gather_rows_reference(np.concatenate(arrays), rows.astype(np.int64))
    np.testing.assert_array_equal(store.gather(rows), want)
    assert rows.dtype == dtype  # the caller's ids are not converted in place


def test_a_row_past_the_end_is_refused_even_when_rows_hold_no_bytes():
    store = SequenceStore.coerce([np.zeros((3, 0), np.float32) for _ in range(3)], copy=False)
    assert store.gather(np.array([0, 8])).shape == (2, 0)
    with pytest.raises(ValueError, match=r"\[-1, 9\).*got 50"):
        store.gather(np.array([0, 50]))


@pytest.mark.parametrize("count", [1, 62, 63, 200])
def test_lists_of_any_realistic_length_are_served_in_place(count):
    """The in-place store stops only at 2**31 arrays (its part ids are int32); a list of a few
    hundred is read where it is, not copied."""
    arrays = _arrays(count)
    store = SequenceStore.coerce(arrays, copy=False)
    assert all(store[i] is a for i, a in enumerate(arrays))
    arrays[-1][1] = -5.0  # edited after the store was made: the store reads the edit
    last_row = 3 * count - 2
    np.testing.assert_array_equal(store.gather(np.array([last_row])), [[-5.0, -5.0]])
