"""The multi-process tests' spawn: a hung worker is killed and named, a worker's error reaches the test."""
import time

import pytest
from _gloo import spawn


def sleeper(rank):
    if rank == 1:
        time.sleep(600)


def failer(rank):
    if rank == 0:
        raise RuntimeError("boom in rank 0")


def test_hung_worker_is_killed_and_named():
    t = time.monotonic()
    # rank 0 may still be starting under load; rank 1 never ends on its own
    with pytest.raises(pytest.fail.Exception, match=r"ranks \[(0, )?1\] of 2 were still running after 10 s; killed"):
        spawn(sleeper, (), 2, timeout=10)
    assert time.monotonic() - t < 40


def test_worker_error_reaches_the_caller():
    with pytest.raises(Exception, match="boom in rank 0"):
        spawn(failer, (), 2, timeout=60)
