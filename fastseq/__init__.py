"""fastseq: slot-swap truncated-BPTT training, Boltzmann machines, and pictures of
what sequence models learn.

One subpackage per domain: :mod:`fastseq.bptt` (slot-swap training),
:mod:`fastseq.boltzmann` (Boltzmann machines), :mod:`fastseq.mosaic` (weight
mosaics ordered by correlation), :mod:`fastseq.rowrnn` (RNN autoencoders of image
rows), :mod:`fastseq.datasets` (embedded and on-disk data). The flagship names are
also here, with :func:`save` and :func:`load` for every model, machine and checkpoint
(one file format: safetensors with a JSON header). Everything is imported lazily, so
``import fastseq`` stays fast and the command line pays only for what it uses;
``__init__.pyi`` shows type checkers the real types.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# before any fastseq module imports Numba: a cache folder even without a writable home
from fastseq._util.numba_cache import ensure_numba_cache as _ensure_numba_cache  # noqa: E402

_ensure_numba_cache()

SUBPACKAGES = ("bptt", "boltzmann", "conv", "datasets", "mosaic", "rowrnn")

# flagship name -> subpackage that defines it
_FLAGSHIPS: dict[str, str] = {
    "train_bptt": "fastseq.bptt",
    "SlotSwapLoader": "fastseq.bptt",
    "SequenceStore": "fastseq.bptt",
    "run_window": "fastseq.bptt",
    "RBM": "fastseq.boltzmann",
    "BetaRBM": "fastseq.boltzmann",
    "GaussianRBM": "fastseq.boltzmann",
    "corrsort": "fastseq.mosaic",
    "tile": "fastseq.mosaic",
    "save_png": "fastseq.mosaic",
    "save": "fastseq._util.files",
    "load": "fastseq._util.files",
}

__all__ = sorted([*_FLAGSHIPS, *SUBPACKAGES, "__version__"])


def __getattr__(name: str) -> Any:
    if name in SUBPACKAGES:
        value = importlib.import_module(f"fastseq.{name}")
    elif name in _FLAGSHIPS:
        value = getattr(importlib.import_module(_FLAGSHIPS[name]), name)
    else:
        raise AttributeError(f"module 'fastseq' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
