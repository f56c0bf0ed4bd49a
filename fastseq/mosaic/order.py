"""Order tiles so that neighbours are highly correlated, and cut the order into clusters.

Ordering is an open travelling-salesman path with distance ``1 - r`` between rows
(Pearson correlation ``r``). :func:`corrsort` builds it greedily in O(N^2) and can
refine it under a time budget, with fast-tsp when it is installed, else with its own
2-opt and Or-opt moves (iterated local search);
:func:`split_clusters` cuts the ordered line into runs of similar tiles, and
:func:`cluster_layout` lays those out like words with :func:`fastseq.mosaic.paragraph_layout`.

Correlation rule: a row with no spread (constant) has correlation 0 with every row,
itself included. NaN or infinite values are refused (a ValueError naming the first one):
they have no correlation, and quietly replacing them would give an order of nothing.
"""
from __future__ import annotations

import logging
import numbers
import time
from typing import Literal

import numpy as np

from fastseq.mosaic import _order_nb, _tsp_solvers
from fastseq._util.memory import check_fits
from fastseq._util.validate import finite_float, one_of, positive_int, real_array, refuse_non_finite
from fastseq.mosaic.layout import MosaicLayout, paragraph_layout

__all__ = [
    "corrsort", "adjacent_correlations", "path_correlation", "split_clusters", "cluster_layout",
]

Method = Literal["greedy", "tsp"]
Solver = Literal["auto", "fast-tsp", "lkh", "builtin"]
MATRIX_LIMIT = 12_000  # above this many tiles the N x N float32 matrix (> 576 MB) is not built
BLOCK_BYTES = 64 << 20  # memory for one block of correlation rows in rows mode
_log = logging.getLogger("fastseq.mosaic")


def standardize(features, dtype=np.float32) -> np.ndarray:
    """``N x D`` rows with zero mean and unit norm (all zero for a row with no spread).

    NaN or infinity anywhere in ``features`` is a ValueError.

    The dot product of two standardized rows is their Pearson correlation. Any
    trailing shape of ``features`` (``N x *``) is flattened; the input is not modified.
    """
    x = real_array("features", features, allow_empty=True)
    if x.ndim < 1:
        raise ValueError(f"Expected features to be N x *, got a scalar of shape {x.shape}.")
    if x.dtype == np.bool_:
        x = x.astype(np.float64)
    if not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
        raise TypeError(f"Expected features to hold real numbers, got dtype {x.dtype}.")
    refuse_non_finite("features", x)
    x = x.reshape(x.shape[0], int(np.prod(x.shape[1:]))).astype(np.float64)  # always a copy
    if x.shape[1]:
        # each row times a power of two (exact) to a largest |value| in [0.5, 1): the sums and
        # squares below neither overflow (1e200) nor underflow (1e-200), and the result is unchanged
        _, exponent = np.frexp(np.max(np.abs(x), axis=1))
        x = np.ldexp(x, -exponent[:, None])
    x -= x.mean(axis=1, keepdims=True) if x.shape[1] else 0.0
    norms = np.sqrt(np.einsum("ij,ij->i", x, x))
    scale = np.max(np.abs(x), axis=1) if x.shape[1] else np.zeros(x.shape[0])
    flat = ~(norms > 1e-12 * np.maximum(scale, 1e-300) * np.sqrt(max(x.shape[1], 1)))
    x /= np.where(flat, 1.0, norms)[:, None]
    x[flat] = 0.0
    return np.ascontiguousarray(x, dtype=dtype)


