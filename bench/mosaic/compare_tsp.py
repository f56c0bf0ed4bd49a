"""corrsort's refinement by solver at equal time budgets: the built-in search against fast-tsp.

Data: the 450 filters of a Bernoulli RBM on the embedded MNIST digits, the ``rbm450`` set of
``compare_order.py`` (same function, same cache). Each row is one solver at one budget, run
``--repeats`` times, interleaved, after a warm-up; path length is the sum of ``1 - r`` over
adjacent filters, and "above best" is against the shortest path any run of any row found.

Rows besides corrsort's two solvers: fast-tsp on the plain tour cut at its longest edge (the
tour-to-path conversion corrsort does not use: its paths show why), and LKH through elkai
(``solver="lkh"``, one run to completion, no budget), when elkai is installed.

    flock /tmp/fastseq-bench.lock python bench/mosaic/compare_tsp.py
    flock /tmp/fastseq-bench.lock python bench/mosaic/compare_tsp.py --budgets 0.05 0.43 --repeats 3 --json out.json
"""
from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from fastseq.mosaic import _tsp_solvers, corrsort
from fastseq.mosaic.order import BLOCK_BYTES, correlation_matrix, standardize

sys.path.append(str(Path(__file__).resolve().parents[1]))  # bench/: shared helpers (and compare_order before the move)
from _json_out import write_json  # noqa: E402
from compare_order import rbm_filters  # noqa: E402


def lengths_of(x: np.ndarray):
    """``length(order)``: sum of 1 - r along ``order``, in float64."""
    z = standardize(x, np.float64)

    def length(order) -> float:
        order = np.asarray(order)
        assert sorted(order.tolist()) == list(range(len(z)))
        return float((1.0 - np.einsum("ij,ij->i", z[order[:-1]], z[order[1:]])).sum())

    return length


def fast_tsp_cut_at_longest_edge(x: np.ndarray, seconds: float) -> np.ndarray:
    """fast-tsp's closed tour on the same integer distances, without the dummy row, opened at
    its longest edge."""
    import fast_tsp

    z = standardize(x, np.float32)
    c = correlation_matrix(z)
    n = len(z)
    m = _tsp_solvers.integer_distances(c, z, BLOCK_BYTES)[:n, :n]
    tour = np.asarray(fast_tsp.find_tour(np.ascontiguousarray(m), duration_seconds=seconds))
    k = int(np.argmax(1.0 - c[tour, np.roll(tour, -1)]))
    return np.roll(tour, -(k + 1))


def methods(x: np.ndarray, budgets: list[float]) -> dict:
    rows = {("greedy (no refinement)", None): lambda r: corrsort(x, "greedy")}
    for b in budgets:
        rows[("builtin", b)] = lambda r, b=b: corrsort(x, "tsp", time_budget=b, seed=r, solver="builtin")
        rows[("fast-tsp", b)] = lambda r, b=b: corrsort(x, "tsp", time_budget=b, solver="fast-tsp")
        rows[("fast-tsp, tour cut at its longest edge", b)] = lambda r, b=b: fast_tsp_cut_at_longest_edge(x, b)
    if importlib.util.find_spec("elkai") is not None:
        rows[("lkh (elkai, one run, no budget)", None)] = lambda r: corrsort(x, "tsp", solver="lkh")
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budgets", nargs="+", type=float, default=[0.05, 0.1, 0.43, 2.0], metavar="SECONDS")
    ap.add_argument("--repeats", type=int, default=5, help="runs of each row")
    ap.add_argument("--json", help="also write the rows as JSON here")
    args = ap.parse_args(argv)
    x = rbm_filters()
    length = lengths_of(x)
    rows = methods(x, args.budgets)
    for solver in ("builtin", "fast-tsp"):  # compile and load outside the timing
        corrsort(x[:30], "tsp", time_budget=0.01, solver=solver)
    for fn in rows.values():
        fn(0)
    times: dict = {k: [] for k in rows}
    paths: dict = {k: [] for k in rows}
    for r in range(args.repeats):
        for key, fn in rows.items():
            t0 = time.perf_counter()
            order = fn(r)
            times[key].append(time.perf_counter() - t0)
            paths[key].append(length(order))
            print(f"  {key[0]} {key[1]}: {times[key][-1]:.3f} s {paths[key][-1]:.4f}", file=sys.stderr, flush=True)
    best = min(min(v) for v in paths.values())
    out = []
    print(f"| solver (N = {x.shape[0]}, {args.repeats} runs each) | budget s | median s | median path | "
          "median above best | range above best |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for (name, budget), lens in paths.items():
        above = [100 * (v / best - 1) for v in lens]
        row = {"solver": name, "budget_s": budget, "median_s": statistics.median(times[(name, budget)]),
               "median_path": statistics.median(lens), "median_above_pct": statistics.median(above),
               "min_above_pct": min(above), "max_above_pct": max(above), "runs": args.repeats}
        out.append(row)
        shown = "-" if budget is None else f"{budget:g}"
        print(f"| {name} | {shown} | {row['median_s']:.3f} | {row['median_path']:.4f} | "
              f"{row['median_above_pct']:.3f}% | {row['min_above_pct']:.3f}-{row['max_above_pct']:.3f}% |")
    print(f"best path found: {best:.4f}")
    if args.json:
        write_json(args.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
