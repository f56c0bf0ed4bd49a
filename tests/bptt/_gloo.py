"""Shared by the multi-process tests: leaving a gloo group safely."""
from __future__ import annotations

import torch.distributed as dist


def leave_group() -> None:
    """Leave the group together: a rank that exits while gloo still talks to it can abort
    ("terminate called without an active exception"). Whatever still holds the group (a DDP
    wrapper, a pending work handle) is collected first."""
    import gc

    gc.collect()
    try:
        dist.barrier()
    finally:
        dist.destroy_process_group()


def spawn(fn, args: tuple, nprocs: int, timeout: float = 300.0) -> None:
    """``torch.multiprocessing.spawn(fn, args, nprocs)`` with a deadline: a worker's error
    reaches the caller with its traceback (as spawn reports it), and workers still running
    after ``timeout`` seconds are killed and named, instead of the test waiting for good."""
    import time

    import pytest
    import torch.multiprocessing as mp

    context = mp.spawn(fn, args=args, nprocs=nprocs, join=False)
    deadline = time.monotonic() + timeout
    while not context.join(timeout=max(0.0, min(5.0, deadline - time.monotonic()))):
        if time.monotonic() >= deadline:
            alive = [rank for rank, p in enumerate(context.processes) if p.is_alive()]
            for p in context.processes:
                p.kill()
                p.join()
            pytest.fail(f"ranks {alive} of {nprocs} were still running after {timeout:.0f} s; killed")