def corrsort(
    features,
    method: Method = "greedy",
    *,
    rows: bool | None = None,
    time_budget: float | None = None,
    neighbours: int = 10,
    seed: int | None = 0,
    dtype=np.float32,
    progress: bool = False,
    solver: Solver = "auto",
) -> np.ndarray:
    """Return a permutation of the N rows that puts correlated rows next to each other.

    Args:
        features: ``N x *`` array of finite numbers (each row flattened), for example
            ``N x D`` weights; NaN or infinity is a ValueError naming the first one.
            A constant row correlates 0 with every row.
        method: ``"greedy"``: start from the most correlated pair and repeatedly add,
            at whichever end gains more, the unused row most correlated with that end
            (O(N^2)). ``"tsp"``: the greedy path refined by ``solver`` within
            ``time_budget``; never worse than greedy.
        rows: build only neighbour lists, block by block, instead of the ``N x N``
            matrix (memory O(N x (D + K)) instead of O(N^2); same greedy order up to
            float rounding). Default: only when N > 12,000.
        time_budget: seconds for the refinement of ``"tsp"``; default
            ``min(10, 0.25 + 0.0004 * N)``. The greedy start and neighbour lists come first.
        neighbours: K, candidates per row for rows mode and for the built-in moves.
        seed: seed of the built-in search's random kicks (fast-tsp takes none).
        dtype: float type of the correlations (float32 halves memory; float64 for
            exact ties).
        progress: show a tqdm bar for the refinement (fast-tsp and LKH fill it when
            they return).
        solver: the refinement of ``"tsp"``; the one that ran is logged at INFO level
            on the ``"fastseq.mosaic"`` logger.

            - ``"auto"`` (default): ``"fast-tsp"`` when the fast-tsp package is installed
              (``pip install fastseq[tsp]``) and the matrix is built, else ``"builtin"``.
            - ``"fast-tsp"``: fast-tsp's local search on distances rounded to 16-bit
              integers, over a dummy row at distance 0 from all (so its shortest tour is
              the shortest open path), for the whole budget on one thread. Its path is
              kept only if shorter than greedy's. It takes no seed: beyond 19 rows the
              result depends on how far it got in the time, so it may differ between
              runs. In rows mode it builds an ``(N + 1) x (N + 1)`` uint16 matrix
              (2 bytes per pair).
            - ``"lkh"``: one run of LKH through the elkai package (non-commercial licence),
              to completion: it ignores ``time_budget`` (about 1 s for 450 rows, growing
              faster than N^2) and is deterministic.
            - ``"builtin"``: 2-opt and Or-opt moves on ``neighbours`` nearest rows, then
              iterated local search until the budget runs out; needs nothing else
              installed.

            A solver named but not installed is an ImportError saying how to install it;
            the value is checked for either method, used only by ``"tsp"``.

    Returns:
        ``N`` int64 row indices in path order, read from the end with the smaller index.

    Example:
        >>> import numpy as np
        >>> t = np.linspace(0, 3, 20)
        >>> rows = np.stack([np.sin(t + s) for s in [0.0, 2.0, 0.5, 1.5, 1.0]])
        >>> corrsort(rows).tolist()
        [0, 2, 4, 3, 1]
    """
    one_of("method", method, ("greedy", "tsp"))
    one_of("solver", solver, _tsp_solvers.SOLVERS)
    neighbours = positive_int("neighbours", neighbours)
    if np.dtype(dtype) not in (np.float32, np.float64):
        raise ValueError(f"Expected dtype to be float32 or float64, got {np.dtype(dtype)}.")
    if time_budget is not None and not (isinstance(time_budget, numbers.Real) and time_budget >= 0):
        raise ValueError(f"Expected time_budget to be None or >= 0 seconds, got {time_budget!r}.")
    z = standardize(features, dtype)
    n = z.shape[0]
    use_rows = n > MATRIX_LIMIT if rows is None else bool(rows)
    if method == "tsp":  # a solver asked for but not installed fails at once, whatever N
        name, module, why = _tsp_solvers.resolve(solver, use_rows)
    if n <= 2:
        return np.arange(n, dtype=np.int64)
    k = min(neighbours, n - 1)
    if use_rows:
        c = np.zeros((0, 0), dtype=z.dtype)
        nbr, nsim, first, second = neighbour_lists(z, k)
    else:
        c = correlation_matrix(z)
        first, second = most_correlated_pair(c)
        nbr = nsim = np.zeros((0, 1), dtype=np.intp)
    path = _order_nb.greedy_chain(c, z, nbr, nsim.astype(z.dtype), first, second)
    if method == "tsp":
        budget = min(10.0, 0.25 + 0.0004 * n) if time_budget is None else float(time_budget)
        t0 = time.perf_counter()
        start = path
        if name == "builtin":
            if not use_rows:
                nbr = _matrix_neighbours(c, k)
            path = _refine_for(path, c, z, nbr, budget, seed, progress)
        else:
            path = _solve_for(name, module, path, c, z, budget, progress)
        if _log.isEnabledFor(logging.INFO):
            kept = " (kept the greedy path: no shorter one found)" if path is start else ""
            _log.info("corrsort: %s%s refined %d rows in %.3f s (budget %.3f s), path length %.4f -> %.4f%s%s",
                      name, _tsp_solvers.version(module), n, time.perf_counter() - t0, budget,
                      _order_nb.path_length(start, c, z), _order_nb.path_length(path, c, z), why, kept)
    if path[0] > path[-1]:  # one canonical direction: the smaller end index first
        path = path[::-1]
    return path.astype(np.int64)


