"""Run a window's slot blocks on the threads PyTorch allows, with no barrier per step.

Within a window a slot's recurrence reads only its own previous state, so the fused
kernels (:mod:`fastseq.bptt._fused_nb`) take a range of fixed-size slot blocks and run
each block through all K steps. Here the blocks are shared among threads
(``torch.get_num_threads()`` of them, at most one per block), each claiming the next
block as it comes free; the kernels release the GIL, and the call returns when every
block is done. The block size is fixed by the caller, so each block's arithmetic, and
hence the result, is the same whatever the thread count; the count decides only who
runs which block.

The threads are PyTorch's own: where PyTorch runs its operations on OpenMP (its Linux
wheels do), a call opens one parallel region of that same OpenMP runtime from the
calling thread, so it reuses the workers PyTorch's last operation left spinning. A
separate pool of threads would have to wait for those workers to stop spinning (GNU
OpenMP spins for milliseconds after each region): on 2 cores the fused LSTM then ran
no faster on 2 threads than on 1, against 1.4x on PyTorch's workers
(``bench/bptt/compare_batching.py --threads 2``). Where no OpenMP runtime is found (or
``FASTSEQ_SLOT_THREADS=pool``), a persistent pool of Python threads runs the blocks.

Each thread's BLAS runs on one thread (MKL's thread-local setting, see
:mod:`fastseq.bptt._blas_nb`): the per-step products are small, and a second level
of threads would only fight the first.
"""
from __future__ import annotations

import ctypes
import itertools
import os
import queue
import threading
from typing import Callable

import torch

from fastseq.bptt._blas_nb import gemm

__all__ = ["run_blocks", "run_split", "runner", "threads_for"]

_LOCK = threading.Lock()
_WORKERS: list[threading.Thread] = []
_WORKERS_PID = -1
_JOBS: "queue.SimpleQueue[Callable[[], None]]" = queue.SimpleQueue()


def _worker() -> None:
    """A pool thread: pinned to one BLAS thread, then runs jobs until the process ends."""
    gemm().one_thread_here()  # pool threads run nothing but kernels: pinned for good
    while True:
        _JOBS.get()()


def _ensure_workers(workers: int) -> None:
    """At least ``workers`` pool threads in this process (threads do not survive a fork).

    The threads are daemons: they hold nothing between calls (each waits on an empty
    queue), so the interpreter never waits for them at exit. A
    :class:`~concurrent.futures.ThreadPoolExecutor` would join them there, and a process
    whose exit waits on a thread can hang for good.
    """
    global _JOBS, _WORKERS_PID
    with _LOCK:
        if _WORKERS_PID != os.getpid():  # a forked child: the parent's threads are gone
            _WORKERS.clear()
            _JOBS = queue.SimpleQueue()
            _WORKERS_PID = os.getpid()
        while len(_WORKERS) < workers:
            t = threading.Thread(target=_worker, name=f"fastseq-slots_{len(_WORKERS)}", daemon=True)
            t.start()
            _WORKERS.append(t)


_REGION = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_OPENMP: list = []  # [GOMP_parallel or None], found once


def _loaded_openmp() -> str | None:
    """The path of the OpenMP runtime loaded in this process (PyTorch's), if one is."""
    if "OpenMP" not in torch.__config__.parallel_info():
        return None
    try:
        with open("/proc/self/maps") as maps:
            return _openmp_among(maps)
    except OSError:  # not Linux
        return None


def _openmp_among(maps) -> str | None:
    """The OpenMP runtime among the libraries of ``/proc/self/maps`` lines: PyTorch's own
    copy where one is loaded, else the first by path; None if none is."""
    paths = {line.split()[-1] for line in maps if line.rstrip().endswith((".so", ".so.1", ".so.5"))}
    names = ("libgomp", "libiomp5", "libomp")  # each exports GNU OpenMP's GOMP_parallel
    found = sorted(p for p in paths if os.path.basename(p).startswith(names))
    in_torch = [p for p in found if os.sep + "torch" + os.sep in p]
    return (in_torch or found or [None])[0]


def _openmp_parallel():
    """``GOMP_parallel`` of PyTorch's OpenMP runtime, or None (then the Python pool runs)."""
    if not _OPENMP:
        fn = None
        if os.environ.get("FASTSEQ_SLOT_THREADS", "").lower() != "pool":
            path = _loaded_openmp()
            try:
                fn = ctypes.CDLL(path).GOMP_parallel if path else None
            except (OSError, AttributeError):
                fn = None
            if fn is not None:
                fn.argtypes = [_REGION, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
                fn.restype = None
        _OPENMP.append(fn)
    return _OPENMP[0]


def runner() -> str:
    """Which threads run the blocks: ``"openmp"`` (PyTorch's) or ``"pool"`` (fastseq's own)."""
    return "openmp" if _openmp_parallel() is not None else "pool"


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
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for j in iter(claims.__next__, None):
                if j >= n_blocks:
                    return
                task(j, j + 1)
        except BaseException as e:  # re-raised in the calling thread
            errors.append(e)

    parallel = _openmp_parallel()
    if parallel is not None:
        def region(_data) -> None:  # every thread of the region, the caller included (holding the GIL here)
            pinned = g.one_thread_here()
            try:
                work()
            finally:
                g.restore_here(pinned)

        parallel(_REGION(region), None, threads, 0)  # ctypes lets go of the GIL for the call
        if errors:
            raise errors[0]
        return
    done = threading.Semaphore(0)

    def pooled() -> None:
        try:
            work()
        finally:
            done.release()

    _ensure_workers(threads - 1)
    for _ in range(threads - 1):
        _JOBS.put(pooled)
    saved = g.one_thread_here()
    try:
        work()
    finally:
        g.restore_here(saved)
        for _ in range(threads - 1):  # wait for every block, even when one failed
            done.acquire()
    if errors:
        raise errors[0]


def run_blocks(kernel, fn: int, n_blocks: int, block: int, *args) -> None:
    """``kernel(fn, j0, j1, block, *args)`` over the blocks ``0 <= j < n_blocks``, split across threads."""
    run_split(lambda j0, j1: kernel(fn, j0, j1, block, *args), n_blocks)
