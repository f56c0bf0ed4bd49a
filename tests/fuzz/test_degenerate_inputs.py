"""Degenerate data to every public entry point: all NaN, one infinity, constant, empty, one
row, one column. Each array argument of each fuzzed entry's valid call (``ENTRIES`` of
``test_fuzz_api``) is replaced in turn; the outcome must be a clear error naming the argument,
or a result. A result from non-finite data must itself be non-finite (NaN passed on, never
hidden behind a plausible number), except where passing data through unchanged is the
entry's contract (``PASS_THROUGH``, each with its reason).
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

import test_fuzz_api as fuzz
from fuzzing import CLEAR_ERRORS, deadline

KINDS = ("all NaN", "one inf", "constant", "empty", "one row", "one column")
NON_FINITE = ("all NaN", "one inf")

# entry.argument -> why a finite or any result from non-finite data is right there
PASS_THROUGH = {
    "bptt.SequenceStore.data": "a container: it stores the values it is given, as a NumPy array does",
    "bptt.SequenceStoreWriter.sequence": "a container: it stores the values it is given",
    "bptt.SlotSwapLoader.inputs": "a loader: windows carry the values as they are (the model decides)",
    "bptt.SlotSwapLoader.targets": "a loader: windows carry the values as they are (the cost decides)",
    "bptt.train_bptt.contexts": "a non-finite context reaches the loss, which stops training with "
                                "NonFiniteLossError (a decoder that ignores its context trains on)",
    "mosaic.save_png.array": "documented: NaN is drawn as 0 (black); tile, corrsort and the CLI refuse it before",
}
# a clear error of its own kind where the outcome is not ValueError/TypeError
OWN_ERRORS = {"bptt.train_bptt.targets": ("NonFiniteLossError", "NaN or infinity in contexts or targets")}


def _variants(value) -> dict[str, object]:
    if isinstance(value, np.ndarray) and value.dtype.kind == "f" and value.size:
        one_inf = value.copy()
        one_inf.flat[0] = np.inf
        out = {"all NaN": np.full_like(value, np.nan), "one inf": one_inf,
               "constant": np.full_like(value, value.flat[0]), "empty": value[:0], "one row": value[:1]}
        if value.ndim >= 2:
            out["one column"] = value[:, :1]
        return out
    if isinstance(value, list) and value and all(isinstance(a, np.ndarray) and a.dtype.kind == "f" for a in value):
        one_inf = [a.copy() for a in value]
        one_inf[0].flat[0] = np.inf
        out = {"all NaN": [np.full_like(a, np.nan) for a in value], "one inf": one_inf,
               "constant": [np.full_like(a, a.flat[0]) for a in value], "empty": [], "one row": value[:1]}
        if value[0].ndim >= 2:
            out["one column"] = [a[:, :1] for a in value]
        return out
    return {}


def _finite(result) -> bool:
    if isinstance(result, torch.Tensor):
        return not result.is_floating_point() or bool(torch.isfinite(result).all())
    if isinstance(result, np.ndarray):
        return result.dtype.kind not in "fc" or bool(np.isfinite(result).all())
    if isinstance(result, float):
        return math.isfinite(result)
    if isinstance(result, dict):
        return all(_finite(v) for v in result.values())
    if isinstance(result, (list, tuple)):
        return all(_finite(v) for v in result)
    return True


def _cases() -> list:
    cases = []
    for entry in sorted(fuzz.ENTRIES):
        valid = fuzz.ENTRIES[entry].valid()
        for arg in sorted(valid):
            for kind in _variants(valid[arg]):
                cases.append(pytest.param(entry, arg, kind, id=f"{entry}.{arg}-{kind.replace(' ', '_')}"))
    return cases


@pytest.mark.parametrize("entry, arg, kind", _cases())
def test_degenerate_data_gives_a_result_or_a_clear_error(entry, arg, kind):
    spec = fuzz.ENTRIES[entry]
    kwargs = spec.valid()
    kwargs[arg] = _variants(kwargs[arg])[kind]
    names = (arg,) + (spec.names or {}).get(arg, ())
    try:
        with warnings.catch_warnings(), deadline(60):
            warnings.simplefilter("ignore")
            result = spec.call(**kwargs)
    except CLEAR_ERRORS as exc:
        assert any(n in str(exc) for n in names), f"{type(exc).__name__} does not name {names}: {exc}"
        return
    except Exception as exc:
        own = OWN_ERRORS.get(f"{entry}.{arg}")
        assert own is not None and type(exc).__name__ == own[0] and own[1] in str(exc), \
            f"{type(exc).__name__}: {exc}"
        return
    if kind in NON_FINITE and _finite(result):
        assert f"{entry}.{arg}" in PASS_THROUGH, f"a finite result from {kind} {arg}: NaN hidden"


def test_every_pass_through_is_still_needed():
    """A pass-through listed for an argument the sweep no longer reaches is stale."""
    reached = {f"{c.values[0]}.{c.values[1]}" for c in _cases()}
    assert set(PASS_THROUGH) | set(OWN_ERRORS) <= reached
