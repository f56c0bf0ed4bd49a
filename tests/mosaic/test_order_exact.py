"""Exact answers of order.py: defaults, messages, block sizes, the kick schedule and its progress bar."""
from __future__ import annotations

import re

import numpy as np
import pytest

from fastseq.mosaic import _order_nb as nb
from fastseq.mosaic import _order_py as py
from fastseq.mosaic import order
from fastseq.mosaic.order import cluster_layout, corrsort, split_clusters, standardize


def grouped(seed: int, n: int, d: int = 6) -> np.ndarray:
    """Rows around four centres plus noise: greedy leaves moves for the local search."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(4, d))
    return centres[rng.integers(0, 4, n)] + 0.9 * rng.normal(size=(n, d))


def canonical(path) -> list[int]:
    path = [int(i) for i in path]
    return path[::-1] if path[0] > path[-1] else path


def nearest(c: np.ndarray, k: int) -> np.ndarray:
    """Each row's k most correlated other rows (plain argsort; the data have no ties)."""
    c = c.copy()
    np.fill_diagonal(c, -np.inf)
    return np.argsort(-c, axis=1, kind="stable")[:, :k].astype(np.intp)


def builtin_twin(x: np.ndarray, k: int, seed: int, kicks: tuple[int, ...]) -> list[int]:
    """corrsort(x, "tsp", solver="builtin", dtype=float64) given the kick rounds it runs."""
    z = standardize(x, np.float64)
    c = z @ z.T
    path = np.array(py.greedy_chain(c, *py.most_correlated_pair(c)), dtype=np.intp)
    rng = np.random.default_rng(seed)
    path = nb.refine(path, c, z, nearest(c, k), 0, rng)[0]
    for n_kicks in kicks:
        path = nb.refine(path, c, z, nearest(c, k), n_kicks, rng, False)[0]
    return canonical(path)


class ScriptedClock:
    """Stands in for ``time`` in order.py: time passes only while ``refine`` runs, by the amounts given.

    Records each refine call as ``(kicks, sweeps)``, ``sweeps`` being whether it starts
    with a full local search; the first call also records whether its generator is
    fresh from ``seed``.
    """

    def __init__(self, durations, seed=0, through=None):
        self.now = 1000.0
        self.durations = list(durations)
        self.seed = seed
        self.through = through  # the real refine, or None to hand the path back as it is
        self.calls: list[tuple[int, bool]] = []
        self.fresh_rng: bool | None = None

    def perf_counter(self) -> float:
        return self.now

    def refine(self, path, c, z, nbr, kicks, rng, search=True):
        if not self.calls:
            self.fresh_rng = rng.bit_generator.state == np.random.default_rng(self.seed).bit_generator.state
        self.calls.append((int(kicks), bool(search)))
        self.now += self.durations.pop(0) if self.durations else 1.0
        if self.through is not None:
            return self.through(path, c, z, nbr, kicks, rng, search)
        return path.copy(), 0.0


@pytest.fixture
def scripted(monkeypatch):
    def install(durations, seed=0, real=False):
        clock = ScriptedClock(durations, seed, nb.refine if real else None)
        monkeypatch.setattr(order, "time", clock)
        monkeypatch.setattr(nb, "refine", clock.refine)
        return clock

    return install


# ---------------------------------------------------------------------------- built-in refinement


def test_a_zero_budget_runs_the_local_search_only_on_the_nearest_rows():
    x = grouped(0, 20)  # here greedy, its local search, and one kick more all differ
    got = corrsort(x, "tsp", solver="builtin", time_budget=0, neighbours=2, dtype=np.float64).tolist()
    assert got == builtin_twin(x, 2, 0, kicks=())
    assert got != corrsort(x, dtype=np.float64).tolist()
    assert got != builtin_twin(x, 2, 0, kicks=(1,))


def test_matrix_neighbours_leave_out_the_row_itself():
    z = standardize(grouped(0, 20), np.float64)
    c = z @ z.T
    for k in (1, 2, 19):
        np.testing.assert_array_equal(order._matrix_neighbours(c, k), nearest(c, k))


def test_no_kick_round_starts_once_the_budget_is_spent(scripted):
    clock = scripted([0.0])  # the local search took no time and the budget is 0: nothing more runs
    corrsort(grouped(0, 12), "tsp", solver="builtin", time_budget=0)
    assert clock.calls == [(0, True)]
    clock = scripted([0.25, 0.25])  # the second round ends exactly at the budget
    corrsort(grouped(0, 12), "tsp", solver="builtin", time_budget=0.5)
    assert clock.calls == [(0, True), (64, False)]


