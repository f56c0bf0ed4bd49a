"""Every public bptt entry point refuses a malformed argument with a message naming it,
the expectation and what it got (the fuzz suite checks only the type and the name)."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from fastseq.bptt import SequenceStore, SlotSchedule, SlotSwapLoader, masked_mean, plan_epoch, run_window, train_bptt
from fastseq.bptt.distributed import all_reduce_gradients, shard_plan
from fastseq.bptt.plans import default_engine, segment_plan, window_plan
from fastseq.bptt.schedule import epoch_order
from fastseq.bptt.state import carry_state
from fastseq.bptt.store import SequenceStoreWriter, gather_rows
from fastseq.bptt.shards import MAX_WORLD_SIZE


def _windows(schedule):
    return [(w.rows, w.sequence, w.reset, w.valid, w.end, w.slot_map) for w in schedule]


def _same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        for u, v in zip(x, y):
            assert u.shape == v.shape and np.array_equal(u, v)


@pytest.mark.parametrize("backend", ["native", "python"])
def test_schedule_sizes_past_the_epoch_allocate_nothing_more(backend):
    lengths = [3, 1, 4]
    # no window has more steps than the epoch's 8 rows, nor a compact one more slots than its 3 sequences
    _same(_windows(SlotSchedule(lengths, 2, 2**40, backend=backend)), _windows(SlotSchedule(lengths, 2, 8, backend=backend)))
    huge = _windows(SlotSchedule(lengths, 2**40, 2, compact=True, backend=backend))
    _same(huge, _windows(SlotSchedule(lengths, 3, 2, compact=True, backend=backend)))
    assert huge[0][0].shape == (2, 3)


def test_schedule_refuses_a_window_that_cannot_fit():
    with pytest.raises(ValueError, match=r"^a window of bptt=2 x batch_size=1099511627776 slots would need \d+ GiB, "
                                         r"more than the .* this machine has\.$"):
        SlotSchedule([3, 1, 4], 2**40, 2)


def test_epoch_order_messages():
    with pytest.raises(ValueError, match=r"^Expected seed to be an integer >= 0, got -1\.$"):
        epoch_order(3, shuffle=True, seed=-1)
    with pytest.raises(TypeError, match=r"^Expected shuffle to be True or False, got ndarray"):
        epoch_order(3, shuffle=np.zeros(2))
    with pytest.raises(TypeError, match=r"^Expected longest_first to be an integer >= 0, got NoneType None\.$"):
        epoch_order(3, lengths=np.array([1, 2, 3]), longest_first=None)
    with pytest.raises(ValueError, match=r"^epoch_order\(n=1125899906842624\) would need \d+ GiB"):
        epoch_order(2**50)
    with pytest.raises(TypeError, match=r"^Expected n to be an integer >= 0, got float 2\.5\.$"):
        epoch_order(2.5)
    assert epoch_order(3, shuffle=np.True_, seed=np.int64(1)).tolist() == epoch_order(3, shuffle=True, seed=1).tolist()


def test_gather_rows_messages():
    with pytest.raises(ValueError, match=r"^Expected data to have a time axis \(at least 1-D\), got a scalar\.$"):
        gather_rows(None, np.array([0]))
    with pytest.raises(TypeError, match=r"^Expected data to be an R x \*F array of numbers, got object"):
        gather_rows(np.array([None, 1]), np.array([0]))
    with pytest.raises(TypeError, match=r"^Expected rows to hold integer row ids, got dtype float64\.$"):
        gather_rows(np.zeros((3, 2)), np.array([0.5]))
    with pytest.raises(ValueError, match=r"^Expected rows to be an array of row ids, got list"):
        gather_rows(np.zeros((3, 2)), [[1], [2, 3]])
    assert gather_rows(np.zeros((3, 2)), []).shape == (0, 2)


def test_masked_mean_messages():
    with pytest.raises(TypeError, match=r"^Expected values to be a K x W \(or K x W x \.\.\.\) tensor, got NoneType\.$"):
        masked_mean(None, torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match=re.escape("Expected valid of shape (2, 3), got (3, 4).")):
        masked_mean(torch.ones(2, 3), np.ones((3, 4)))
    assert masked_mean(torch.ones(2, 3, 5), np.ones((2, 3))).item() == 1.0


def test_run_window_messages():
    rnn, x = torch.nn.GRU(2, 3), torch.ones(4, 2, 2)
    reset = np.array([[1, 1], [0, 0], [0, 1], [0, 0]], bool)
    with pytest.raises(ValueError, match=r"^Expected engine to be one of 'auto', 'fused'.*, got array"):
        run_window(rnn, x, reset, engine=np.zeros(2))
    with pytest.raises(TypeError, match=r"^Expected reset to be a K x W bool mask, got NoneType\.$"):
        run_window(rnn, x, None, engine="steps")
    with pytest.raises(ValueError, match=re.escape("Expected reset of shape (4, 2), got (2, 4).")):
        run_window(rnn, x, reset.T, engine="packed")
    with pytest.raises(ValueError, match=re.escape("Expected valid of shape (4, 2), got (3,).")):
        run_window(rnn, x, reset, valid=np.ones(3, bool), engine="steps")


def test_plan_messages():
    reset = np.array([[True, True], [False, True]])
    with pytest.raises(ValueError, match=re.escape("Expected reset to have at least one step, got shape (0, 3).")):
        segment_plan(np.zeros((0, 3)))
    with pytest.raises(ValueError, match=r"^Expected valid to be a numeric array, got list"):
        window_plan(reset, [[1], [2, 3]], "dense")
    with pytest.raises(TypeError, match=r"^Expected reset to hold real numbers, got dtype <U1\.$"):
        segment_plan(np.array([["a", "b"]]))
    with pytest.raises(ValueError, match=r"^Expected layout to be one of 'packed', 'dense', got array"):
        window_plan(reset, None, np.zeros(2))
    with pytest.raises(ValueError, match=r"^Expected a slot that idles \(valid False\) to resume with a reset"):
        segment_plan(np.zeros((2, 1), bool), np.array([[False], [True]]))


def test_shard_plan_and_plan_epoch_messages():
    lengths, order = np.array([3, 1, 4]), np.arange(3)
    with pytest.raises(ValueError, match=re.escape("Expected order to hold ids in [0, 0) (one per entry of lengths), "
                                                   "got values in [0, 2].")), pytest.deprecated_call():
        shard_plan((), order, 2, 2, rank=0, world_size=2)
    with pytest.raises(TypeError, match=r"^Expected order to hold real numbers, got dtype object\.$"), \
            pytest.deprecated_call():
        shard_plan(lengths, None, 2, 2, rank=0, world_size=2)
    too_many = re.escape(f"Expected world_size to be an integer in [1, {MAX_WORLD_SIZE}], got {2**31}.")
    with pytest.raises(ValueError, match=too_many), pytest.deprecated_call():
        shard_plan(lengths, order, 2, 2, rank=0, world_size=2**31)
    with pytest.raises(ValueError, match=too_many):
        plan_epoch(lengths, order, 2**31, 2, 2)
    with pytest.raises(TypeError, match=r"^Expected compact to be True or False, got ndarray"):
        plan_epoch(lengths, order, 2, 2, 2, compact=np.zeros(2))
    with pytest.raises(ValueError, match=r"^plan_epoch of 2305843009213693952 windows \(lengths up to "
                                         r"4611686018427387904, bptt=2\) would need"):
        plan_epoch(np.array([2**62]), np.arange(1), 1, 2, 2)
    # ranks beyond the sequences hold empty shards, planned without running a schedule
    plan = plan_epoch(lengths, order, 1000, 2, 2)
    assert plan.windows == 2 and sum(s.order.size for s in plan.shards) == 3 and plan.windows_per_rank[999] == 0


def test_state_messages():
    with pytest.raises(TypeError, match=r"^Expected state to be a L x W x H tensor or a tuple of them, got float\.$"):
        carry_state(1.5)
    with pytest.raises(TypeError, match=r"^Expected slot_map to hold integer slots, got bool of dtype bool\.$"):
        carry_state(torch.zeros(1, 3, 2), slot_map=True)
    with pytest.raises(ValueError, match=re.escape("Expected slot_map to hold slots in [0, 3) of the previous window, "
                                                   "got values in [0, 5].")):
        carry_state(torch.zeros(1, 3, 2), slot_map=np.array([0, 5]))
    with pytest.raises(ValueError, match=r"^Expected slot_map to be 1-D"):
        carry_state(torch.zeros(1, 3, 2), slot_map=torch.zeros(2, 2, dtype=torch.long))


def test_device_and_gradient_messages():
    with pytest.raises(ValueError, match=r"^Expected device to be a device such as 'cpu' or 'cuda:0', got 'abc'\.$"):
        default_engine("abc")
    with pytest.raises(TypeError, match=r"^Expected device to be a torch.device, a device name or an index, got "
                                        r"NoneType None\.$"):
        default_engine(None)
    assert default_engine(torch.device("cpu")) == default_engine("cpu") == "fused"
    with pytest.raises(TypeError, match=r"^Expected params to hold tensors, got list at params\[0\]\.$"):
        all_reduce_gradients([[1], [2, 3]])
    with pytest.raises(TypeError, match=r"^Expected params to be an iterable of tensors \(model.parameters\(\)\), "
                                        r"got float\.$"):
        all_reduce_gradients(1.5)


def test_store_loader_and_trainer_messages(tmp_path):
    with pytest.raises(ValueError, match=r"^Expected data to be an array, got list \(setting an array element"):
        SequenceStore([[1], [2, 3]], [1, 1])
    seqs = [np.ones((3, 2), np.float32), np.ones((1, 2), np.float32)]
    with pytest.raises(TypeError, match=r"^Expected inputs to be a list of arrays or tensors, got ndarray \(0-D\)\.$"):
        SlotSwapLoader(np.array(1.0), None, 2, 2)
    with pytest.raises(TypeError, match=r"^Expected targets to be a list of arrays or tensors, got Tensor \(0-D\)\.$"):
        SlotSwapLoader(seqs, torch.tensor(1.0), 2, 2)
    with pytest.raises(ValueError, match=r"^Expected tail to be one of 'none', 'longest_first', 'packed', got array"):
        SlotSwapLoader(seqs, None, 2, 2, tail=np.zeros(2))
    dec = torch.nn.Linear(2, 2)
    with pytest.raises(TypeError, match=r"^Expected contexts to be a list of arrays or tensors, got ndarray \(0-D\)\.$"):
        train_bptt(dec, np.array(1.0), seqs, torch.zeros(2), torch.zeros(1, 2), torch.optim.SGD(dec.parameters()),
                   2, 2)
    with pytest.raises(ValueError, match=r"^Expected mode to be one of 'w', 'a', got array"):
        SequenceStoreWriter(tmp_path / "s", np.zeros(2))
    with pytest.raises(TypeError, match=r"^Expected path to be a folder path \(str or os.PathLike\), got NoneType None\.$"):
        SequenceStoreWriter(None, "w")


def test_lengths_past_int64_and_empty_seeds_are_refused():
    with pytest.raises(ValueError, match=r"^Expected every entry of lengths to be below 2\*\*63, got 9\.223"):
        SequenceStore(np.zeros((3, 2)), np.array([2.0**63]))
    seqs = [np.ones((3, 2), np.float32), np.ones((1, 2), np.float32)]
    dec = torch.nn.Linear(2, 2)
    with pytest.raises(ValueError, match=re.escape("Expected hidden_seed to have shape [layers, H] (or a tuple of them) "
                                                   "with no empty side, got shape (0, 0).")):
        train_bptt(dec, seqs, seqs, torch.zeros(2), np.zeros((0, 0)), torch.optim.SGD(dec.parameters()), 2, 2)
    with pytest.raises(TypeError, match=r"^Expected visible_seed to hold real numbers torch can hold, got dtype uint64"):
        train_bptt(dec, seqs, seqs, 2**63, torch.zeros(1, 2), torch.optim.SGD(dec.parameters()), 2, 2)
