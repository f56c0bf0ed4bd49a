"""corrsort's refinement by installed solvers (fast-tsp, LKH) and the built-in fallback."""
from __future__ import annotations

import logging
import re
import sys

import fast_tsp
import numpy as np
import pytest

from fastseq.mosaic import _order_py as py
from fastseq.mosaic import _tsp_solvers, cluster_layout, corrsort, path_correlation
from fastseq.mosaic.order import correlation_matrix, standardize


def structured(n: int, d: int = 20, seed: int = 3) -> np.ndarray:
    """Rows in a few families plus noise: greedy leaves room that a search can take."""
    rng = np.random.default_rng(seed)
    families = rng.normal(size=(5, d))
    return families[rng.integers(0, 5, n)] + 0.8 * rng.normal(size=(n, d))


def open_length(x: np.ndarray, order) -> float:
    return (len(order) - 1) - path_correlation(x, order)


@pytest.fixture
def no_fast_tsp(monkeypatch):
    """fast_tsp cannot be imported (a None entry in sys.modules makes import raise)."""
    monkeypatch.setitem(sys.modules, "fast_tsp", None)


# ---------------------------------------------------------------------------- fast-tsp


@pytest.mark.parametrize("rows", [False, True])
def test_fast_tsp_returns_a_permutation_never_worse_than_greedy(rows):
    x = structured(150)
    before = x.copy()
    greedy = open_length(x, corrsort(x))
    order = corrsort(x, "tsp", rows=rows, time_budget=0.05, solver="fast-tsp")
    np.testing.assert_array_equal(x, before)  # input untouched
    assert order.dtype == np.int64 and sorted(order.tolist()) == list(range(150))
    assert order[0] < order[-1]  # corrsort's canonical direction
    assert open_length(x, order) < greedy  # never worse, and here clearly better


def test_fast_tsp_path_that_is_not_shorter_is_dropped_for_the_start(monkeypatch):
    x = structured(60)
    calls = []

    def poor_tour(m, duration_seconds):
        calls.append(m.shape)
        return list(range(m.shape[0]))  # index order: far longer than greedy on shuffled families

    monkeypatch.setattr(fast_tsp, "find_tour", poor_tour)
    assert open_length(x, np.arange(60)) > open_length(x, corrsort(x))
    assert corrsort(x, "tsp", solver="fast-tsp").tolist() == corrsort(x).tolist()
    assert calls == [(61, 61)]  # it did run, on the matrix with the dummy row


@pytest.mark.parametrize("seed", range(6))
def test_fast_tsp_is_exact_and_repeatable_on_small_problems(seed):
    # up to 19 rows (20 with the dummy) fast-tsp solves exactly, so the same input gives
    # the same path; beyond that it searches until the time runs out and may differ
    rng = np.random.default_rng(seed)
    n = 4 + seed % 5  # brute force tries n! orders
    x = rng.normal(size=(n, 4))
    c = correlation_matrix(standardize(x, np.float64))
    order = corrsort(x, "tsp", dtype=np.float64, time_budget=0.01, solver="fast-tsp")
    assert corrsort(x, "tsp", dtype=np.float64, time_budget=0.01, solver="fast-tsp").tolist() == order.tolist()
    step = (1.0 - c.min()) / _tsp_solvers.INT_LIMIT  # its distances are rounded to this step
    assert py.path_length(order.tolist(), c) <= py.brute_force_length(c) + n * step


def test_fast_tsp_gets_the_budget_left_and_at_least_its_minimum(monkeypatch):
    x = structured(40)
    asked = []
    real = fast_tsp.find_tour

    def spy(m, duration_seconds):
        asked.append(duration_seconds)
        return real(m, duration_seconds=duration_seconds)

    monkeypatch.setattr(fast_tsp, "find_tour", spy)
    corrsort(x, "tsp", time_budget=0.3)
    corrsort(x, "tsp", time_budget=0)
    assert 0.2 < asked[0] <= 0.3  # the budget less the distance matrix's few milliseconds
    assert asked[1] == _tsp_solvers.MIN_SECONDS  # fast-tsp refuses 0 s


# ---------------------------------------------------------------------------- choice and fallback


def test_auto_uses_fast_tsp_when_installed_and_says_so(caplog):
    x = structured(80)
    with caplog.at_level(logging.INFO, logger="fastseq.mosaic"):
        corrsort(x, "tsp", time_budget=0.02)
        corrsort(x, "tsp", time_budget=0.02, rows=True)
    first, second = [r.getMessage() for r in caplog.records if r.name == "fastseq.mosaic"]
    assert first.startswith(f"corrsort: fast-tsp {fast_tsp.__version__} refined 80 rows")
    assert second.startswith("corrsort: builtin refined 80 rows") and "rows mode" in second


def test_auto_falls_back_to_the_builtin_search_without_fast_tsp(no_fast_tsp, caplog):
    x = structured(80)
    with caplog.at_level(logging.INFO, logger="fastseq.mosaic"):
        fallback = corrsort(x, "tsp", time_budget=0)
    (message,) = [r.getMessage() for r in caplog.records if r.name == "fastseq.mosaic"]
    assert message.startswith("corrsort: builtin refined 80 rows")
    assert "fast-tsp is not installed: pip install fast-tsp" in message
    # a zero budget runs the built-in local search once, with no timed kicks: repeatable
    assert fallback.tolist() == corrsort(x, "tsp", time_budget=0, solver="builtin").tolist()
    assert open_length(x, fallback) < open_length(x, corrsort(x))