def test_kick_rounds_aim_at_20_ms_between_8_and_65536_kicks(scripted):
    clock = scripted([0.001, 5e-5, 1e-4, 2.0, 5.0, 3.0], seed=7)
    corrsort(grouped(0, 12), "tsp", solver="builtin", time_budget=10.0, seed=7)
    # 64 kicks in under 0.1 ms count as 0.1 ms: 12,800 next; 12,800 in 0.1 ms ask for 2,560,000
    # (capped); 65,536 in 2 s give 655; 655 in 5 s ask for 2 (raised to 8); 10 s are then spent
    assert clock.calls == [(0, True), (64, False), (12800, False), (65536, False), (655, False), (8, False)]
    assert clock.fresh_rng  # the kicks draw from default_rng(seed)


def test_kick_rounds_continue_from_the_seeded_generator(scripted):
    x = grouped(5, 40)  # different seeds reach different paths here
    clock = scripted([0.0, 0.5, 0.6], seed=3, real=True)
    got = corrsort(x, "tsp", solver="builtin", time_budget=1.0, neighbours=3, seed=3, dtype=np.float64)
    assert clock.calls == [(0, True), (64, False), (8, False)]
    assert got.tolist() == builtin_twin(x, 3, 3, kicks=(64, 8))


def shown_counts(err: str, desc: str) -> list[str]:
    """The ``n/total`` of every state of the tqdm bar named ``desc`` in ``err``, and checks each names it."""
    states = [s for s in re.split(r"[\r\n]", err) if s.strip()]
    assert states and all(s.startswith(f"{desc}:") for s in states), states
    assert all(re.search(r"[0-9?.]+s/s\]", s) for s in states), states  # seconds, not iterations
    return [re.search(r"\| (\S+) \[", s).group(1) for s in states]


def test_progress_bar_counts_the_seconds_spent_of_the_budget(scripted, capsys):
    scripted([0.0137, 0.01, 0.03])
    corrsort(grouped(0, 12), "tsp", solver="builtin", time_budget=0.047, progress=True)
    # total round(0.047, 2); after the rounds 0.0237 s and 0.0537 s (shown as the budget)
    assert shown_counts(capsys.readouterr().err, "corrsort tsp") == ["0/0.05", "0.02/0.05", "0.05/0.05", "0.05/0.05"]


def test_progress_bar_of_fast_tsp_has_the_budget_as_total(capsys):
    corrsort(grouped(0, 30), "tsp", solver="fast-tsp", time_budget=0.047, progress=True)
    counts = shown_counts(capsys.readouterr().err, "corrsort fast-tsp")
    assert all(c.endswith("/0.05") for c in counts), counts


# ---------------------------------------------------------------------------- neighbour lists


