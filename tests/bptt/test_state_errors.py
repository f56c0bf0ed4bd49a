"""``carry_state`` refuses what is not a recurrent state and says what it got: a tensor's shape,
and for a tuple each member (a tensor's shape, anything else by type)."""
from __future__ import annotations

import re

import pytest
import torch

from fastseq.bptt.state import carry_state


@pytest.mark.parametrize("state, got", [
    (torch.zeros(4), "a tensor of shape (4,)"),
    ((torch.zeros(1, 2, 3), 7, torch.zeros(5)), "a tuple of a tensor of shape (1, 2, 3), int, a tensor of shape (5,)"),
    ((1.5, "h"), "a tuple of float, str"),
    ((), "a tuple of "),
    ([torch.zeros(1, 2, 3)], "list"),
])
def test_a_state_that_is_not_one_is_refused_with_what_it_was(state, got):
    expected = f"Expected state to be a L x W x H tensor or a tuple of them, got {got}."
    with pytest.raises(TypeError, match=f"^{re.escape(expected)}$"):
        carry_state(state)
