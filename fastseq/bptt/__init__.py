"""Slot-swap truncated BPTT: the schedule, the data store, the window loader, the
engines that run recurrent modules over windows, and the drop-in trainer."""
from fastseq.bptt.distributed import ShardPlan, all_reduce_gradients, shard_plan
from fastseq.bptt.epoch import EpochSpec
from fastseq.bptt.engines import engine_for, masked_mean, run_window
from fastseq.bptt.feedback import FeedbackGRU, FeedbackLSTM
from fastseq.bptt.plans import default_engine, segment_plan, window_plan
from fastseq.bptt.loader import LoaderWindow, SlotSwapLoader
from fastseq.bptt.state import carry_state
from fastseq.bptt.schedule import ScheduleWindow, SlotSchedule, epoch_order
from fastseq.bptt.shards import EpochShards, plan_epoch
from fastseq.bptt.stateful import Stateful
from fastseq.bptt.store import SequenceStore, SequenceStoreWriter, gather_rows
from fastseq.bptt.trainer import NonFiniteLossError, train_bptt

__all__ = [
    "EpochShards", "EpochSpec", "FeedbackGRU", "FeedbackLSTM", "LoaderWindow", "NonFiniteLossError", "ScheduleWindow",
    "SequenceStore", "SequenceStoreWriter", "ShardPlan", "SlotSchedule", "SlotSwapLoader", "Stateful",
    "all_reduce_gradients", "carry_state", "default_engine", "engine_for", "epoch_order", "gather_rows", "masked_mean",
    "plan_epoch", "run_window", "segment_plan", "shard_plan", "train_bptt", "window_plan",
]