@pytest.fixture
def blocks(monkeypatch):
    """Sets order.BLOCK_BYTES and records the shape of each block that neighbour_lists ranks."""
    shapes = []
    real = nb.top_k_rows

    def top_k_rows(s, k, offset):
        shapes.append(s.shape)
        return real(s, k, offset)

    def use(block_bytes):
        monkeypatch.setattr(order, "BLOCK_BYTES", block_bytes)
        shapes.clear()
        return shapes

    monkeypatch.setattr(nb, "top_k_rows", top_k_rows)
    return use


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_neighbour_lists_are_the_same_block_by_block_and_blocks_stay_in_their_bytes(blocks, dtype):
    z = standardize(grouped(2, 20), dtype)
    want = order.neighbour_lists(z, 3)
    row_bytes = 20 * z.itemsize
    for block_bytes in (1, 100, row_bytes, 2 * row_bytes - 1, 1000, 3 * row_bytes, 1 << 20):
        shapes = blocks(block_bytes)
        nbr, nsim, first, second = order.neighbour_lists(z, 3)
        np.testing.assert_array_equal(nbr, want[0])
        np.testing.assert_allclose(nsim, want[1], rtol=1e-6)  # blocks of other sizes may round apart
        assert nsim.dtype == dtype  # float32 rows keep float32 lists: rows mode is about memory
        assert (first, second) == want[2:]
        assert sum(rows for rows, _ in shapes) == 20  # each row's correlations once
        rows_per_block = max(1, min(20, block_bytes // row_bytes))
        assert [rows for rows, _ in shapes[:-1]] == [rows_per_block] * (len(shapes) - 1)


def test_most_correlated_pair_is_the_first_in_row_order_across_blocks(blocks):
    z = standardize(np.array([[0, 1.0], [1, 0], [1, 0], [0, 1], [1, 0]]), np.float64)  # ties of 1 everywhere
    want = order.most_correlated_pair(z @ z.T)
    assert want == (0, 3)
    for block_bytes in (1, 2 * 5 * 8, 1 << 20):
        blocks(block_bytes)
        assert order.neighbour_lists(z, 2)[2:] == want


# ---------------------------------------------------------------------------- split_clusters


def pair_with_correlation_minus_half() -> np.ndarray:
    return np.array([[1.0, -1.0, 0.0], [0.0, 1.0, -1.0]])  # a run of both scatters 1 - r = 1.5


def test_split_clusters_default_penalty_is_one():
    x = pair_with_correlation_minus_half()
    # apart: 2 x penalty = 2; together: 1.5 + penalty = 2.5 at penalty 1, but 3.5 < 4 at penalty 2
    assert [c.tolist() for c in split_clusters(x, [0, 1])] == [[0], [1]]
    assert [c.tolist() for c in split_clusters(x, [0, 1], penalty=2.0)] == [[0, 1]]


def test_split_clusters_works_in_float64():
    # float32 rows would put this pair's scatter 1e-7 lower than float64 does, past the penalties below
    x = np.random.default_rng(2981).normal(size=(2, 12))
    scatter = 1.0 - np.corrcoef(x)[0, 1]
    assert [c.tolist() for c in split_clusters(x, [0, 1], penalty=scatter - 5e-8)] == [[0], [1]]
    assert [c.tolist() for c in split_clusters(x, [0, 1], penalty=scatter + 5e-8)] == [[0, 1]]


def test_split_clusters_runs_hold_at_most_64_rows_by_default():
    x = np.tile(np.arange(5.0), (65, 1)) + 1e-3 * np.random.default_rng(0).normal(size=(65, 5))
    sizes = [c.size for c in split_clusters(x, np.arange(65))]  # one run would be cheapest
    assert len(sizes) == 2 and max(sizes) <= 64 and sum(sizes) == 65
    assert [c.size for c in split_clusters(x, np.arange(65), max_size=65)] == [65]


def test_messages_name_the_argument():
    x = pair_with_correlation_minus_half()
    with pytest.raises(TypeError, match=r"^Expected order to hold real numbers, got dtype <U1\.$"):
        split_clusters(x, ["a", "b"])
    with pytest.raises(ValueError, match=r"^Expected penalty to be a finite number in \[0\.0, inf\], got -1\.0\.$"):
        split_clusters(x, [0, 1], penalty=-1)
    with pytest.raises(ValueError, match=r"^Expected max_size to be an integer >= 1, got 0\.$"):
        split_clusters(x, [0, 1], max_size=0)
    with pytest.raises(ValueError, match=r"^Expected width to be an integer >= 1, got 0\.$"):
        cluster_layout(x, width=0)


# ---------------------------------------------------------------------------- cluster_layout


def test_cluster_layout_default_width_and_penalty():
    x = grouped(1, 20)
    assert cluster_layout(x, method="greedy").width == 5  # ceil(sqrt(1.2 x 20)) = ceil(4.9)
    assert cluster_layout(x, width=3, method="greedy").width == 3
    pair = pair_with_correlation_minus_half()
    assert [c.tolist() for c in cluster_layout(pair).clusters] == [[0], [1]]
    assert [c.tolist() for c in cluster_layout(pair, penalty=2.0).clusters] == [[0, 1]]


def test_cluster_layout_of_one_row_and_of_none():
    lay = cluster_layout(np.arange(4.0)[None])
    assert [c.tolist() for c in lay.clusters] == [[0]] and lay.width == 2  # ceil(sqrt(1.2))
    with pytest.raises(ValueError, match=r"^Expected features to have at least one row to lay out, got none\.$"):
        cluster_layout(np.zeros((0, 4)))


def test_cluster_layout_orders_by_tsp_by_default():
    x = grouped(0, 20)
    tsp = corrsort(x, "tsp", solver="builtin", time_budget=0, neighbours=2)
    assert tsp.tolist() != corrsort(x).tolist()
    lay = cluster_layout(x, penalty=0.0, solver="builtin", time_budget=0, neighbours=2)
    assert [c.tolist() for c in lay.clusters] == [[i] for i in tsp.tolist()]


def test_cluster_layout_clusters_fit_on_a_line():
    x = np.tile(np.arange(5.0), (12, 1)) + 1e-3 * np.random.default_rng(0).normal(size=(12, 5))
    lay = cluster_layout(x, width=5, method="greedy")
    sizes = [c.size for c in lay.clusters]  # one run would be cheapest, but a line holds 5
    assert len(sizes) == 3 and max(sizes) <= 5 and sum(sizes) == 12
