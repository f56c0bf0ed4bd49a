"""pytest-benchmark: the native scheduler and gather vs their twins (tiny sizes in CI)."""
import numpy as np
import pytest

from fastseq.bptt.schedule import SlotSchedule
from fastseq.bptt.store import gather_rows, gather_rows_reference

LENGTHS = np.maximum(1, np.random.default_rng(0).lognormal(3.0, 1.0, 2000)).astype(np.int64)


def epoch(backend):
    return sum(w.real_steps for w in SlotSchedule(LENGTHS, 64, 32, compact=True, backend=backend))


@pytest.mark.parametrize("backend", ["native", "python"])
def test_schedule_epoch(benchmark, backend):
    assert benchmark(epoch, backend) == LENGTHS.sum()


@pytest.mark.parametrize("impl", [gather_rows, gather_rows_reference], ids=["native", "numpy"])
def test_gather_window(benchmark, impl):
    data = np.random.default_rng(1).standard_normal((20_000, 32)).astype(np.float32)
    rows = np.random.default_rng(2).integers(-1, 20_000, (32, 64))
    got = benchmark(impl, data, rows)
    np.testing.assert_array_equal(got, gather_rows_reference(data, rows))
