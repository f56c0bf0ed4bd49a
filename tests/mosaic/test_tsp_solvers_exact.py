"""The integer distances a TSP solver receives, exactly, and the solver wrappers on fake packages."""
from __future__ import annotations

import types

import numpy as np
import pytest

from fastseq.mosaic import _tsp_solvers
from fastseq.mosaic._tsp_solvers import INT_LIMIT, integer_distances

HALF = 32_768  # a distance of half the longest: 32767.5 rounds half to even


def distances(c, block_bytes: int = 1 << 20) -> np.ndarray | None:
    """integer_distances from the matrix ``c`` alone (``z`` only gives N and the dtype)."""
    c = np.asarray(c, dtype=np.float64)
    return integer_distances(c, np.zeros((c.shape[0], 2)), block_bytes)


def test_distances_are_scaled_so_the_longest_is_the_limit_and_rounded():
    m = distances([[1, 0.5, -1], [0.5, 1, 0], [-1, 0, 1]])  # longest 2: a step of 2 / 65535
    assert m.dtype == np.uint16
    assert m.tolist() == [[0, 16384, INT_LIMIT, 0], [16384, 0, HALF, 0], [INT_LIMIT, HALF, 0, 0], [0, 0, 0, 0]]


def test_identical_rows_are_zero_apart_and_correlations_above_one_do_not_wrap():
    m = distances([[1, 1, 0, 1.001], [1, 1, 0, 0], [0, 0, 1, 0], [1.001, 0, 0, 1]])
    assert m.tolist() == [[0, 0, INT_LIMIT, 0, 0], [0, 0, INT_LIMIT, INT_LIMIT, 0],
                          [INT_LIMIT, INT_LIMIT, 0, INT_LIMIT, 0], [0, INT_LIMIT, INT_LIMIT, 0, 0], [0] * 5]


def test_an_asymmetric_matrix_gives_the_smaller_distance_both_ways():
    m = distances([[1, 0.5, -1], [0.25, 1, 0], [-1, 0, 1]])  # 0 -> 1 is 16384, 1 -> 0 is 24576
    assert m[0, 1] == m[1, 0] == 16384
    np.testing.assert_array_equal(m, m.T)


def test_distances_of_rows_alike_up_to_rounding_are_none():
    eps = np.finfo(np.float64).eps
    at_limit = 1.0 - 64 * eps  # longest exactly 64 eps: still "alike"
    assert distances([[1, at_limit], [at_limit, 1]]) is None
    above = 1.0 - 64.5 * eps  # exactly representable: longest 129 / 2**53 > 64 eps
    assert distances([[1, above], [above, 1]]).tolist() == [[0, INT_LIMIT, 0], [INT_LIMIT, 0, 0], [0, 0, 0]]


def test_a_nan_anywhere_in_the_matrix_leaves_nothing_to_order():
    c = [[1, 0, -1], [0, 1, 0], [-1, 0, np.nan]]  # in the last block of one row
    assert distances(c, block_bytes=1) is None


class Counted(np.ndarray):
    """Rows that note how many rows each matrix product takes from the left."""

    products: list[int]

    def __matmul__(self, other):
        Counted.products.append(self.shape[0])
        return np.asarray(self) @ np.asarray(other)


def unit_rows() -> np.ndarray:
    """Five standardized rows whose correlations are exactly -1, 0 or 1."""
    signs = np.array([[1, 1, -1, -1], [1, -1, 1, -1], [1, -1, -1, 1], [-1, 1, 1, -1], [1, 1, -1, -1]])
    return signs * 0.5


@pytest.mark.parametrize("block_bytes, rows", [(1, [1] * 5), (40, [1] * 5), (80, [2, 2, 1]), (119, [2, 2, 1]),
                                               (10**9, [5])])
def test_rows_mode_multiplies_blocks_that_fit_the_budget_twice(block_bytes, rows):
    z = unit_rows()
    Counted.products = []
    m = integer_distances(np.zeros((0, 0)), z.view(Counted), block_bytes)
    assert Counted.products == rows + rows  # one pass for the longest distance, one for the matrix
    assert m.tolist() == distances(z @ z.T).tolist()


@pytest.mark.parametrize("block_rows", [2, 3, 4])  # a last block of 1, 2 and 1 rows of 5
def test_rows_mode_with_a_last_partial_block_leaves_the_dummy_row_zero(block_rows):
    # the last block was written into one row too many (the dummy row): a ValueError for 2 rows
    z = unit_rows()
    m = integer_distances(np.zeros((0, 0)), z, block_rows * 5 * 8)
    assert m.tolist() == distances(z @ z.T).tolist()
    assert not m[-1].any() and not m[:, -1].any()


def test_a_single_row_has_nothing_to_order_in_either_mode():
    z = unit_rows()[:1]
    assert integer_distances(z @ z.T, z, 1 << 20) is None
    assert integer_distances(np.zeros((0, 0)), z, 1 << 20) is None


# ---------------------------------------------------------------------------- tours and solvers


@pytest.mark.parametrize("dtype", [np.int32, np.uint16, np.float64])
def test_tour_to_path_gives_indices_whatever_the_tour_type(dtype):
    path = _tsp_solvers.tour_to_path(np.array([2, 4, 0, 1, 3], dtype=dtype), 4)
    assert path.dtype == np.intp and path.tolist() == [0, 1, 3, 2]


def fake_elkai(calls: list):
    """An elkai stand-in: records the matrix and the runs, returns a tour that repeats its start."""
    class DistanceMatrix:
        def __init__(self, rows):
            calls.append(("matrix", rows))

        def solve_tsp(self, runs=10):
            calls.append(("runs", runs))
            return [0, 2, 3, 1, 0]

    return types.SimpleNamespace(DistanceMatrix=DistanceMatrix)


def test_lkh_runs_once_on_the_matrix_as_lists_and_drops_the_repeated_start():
    calls = []
    m = np.arange(16, dtype=np.uint16).reshape(4, 4)
    path = _tsp_solvers.solve("lkh", fake_elkai(calls), m, 5.0)
    assert calls == [("matrix", m.tolist()), ("runs", 1)]
    assert path.tolist() == [1, 0, 2]  # tour 0 2 3 1 cut at the dummy row 3


def test_version_of_a_package_without_metadata_is_empty():
    assert _tsp_solvers.version(types.ModuleType("fastseq_no_such_distribution")) == ""
    assert _tsp_solvers.version(None) == ""
