"""The plain ordering twins on tiny hand-made inputs, with answers worked out by hand."""
from __future__ import annotations

import signal
from contextlib import contextmanager

import numpy as np
import pytest

from fastseq.mosaic import _order_nb as nb
from fastseq.mosaic import _order_py as py
from fastseq.mosaic.order import most_correlated_pair

NO_LISTS = np.zeros((0, 1), dtype=np.intp)


def from_distances(d) -> np.ndarray:
    """The correlation matrix ``1 - d`` of a symmetric distance matrix with a zero diagonal."""
    return 1.0 - np.asarray(d, dtype=np.float64)


@contextmanager
def finishes_within(seconds: int):
    """Fail instead of hanging if the block runs longer than ``seconds``."""
    def stop(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


# ---------------------------------------------------------------------------- greedy chain


def test_pair_without_any_comparable_value_is_zero_one_as_in_order():
    c = np.full((3, 3), np.nan)  # no entry compares above -inf
    assert py.most_correlated_pair(c) == (0, 1) == most_correlated_pair(c.copy())


def test_chain_reports_a_missing_tile_as_minus_one_like_the_kernel():
    c = np.full((3, 3), np.nan)  # no unused tile beats -inf at either end
    want = [0, 1, -1]
    assert py.greedy_chain(c, 0, 1) == want
    got = nb.greedy_chain(c, np.zeros((3, 1)), NO_LISTS, NO_LISTS.astype(float), 0, 1).tolist()
    assert got == want


# ---------------------------------------------------------------------------- top k


@pytest.mark.parametrize("rows, k", [(2, 0), (0, 2)])
def test_top_k_of_nothing_has_index_dtype_and_shape(rows, k):
    s = np.arange(rows * 3, dtype=np.float64).reshape(rows, 3)
    idx, val = py.top_k_rows(s, k, 0)
    assert idx.dtype == np.intp and idx.shape == (rows, k) == val.shape
    if rows == 0:  # the kernel assumes k >= 1 (corrsort passes k >= 2)
        assert nb.top_k_rows(s, k, 0)[0].dtype == idx.dtype


# ---------------------------------------------------------------------------- 2-opt gain


def test_2opt_gain_takes_the_best_reversal_anywhere():
    # 0-2 and 1-3 are close, so reversing the middle pair of 0 1 2 3 gains 2.5 - 0.7
    d = [[0, 1, 0.1, 1], [1, 0, 0.5, 0.1], [0.1, 0.5, 0, 1], [1, 0.1, 1, 0]]
    assert py.best_2opt_gain([0, 1, 2, 3], from_distances(d)) == pytest.approx(1.8, abs=1e-12)


def test_2opt_gain_of_an_adjacent_swap_on_three_tiles():
    d = [[0, 1, 0.2], [1, 0, 1], [0.2, 1, 0]]  # 0 1 2 is 2 long; 1 0 2 and 0 2 1 are 1.2
    assert py.best_2opt_gain([0, 1, 2], from_distances(d)) == pytest.approx(0.8, abs=1e-12)
    assert py.best_2opt_gain([1, 0, 2], from_distances(d)) == 0.0  # already the best


def test_2opt_gain_counts_only_reversals_even_with_negative_distances():
    # c > 1 makes 1-2 a distance of -2: a "path" visiting 1-2 twice would be shorter,
    # but every reversal of 0 1 2 3 (length 0) is at least as long
    d = [[0, 1, 1, 1], [1, 0, -2, 1], [1, -2, 0, 1], [1, 1, 1, 0]]
    assert py.best_2opt_gain([0, 1, 2, 3], from_distances(d)) == 0.0


# ---------------------------------------------------------------------------- brute force


def test_brute_force_length_of_zero_to_three_tiles():
    assert py.brute_force_length(np.zeros((0, 0))) == 0.0
    assert py.brute_force_length(np.ones((1, 1))) == 0.0
    assert py.brute_force_length(from_distances([[0, 0.75], [0.75, 0]])) == 0.75
    d = [[0, 0.5, 0.25], [0.5, 0, 1.0], [0.25, 1.0, 0]]  # best: 1 0 2
    assert py.brute_force_length(from_distances(d)) == 0.75


# ---------------------------------------------------------------------------- segment


def two_rows(gap: float) -> np.ndarray:
    """Rows 0 and ``gap`` in one column: scatter ``gap**2 / 2`` together, 0 apart."""
    return np.array([[0.0], [gap]])


def test_segment_a_clear_saving_just_above_the_tie_band_merges():
    # identical rows: one run costs p, two cost 2p; saving p = 1.5e-9 beats the band of
    # TIE * (1 + p), about 1e-9, at costs near 0
    z = two_rows(0.0)
    assert py.segment(z, [0, 1], 1.5e-9, 2) == [0]
    assert nb.segment(np.array([0, 1]), np.zeros((0, 0)), z, 1.5e-9, 2).tolist() == [0]
    assert py.segment(z, [0, 1], 0.5e-9, 2) == [0, 1]  # inside the band: the shorter last run


def test_segment_tie_band_grows_with_the_cost():
    # scatter 2 together; at penalty 2 + 1e-9 merging saves 1e-9, inside the band of
    # TIE * (1 + 4) at costs near 4: a tie, so the two short runs stay
    z = two_rows(2.0)
    p = 2.0 + 1e-9
    assert py.segment(z, [0, 1], p, 2) == [0, 1]
    assert nb.segment(np.array([0, 1]), np.zeros((0, 0)), z, p, 2).tolist() == [0, 1]
    assert py.segment(z, [0, 1], 2.0 + 1e-8, 2) == [0]  # well outside it


def test_segment_cost_exactly_at_the_band_edge_is_a_tie():
    # a penalty p where p == 2p - TIE * (1 + p) in floats: merging saves exactly the band
    near = py.TIE / (1.0 - py.TIE)  # the real solution; look a few floats either side
    below = near * (1.0 - 1e-13)
    p = next(p for p in (below + k * np.spacing(below) for k in range(2000))
             if p == 2 * p - py.TIE * (1.0 + abs(p)))
    z = two_rows(0.0)
    assert py.segment(z, [0, 1], p, 2) == [0, 1]
    assert py.segment(z, [0, 1], np.nextafter(p, 1.0), 2) == [0]


def test_segment_at_infinite_penalty_keeps_one_run_like_the_kernel():
    z = np.arange(3.0)[:, None]
    with finishes_within(10):
        assert py.segment(z, [0, 1, 2], np.inf, 3) == [0]
    assert nb.segment(np.arange(3), np.zeros((0, 0)), z, np.inf, 3).tolist() == [0]
