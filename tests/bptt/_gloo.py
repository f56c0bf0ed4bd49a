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
