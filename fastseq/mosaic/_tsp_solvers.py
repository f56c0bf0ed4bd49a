"""Installed TSP solvers for :func:`fastseq.mosaic.corrsort`'s refinement (fast-tsp, LKH).

Both solve closed tours over integer distances; corrsort wants the shortest open path
over ``1 - r``. The distances are scaled so the largest becomes 65,535 (fast-tsp reads
unsigned 16-bit integers; a step is ``max(1 - r) / 65535``, about 3e-5 for distances up
to 2), and one extra row and column at distance 0 from every row is added. A tour through
that dummy row, cut there, is an open path of exactly the tour's length, so the shortest
tour is the shortest open path. Cutting a plain tour at its longest edge is not exact: the
best open path need not lie on the best closed tour. On 450 RBM filters
(``bench/mosaic/compare_tsp.py``, a loaded machine) the two were within noise at 0.1-0.43 s,
and at 1-2 s the cut tours stayed 0.03-0.04% above the best path where the dummy row's
reached 0.006-0.014%.

fast-tsp takes no starting path and optimises the rounded distances, so its path is kept
only when it is shorter than the start in the float distances: never worse.
"""
from __future__ import annotations

import importlib
from types import ModuleType

import numpy as np

SOLVERS = ("auto", "fast-tsp", "lkh", "builtin")
INT_LIMIT = 65_535  # largest distance fast-tsp accepts (uint16)
MIN_SECONDS = 0.005  # fast-tsp refuses 0 s, and in 1 ms on 450 rows it often finds nothing shorter than greedy
# solver -> (module, pip name, a word on the package)
PACKAGES = {
    "fast-tsp": ("fast_tsp", "fast-tsp", "MIT; or `pip install fastseq[tsp]`"),
    "lkh": ("elkai", "elkai", "LKH, whose licence allows non-commercial use only"),
}


def resolve(solver: str, rows_mode: bool) -> tuple[str, ModuleType | None, str]:
    """``(name, module, why)``: which solver runs, its imported package, and a note for the log.

    ``"auto"`` takes fast-tsp when it imports and the ``N x N`` matrix is built (rows
    mode exists to avoid O(N^2) memory, which fast-tsp's own matrix would need), else the
    built-in search. A solver asked for by name that is not installed is an ImportError
    saying how to install it. ``solver`` is one of :data:`SOLVERS` (checked by the caller).
    """
    if solver == "builtin":
        return "builtin", None, ""
    if solver == "auto":
        if rows_mode:
            return "builtin", None, " (rows mode: fast-tsp would need an N x N matrix)"
        module = _import("fast-tsp")
        if module is None:
            return "builtin", None, " (fast-tsp is not installed: pip install fast-tsp)"
        return "fast-tsp", module, ""
    module = _import(solver)
    if module is None:
        mod, pip_name, note = PACKAGES[solver]
        raise ImportError(f"Expected the {pip_name} package for solver={solver!r}, but {mod!r} cannot be "
                          f"imported; install it with `pip install {pip_name}` ({note}), or pass "
                          "solver='builtin' or solver='auto'.")
    return solver, module, ""


def _import(solver: str) -> ModuleType | None:
    try:
        return importlib.import_module(PACKAGES[solver][0])
    except ImportError:
        return None


def integer_distances(c: np.ndarray, z: np.ndarray, block_bytes: int) -> np.ndarray | None:
    """``(N + 1) x (N + 1)`` uint16 distances with the dummy row last, or None if all are ~0.

    Works from the correlation matrix ``c``, or from the standardized rows ``z`` block by
    block when ``c`` is ``0 x 0`` (rows mode); symmetric with a zero diagonal either way.
    """
    n = z.shape[0]
    block = max(1, min(n, block_bytes // max(1, n * z.itemsize)))

    def corr(r0: int) -> np.ndarray:
        return c[r0 : r0 + block] if c.size else z[r0 : r0 + block] @ z.T

    lowest = min(float(corr(r0).min()) for r0 in range(0, n, block)) if c.size == 0 else float(c.min())
    longest = 1.0 - lowest
    if not longest > 64 * np.finfo(z.dtype).eps:  # rows alike up to rounding: nothing to order
        return None
    scale = INT_LIMIT / longest
    m = np.zeros((n + 1, n + 1), dtype=np.uint16)
    for r0 in range(0, n, block):
        d = (1.0 - corr(r0).astype(np.float64)) * scale
        m[r0 : min(r0 + block, n), :n] = np.rint(np.clip(d, 0.0, INT_LIMIT))  # never into the dummy row
    np.fill_diagonal(m, 0)
    np.minimum(m, m.T, out=m)  # a matrix product need not be exactly symmetric
    return m


def tour_to_path(tour, dummy: int) -> np.ndarray:
    """The open path a tour through the ``dummy`` row makes when cut there."""
    tour = np.asarray(tour, dtype=np.intp)
    k = int(np.flatnonzero(tour == dummy)[0])
    return np.concatenate([tour[k + 1 :], tour[:k]])


def solve(name: str, module: ModuleType, m: np.ndarray, seconds: float) -> np.ndarray:
    """Shortest tour over ``m`` found by fast-tsp in ``seconds``, or by one LKH run."""
    if name == "fast-tsp":
        tour = module.find_tour(m, duration_seconds=max(float(seconds), MIN_SECONDS))
    else:  # LKH has no time limit in elkai's API: one run (RUNS = 1) to completion
        tour = module.DistanceMatrix(m.tolist()).solve_tsp(runs=1)[:-1]  # it repeats the start
    return tour_to_path(tour, m.shape[0] - 1)


def version(module: ModuleType | None) -> str:
    """`` <version>`` of the solver's package for the log line ("" when unknown)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return "" if module is None else " " + dist_version(module.__name__)
    except PackageNotFoundError:
        return ""
