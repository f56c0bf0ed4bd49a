"""``carry_state`` refuses what is not a recurrent state and says what it got: a tensor's shape,
and for a tuple each member (a tensor's shape, anything else by type)."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from fastseq.bptt.state import carry_state


@pytest.mark.parametrize("state, got", [
    (torch.zeros(4), "a tensor of shape (4,)"),
    ((torch.zeros(1, 2, 3), 7, torch.zeros(5)), "a tuple of a tensor of shape (1, 2, 3), int, a tensor of shape (5,)"),
    ((1.5, "h"), "a tuple of float, str"),
    ((torch.zeros(4), (1, 2)), "a tuple of a tensor of shape (4,), tuple"),  # one level deep
    ((), "a tuple of "),
    ([torch.zeros(1, 2, 3)], "list"),
])
def test_a_state_that_is_not_one_is_refused_with_what_it_was(state, got):
    expected = f"Expected state to be a L x W x H tensor or a tuple of them, got {got}."
    with pytest.raises(TypeError, match=f"^{re.escape(expected)}$"):
        carry_state(state)


STATE = torch.arange(2 * 3 * 2, dtype=torch.float32).reshape(2, 3, 2)  # L=2 layers, W=3 slots, H=2


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.complex64, torch.bool])
def test_a_slot_map_tensor_of_other_than_integers_is_refused(dtype):
    with pytest.raises(TypeError, match=rf"^Expected slot_map to hold integer slots, got dtype {dtype}\.$"):
        carry_state(STATE, slot_map=torch.tensor([0, 1], dtype=dtype))


@pytest.mark.parametrize("slot_map", [[0.0, 1.0], ["0", "1"], [[0, 1], [2]], np.array([True, False])])
def test_a_slot_map_of_other_than_integers_is_refused(slot_map):
    with pytest.raises(TypeError, match=r"^Expected slot_map to hold integer slots, got "):
        carry_state(STATE, slot_map=slot_map)


@pytest.mark.parametrize("make", [torch.tensor, np.array, list], ids=["tensor", "numpy", "list"])
@pytest.mark.parametrize("slot_map, got", [([2, -1], "[-1, 2]"), ([-1], "[-1, -1]"), ([3, 0], "[0, 3]"), ([3], "[3, 3]")])
def test_a_slot_outside_the_previous_window_is_refused_naming_the_range(make, slot_map, got):
    with pytest.raises(ValueError, match=re.escape(f"Expected slot_map to hold slots in [0, 3) of the previous "
                                                   f"window, got values in {got}.")):
        carry_state(STATE, slot_map=make(slot_map))


@pytest.mark.parametrize("make", [lambda x: torch.tensor(x, dtype=torch.int32), lambda x: np.array(x, dtype=np.uint8), list],
                         ids=["int32 tensor", "uint8 array", "list"])
def test_a_slot_map_gathers_the_carried_slots_in_its_order(make):
    out = carry_state(STATE, slot_map=make([2, 0, 2, 1]))
    assert out.dtype == STATE.dtype and torch.equal(out, STATE[:, [2, 0, 2, 1]])
    assert torch.equal(carry_state(STATE, slot_map=make([2])), STATE[:, [2]])  # the width may shrink
    assert torch.equal(carry_state(STATE, slot_map=make([0, 1, 2])), STATE)


@pytest.mark.parametrize("empty", [torch.zeros(0, dtype=torch.long), np.zeros(0), np.zeros(0, dtype=np.int64), []],
                         ids=["tensor", "float array", "int array", "list"])
def test_an_empty_slot_map_carries_no_slot(empty):
    out = carry_state(STATE, slot_map=empty)
    assert out.shape == (2, 0, 2)


def test_an_empty_slot_map_must_still_hold_integers():
    with pytest.raises(TypeError, match=r"^Expected slot_map to hold integer slots"):
        carry_state(STATE, slot_map=np.zeros(0, dtype=bool))
    with pytest.raises(TypeError, match=r"^Expected slot_map to hold integer slots"):
        carry_state(STATE, slot_map=np.array(["a"])[:0])


@pytest.mark.parametrize("make", [lambda x: torch.tensor(x), np.array], ids=["tensor", "numpy"])
def test_a_slot_map_of_more_dimensions_is_refused_before_its_values(make):
    for bad in ([[0, 1], [1, 0]], [[7]], [[0, 1], [5, 9]]):
        with pytest.raises(ValueError, match=r"^Expected slot_map to be 1-D \(one slot per slot of the window\), got shape"):
            carry_state(STATE, slot_map=make(bad))


@pytest.mark.parametrize("dtype", [torch.int8, torch.int32, torch.int64, torch.uint8])
def test_a_slot_map_becomes_a_long_index(dtype):
    from fastseq.bptt.state import _slot_index

    idx = _slot_index(torch.tensor([2, 0], dtype=dtype), 3, torch.device("cpu"))
    assert idx.dtype == torch.long and idx.tolist() == [2, 0]
    assert _slot_index(np.array([1], dtype=np.uint16), 3, torch.device("cpu")).dtype == torch.long


def test_a_host_slot_map_becomes_an_index_on_the_states_device():
    from fastseq.bptt.state import _slot_index

    # the meta device stands in for a GPU: a NumPy slot map is checked on the host, then moved
    idx = _slot_index(np.array([2, 0]), 3, torch.device("meta"))
    assert idx.device.type == "meta" and idx.dtype == torch.long and idx.shape == (2,)
    out = carry_state(torch.zeros(2, 3, 2, device="meta"), slot_map=[2, 0])
    assert out.device.type == "meta" and out.shape == (2, 2, 2)


def test_a_two_dimensional_state_is_taken_with_its_slots_along_dim_one():
    """The slots are dim 1 whatever follows: an ``L x W`` state (one unit per slot, no H axis)
    is a state too, and is narrowed like any other."""
    state = torch.arange(6.0).view(2, 3)
    assert carry_state(state, slot_map=[2, 0]).tolist() == [[2.0, 0.0], [5.0, 3.0]]
    h, c = carry_state((state, state + 10), slot_map=np.array([1]))
    assert h.tolist() == [[1.0], [4.0]] and c.tolist() == [[11.0], [14.0]]
