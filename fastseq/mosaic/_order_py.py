"""Plain Python twins of the ordering kernels in :mod:`fastseq.mosaic._order_nb`, for tests.

Written for clarity, not speed: every loop is spelled out.
"""
from __future__ import annotations

import numpy as np

TIE = 1e-9  # the kernel's EPS: cost differences below this are float noise


def most_correlated_pair(c: np.ndarray) -> tuple[int, int]:
    """First off-diagonal maximum of ``c`` in row-major order."""
    n = c.shape[0]
    best, pair = -np.inf, (0, 1)
    for i in range(n):
        for j in range(n):
            if i != j and c[i, j] > best:
                best, pair = c[i, j], (i, j)
    return pair


def greedy_chain(c: np.ndarray, first: int, second: int) -> list[int]:
    """Grow a chain from (first, second): add at the end whose best unused tile is more
    correlated (the right end on ties), the lowest index among equally good tiles."""
    n = c.shape[0]
    chain = [first, second]
    used = {first, second}

    def best_for(end):
        best, val = -1, -np.inf
        for k in range(n):
            if k not in used and c[end, k] > val:
                best, val = k, c[end, k]
        return best, val

    while len(chain) < n:
        left, vleft = best_for(chain[0])
        right, vright = best_for(chain[-1])
        if vright >= vleft:
            chain.append(right)
            used.add(right)
        else:
            chain.insert(0, left)
            used.add(left)
    return chain


def top_k_rows(s: np.ndarray, k: int, offset: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the k largest columns other than ``offset + row``, by (value desc, index asc)."""
    idx, val = [], []
    for r, row in enumerate(s):
        cols = sorted((j for j in range(len(row)) if j != offset + r), key=lambda j: (-row[j], j))[:k]
        idx.append(cols)
        val.append([row[j] for j in cols])
    return np.array(idx, dtype=np.intp).reshape(len(s), k), np.array(val).reshape(len(s), k)


def path_length(path, c: np.ndarray) -> float:
    """Sum of ``1 - c[a, b]`` over consecutive tiles."""
    return float(sum(1.0 - c[path[k], path[k + 1]] for k in range(len(path) - 1)))


def best_2opt_gain(path, c: np.ndarray) -> float:
    """Largest decrease of path length from reversing any one stretch of the path."""
    n = len(path)
    base = path_length(path, c)
    best = 0.0
    for i in range(n):
        for j in range(i + 1, n):
            trial = path[:i] + path[i : j + 1][::-1] + path[j + 1 :]
            best = max(best, base - path_length(trial, c))
    return best


def brute_force_length(c: np.ndarray) -> float:
    """Length of the shortest open path, by trying every order (small N only)."""
    from itertools import permutations

    n = c.shape[0]
    if n < 2:
        return 0.0
    return min(path_length(list(p), c) for p in permutations(range(n)) if p[0] < p[-1])


def segment(z: np.ndarray, order, penalty: float, max_size: int) -> list[int]:
    """Optimal cut of ``order`` into runs: minimum sum of scatter plus penalty per run.

    Scatter of a run: sum of squared distances of its rows of ``z`` to their mean.
    Returns the start of each run. Costs within ``TIE * (1 + cost)`` are ties, and on
    ties the shorter last run wins, as in the kernel.
    """
    n = len(order)
    best = [0.0] + [np.inf] * n
    start = [0] * (n + 1)
    for j in range(1, n + 1):
        for i in range(j - 1, max(0, j - max_size) - 1, -1):
            run = z[list(order[i:j])]
            scatter = float(((run - run.mean(axis=0)) ** 2).sum())
            cost = best[i] + scatter + penalty
            if cost < best[j] - TIE * (1.0 + abs(cost)):  # the kernel's tie rule
                best[j], start[j] = cost, i
    cuts = []
    j = n
    while j > 0:
        cuts.append(start[j])
        j = start[j]
    return cuts[::-1]
