"""corrsort, its Numba kernels against their plain twins, and cluster splitting."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastseq.mosaic import _order_nb as nb
from fastseq.mosaic import _order_py as py
from fastseq.mosaic.order import adjacent_correlations, cluster_layout, corrsort, path_correlation, split_clusters
from fastseq.mosaic.order import correlation_matrix, most_correlated_pair, neighbour_lists, standardize

NO_LISTS = np.zeros((0, 1), dtype=np.intp)


def unit_rows(rng, n, d=6):
    z = rng.normal(size=(n, d))
    return standardize(z, np.float64)


def chain(c, z, first, second):
    return nb.greedy_chain(c, z, NO_LISTS, NO_LISTS.astype(float), first, second).tolist()


# ---------------------------------------------------------------------------- standardize


def test_standardize_rules_for_constant_rows_and_scale():
    x = np.array([[1.0, 2.0, 3.0], [5.0, 5.0, 5.0], [2.0, 4.0, 6.0], [0.0] * 3, [1e300, 2e300, 3e300],
                  [1e-300, 2e-300, 3e-300]])
    before = x.copy()
    z = standardize(x, np.float64)
    np.testing.assert_array_equal(x, before)  # input untouched
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), [1, 0, 1, 0, 1, 1])
    for same_shape in (2, 4, 5):  # neither overflow (1e300 squared) nor underflow makes a row flat
        np.testing.assert_allclose(z[0], z[same_shape])
    np.testing.assert_allclose(z.sum(axis=1), 0, atol=1e-12)
    assert standardize(np.zeros((3, 2, 2))).shape == (3, 4)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("call", [
    lambda x: corrsort(x), lambda x: corrsort(x, "tsp", time_budget=0), lambda x: corrsort(x, rows=True),
    lambda x: split_clusters(x, range(len(x))), lambda x: path_correlation(x, range(len(x))),
    lambda x: cluster_layout(x, time_budget=0)])
def test_non_finite_features_are_refused_naming_the_first(bad, call):
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    x[3, 1] = x[4, 0] = bad
    with pytest.raises(ValueError, match=rf"^Expected features to hold finite numbers, got {bad} at index \[3, 1\] "
                                         r"\(2 of its 20 values are NaN or infinite\)\.$"):
        call(x)


def test_constant_rows_and_columns_empty_and_one_row():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(6, 5))
    x[:, 2] = 3.0  # a constant column only shifts each row's mean
    x[[1, 4]] = 7.0  # constant rows correlate 0 with every row
    for method in ("greedy", "tsp"):
        order = corrsort(x, method, time_budget=0)
        assert sorted(order.tolist()) == list(range(6))
    r = adjacent_correlations(x, order)
    assert np.isfinite(r).all()
    assert all(r[k] == 0 for k in range(5) if {order[k], order[k + 1]} & {1, 4})
    assert corrsort(np.full((4, 3), 2.0)).tolist() == [0, 1, 2, 3]
    assert corrsort(np.ones((1, 3))).tolist() == [0]
    assert corrsort(np.zeros((0, 3))).tolist() == []
    assert [c.tolist() for c in split_clusters(np.ones((1, 3)), [0])] == [[0]]


# ---------------------------------------------------------------------------- greedy


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 30), seed=st.integers(0, 2**16), d=st.integers(1, 8))
def test_greedy_kernel_matches_twin(n, seed, d):
    z = unit_rows(np.random.default_rng(seed), n, d)
    c = correlation_matrix(z)
    first, second = py.most_correlated_pair(c)
    assert most_correlated_pair(c) == (first, second)
    assert chain(c, z, first, second) == py.greedy_chain(c, first, second)


def test_greedy_ties_and_all_equal_rows():
    c = np.ones((5, 5))  # all rows equal: ties everywhere
    assert chain(c, np.zeros((5, 1)), 0, 1) == py.greedy_chain(c, 0, 1) == [0, 1, 2, 3, 4]
    x = np.tile(np.arange(4.0), (6, 1))
    assert corrsort(x).tolist() == [0, 1, 2, 3, 4, 5]
    assert corrsort(np.zeros((4, 3)), "tsp").tolist() == [0, 1, 2, 3]  # constant rows


@settings(max_examples=30, deadline=None)
@given(n=st.integers(3, 60), seed=st.integers(0, 2**16), k=st.integers(1, 6))
def test_rows_mode_gives_the_matrix_order(n, seed, k):
    x = np.random.default_rng(seed).normal(size=(n, 5))
    got = corrsort(x, rows=True, neighbours=k, dtype=np.float64)
    assert got.tolist() == corrsort(x, rows=False, dtype=np.float64).tolist()


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(0, 6), n=st.integers(1, 12), offset=st.integers(0, 6), seed=st.integers(0, 2**16),
       levels=st.integers(1, 4))
def test_top_k_kernel_matches_twin(rows, n, offset, seed, levels):
    rng = np.random.default_rng(seed)
    s = rng.integers(0, levels, size=(rows, n)).astype(np.float32)  # few levels: many ties
    k = int(rng.integers(0, n))  # k = 0 (nothing kept) and k = n - 1 (every other column) included
    offset = min(offset, n - rows) if n >= rows else 0
    got_i, got_v = nb.top_k_rows(s, k, offset)
    want_i, want_v = py.top_k_rows(s, k, offset)
    np.testing.assert_array_equal(got_i, want_i)
    np.testing.assert_array_equal(got_v, want_v)


def test_top_k_kernel_refuses_more_columns_than_a_row_has():
    s = np.zeros((2, 4), np.float32)
    for k in (-1, 4):
        with pytest.raises(ValueError, match="0 <= k <= columns - 1"):
            nb.top_k_rows(s, k, 0)


def test_neighbour_lists_are_sorted_top_k_with_lowest_index_on_ties():
    z = standardize(np.array([[0, 1.0], [1, 0], [1, 0], [0, 1], [1, 0]]), np.float64)
    nbr, nsim, first, second = neighbour_lists(z, 2)
    assert nbr.tolist() == [[3, 1], [2, 4], [1, 4], [0, 1], [1, 2]]
    np.testing.assert_allclose(nsim[:, 0], 1.0)
    assert (first, second) == (0, 3)


def test_corrsort_small_and_invalid_inputs():
    assert corrsort(np.zeros((0, 3))).tolist() == []
    assert corrsort(np.ones((1, 3))).tolist() == [0]
    assert corrsort(np.random.default_rng(0).normal(size=(2, 3)), "tsp").tolist() == [0, 1]
    with pytest.raises(ValueError, match="method"):
        corrsort(np.ones((3, 3)), "lkh")
    with pytest.raises(ValueError, match="neighbours"):
        corrsort(np.ones((3, 3)), neighbours=0)
    with pytest.raises(ValueError, match="time_budget"):
        corrsort(np.random.default_rng(0).normal(size=(5, 3)), "tsp", time_budget=-1)
    with pytest.raises(ValueError, match="time_budget"):
        corrsort(np.ones((5, 3)), "tsp", time_budget="1")
    with pytest.raises(ValueError, match="dtype"):
        corrsort(np.ones((5, 3)), dtype=np.int32)
    with pytest.raises(TypeError, match="real numbers"):
        corrsort(np.array([["a"], ["b"]]))


def test_corrsort_recovers_a_shuffled_smooth_sequence():
    t = np.linspace(0, 2 * np.pi, 40)
    rows = np.stack([np.sin(t + 0.05 * s) + 0.02 * s for s in range(30)])
    perm = np.random.default_rng(1).permutation(30)
    for method in ("greedy", "tsp"):
        order = perm[corrsort(rows[perm], method, time_budget=0.05)]
        assert order.tolist() in (list(range(30)), list(range(29, -1, -1)))


# ---------------------------------------------------------------------------- refinement


@settings(max_examples=200, deadline=None)
@given(n=st.integers(3, 12), seed=st.integers(0, 2**16), max_len=st.integers(1, 3))
def test_each_move_gains_what_it_claims(n, seed, max_len):
    rng = np.random.default_rng(seed)
    z = unit_rows(rng, n)
    c = correlation_matrix(z)
    p = rng.permutation(n).astype(np.intp)
    pos = np.argsort(p).astype(np.intp)
    a = int(rng.integers(n))
    cand = np.concatenate([rng.permutation(n)[:4], [p[0], p[-1]]]).astype(np.intp)
    dac = np.array([1.0 - c[a, k] for k in cand])
    before = py.path_length(p.tolist(), c)
    gain, lo, hi = nb._best_2opt(a, p, pos, c, z, cand, dac, n)
    if lo >= 0:
        q, qpos = p.copy(), pos.copy()
        nb._reverse(q, qpos, lo, hi)
        assert before - py.path_length(q.tolist(), c) == pytest.approx(gain, abs=1e-9)
    gain, s, length, target, after, forward = nb._best_oropt(a, p, pos, c, z, cand, dac, max_len)
    if s >= 0:
        q, qpos = p.copy(), pos.copy()
        nb._move_segment(q, qpos, s, length, target, after, forward)
        assert sorted(q.tolist()) == list(range(n)) and (qpos[q] == np.arange(n)).all()
        assert before - py.path_length(q.tolist(), c) == pytest.approx(gain, abs=1e-9)
        assert abs(qpos[target] - qpos[a]) == 1  # the moved end now touches its candidate


@settings(max_examples=40, deadline=None)
@given(n=st.integers(3, 40), seed=st.integers(0, 2**16))
def test_local_search_is_2opt_optimal_and_never_worse(n, seed):
    rng = np.random.default_rng(seed)
    z = unit_rows(rng, n)
    c = correlation_matrix(z)
    start = rng.permutation(n).astype(np.intp)
    full = np.argsort(-c + np.diag(np.full(n, np.inf)), axis=1, kind="stable")[:, : n - 1].astype(np.intp)
    path, length = nb.refine(start, c, z, full, 0, np.random.default_rng(0))
    assert sorted(path.tolist()) == list(range(n))
    assert length == pytest.approx(py.path_length(path.tolist(), c))
    assert length <= py.path_length(start.tolist(), c) + 1e-12
    assert py.best_2opt_gain(path.tolist(), c) < 1e-9
    kicked, klen = nb.refine(path, c, z, full[:, :3], 50, np.random.default_rng(seed), False)
    assert klen <= length + 1e-12 and sorted(kicked.tolist()) == list(range(n))


@pytest.mark.parametrize("seed", range(12))
def test_iterated_local_search_finds_the_optimum_of_small_problems(seed):
    rng = np.random.default_rng(seed)
    n = 4 + seed % 4
    z = unit_rows(rng, n, 3)
    c = correlation_matrix(z)
    nbr = np.argsort(-c + np.diag(np.full(n, np.inf)), axis=1, kind="stable")[:, :3].astype(np.intp)
    start = rng.permutation(n).astype(np.intp)
    _, length = nb.refine(start, c, z, nbr, 300, np.random.default_rng(seed))
    assert length == pytest.approx(py.brute_force_length(c), abs=1e-9)


def test_tsp_never_worse_than_greedy_and_rows_mode_refines_too():
    x = np.random.default_rng(3).normal(size=(120, 20))
    x[:60] += np.linspace(0, 3, 20)  # some structure
    greedy = path_correlation(x, corrsort(x))
    for rows in (False, True):
        order = corrsort(x, "tsp", rows=rows, time_budget=0.05, seed=1)
        assert sorted(order.tolist()) == list(range(120))
        assert path_correlation(x, order) >= greedy - 1e-9
    assert path_correlation(x, corrsort(x, "tsp", time_budget=0.05)) > greedy  # it does improve here


# ---------------------------------------------------------------------------- clusters


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 25), seed=st.integers(0, 2**16), penalty=st.floats(0, 3), max_size=st.integers(1, 8))
def test_segment_kernel_matches_twin(n, seed, penalty, max_size):
    rng = np.random.default_rng(seed)
    z = unit_rows(rng, n, 4)
    z[rng.random(n) < 0.2] = 0.0  # some constant rows
    order = rng.permutation(n).astype(np.intp)
    want = py.segment(z, order, penalty, max_size)

    def cost(cuts):
        runs = [z[order[a:b]] for a, b in zip(cuts, cuts[1:] + [n])]
        return sum(((r - r.mean(axis=0)) ** 2).sum() + penalty for r in runs)

    for c in (np.zeros((0, 0)), correlation_matrix(z)):  # from rows, and from the matrix
        got = nb.segment(order, c, z, penalty, max_size).tolist()
        assert got[0] == 0 and all(0 < b - a <= max_size for a, b in zip(got, got[1:] + [n]))
        if got != want:  # only a float near-tie may differ: the costs must then agree
            assert cost(got) == pytest.approx(cost(want), abs=1e-9)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 20), copies=st.integers(1, 5), seed=st.integers(0, 2**16),
       shift=st.floats(-100, 100), scale=st.floats(0.1, 10))
def test_segment_tie_rule_keeps_identical_rows_apart_at_zero_penalty(n, copies, seed, shift, scale):
    # Rows identical after standardization (shifted and scaled copies) tie at penalty 0:
    # merging them adds scatter 0 up to rounding, which may fall either side of zero.
    # The stated rule (shortest last run on ties) must give every row its own run.
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, 7))
    x = np.concatenate([base * scale ** k + shift * k for k in range(copies)])
    order = rng.permutation(len(x))
    clusters = split_clusters(x, order, penalty=0.0)
    assert [c.tolist() for c in clusters] == [[i] for i in order.tolist()]
    z = standardize(x, np.float64)
    assert py.segment(z, order, 0.0, 64) == list(range(len(x)))


def test_split_clusters_finds_blocks_and_validates():
    t = np.linspace(0, 3, 30)
    x = np.stack([np.sin(t + 0.01 * k) for k in range(5)] + [t ** 2 + 0.01 * k for k in range(4)])
    clusters = split_clusters(x, np.arange(9), penalty=0.5)
    assert [c.tolist() for c in clusters] == [[0, 1, 2, 3, 4], [5, 6, 7, 8]]
    assert len(split_clusters(x, np.arange(9), penalty=0.0)) == 9
    assert max(c.size for c in split_clusters(x, np.arange(9), penalty=0.5, max_size=3)) == 3
    with pytest.raises(ValueError, match="permutation"):
        split_clusters(x, [0, 1, 1, 2, 3, 4, 5, 6, 7])
    with pytest.raises(ValueError, match="penalty"):
        split_clusters(x, np.arange(9), penalty=-1)
    assert split_clusters(np.zeros((0, 3)), []) == []


def test_adjacent_correlations_and_cluster_layout():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 9))
    order = rng.permutation(40)
    r = adjacent_correlations(x, order)
    want = [np.corrcoef(x[a], x[b])[0, 1] for a, b in zip(order[:-1], order[1:])]
    np.testing.assert_allclose(r, want, atol=1e-12)
    assert path_correlation(x, order) == pytest.approx(sum(want))
    lay = cluster_layout(x, width=7, method="greedy")
    shown = lay.cells[lay.cells >= 0]
    assert sorted(shown.tolist()) == list(range(40)) and lay.width == 7
    assert all(c.size <= 7 for c in lay.clusters)


@pytest.mark.parametrize("penalty", [0.0, 0.5])
def test_segment_corner_rows_kernel_equals_twin(row_corner, penalty, twins):
    z = standardize(row_corner, np.float64)
    order = np.arange(z.shape[0], dtype=np.intp)
    twins(lambda zz, o: nb.segment(o, np.zeros((0, 0)), zz, penalty, 4).tolist(),
          lambda zz, o: py.segment(zz, o, penalty, 4), z, order)


def test_standardize_takes_bool_rows_as_numbers_and_returns_the_dtype_asked_for():
    rng = np.random.default_rng(0)
    bits = rng.random((5, 12)) < 0.5
    out = standardize(bits)
    assert out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, standardize(bits.astype(np.float64)))
    wide = standardize(bits, dtype=np.float64)
    assert wide.dtype == np.float64
    np.testing.assert_allclose(wide @ wide.T, np.corrcoef(bits.astype(np.float64)), atol=1e-12)
