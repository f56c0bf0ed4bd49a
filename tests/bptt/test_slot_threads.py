"""The slot-block runners (PyTorch's OpenMP threads, fastseq's own pool): every block runs once,
errors reach the caller, exit never waits."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest
import torch

from fastseq.bptt import _slot_threads


@pytest.fixture(params=["openmp", "pool"])
def four_threads(request, monkeypatch):
    """Four threads, on each runner in turn."""
    if request.param == "pool":
        monkeypatch.setattr(_slot_threads, "_OPENMP", [None])
    elif _slot_threads.runner() != "openmp":
        pytest.skip("no OpenMP runtime loaded with PyTorch here")
    saved = torch.get_num_threads()
    torch.set_num_threads(4)
    yield request.param
    torch.set_num_threads(saved)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PyTorch's Linux wheels run on OpenMP")
def test_blocks_run_on_pytorchs_openmp_threads_where_it_uses_openmp():
    if "OpenMP" not in torch.__config__.parallel_info():
        pytest.skip("this PyTorch does not run its operations on OpenMP")
    assert _slot_threads.runner() == "openmp"
    names = set()
    lock = threading.Lock()

    def task(j0: int, j1: int) -> None:
        with lock:
            names.add(threading.get_ident())

    saved = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        torch.ones(1 << 20).sum()  # PyTorch's workers exist and are (or were) spinning
        _slot_threads.run_split(lambda j0, j1: task(j0, j1) or time.sleep(0.01), 8)
    finally:
        torch.set_num_threads(saved)
    assert threading.get_ident() in names  # the caller works too
    pool = {t.ident for t in threading.enumerate() if t.name.startswith("fastseq-slots")}
    assert names.isdisjoint(pool)  # no block ran on fastseq's own pool


def test_the_environment_chooses_the_pool():
    code = "from fastseq.bptt import _slot_threads; print(_slot_threads.runner())"
    env = {**os.environ, "FASTSEQ_SLOT_THREADS": "pool"}
    out = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "pool"


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


def test_pool_threads_are_daemons(monkeypatch):
    monkeypatch.setattr(_slot_threads, "_OPENMP", [None])  # only the pool starts threads of its own
    saved = torch.get_num_threads()
    torch.set_num_threads(4)
    try:
        _slot_threads.run_split(lambda j0, j1: None, 8)
    finally:
        torch.set_num_threads(saved)
    pool = [t for t in threading.enumerate() if t.name.startswith("fastseq-slots")]
    assert pool and all(t.daemon for t in pool)


@pytest.mark.parametrize("runner", ["openmp", "pool"])
def test_a_process_that_used_the_runner_exits(runner):
    code = (
        "import torch; torch.set_num_threads(4)\n"
        "from fastseq.bptt import _slot_threads\n"
        "_slot_threads.run_split(lambda j0, j1: None, 8)\n"
        "print('ran')\n"
    )
    env = {**os.environ, "FASTSEQ_SLOT_THREADS": runner}
    out = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ran"


def _maps_line(path: str) -> str:
    return f"7f0000000000-7f0000001000 r-xp 00000000 08:01 1234    {path}\n"


@pytest.mark.parametrize("library", ["libgomp-a34b3233.so.1", "libiomp5.so", "libomp.so.5", "libgomp.so"])
def test_each_openmp_runtime_is_found_among_the_loaded_libraries(library):
    maps = [_maps_line("/usr/lib/libc.so.6"), "7f0000002000-7f0000003000 rw-p 00000000 00:00 0\n",
            _maps_line(f"/opt/lib/{library}"), _maps_line("/opt/lib/libm.so")]
    assert _slot_threads._openmp_among(maps) == f"/opt/lib/{library}"


def test_pytorchs_own_openmp_runtime_is_preferred_and_none_when_absent():
    torch_copy = f"/site/torch{os.sep}lib{os.sep}libgomp-a34b3233.so.1".replace("/", os.sep)
    maps = [_maps_line("/aaa/lib/libiomp5.so"), _maps_line(torch_copy), _maps_line("/zzz/libomp.so")]
    assert _slot_threads._openmp_among(maps) == torch_copy
    # without PyTorch's copy: the first by path, whichever order the maps list them in
    assert _slot_threads._openmp_among([maps[2], maps[0]]) == "/aaa/lib/libiomp5.so"
    assert _slot_threads._openmp_among([maps[0], maps[2]]) == "/aaa/lib/libiomp5.so"
    # a name that only contains a runtime's name, a mapping without a path, a torch folder's other library
    others = [_maps_line("/lib/notlibgomp.so"), "7f0000002000-7f0000003000 rw-p 00000000 00:00 0\n",
              _maps_line(f"{os.sep}torch{os.sep}lib{os.sep}libtorch.so"), _maps_line("/lib/libgomp.so.1.0.0")]
    assert _slot_threads._openmp_among(others) is None
    assert _slot_threads._openmp_among([]) is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_the_loaded_runtime_is_pytorchs_openmp_and_exports_gomp_parallel():
    path = _slot_threads._loaded_openmp()
    if "OpenMP" not in torch.__config__.parallel_info():
        assert path is None
        return
    assert path is not None and os.path.isfile(path)
    assert os.path.basename(path).startswith(("libgomp", "libiomp5", "libomp"))
    import ctypes

    assert ctypes.CDLL(path).GOMP_parallel is not None
    with open("/proc/self/maps") as maps:
        assert path in maps.read()


# ---------------------------------------------------------------- how the runner is chosen (in process)


@pytest.fixture
def fresh_choice(monkeypatch):
    """The runner chosen anew in this process (the choice is made once and kept)."""
    monkeypatch.setattr(_slot_threads, "_OPENMP", [])
    return monkeypatch


@pytest.mark.parametrize("setting", ["pool", "POOL", "Pool"])
def test_the_pool_setting_is_read_in_any_case(fresh_choice, setting):
    fresh_choice.setenv("FASTSEQ_SLOT_THREADS", setting)
    assert _slot_threads._openmp_parallel() is None
    assert _slot_threads.runner() == "pool"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_without_the_setting_pytorchs_openmp_runs_the_blocks(fresh_choice):
    if "OpenMP" not in torch.__config__.parallel_info():
        pytest.skip("this PyTorch does not run its operations on OpenMP")
    fresh_choice.delenv("FASTSEQ_SLOT_THREADS", raising=False)
    assert _slot_threads._openmp_parallel() is not None
    assert _slot_threads.runner() == "openmp"


def test_no_openmp_runtime_found_means_the_pool(fresh_choice):
    fresh_choice.delenv("FASTSEQ_SLOT_THREADS", raising=False)
    fresh_choice.setattr(_slot_threads, "_loaded_openmp", lambda: None)
    assert _slot_threads._openmp_parallel() is None
    assert _slot_threads.runner() == "pool"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a Linux shared library without GOMP_parallel")
def test_a_runtime_without_gomp_parallel_means_the_pool(fresh_choice):
    import ctypes.util

    libm = ctypes.util.find_library("m")
    if libm is None:
        pytest.skip("no libm found")
    fresh_choice.delenv("FASTSEQ_SLOT_THREADS", raising=False)
    fresh_choice.setattr(_slot_threads, "_loaded_openmp", lambda: libm)  # loads, but has no GOMP_parallel
    assert _slot_threads._openmp_parallel() is None
    assert _slot_threads.runner() == "pool"


def test_threads_for_is_the_smaller_of_pytorchs_threads_and_the_blocks():
    saved = torch.get_num_threads()
    try:
        torch.set_num_threads(4)
        assert [_slot_threads.threads_for(n) for n in (0, 1, 2, 3, 4, 9)] == [1, 1, 2, 3, 4, 4]
        torch.set_num_threads(1)
        assert _slot_threads.threads_for(9) == 1
    finally:
        torch.set_num_threads(saved)


@pytest.mark.parametrize("threads", [1, 2, 4])
def test_blocks_run_one_per_call_on_several_threads_and_in_one_call_on_one(four_threads, threads):
    calls: list[tuple[int, int]] = []
    lock = threading.Lock()

    def task(j0: int, j1: int) -> None:
        with lock:
            calls.append((j0, j1))

    torch.set_num_threads(threads)  # the fixture restores the count
    _slot_threads.run_split(task, 6)
    assert sorted(calls) == ([(0, 6)] if threads == 1 else [(j, j + 1) for j in range(6)])


# ---------------------------------------------------------------- MKL's per-thread setting


def _mkl_local():
    from fastseq.bptt._blas_nb import gemm

    local = gemm()._local
    if local is None:
        pytest.skip("the products do not run on MKL here")
    return local


@pytest.mark.parametrize("threads", [1, 2])
def test_the_callers_mkl_setting_is_restored_after_the_call(four_threads, threads):
    local = _mkl_local()
    torch.set_num_threads(threads)
    inside: list[int] = []

    def task(j0: int, j1: int) -> None:
        inside.append(int(local(1)))  # the setting the block ran under (left at 1)

    previous = local(3)
    try:
        _slot_threads.run_split(task, 4)
        assert int(local(3)) == 3  # the caller's own setting is back
    finally:
        local(previous)
    assert len(inside) == (1 if threads == 1 else 4) and set(inside) == {1}  # every block ran pinned to one thread


# ---------------------------------------------------------------- the pool


@pytest.fixture
def fresh_pool(monkeypatch):
    """An empty pool of this process, on the pool runner, with four PyTorch threads."""
    import queue

    monkeypatch.setattr(_slot_threads, "_OPENMP", [None])
    monkeypatch.setattr(_slot_threads, "_WORKERS", [])
    monkeypatch.setattr(_slot_threads, "_JOBS", queue.SimpleQueue())
    monkeypatch.setattr(_slot_threads, "_WORKERS_PID", os.getpid())
    saved = torch.get_num_threads()
    torch.set_num_threads(4)
    yield _slot_threads
    torch.set_num_threads(saved)


def test_the_pool_starts_one_thread_per_block_beyond_the_caller_and_keeps_them(fresh_pool):
    fresh_pool.run_split(lambda j0, j1: None, 3)
    first = list(fresh_pool._WORKERS)
    assert len(first) == 2 and all(t.is_alive() for t in first)
    fresh_pool.run_split(lambda j0, j1: None, 8)
    assert fresh_pool._WORKERS[:2] == first and len(fresh_pool._WORKERS) == 3
    fresh_pool._ensure_workers(3)
    assert len(fresh_pool._WORKERS) == 3  # already there: none started


def test_a_forked_child_starts_its_own_pool(fresh_pool):
    dead = threading.Thread(target=lambda: None)
    dead.start()
    dead.join()
    fresh_pool._WORKERS.extend([dead, dead])  # the parent's threads, gone after a fork
    fresh_pool._WORKERS_PID = -1  # the fixture puts the real value back afterwards
    fresh_pool._ensure_workers(2)
    assert len(fresh_pool._WORKERS) == 2 and all(t.is_alive() for t in fresh_pool._WORKERS)
    assert fresh_pool._WORKERS_PID == os.getpid()
    fresh_pool.run_split(lambda j0, j1: None, 3)  # the new threads serve the new queue


def test_the_pool_call_waits_for_a_slow_pool_thread(fresh_pool):
    torch.set_num_threads(2)  # one pool thread beside the caller
    started, finished = threading.Event(), []
    caller = threading.get_ident()

    def task(j0: int, j1: int) -> None:
        if threading.get_ident() == caller:
            assert started.wait(10)  # the pool thread has its block
        else:
            started.set()
            time.sleep(0.3)
        finished.append(j0)

    fresh_pool.run_split(task, 2)
    assert sorted(finished) == [0, 1]
