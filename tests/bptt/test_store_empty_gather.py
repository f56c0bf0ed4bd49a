"""A gather of no rows, of any shape, on a memory-mapped store that bounds its resident pages."""
from __future__ import annotations

import numpy as np
import pytest

from fastseq.bptt import SequenceStore


@pytest.mark.parametrize("shape", [(0,), (0, 3), (4, 0), (0, 0, 2)])
def test_no_rows_gather_to_an_empty_array_on_a_mapped_store(tmp_path, shape):
    SequenceStore.from_sequences([np.ones((3, 2), np.float32)]).save(tmp_path / "s")
    store = SequenceStore.load(tmp_path / "s", mmap=True, resident_limit=1 << 20)
    assert store.gather(np.zeros(shape, np.int64)).shape == shape + (2,)
    assert store._touched == 0
