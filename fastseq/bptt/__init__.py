"""Slot-swap truncated BPTT: the schedule, the data store, the window loader, the
engines that run recurrent modules over windows, and the drop-in trainer."""
from fastseq._util.deprecation import moved_names
from fastseq.bptt.engines import engine_for, masked_mean, run_window
from fastseq.bptt.epoch import EpochSpec
from fastseq.bptt.feedback import FeedbackGRU, FeedbackLSTM
from fastseq.bptt.loader import SlotSwapLoader
from fastseq.bptt.schedule import SlotSchedule
from fastseq.bptt.shards import plan_epoch
from fastseq.bptt.stateful import Stateful
from fastseq.bptt.store import SequenceStore
from fastseq.bptt.trainer import NonFiniteLossError, train_bptt

__all__ = [
    "EpochSpec", "FeedbackGRU", "FeedbackLSTM", "NonFiniteLossError", "SequenceStore", "SlotSchedule", "SlotSwapLoader",
    "Stateful", "engine_for", "masked_mean", "plan_epoch", "run_window", "train_bptt",
]

# no longer public here: plumbing and the records other calls return (still in their modules)
MOVED = {
    "EpochShards": ("fastseq.bptt.shards", "it is what plan_epoch returns; import it from fastseq.bptt.shards"),
    "LoaderWindow": ("fastseq.bptt.loader", "it is what SlotSwapLoader yields; import it from fastseq.bptt.loader"),
    "ScheduleWindow": ("fastseq.bptt.schedule", "it is what SlotSchedule yields; import it from fastseq.bptt.schedule"),
    "SequenceStoreWriter": ("fastseq.bptt.store", "SequenceStore.from_iterable builds a store larger than memory; "
                            "the writer is fastseq.bptt.store.SequenceStoreWriter"),
    "ShardPlan": ("fastseq.bptt.distributed", "plan_epoch plans every rank; import it from fastseq.bptt.distributed"),
    "shard_plan": ("fastseq.bptt.distributed", "use plan_epoch"),
    "all_reduce_gradients": ("fastseq.bptt.distributed", "import it from fastseq.bptt.distributed"),
    "carry_state": ("fastseq.bptt.state", "run_window carries the state; import it from fastseq.bptt.state"),
    "default_engine": ("fastseq.bptt.plans", "use engine_for"),
    "epoch_order": ("fastseq.bptt.schedule", "import it from fastseq.bptt.schedule"),
    "gather_rows": ("fastseq.bptt.store", "import it from fastseq.bptt.store"),
    "segment_plan": ("fastseq.bptt.plans", "import it from fastseq.bptt.plans"),
    "window_plan": ("fastseq.bptt.plans", "import it from fastseq.bptt.plans"),
}
__getattr__ = moved_names(__name__, MOVED)
