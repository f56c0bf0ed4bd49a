"""Shared corner cases and the twin helper.

Corner cases that broke code before live here once, so every domain's tests can ask
for them: length-1 sequences, a single sequence, more slots than sequences, rows that
are all equal, rows with no spread. ``twins`` runs a compiled kernel and its plain
twin on the same input and compares the results.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from fastseq.datasets.mnist import embedded_digits, write_idx

# name -> (lengths, batch_size): the slot-swap schedules that exercise the edges
SCHEDULE_CORNERS: dict[str, tuple[list[int], int]] = {
    "length-1 sequences": ([1, 1, 1, 1, 1], 2),
    "one sequence": ([7], 3),
    "more slots than sequences": ([3, 1, 4], 8),
    "one long among short": ([1, 2, 40, 1, 3, 2], 3),
    "equal lengths": ([5] * 6, 4),
    "no sequences": ([], 2),
}

# name -> N x D rows: the matrices that exercise correlation and sampling edges
ROW_CORNERS: dict[str, np.ndarray] = {
    "all-equal rows": np.ones((6, 5)),
    "zero-variance rows": np.vstack([np.full((3, 5), 2.0), np.arange(15.0).reshape(3, 5)]),
    "one row": np.arange(5.0)[None],
    "identical pair": np.vstack([np.arange(5.0), np.arange(5.0), -np.arange(5.0)]),
    "empty": np.zeros((0, 5)),
}


@pytest.fixture(params=sorted(SCHEDULE_CORNERS))
def schedule_corner(request) -> tuple[list[int], int]:
    """``(lengths, batch_size)`` of one slot-swap corner case."""
    return SCHEDULE_CORNERS[request.param]


@pytest.fixture(params=sorted(ROW_CORNERS))
def row_corner(request) -> np.ndarray:
    """An ``N x D`` float64 corner-case matrix (a fresh copy each time)."""
    return ROW_CORNERS[request.param].copy()


def _assert_equal(a: Any, b: Any, path: str, rtol: float, atol: float) -> None:
    if isinstance(a, dict):
        assert isinstance(b, dict) and sorted(a) == sorted(b), path
        for k in a:
            _assert_equal(a[k], b[k], f"{path}[{k!r}]", rtol, atol)
    elif isinstance(a, (list, tuple)) and not np.isscalar(a):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_equal(x, y, f"{path}[{i}]", rtol, atol)
    else:
        x, y = np.asarray(a), np.asarray(b)
        assert x.shape == y.shape, f"{path}: shape {x.shape} vs {y.shape}"
        if np.issubdtype(x.dtype, np.floating) or np.issubdtype(y.dtype, np.floating):
            np.testing.assert_allclose(x, y, rtol=rtol, atol=atol, err_msg=path)
        else:
            np.testing.assert_array_equal(x, y, err_msg=path)


def assert_twins_agree(kernel: Callable, twin: Callable, *args, rtol: float = 1e-7, atol: float = 0.0,
                       convert: Callable | None = None, **kwargs) -> Any:
    """Run a compiled ``kernel`` and its plain ``twin`` on copies of the same input; they must agree.

    Inputs are copied for each side, so a kernel that writes into its input cannot
    fool the comparison, and the caller's arrays are checked to be unchanged.
    ``convert`` maps each result to something comparable (arrays, lists, dicts of them).
    """
    snapshot = [np.copy(a) if isinstance(a, np.ndarray) else a for a in args]
    copies = lambda: [np.copy(a) if isinstance(a, np.ndarray) else a for a in args]  # noqa: E731
    got, want = kernel(*copies(), **kwargs), twin(*copies(), **kwargs)
    if convert is not None:
        got, want = convert(got), convert(want)
    _assert_equal(got, want, "result", rtol, atol)
    for before, now in zip(snapshot, args):
        if isinstance(now, np.ndarray):
            np.testing.assert_array_equal(before, now, err_msg="an input was modified")
    return got


@pytest.fixture
def twins() -> Callable:
    """The helper that runs a kernel and its twin on the same input (see assert_twins_agree)."""
    return assert_twins_agree


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory):
    """A tiny MNIST folder of real digits: 60 for training, 20 held out (gzipped IDX)."""
    x, y = embedded_digits()
    pick = np.concatenate([np.flatnonzero(y == c)[:8] for c in range(10)])
    images, labels = x[pick], y[pick]
    test = np.arange(pick.size) % 4 == 0
    folder = tmp_path_factory.mktemp("mnist")
    write_idx(folder / "train-images-idx3-ubyte.gz", images[~test])
    write_idx(folder / "train-labels-idx1-ubyte.gz", labels[~test])
    write_idx(folder / "t10k-images-idx3-ubyte.gz", images[test])
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", labels[test])
    return folder


# Seconds the interpreter may take to exit once the session is over. A process whose exit
# waits on a thread never ends; this turns such a hang into a failure that shows where
# every thread stood, instead of a CI run that times out with nothing to read.
EXIT_WATCHDOG_S = 300


def pytest_unconfigure(config) -> None:
    import faulthandler
    import sys

    # Only where pytest is the program: a tool that runs pytest inside its own process
    # (mutmut, an IDE) goes on after the session and must not be ended by the watchdog.
    program = Path(sys.argv[0])
    if program.name not in ("pytest", "py.test") and program.parent.name != "pytest":
        return
    sys.stderr.flush()
    faulthandler.dump_traceback_later(EXIT_WATCHDOG_S, exit=True)


@pytest.fixture
def rng_kept():
    """For tests that set the global torch and NumPy random states (restore, train_bptt):
    puts them back afterwards."""
    import torch

    state, np_state = torch.get_rng_state(), np.random.get_state()
    yield
    torch.set_rng_state(state)
    np.random.set_state(np_state)
