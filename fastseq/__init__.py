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
    # Boltzmann machines (issue 5)
    "RBM": "fastseq.rbm",
    "GaussianRBM": "fastseq.rbm",
    "RRBM": "fastseq.rbm_beta",
    "R3BM": "fastseq.rbm_beta",
    "BetaRBM": "fastseq.rbm_beta",
    "load_model": "fastseq.rbm_base",
    "AISResult": "fastseq.rbm_likelihood",
    "exact_log_partition": "fastseq.rbm_likelihood",
    "ais_log_partition": "fastseq.rbm_likelihood",
    "ais_schedule": "fastseq.rbm_likelihood",
    "average_log_likelihood": "fastseq.rbm_likelihood",
    "pseudo_likelihood": "fastseq.rbm_likelihood",
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
