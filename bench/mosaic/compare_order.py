"""Tile ordering side by side: fastseq.corrsort against the methods it replaces.

Path length = sum of (1 - r) over adjacent tiles; quality is reported as % above the
shortest path any method found on that data set. Every method starts from the raw
``N x 784`` features, so each time includes that method's own correlation matrix.

Data sets: ``rbm450``, the 450 filters of a Bernoulli RBM trained for a few epochs
on the 5,000 MNIST digits shipped inside fastseq (cached in the temp folder);
``random450``/``random10k``, Gaussian rows; ``digits10k``, the 5,000 digits and their
mirror images (a structured 10,000 x 784 set; there is no 10,000-unit RBM quick enough
to train here).

Run (about 5 minutes; the first run also trains the RBM, about a minute)::

    flock /tmp/fastseq-bench.lock python bench/mosaic/compare_order.py --json out.json
    flock /tmp/fastseq-bench.lock python bench/mosaic/compare_order.py --seeds 8   # spread over seeds
    flock /tmp/fastseq-bench.lock python bench/mosaic/compare_order.py --equal-budgets 0.1 0.43 2

``--equal-budgets``: the searches at the same wall-clock budgets on one thread, each
run the same number of times (``--repeats``, interleaved, after a warm-up), medians
reported; methods without a budget knob run to completion with their time shown.
"""
from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
import tracemalloc
from pathlib import Path

import numpy as np

from fastseq.mosaic.order import corrsort, standardize

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: the shared helpers, when run as a path
from _json_out import write_json  # noqa: E402
from _timing import interleave, median, timed  # noqa: E402

# ---------------------------------------------------------------------------- data


def rbm_filters(n_hidden: int = 450, epochs: int = 3) -> np.ndarray:
    """Filters of a Bernoulli RBM on the embedded MNIST digits, cached as .npy (no pickle)."""
    path = os.path.join(tempfile.gettempdir(), "fastseq-bench", f"rbm{n_hidden}_e{epochs}.npy")
    if os.path.exists(path):
        return np.load(path, allow_pickle=False)
    from fastseq.datasets import embedded_digits
    from sklearn.neural_network import BernoulliRBM

    x, _ = embedded_digits(flat=True)
    rbm = BernoulliRBM(n_components=n_hidden, learning_rate=0.05, batch_size=20, n_iter=epochs, random_state=0)
    w = rbm.fit(x / 255.0).components_.astype(np.float32)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp.npy"
    np.save(tmp, w)
    os.replace(tmp, path)
    return w


def digits10k() -> np.ndarray:
    from fastseq.datasets import embedded_digits

    x = embedded_digits(flat=True)[0].astype(np.float32)
    return np.concatenate([x, x.reshape(-1, 28, 28)[:, :, ::-1].reshape(-1, 784)])


def distances(x: np.ndarray) -> np.ndarray:
    """``N x N`` float32 matrix of 1 - r (diagonal 0), what every peer solver is given."""
    z = standardize(x, np.float32)
    d = 1.0 - z @ z.T
    np.fill_diagonal(d, 0.0)
    return np.maximum(d, 0.0, out=d)


def path_length(d: np.ndarray, order) -> float:
    order = np.asarray(order)
    return float(d[order[:-1], order[1:]].astype(np.float64).sum())


# ---------------------------------------------------------------------------- peers


def numpy_greedy(x: np.ndarray) -> np.ndarray:
    """The original greedy, written plainly: start from the most correlated pair and
    repeatedly append the unused tile most correlated with the current end."""
    z = standardize(x, np.float32)
    c = z @ z.T
    np.fill_diagonal(c, -np.inf)
    i, j = divmod(int(np.argmax(c)), c.shape[0])
    order = [i, j]
    c[:, i] = -np.inf
    c[:, j] = -np.inf
    for _ in range(c.shape[0] - 2):
        nxt = int(np.argmax(c[order[-1]]))
        order.append(nxt)
        c[:, nxt] = -np.inf
    return np.array(order)


def tsp_solver2(x: np.ndarray) -> np.ndarray:
    from tsp_solver.greedy import solve_tsp

    return np.array(solve_tsp(distances(x).tolist()))


def leaf_ordering(x: np.ndarray) -> np.ndarray:
    from scipy.cluster.hierarchy import leaves_list, linkage, optimal_leaf_ordering
    from scipy.spatial.distance import squareform

    y = squareform(distances(x), checks=False)
    return leaves_list(optimal_leaf_ordering(linkage(y, "average"), y))


def _open_path(tour, dummy: int) -> np.ndarray:
    tour = list(tour)
    k = tour.index(dummy)
    return np.array(tour[k + 1 :] + tour[:k])


