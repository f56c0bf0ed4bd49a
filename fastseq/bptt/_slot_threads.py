"""Run a window's slot blocks on the threads PyTorch allows, with no barrier per step.

Within a window a slot's recurrence reads only its own previous state, so the fused
kernels (:mod:`fastseq.bptt._fused_nb`) take a range of fixed-size slot blocks and run
each block through all K steps. Here the blocks are shared among threads
(``torch.get_num_threads()`` of them, at most one per block), each claiming the next
block as it comes free: the calling thread works beside a persistent pool, the kernels
release the GIL, and the call returns when every block is done. The block size is
fixed by the caller, so each block's arithmetic, and hence the result, is the same
whatever the thread count; the count decides only who runs which block.

Each thread's BLAS runs on one thread (MKL's thread-local setting, see
:mod:`fastseq.bptt._blas_nb`): the per-step products are small, and a second level
of threads would only fight the first.
"""
from __future__ import annotations

import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import torch

from fastseq.bptt._blas_nb import gemm

__all__ = ["run_blocks", "run_split", "threads_for"]

_LOCK = threading.Lock()
_POOL: ThreadPoolExecutor | None = None
_POOL_SIZE = 0
_POOL_PID = -1


def _one_blas_thread() -> None:
    gemm().one_thread_here()  # pool threads run nothing but kernels: pinned for good


def _pool(workers: int) -> ThreadPoolExecutor:
    """The pool with at least ``workers`` threads; a new one after a fork (threads do not survive it)."""
    global _POOL, _POOL_SIZE, _POOL_PID
    with _LOCK:
        if _POOL is None or _POOL_SIZE < workers or _POOL_PID != os.getpid():
            if _POOL is not None and _POOL_PID == os.getpid():
                _POOL.shutdown(wait=True)
            _POOL = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fastseq-slots",
                                       initializer=_one_blas_thread)
            _POOL_SIZE, _POOL_PID = workers, os.getpid()
        return _POOL


def threads_for(n_blocks: int) -> int:
    """How many threads ``n_blocks`` independent blocks run on."""
    return max(1, min(torch.get_num_threads(), n_blocks))


def run_split(task, n_blocks: int) -> None:
    """``task(j, j + 1)`` for every block ``0 <= j < n_blocks``, on up to one thread per block;
    the calling thread works too. Returns when every block is done.

    Threads claim the next block as they come free rather than a fixed share: a pool thread
    that cannot get a core at once (PyTorch's OpenMP workers spin on it for a few
    milliseconds after each parallel operation) then leaves its blocks to the others instead
    of holding up the whole call, so a call is never much slower than on one thread.
    """
    threads = threads_for(n_blocks)
    g = gemm()
    if threads == 1:
        saved = g.one_thread_here()
        try:
            task(0, n_blocks)
        finally:
            g.restore_here(saved)
        return
    claims = itertools.count()  # next() on a count is atomic under the GIL

    def work() -> None:
        for j in iter(claims.__next__, None):
            if j >= n_blocks:
                return
            task(j, j + 1)

    pool = _pool(threads - 1)
    futures = [pool.submit(work) for _ in range(threads - 1)]
    saved = g.one_thread_here()
    try:
        work()
    finally:
        g.restore_here(saved)
        for f in futures:  # wait for every block, even when one failed
            f.exception()
    for f in futures:
        f.result()


def run_blocks(kernel, fn: int, n_blocks: int, block: int, *args) -> None:
    """``kernel(fn, j0, j1, block, *args)`` over the blocks ``0 <= j < n_blocks``, split across threads."""
    run_split(lambda j0, j1: kernel(fn, j0, j1, block, *args), n_blocks)