def test_builtin_runs_when_asked_even_with_fast_tsp_installed(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("fast-tsp was called")

    monkeypatch.setattr(fast_tsp, "find_tour", refuse)
    x = structured(50)
    order = corrsort(x, "tsp", time_budget=0.02, solver="builtin")
    assert sorted(order.tolist()) == list(range(50))
    lay = cluster_layout(x, width=8, time_budget=0.02, solver="builtin")  # passed through
    assert sorted(lay.cells[lay.cells >= 0].tolist()) == list(range(50))


@pytest.mark.parametrize("solver, package", [("fast-tsp", "fast_tsp"), ("lkh", "elkai")])
def test_a_named_solver_that_is_not_installed_says_how_to_install_it(monkeypatch, solver, package):
    monkeypatch.setitem(sys.modules, package, None)
    pip_name = package.replace("_", "-")
    for n in (2, 30):  # at once, even where no search would run
        with pytest.raises(ImportError, match=rf"^Expected the {pip_name} package for solver='{solver}', "
                                              rf"but '{package}' cannot be imported; install it with "
                                              rf"`pip install {pip_name}` .*solver='builtin'"):
            corrsort(structured(n), "tsp", solver=solver)
    assert corrsort(structured(30), "greedy", solver=solver).tolist() == corrsort(structured(30)).tolist()


@pytest.mark.parametrize("bad", ["concorde", "fast_tsp", "FAST-TSP", "own", "", None, 1, ["auto"]])
@pytest.mark.parametrize("method", ["greedy", "tsp"])
def test_solver_argument_errors_name_it_the_choices_and_the_value(bad, method):
    with pytest.raises(ValueError, match=r"^Expected solver to be one of 'auto', 'fast-tsp', 'lkh', 'builtin', "
                                         rf"got {re.escape(repr(bad))}\.$"):
        corrsort(structured(10), method, solver=bad)


# ---------------------------------------------------------------------------- LKH and the pieces


def test_lkh_is_repeatable_and_never_worse():
    x = structured(40)
    order = corrsort(x, "tsp", solver="lkh")
    assert sorted(order.tolist()) == list(range(40))
    assert corrsort(x, "tsp", solver="lkh").tolist() == order.tolist()
    assert open_length(x, order) < open_length(x, corrsort(x))


@pytest.mark.parametrize("block_bytes", [1, 10**9])  # rows mode one row at a time, and whole
def test_integer_distances_are_symmetric_scaled_and_end_with_the_dummy(block_bytes):
    z = standardize(structured(30), np.float64)
    c = correlation_matrix(z)
    for cc in (c, np.zeros((0, 0))):
        m = _tsp_solvers.integer_distances(cc, z, block_bytes)
        assert m.dtype == np.uint16 and m.shape == (31, 31)
        np.testing.assert_array_equal(m, m.T)
        assert not m.diagonal().any() and not m[30].any()  # the dummy is 0 away from all
        assert m.max() == _tsp_solvers.INT_LIMIT
        d = 1.0 - c
        np.fill_diagonal(d, 0.0)
        np.testing.assert_allclose(m[:30, :30] * (d.max() / _tsp_solvers.INT_LIMIT), d, atol=1e-4)
    alike = standardize(np.tile(np.arange(3.0), (4, 1)), np.float64)  # every distance 0
    assert _tsp_solvers.integer_distances(correlation_matrix(alike), alike, 1 << 20) is None


def test_tour_to_path_cuts_at_the_dummy():
    assert _tsp_solvers.tour_to_path([2, 4, 0, 1, 3], 4).tolist() == [0, 1, 3, 2]
    assert _tsp_solvers.tour_to_path([4, 0, 1], 4).tolist() == [0, 1]
    assert _tsp_solvers.tour_to_path([0, 1, 4], 4).tolist() == [0, 1]


def test_progress_bar_of_an_installed_solver_ends_at_its_total(capsys):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # tqdm warns when a bar passes its total
        order = corrsort(structured(60), "tsp", time_budget=0.01, solver="fast-tsp", progress=True)
    assert sorted(order.tolist()) == list(range(60))
    assert "corrsort fast-tsp" in capsys.readouterr().err


@pytest.mark.parametrize("solver, per_entry", [("fast-tsp", 2), ("lkh", 38)])
def test_a_distance_matrix_too_big_for_memory_is_refused_before_it_is_built(monkeypatch, solver, per_entry):
    """Rows mode keeps corrsort's own memory linear; a named solver still needs (N + 1)^2 entries."""
    import fastseq._util.memory as memory

    n = 200
    need = per_entry * (n + 1) ** 2
    monkeypatch.setattr(memory, "machine_memory", lambda: need - 1)
    built = []
    monkeypatch.setattr(_tsp_solvers, "integer_distances", lambda *a: built.append(a))
    monkeypatch.setattr(_tsp_solvers, "_import", lambda name: object())  # "installed": only memory decides
    with pytest.raises(ValueError, match=rf"^corrsort\(solver='{solver}'\) on {n} rows \(its {n + 1} x {n + 1} "
                                         r"distance matrix\) would need .* more than the"):
        corrsort(structured(n), "tsp", time_budget=0.01, solver=solver, rows=True)
    assert built == []
    monkeypatch.setattr(memory, "machine_memory", lambda: need)  # exactly enough: it goes on to build it
    corrsort(structured(n), "tsp", time_budget=0.01, solver=solver, rows=True)
    assert len(built) == 1