def lkh(x: np.ndarray, runs: int = 1) -> np.ndarray:
    """LKH through elkai; a dummy city at distance 0 from all turns the tour into a path."""
    import elkai

    d = np.round(distances(x) * 1e5).astype(np.int64)
    n = d.shape[0]
    m = np.zeros((n + 1, n + 1), dtype=np.int64)
    m[:n, :n] = d
    return _open_path(elkai.solve_int_matrix(m.tolist(), runs=runs), n)


def fast_tsp_path(x: np.ndarray, seconds: float, threads: int | None = None) -> np.ndarray:
    """fast-tsp with uint16 distances; a dummy city at the largest distance from all
    (the same for every path, so it does not change which path is shortest)."""
    import fast_tsp

    d = np.round(distances(x) * 30_000).astype(np.uint16)
    n = d.shape[0]
    m = np.full((n + 1, n + 1), 60_000, dtype=np.uint16)
    m[:n, :n] = d
    m[n, n] = 0
    return _open_path(fast_tsp.find_tour(m, duration_seconds=seconds, max_threads=threads), n)


# ---------------------------------------------------------------------------- run


def correlation_only(x: np.ndarray) -> None:
    z = standardize(x, np.float32)
    z @ z.T


def methods_for(n: int, tsp_budget: float, fast_tsp_long: float) -> dict:
    m = {
        "correlation matrix only": (correlation_only, 3),
        "fastseq greedy": (lambda x: corrsort(x, "greedy"), 3),
        "fastseq greedy, rows mode": (lambda x: corrsort(x, "greedy", rows=True), 3 if n < 5000 else 1),
        f"fastseq tsp (budget {tsp_budget:.2f} s)": (lambda x: corrsort(x, "tsp", time_budget=tsp_budget), 3),
        "numpy greedy (original)": (numpy_greedy, 3 if n < 5000 else 1),
        f"fast-tsp ({tsp_budget:.2f} s)": (lambda x: fast_tsp_path(x, tsp_budget), 1),
        f"fast-tsp ({fast_tsp_long:.0f} s)": (lambda x: fast_tsp_path(x, fast_tsp_long), 1),
    }
    if n <= 2000:
        m["tsp-solver2 (greedy matching + 2-opt)"] = (tsp_solver2, 3)
        m["scipy optimal_leaf_ordering"] = (leaf_ordering, 1)
        m["LKH via elkai (runs=1)"] = (lkh, 1)
    return m


def bench(name: str, x: np.ndarray, tsp_budget: float, fast_tsp_long: float) -> list[dict]:
    n = x.shape[0]
    d = distances(x)
    methods = methods_for(n, tsp_budget, fast_tsp_long)
    lengths: dict[str, float] = {}
    peak: dict[str, float] = {}
    ran: set[str] = set()

    def case(label: str, fn):
        def run() -> float:
            first = label not in ran
            ran.add(label)
            if first and label.startswith("fastseq"):  # compile outside the timing
                corrsort(x[:20], "tsp", time_budget=0.01)
                corrsort(x[:20], "greedy", rows=True)
            track = first and n >= 5000 and label.startswith("fastseq")
            if track:
                tracemalloc.start()
            took, out = timed(lambda: fn(x))
            if track:
                peak[label] = tracemalloc.get_traced_memory()[1] / 2**20
                tracemalloc.stop()
            if out is not None:
                assert sorted(np.asarray(out).tolist()) == list(range(n)), label
                lengths[label] = min(lengths.get(label, np.inf), path_length(d, out))
            print(f"  {name} {label}: {took:.3f} s", file=sys.stderr, flush=True)
            return took
        return run

    # interleaved repeats; slow methods sit out the later rounds
    times = interleave({label: case(label, fn) for label, (fn, _) in methods.items()},
                       {label: rep for label, (_, rep) in methods.items()}, warmup=False)
    best = min(lengths.values())
    rows = []
    for label in methods:
        rows.append({
            "data": name, "n": n, "method": label, "median_s": median(times[label]),
            "repeats": len(times[label]), "path_length": lengths.get(label),
            "above_best_pct": None if label not in lengths else 100 * (lengths[label] / best - 1),
            "peak_mib": peak.get(label),
        })
    return rows


def print_table(rows: list[dict]) -> None:
    print("| data | N | method | median time (s) | x corr. matrix | path length (sum 1 - r) | above best | peak MiB |")
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        ref = next(r["median_s"] for r in rows if r["data"] == row["data"] and r["method"].startswith("correlation"))
        length = "" if row["path_length"] is None else f"{row['path_length']:.2f}"
        above = "" if row["above_best_pct"] is None else f"{row['above_best_pct']:.2f}%"
        peak = "" if row["peak_mib"] is None else f"{row['peak_mib']:.0f}"
        print(f"| {row['data']} | {row['n']} | {row['method']} | {row['median_s']:.3f} | "
              f"{row['median_s'] / ref:.2f} | {length} | {above} | {peak} |")


