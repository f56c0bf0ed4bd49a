"""SequenceStore reads like a list of arrays: indices, negative indices, slices, lists, iteration."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fastseq.bptt.store import SequenceStore

lengths_st = st.lists(st.integers(1, 4), min_size=0, max_size=8)


def store_and_model(lengths):
    """A store of sequences filled with their own number, and the plain list it must act like."""
    model = [np.full((t, 2), i, dtype=np.float32) for i, t in enumerate(lengths)]
    return SequenceStore.from_sequences(model, dtype=np.float32), model


def same(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w, strict=True)


@settings(max_examples=150, deadline=None)
@given(lengths_st, st.integers(-12, 12))
def test_integer_index_like_a_list(lengths, i):
    store, model = store_and_model(lengths)
    try:
        want = model[i]
    except IndexError:
        with pytest.raises(IndexError, match=rf"^Expected a sequence index in \[-{len(model)}, {len(model)}\) "
                                             rf"\(the store holds {len(model)} sequences\), got {i}\.$"):
            store[i]
        return
    np.testing.assert_array_equal(store[i], want, strict=True)
    np.testing.assert_array_equal(store[np.int64(i)], want, strict=True)
    np.testing.assert_array_equal(store[torch.tensor(i)], want, strict=True)


@settings(max_examples=150, deadline=None)
@given(lengths_st, st.none() | st.integers(-12, 12), st.none() | st.integers(-12, 12),
       st.none() | st.integers(-4, 4).filter(lambda s: s != 0))
def test_slices_with_steps_like_a_list(lengths, start, stop, step):
    store, model = store_and_model(lengths)
    got = store[start:stop:step]
    assert isinstance(got, list)
    same(got, model[start:stop:step])


@settings(max_examples=100, deadline=None)
@given(lengths_st, st.lists(st.integers(-12, 12), max_size=6))
def test_index_lists_pick_each_item_like_a_list(lengths, picks):
    store, model = store_and_model(lengths)
    bad = [(k, i) for k, i in enumerate(picks) if not -len(model) <= i < len(model)]
    if bad:
        k, i = bad[0]
        with pytest.raises(IndexError, match=rf"got {i} at position {k} of the index list\.$"):
            store[picks]
        return
    same(store[picks], [model[i] for i in picks])
    same(store[np.array(picks, dtype=np.int32)], [model[i] for i in picks])


@settings(max_examples=60, deadline=None)
@given(lengths_st)
def test_iteration_and_len_agree_with_indexing(lengths):
    store, model = store_and_model(lengths)
    assert len(store) == len(model)
    same(list(store), model)
    same([store[i] for i in range(len(store))], model)
    same(list(reversed(store[::-1])), model)


@pytest.mark.parametrize("index", [True, np.bool_(False), torch.tensor(True), 1.0, "0", None, [0.5], [[0]],
                                   [True, False], np.zeros((1, 1), dtype=int)])
def test_other_indices_are_a_type_error_naming_them(index):
    store, _ = store_and_model([2, 1])
    with pytest.raises(TypeError, match="^Expected a sequence index to be an integer, a slice or a list of integers, "
                                        "got"):
        store[index]


def test_no_item_assignment():
    store, _ = store_and_model([2, 1])
    with pytest.raises(TypeError):
        store[0] = np.zeros((2, 2))
