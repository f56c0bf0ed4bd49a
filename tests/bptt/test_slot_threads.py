"""The slot-block thread pool: every block runs once, errors reach the caller, exit never waits."""
from __future__ import annotations

import subprocess
import sys
import threading

import pytest
import torch

from fastseq.bptt import _slot_threads


@pytest.fixture
def four_threads():
    saved = torch.get_num_threads()
    torch.set_num_threads(4)
    yield
    torch.set_num_threads(saved)


def test_every_block_runs_once_and_the_call_waits_for_all(four_threads):
    seen: list[int] = []
    lock = threading.Lock()

    def task(j0: int, j1: int) -> None:
        with lock:
            seen.extend(range(j0, j1))

    for n in (1, 2, 3, 17):
        seen.clear()
        _slot_threads.run_split(task, n)
        assert sorted(seen) == list(range(n))


def test_a_failing_block_raises_in_the_caller_after_the_others_finish(four_threads):
    finished: list[int] = []

    def task(j0: int, j1: int) -> None:
        if j0 == 5:
            raise ValueError("block 5")
        finished.append(j0)

    with pytest.raises(ValueError, match="block 5"):
        _slot_threads.run_split(task, 12)
    assert len(finished) == 11  # every other block ran before the error came back
    _slot_threads.run_split(lambda j0, j1: None, 12)  # and the pool still works


def test_pool_threads_are_daemons(four_threads):
    _slot_threads.run_split(lambda j0, j1: None, 8)
    pool = [t for t in threading.enumerate() if t.name.startswith("fastseq-slots")]
    assert pool and all(t.daemon for t in pool)


def test_a_process_that_used_the_pool_exits():
    code = (
        "import torch; torch.set_num_threads(4)\n"
        "from fastseq.bptt import _slot_threads\n"
        "_slot_threads.run_split(lambda j0, j1: None, 8)\n"
        "print('ran')\n"
    )
    out = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ran"
