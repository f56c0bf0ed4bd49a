"""The slot-block runners (PyTorch's OpenMP threads, fastseq's own pool): every block runs once,
errors reach the caller, exit never waits."""
from __future__ import annotations

import os
import subprocess
import sys
import threading

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
        _slot_threads.run_split(lambda j0, j1: task(j0, j1) or __import__("time").sleep(0.01), 8)
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
