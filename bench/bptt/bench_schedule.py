"""pytest-benchmark: native scheduler and gather vs their NumPy peers and the Python twin.

Tiny sizes so CI runs them; each checks that the contenders agree before timing.
"""

import numpy as np
import pytest

from _schedule_numpy import numpy_gather_into, numpy_schedule

from fastseq.bptt.schedule import SlotSchedule
from fastseq.bptt.store import gather_rows, gather_rows_reference

LENGTHS = np.maximum(1, np.random.default_rng(0).lognormal(3.0, 1.0, 2000)).astype(np.int64)


def epoch(impl):
    if impl == "numpy":
        return sum(int(valid.sum()) for _, _, _, valid, _ in numpy_schedule(LENGTHS, 64, 32))
    return sum(w.real_steps for w in SlotSchedule(LENGTHS, 64, 32, backend=impl))


def test_numpy_schedule_equals_native():
    native = list(SlotSchedule(LENGTHS, 64, 32))
    peer = list(numpy_schedule(LENGTHS, 64, 32))
    assert len(native) == len(peer)
    for w, fields in zip(native, peer):
        for name, value in zip(("rows", "sequence", "reset", "valid", "end"), fields):
            np.testing.assert_array_equal(getattr(w, name), value, err_msg=name)


@pytest.mark.parametrize("impl", ["native", "numpy", "python"])
def test_schedule_epoch(benchmark, impl):
    assert benchmark(epoch, impl) == LENGTHS.sum()


@pytest.fixture(scope="module")
def window():
    rng = np.random.default_rng(1)
    data = rng.standard_normal((20_000, 32)).astype(np.float32)
    rows = rng.integers(0, 20_000, (32, 64))
    rows[rng.random(rows.shape) < 1 / 64] = -1
    return data, rows


def test_gather_native(benchmark, window):
    data, rows = window
    out = np.empty(rows.shape + (32,), np.float32)
    benchmark(gather_rows, data, rows, out)
    np.testing.assert_array_equal(out, gather_rows_reference(data, rows))


def test_gather_numpy_take_into_reused_buffer(benchmark, window):
    data, rows = window
    out = np.empty(rows.shape + (32,), np.float32)
    benchmark(numpy_gather_into, data, rows, out, np.empty(rows.shape, np.int64), np.empty(rows.shape, bool))
    np.testing.assert_array_equal(out, gather_rows_reference(data, rows))