def adjacent_correlations(features, order) -> np.ndarray:
    """Correlations of consecutive rows in ``order``: ``N - 1`` values (float64).

    >>> import numpy as np
    >>> adjacent_correlations(np.array([[1, 2, 3], [3, 2, 1], [2, 4, 6]]), [0, 2, 1]).round(6).tolist()
    [1.0, -1.0]
    """
    z = standardize(features, np.float64)
    order = _permutation(order, z.shape[0])
    return np.einsum("ij,ij->i", z[order[:-1]], z[order[1:]])


def path_correlation(features, order) -> float:
    """Sum of the correlations of consecutive rows in ``order`` (higher is better).

    The path length used in benchmarks is ``(N - 1) - path_correlation``, the sum of
    ``1 - r``.
    """
    return float(adjacent_correlations(features, order).sum())


def split_clusters(features, order, penalty: float = 1.0, max_size: int | None = None) -> list[np.ndarray]:
    """Cut the ordered rows into runs of similar rows (optimal, by dynamic programming).

    Minimizes, over all ways to cut ``order`` into consecutive runs, the sum of each
    run's scatter ``sum ||z_i - mean(z)||^2`` (``z`` standardized rows, so a run of L
    rows scatters between 0 and L) plus ``penalty`` per run. A larger penalty gives
    fewer, larger clusters; ``penalty=0`` makes every row its own cluster.

    Args:
        features: ``N x *`` array.
        order: permutation of ``range(N)`` (for example from :func:`corrsort`).
        penalty: cost of one more cluster, >= 0, in units of scatter.
        max_size: longest run considered (default ``min(N, 64)``); the work is
            O(N x max_size x D).

    Returns:
        The clusters in order, each an int64 array of row indices.

    Example:
        >>> import numpy as np
        >>> t = np.linspace(0, 3, 20)
        >>> rows = np.stack([np.sin(t), np.sin(t + 0.1), -t, -t ** 2])
        >>> [c.tolist() for c in split_clusters(rows, [0, 1, 2, 3], penalty=0.5)]
        [[0, 1], [2, 3]]
    """
    z = standardize(features, np.float64)
    n = z.shape[0]
    order = _permutation(order, n)
    penalty = finite_float("penalty", penalty, 0.0)
    # a cluster never holds more than all n rows: larger bounds change nothing
    max_size = min(n, 64) if max_size is None else min(positive_int("max_size", max_size), max(n, 1))
    if n == 0:
        return []
    cuts = _order_nb.segment(order.astype(np.intp), np.zeros((0, 0)), z, float(penalty), max_size)
    return [order[a:b].copy() for a, b in zip(cuts, list(cuts[1:]) + [n])]


def cluster_layout(
    features,
    width: int | None = None,
    method: Method = "tsp",
    penalty: float = 1.0,
    **corrsort_options,
) -> MosaicLayout:
    """Order rows with :func:`corrsort`, cut clusters, and lay them out like words.

    Args:
        features: ``N x *`` array.
        width: tiles per line; default ``ceil(sqrt(1.2 * N))`` (room for the blanks).
        method, corrsort_options: passed to :func:`corrsort`.
        penalty: passed to :func:`split_clusters`; each cluster holds at most
            ``width`` rows.

    Returns:
        A :class:`~fastseq.mosaic.layout.MosaicLayout` for :func:`fastseq.tile`.

    Example:
        >>> import numpy as np
        >>> lay = cluster_layout(np.random.default_rng(0).normal(size=(30, 16)), width=8)
        >>> sorted(lay.cells[lay.cells >= 0].tolist()) == list(range(30))
        True
    """
    order = corrsort(features, method, **corrsort_options)
    n = order.size
    if n == 0:
        raise ValueError("Expected features to have at least one row to lay out, got none.")
    width = max(1, int(np.ceil(np.sqrt(1.2 * n)))) if width is None else positive_int("width", width)
    clusters = split_clusters(features, order, penalty=penalty, max_size=width)
    return paragraph_layout(clusters, width)


# ---------------------------------------------------------------------------- helpers


def correlation_matrix(z: np.ndarray) -> np.ndarray:
    """``N x N`` correlations of standardized rows (one matrix product)."""
    return z @ z.T


