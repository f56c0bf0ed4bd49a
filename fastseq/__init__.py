"""fastseq: slot-swap truncated-BPTT training, Boltzmann machines, and pictures of
what sequence models learn.

Public names are imported lazily so that ``import fastseq`` stays fast and the
command line does not pay for modules it does not use.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    # schedule and data layout (issue: slot-swap trainer)
    "SlotSchedule": "fastseq.schedule",
    "ScheduleWindow": "fastseq.schedule",
    "epoch_order": "fastseq.schedule",
    "SequenceStore": "fastseq.store",
    "gather_rows": "fastseq.store",
    "train_bptt": "fastseq.trainer",
    "NonFiniteLossError": "fastseq.trainer",
    "stdlib_paragraphs": "fastseq.corpus",
    # window loader and sequence mode for standard RNN modules (issue: slot-swap at full speed)
    "SlotSwapLoader": "fastseq.loader",
    "LoaderWindow": "fastseq.loader",
    "run_window": "fastseq.sequence_mode",
    "carry_state": "fastseq.sequence_mode",
    "masked_mean": "fastseq.sequence_mode",
    "window_plan": "fastseq.sequence_mode",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'fastseq' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
