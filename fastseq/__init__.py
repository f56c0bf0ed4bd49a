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
    # MNIST rows, RNN autoencoder, hidden-unit pictures (issue 4)
    "Digits": "fastseq.data",
    "read_idx": "fastseq.data",
    "write_idx": "fastseq.data",
    "load_mnist": "fastseq.data",
    "held_out_split": "fastseq.data",
    "RowRNN": "fastseq.rnn",
    "TiedRNN": "fastseq.rnn",
    "UntiedRNN": "fastseq.rnn",
    "GRURows": "fastseq.rnn",
    "LSTMRows": "fastseq.rnn",
    "make_model": "fastseq.rnn",
    "complete": "fastseq.rnn",
    "completion_mse": "fastseq.rnn",
    "baseline_errors": "fastseq.rnn",
    "save_model": "fastseq.rnn",
    "load_model": "fastseq.rnn",
    "as_sequences": "fastseq.rnn",
    "RowDecoder": "fastseq.rnn",
    "sample_windows": "fastseq.inspect",
    "unit_responses": "fastseq.inspect",
    "hidden_unit_pictures": "fastseq.inspect",
    # mosaics of weights (issue 6)
    "tile": "fastseq.mosaic",
    "save_png": "fastseq.mosaic",
    "MosaicLayout": "fastseq.layout",
    "paragraph_layout": "fastseq.layout",
    "corrsort": "fastseq.order",
    "adjacent_correlations": "fastseq.order",
    "path_correlation": "fastseq.order",
    "split_clusters": "fastseq.order",
    "cluster_layout": "fastseq.order",
    "one_hot_bytes": "fastseq.corpus",
    "shard_plan": "fastseq.distributed",
    # Boltzmann machines (issue 5)
    "RBM": "fastseq.rbm",
    "GaussianRBM": "fastseq.rbm",
    "RRBM": "fastseq.rbm_beta",
    "R3BM": "fastseq.rbm_beta",
    "BetaRBM": "fastseq.rbm_beta",
    "load_rbm": "fastseq.rbm_base",
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