def most_correlated_pair(c: np.ndarray) -> tuple[int, int]:
    """``(i, j)``, the first off-diagonal maximum of ``c`` in row-major order."""
    diag = c.diagonal().copy()
    np.fill_diagonal(c, -np.inf)
    i, j = divmod(int(np.argmax(c)), c.shape[0])
    np.fill_diagonal(c, diag)
    return i, j


def neighbour_lists(z: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Each row's K most correlated other rows, block by block, and the most correlated pair.

    Returns ``nbr`` (``N x K`` intp, by decreasing correlation, lowest index first on
    ties), their correlations, and the pair as :func:`most_correlated_pair` finds it. Needs
    N >= 2 rows (with fewer the pair is a placeholder (0, 1); corrsort returns before).
    """
    n = z.shape[0]
    block = max(1, min(n, BLOCK_BYTES // max(1, n * z.itemsize)))
    nbr = np.empty((n, k), dtype=np.intp)
    nsim = np.empty((n, k), dtype=z.dtype)
    best, pair = -np.inf, (0, 1)
    for r0 in range(0, n, block):
        s = z[r0 : r0 + block] @ z.T
        rows = np.arange(s.shape[0])
        s[rows, r0 + rows] = -np.inf
        flat = int(np.argmax(s))
        if s.flat[flat] > best:
            best, pair = s.flat[flat], (r0 + flat // n, flat % n)
        nbr[r0 : r0 + block], nsim[r0 : r0 + block] = _order_nb.top_k_rows(s, k, r0)
    return nbr, nsim, pair[0], pair[1]


def _matrix_neighbours(c: np.ndarray, k: int) -> np.ndarray:
    return _order_nb.top_k_rows(c, k, 0)[0]


def _solve_for(name: str, module, path, c, z, budget: float, progress: bool) -> np.ndarray:
    """An installed solver's path within ``budget`` seconds, or ``path`` if not shorter."""
    from fastseq._util.progress import progress_bar

    n = z.shape[0] + 1  # the rows and the dummy row that turns the tour into a path
    # fast-tsp reads an n x n uint16 matrix; elkai (LKH) takes it as a list of Python ints
    per_entry = 2.0 if name == "fast-tsp" else 2.0 + 36.0
    check_fits(f"corrsort(solver={name!r}) on {n - 1} rows (its {n} x {n} distance matrix)", per_entry * n * n)
    t0 = time.perf_counter()
    with progress_bar(progress, total=round(budget, 2), unit="s", desc=f"corrsort {name}") as bar:
        m = _tsp_solvers.integer_distances(c, z, BLOCK_BYTES)
        if m is None:  # rows alike up to rounding: every path has length ~0
            return path
        found = _tsp_solvers.solve(name, module, m, budget - (time.perf_counter() - t0))
        bar.n = round(min(budget, time.perf_counter() - t0), 2)  # the bar ends at its total
        bar.refresh()
    # the solver saw rounded distances: its path counts only if shorter in the real ones
    if _order_nb.path_length(found, c, z) < _order_nb.path_length(path, c, z) - _order_nb.EPS:
        return found
    return path


def _refine_for(path, c, z, nbr, budget: float, seed, progress: bool) -> np.ndarray:
    """Local search, then rounds of kicks until ``budget`` seconds have passed."""
    from fastseq._util.progress import progress_bar

    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    path, _ = _order_nb.refine(path, c, z, nbr, 0, rng)
    kicks = 64
    with progress_bar(progress, total=round(budget, 2), unit="s", desc="corrsort tsp") as bar:
        while time.perf_counter() - t0 < budget:
            t1 = time.perf_counter()
            path, _ = _order_nb.refine(path, c, z, nbr, kicks, rng, False)
            took = time.perf_counter() - t1
            bar.n = round(min(budget, time.perf_counter() - t0), 2)
            bar.refresh()
            # rounds of about 20 ms keep the budget honest without much call overhead
            kicks = int(np.clip(kicks * 0.02 / max(took, 1e-4), 8, 1 << 16))
    return path


def _permutation(order, n: int) -> np.ndarray:
    arr = real_array("order", order, allow_empty=True)
    if arr.ndim != 1 or arr.size != n:
        raise ValueError(f"Expected order to be a permutation of range({n}), got shape {arr.shape}.")
    if n and not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"Expected order to hold integer row indices, got dtype {arr.dtype}.")
    arr = arr.astype(np.int64)
    if n and not np.array_equal(np.sort(arr), np.arange(n)):
        raise ValueError(f"Expected order to be a permutation of range({n}), got repeats or values out of range.")
    return arr
