"""Packing plans (``fastseq.bptt.plans``): every index a plan holds, checked against a plain
model of the window's pieces, and the dense grouping rule at its boundaries."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fastseq.bptt.plans import (DensePlan, SegmentPlan, _groups, _pieces, default_engine, dense_plan,
                                last_piece_of_slot, segment_plan, window_plan)
from test_engines import _masks, _plan_reference  # pieces as [slot, starts with a reset, flat positions]


def _last_valid_step(valid: np.ndarray) -> dict[int, int]:
    """Slot -> its last real step, for the slots with one."""
    return {b: int(np.nonzero(valid[:, b])[0][-1]) for b in range(valid.shape[1]) if valid[:, b].any()}


@settings(max_examples=80, deadline=None)
@given(_masks())
def test_segment_plan_final_points_at_each_slots_last_piece_or_its_carried_state(masks):
    reset, valid = masks
    plan = segment_plan(reset, valid)
    k_steps, width = reset.shape
    final, target, bs = plan.final.numpy(), plan.target.numpy(), plan.batch_sizes.numpy()
    assert final.shape == (width,)
    ends = np.cumsum(bs)
    last = _last_valid_step(valid)
    for b in range(width):
        if b in last:  # the rank of the piece holding the slot's last step: its column in the packed rows
            row = target[last[b] * width + b]
            t = np.searchsorted(ends, row, "right")  # the packed time step holding that row
            assert final[b] == row - (ends[t - 1] if t else 0)
            assert plan.piece_slot[final[b]].item() == b
        else:
            assert final[b] == plan.pieces + b


def _check_dense(plan: DensePlan, reset: np.ndarray, valid: np.ndarray) -> None:
    k_steps, width = reset.shape
    pieces = _plan_reference(reset, valid)
    shapes = list(plan.shapes)
    assert len(plan.sources) == len(shapes)
    assert plan.computed == sum(steps * cols for steps, cols in shapes)
    src = torch.cat(list(plan.sources)).numpy() if shapes else np.zeros(0, np.int64)
    assert src.shape == (plan.computed,)
    target, final = plan.target.numpy(), plan.final.numpy()
    flat_valid = valid.reshape(-1)
    assert target.shape == (k_steps * width,) and final.shape == (width,)
    # every real position is read once, at the row it is written back from; the rest is padding
    assert np.array_equal(src[target[flat_valid]], np.nonzero(flat_valid)[0])
    assert np.all(target[~flat_valid] == plan.computed)
    assert int((src != k_steps * width).sum()) == int(flat_valid.sum())
    # the groups, in order: each piece is one column, its steps one row of that column apart
    assert plan.piece_slot.shape[0] == len(pieces)
    column, off = 0, 0
    for steps, cols in shapes:
        block = src[off:off + steps * cols].reshape(steps, cols)
        for c in range(cols):
            rows = [int(x) for x in block[:, c] if x != k_steps * width]
            match = [p for p in pieces if p[2] == rows]
            assert len(match) == 1 and rows[0] == block[0, c]  # padding only after the piece's steps
            assert plan.piece_slot[column + c].item() == match[0][0]
            assert plan.piece_reset[column + c].item() == match[0][1]
        assert steps == max(len([x for x in block[:, c] if x != k_steps * width]) for c in range(cols))
        column, off = column + cols, off + steps * cols
    last = _last_valid_step(valid)
    for b in range(width):
        assert final[b] == (target[last[b] * width + b] if b in last else plan.computed + b)


@settings(max_examples=80, deadline=None)
@given(_masks())
def test_dense_plan_reads_and_writes_every_real_step_once(masks):
    reset, valid = masks
    _check_dense(window_plan(reset, valid, "dense"), reset, valid)


def _window(lengths: list[int], k_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """One piece per slot, of the given lengths, all starting with a reset at step 0."""
    valid = np.arange(k_steps)[:, None] < np.array(lengths)[None, :]
    reset = np.zeros_like(valid)
    reset[0] = True
    return reset, valid


@pytest.mark.parametrize("lengths, shapes", [
    ([10] * 8 + [5] * 8, ((10, 8), (5, 8))),      # 5 < 0.6 x 10, 8 pieces on each side: two groups
    ([10] * 16, ((10, 16),)),                     # no piece shorter than 0.6 x the longest: one group
    ([10] * 8 + [5] * 7, ((10, 15),)),            # fewer than 8 pieces would follow: one group
    ([10] * 7 + [5] * 9, ((10, 8), (5, 8))),      # the first group takes 8 pieces, one of them short
    ([20] * 8 + [10] * 8 + [5] * 8, ((20, 8), (10, 8), (5, 8))),
    ([20] * 8 + [10] * 20, ((20, 8), (10, 20))),  # 10 is not below 0.6 x 10: the second group stays whole
])
def test_dense_groups_with_the_default_rule(lengths, shapes):
    reset, valid = _window(lengths, max(lengths))
    plan = dense_plan(_pieces(reset, valid))
    assert plan.shapes == shapes
    _check_dense(plan, reset, valid)


@pytest.mark.parametrize("sorted_lengths, shrink, min_pieces, starts", [
    ([], 0.6, 8, [0]),
    ([10] * 8 + [5] * 8, 0.6, 8, [0, 8]),
    ([10] * 16, 0.6, 8, [0]),
    ([10] * 8 + [6] * 8, 0.6, 8, [0]),                      # 6 is not below 0.6 x 10 (strict)
    ([10] * 8 + [5] * 7, 0.6, 8, [0]),                      # 7 pieces would be left after the cut
    ([20] * 8 + [10] * 7, 0.6, 8, [0]),
    ([30] + [20] * 7 + [12] * 8, 0.6, 8, [0, 8]),           # measured against the first, longest piece
    ([40] * 8 + [20] * 3 + [10] * 8, 0.6, 8, [0, 8]),       # 3 pieces since the last cut: no second cut
    ([40] * 8 + [20] * 8 + [10] * 8, 0.6, 8, [0, 8, 16]),   # each cut measured against its own first piece
    ([10, 5], 0.6, 1, [0, 1]),
    ([10, 5, 2], 0.6, 1, [0, 1, 2]),
])
def test_group_starts(sorted_lengths, shrink, min_pieces, starts):
    assert _groups(np.array(sorted_lengths, np.int64), shrink, min_pieces) == starts


def test_last_piece_of_each_slot():
    assert last_piece_of_slot(np.array([0, 0, 1, 1, 1, 3])).tolist() == [False, True, False, False, True, True]
    assert last_piece_of_slot(np.array([2])).tolist() == [True]
    assert last_piece_of_slot(np.zeros(0, np.int64)).tolist() == []


def test_ties_keep_slot_order_in_both_layouts():
    # 60 one-piece slots of two lengths, alternating: a stable sort keeps each length's slots in order
    reset, valid = _window([5, 3] * 30, 5)
    want = list(range(0, 60, 2)) + list(range(1, 60, 2))
    assert segment_plan(reset, valid).piece_slot.tolist() == want
    assert window_plan(reset, valid, "dense").piece_slot.tolist() == want


def test_window_plan_defaults_to_packed_and_passes_valid_on():
    reset = np.array([[True, True], [False, False], [False, True]])
    valid = np.array([[True, True], [True, False], [False, True]])
    plan = window_plan(reset, valid)
    assert isinstance(plan, SegmentPlan)
    want = segment_plan(reset, valid)
    for name in ("batch_sizes", "source", "target", "piece_slot", "piece_reset", "final"):
        assert torch.equal(getattr(plan, name), getattr(want, name)), name
    assert plan.pieces == 3 and plan.source.shape[0] == 4


def test_valid_of_another_shape_is_refused_by_name():
    with pytest.raises(ValueError, match=r"^Expected valid to have shape \(2, 2\) like reset, got \(2, 3\)\.$"):
        segment_plan(np.ones((2, 2), bool), np.ones((2, 3), bool))


def test_the_first_slot_resuming_without_a_reset_is_named():
    valid = np.array([[True, True, True], [True, True, False], [True, False, True]])
    reset = np.zeros((3, 3), bool)
    reset[0] = True
    with pytest.raises(ValueError, match=r"got slot 2 resuming at step 2 without one\.$"):
        segment_plan(reset, valid)


def test_default_engine_by_device_type():
    assert default_engine("cpu") == "fused"
    assert default_engine(torch.device("cpu"), "LSTM") == "fused"
    assert default_engine("cuda") == "packed" and default_engine(torch.device("cuda", 1)) == "packed"


def test_moving_a_plan_keeps_it_whole():
    reset, valid = _window([4, 2, 3], 4)
    dense = window_plan(reset, valid, "dense")
    moved = dense.to("cpu")
    assert moved.computed == dense.computed == 12 and moved.shapes == dense.shapes
    for a, b in zip((moved.piece_slot, moved.piece_reset, moved.target, moved.final, *moved.sources),
                    (dense.piece_slot, dense.piece_reset, dense.target, dense.final, *dense.sources)):
        assert torch.equal(a, b)
    packed = segment_plan(reset, valid)
    again = packed.to(torch.device("cpu"))
    for name in ("batch_sizes", "source", "target", "piece_slot", "piece_reset", "final"):
        assert torch.equal(getattr(again, name), getattr(packed, name)), name