def seed_sweep(x: np.ndarray, seeds: int) -> None:
    """Spread of ``corrsort(x, "tsp")`` over seeds: % above fast-tsp's 2 s path, and time."""
    d = distances(x)
    best = path_length(d, fast_tsp_path(x, 2.0))
    corrsort(x[:20], "tsp", time_budget=0.01)
    above, took = [], []
    for seed in range(seeds):
        t, order = timed(lambda: corrsort(x, "tsp", seed=seed))
        took.append(t)
        above.append(100 * (path_length(d, order) / best - 1))
    print(f"fastseq tsp over {seeds} seeds, N = {x.shape[0]}: above fast-tsp (2 s) median {np.median(above):.2f}%, "
          f"max {max(above):.2f}%; time median {np.median(took):.3f} s, max {max(took):.3f} s")


def equal_budgets(x: np.ndarray, budgets: list[float], repeats: int, with_lkh: bool) -> list[dict]:
    """Every search at each budget, the same number of runs each, interleaved; medians.

    "Above best" is against the shortest path any run of any method found.
    """
    d = distances(x)
    methods = {"fastseq greedy (instant)": lambda r: corrsort(x, "greedy"),
               "NumPy greedy, the original (instant)": lambda r: numpy_greedy(x),
               "tsp-solver2 (runs to completion)": lambda r: tsp_solver2(x)}
    for b in budgets:
        methods[f"fastseq tsp, {b:g} s"] = lambda r, b=b: corrsort(x, "tsp", time_budget=b, seed=r)
        methods[f"fast-tsp, {b:g} s, 1 thread"] = lambda r, b=b: fast_tsp_path(x, b, threads=1)
    if with_lkh:
        methods["LKH via elkai, runs=1 (runs to completion)"] = lambda r: lkh(x)
    corrsort(x[:20], "tsp", time_budget=0.01)  # compile outside the timing
    for label, fn in methods.items():  # warm-up (LKH only runs the counted repeats: 20 s each)
        if "LKH" not in label:
            fn(0)
    lengths = {k: [] for k in methods}

    def case(label: str, fn):
        seeds = itertools.count()  # round r runs with seed r

        def run() -> float:
            seed = next(seeds)
            took, out = timed(lambda: fn(seed))
            assert sorted(np.asarray(out).tolist()) == list(range(x.shape[0])), label
            lengths[label].append(path_length(d, out))
            print(f"  {label}: {took:.3f} s {lengths[label][-1]:.2f}", file=sys.stderr, flush=True)
            return took
        return run

    times = interleave({label: case(label, fn) for label, fn in methods.items()}, repeats, warmup=False)
    best = min(min(v) for v in lengths.values())
    rows = []
    print(f"| method (N = {x.shape[0]}, {repeats} runs each) | median s | median path | median above best | "
          "range above best |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for label in methods:
        above = [100 * (v / best - 1) for v in lengths[label]]
        row = {"method": label, "median_s": median(times[label]),
               "median_path": median(lengths[label]), "median_above_pct": median(above),
               "min_above_pct": min(above), "max_above_pct": max(above), "runs": repeats}
        rows.append(row)
        print(f"| {label} | {row['median_s']:.3f} | {row['median_path']:.2f} | {row['median_above_pct']:.2f}% | "
              f"{row['min_above_pct']:.2f}-{row['max_above_pct']:.2f}% |")
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", help="also write the rows as JSON here")
    ap.add_argument("--sets", nargs="+", default=["rbm450", "random450", "digits10k", "random10k"])
    ap.add_argument("--seeds", type=int, default=0, help="only run corrsort tsp on rbm450 with this many seeds")
    ap.add_argument("--equal-budgets", nargs="+", type=float, metavar="SECONDS",
                    help="only compare the searches on rbm450 at these equal time budgets")
    ap.add_argument("--repeats", type=int, default=5, help="runs of each method with --equal-budgets")
    ap.add_argument("--no-lkh", action="store_true", help="leave LKH (about 20 s a run) out of --equal-budgets")
    args = ap.parse_args(argv)
    if args.equal_budgets:
        rows = equal_budgets(rbm_filters(), args.equal_budgets, args.repeats, not args.no_lkh)
        if args.json:
            write_json(args.json, rows)
        return 0
    if args.seeds:
        seed_sweep(rbm_filters(), args.seeds)
        return 0
    rng = np.random.default_rng(0)
    data = {
        "rbm450": rbm_filters, "random450": lambda: rng.normal(size=(450, 784)).astype(np.float32),
        "digits10k": digits10k, "random10k": lambda: rng.normal(size=(10_000, 784)).astype(np.float32),
    }
    rows = []
    for name in args.sets:
        x = data[name]()
        n = x.shape[0]
        budget = min(10.0, 0.25 + 0.0004 * n)  # corrsort's default
        rows += bench(name, x, budget, 2.0 if n < 5000 else 10.0)
    print_table(rows)
    if args.json:
        write_json(args.json, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
