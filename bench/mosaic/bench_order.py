"""pytest-benchmark timings for ordering and mosaics, small enough for CI.

    flock /tmp/fastseq-bench.lock python -m pytest bench/mosaic/bench_order.py --benchmark-enable -p no:cacheprovider

The side-by-side comparison with other solvers is ``bench/mosaic/compare_order.py``.
"""
from __future__ import annotations

import numpy as np
import pytest

from fastseq.mosaic import _order_py, corrsort, path_correlation, split_clusters, tile
from fastseq.mosaic.order import correlation_matrix, most_correlated_pair, standardize


@pytest.fixture(scope="module")
def features():
    rng = np.random.default_rng(0)
    families = rng.normal(size=(8, 64))
    return (families[rng.integers(0, 8, 300)] + 0.7 * rng.normal(size=(300, 64))).astype(np.float32)


def test_corrsort_greedy(benchmark, features):
    order = benchmark(corrsort, features)
    assert sorted(order.tolist()) == list(range(300))


def test_corrsort_greedy_rows_mode(benchmark, features):
    order = benchmark(corrsort, features, rows=True)
    assert sorted(order.tolist()) == list(range(300))


def test_greedy_python_twin(benchmark, features):
    """The plain twin, to show what the kernel buys (same order)."""
    c = correlation_matrix(standardize(features[:120]))
    first, second = most_correlated_pair(c)
    order = benchmark(_order_py.greedy_chain, c, first, second)
    assert order == corrsort(features[:120]).tolist() or order[::-1] == corrsort(features[:120]).tolist()


def test_corrsort_tsp(benchmark, features):
    order = benchmark.pedantic(corrsort, (features, "tsp"), {"time_budget": 0.05}, rounds=3)
    assert path_correlation(features, order) >= path_correlation(features, corrsort(features)) - 1e-9


def test_split_clusters(benchmark, features):
    order = corrsort(features)
    clusters = benchmark(split_clusters, features, order, 2.0)
    assert sum(c.size for c in clusters) == 300


def test_tile(benchmark, features):
    m = benchmark(tile, features, shape=(8, 8), order=corrsort(features))
    assert m.shape == (17 * 9 - 1, 18 * 9 - 1)  # 18 tiles of 8 x 8 per line, 17 lines
