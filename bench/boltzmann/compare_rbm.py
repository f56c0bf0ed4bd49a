"""Side-by-side figures for fastseq's Boltzmann machines, measured in one process.

Timing sections (``--sections``), each at every thread count of ``--threads`` (BLAS, Numba
and PyTorch pools all limited to it), repeats interleaved, medians reported:

1. ``small``: digits 64 -> 16 (scikit-learn's 8x8 digits scaled to [0, 1]), batch 10,
   10 iterations: fastseq ``RBM`` vs scikit-learn ``BernoulliRBM``;
2. ``epoch``: one PCD-1 epoch of a 784-500 RBM, batch 100, over the 5,000 embedded MNIST
   digits: fastseq (float32) vs ``BernoulliRBM`` fed float64 and fed float32, and the floor:
   the epoch's own matrix products alone (the same BLAS, the same shapes);
3. ``gibbs``: a Gibbs step h -> v -> h (batch 100) against its two matrix products;
4. ``beta``: Beta draws, ``fastseq.boltzmann._sampling_nb.beta_ab`` vs NumPy's
   ``Generator.beta``, after a PyTorch model has been trained in the process (shapes above
   and below 1).

With ``--quality``: held-out exact pseudo-likelihood and AIS log-likelihood of fastseq's
RBM and scikit-learn's, trained alike on a shuffled, class-stratified split of the digits
(``fastseq.datasets.held_out_split``), both scored by fastseq's functions; with
``--samples PNG``: a mosaic of samples generated from scratch. Run under the shared lock:

    flock /tmp/fastseq-bench.lock python bench/boltzmann/compare_rbm.py --repeats 7 --json out.json
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numba
import numpy as np
import torch
from numba import njit
from threadpoolctl import threadpool_limits

from fastseq.boltzmann import RBM, ais_log_partition, average_log_likelihood, pseudo_likelihood
from fastseq.boltzmann import _sampling_nb as nbs
from fastseq.datasets import held_out_split
from fastseq.mosaic import save_png, tile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: the shared helpers, when run as a path
from _json_out import write_json  # noqa: E402
from _timing import summary, time_cases, timed  # noqa: E402

D, H, B = 784, 500, 100


def digits() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 embedded MNIST digits in [0, 1] and their labels (sorted by class as shipped)."""
    from fastseq.datasets import embedded_digits

    X, y = embedded_digits(flat=True)
    return X / 255.0, y


def interleave(cases: dict, repeats: int) -> tuple[dict[str, float], dict[str, float]]:
    """Median seconds of each case (cases run in turn ``repeats`` times after a warm-up: JIT
    compile, caches) and its spread (max/min)."""
    stats = {k: summary(v) for k, v in time_cases(cases, repeats).items()}
    return {k: s["median"] for k, s in stats.items()}, {k: s["max"] / s["min"] for k, s in stats.items()}


class threads:
    """Limit every pool (BLAS through threadpoolctl, Numba, PyTorch) to n threads."""

    def __init__(self, n: int):
        self.n = n

    def __enter__(self):
        self.old = (numba.get_num_threads(), torch.get_num_threads())
        self.limits = threadpool_limits(self.n)
        numba.set_num_threads(self.n)
        torch.set_num_threads(self.n)

    def __exit__(self, *exc):
        self.limits.unregister()
        numba.set_num_threads(self.old[0])
        torch.set_num_threads(self.old[1])


def bench_small(repeats: int) -> tuple[dict, dict]:
    from sklearn.datasets import load_digits
    from sklearn.neural_network import BernoulliRBM

    X = load_digits().data / 16.0
    common = dict(n_components=16, batch_size=10, n_iter=10, random_state=0)
    return interleave({"fastseq RBM": lambda: RBM(**common).fit(X),
                       "sklearn BernoulliRBM": lambda: BernoulliRBM(**common).fit(X)}, repeats)


@njit(cache=True)
def _epoch_matmuls(X, w, batch, n_chains):
    """The matrix products of one PCD-1 epoch, nothing else: v0 W, h W^T, v W, and the
    weight gradient as one product of the stacked statistics."""
    n, d = X.shape
    h = w.shape[1]
    stack_v = np.zeros((batch + n_chains, d), X.dtype)
    stack_h = np.zeros((batch + n_chains, h), X.dtype)
    hk = np.zeros((n_chains, h), X.dtype)
    for s in range(0, n, batch):
        v0 = X[s:s + batch]
        np.dot(v0, w)
        vneg = np.dot(hk, w.T)
        np.dot(vneg, w)
        np.dot(stack_v.T, stack_h)


def bench_epoch(X: np.ndarray, repeats: int) -> tuple[dict, dict]:
    from sklearn.neural_network import BernoulliRBM

    X32, X64 = X.astype(np.float32), X.astype(np.float64)
    common = dict(n_components=H, batch_size=B, n_iter=1, learning_rate=0.05, random_state=0)
    w = (np.random.default_rng(0).normal(size=(D, H)) * 0.01).astype(np.float32)
    return interleave({
        "fastseq RBM (float32)": lambda: RBM(**common).fit(X32),
        "fastseq RBM fed float64": lambda: RBM(**common).fit(X64),
        "sklearn BernoulliRBM (float64)": lambda: BernoulliRBM(**common).fit(X64),
        "sklearn BernoulliRBM (float32)": lambda: BernoulliRBM(**common).fit(X32),
        "floor: the epoch's matrix products (float32)": lambda: _epoch_matmuls(X32, w, B, B),
    }, repeats)


@njit(cache=True)
def _step_matmuls(h, w, steps):
    for _ in range(steps):
        v = np.dot(h, w.T)
        h = np.dot(v, w)
    return h


def bench_gibbs(X: np.ndarray, repeats: int, steps: int = 20) -> tuple[dict, dict]:
    model = RBM(n_components=H, batch_size=B, n_iter=1, learning_rate=0.05, random_state=0).fit(
        X[:1000].astype(np.float32))
    p = model.params_
    W, b, c = (p[k].detach().numpy() for k in ("W", "b", "c"))
    h0 = (np.random.default_rng(0).random((B, H)) < 0.5).astype(np.float32)
    t, spread = interleave({
        "two matrix products": lambda: _step_matmuls(h0, W, steps),
        # steps + 1 visible draws and steps hidden draws: `steps` whole steps h -> v -> h
        "Gibbs step (the model's CPU chain)": lambda: nbs.gibbs_chain(h0, W, b, c, steps + 1, model._streams),
    }, repeats)
    return {k: v / steps for k, v in t.items()}, spread


def train_a_torch_model() -> None:
    """What a real process has done before drawing: trained a PyTorch model on all threads."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(256, 512), torch.nn.ReLU(), torch.nn.Linear(512, 10))
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    x, y = torch.randn(512, 256), torch.randint(0, 10, (512,))
    for _ in range(30):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()


def bench_beta(repeats: int, n: int = 1_000_000) -> tuple[dict, dict]:
    rng = np.random.default_rng(0)
    a, b = rng.uniform(1.0, 20.0, n), rng.uniform(1.0, 20.0, n)
    sa, sb = rng.uniform(0.05, 0.95, n), rng.uniform(0.05, 0.95, n)
    gens = nbs.make_streams(0)
    train_a_torch_model()
    return interleave({
        "fastseq beta(a, b > 1)": lambda: nbs.beta_ab(a, b, gens),
        "numpy beta(a, b > 1)": lambda: rng.beta(a, b),
        "fastseq beta(a, b < 1)": lambda: nbs.beta_ab(sa, sb, gens),
        "numpy beta(a, b < 1)": lambda: rng.beta(sa, sb),
    }, repeats)


def quality(X: np.ndarray, labels: np.ndarray, n_iter: int, n_betas: int, seed: int = 0) -> dict[str, float]:
    from sklearn.neural_network import BernoulliRBM

    Xb = (X > 0.5).astype(np.float32)
    # the embedded digits are sorted by class: hold out a shuffled 20% of every class
    tr, te = held_out_split(labels, fraction=0.2, seed=seed)
    train, test = Xb[tr], Xb[te]
    settings = dict(n_components=H, learning_rate=0.05, batch_size=B, n_iter=n_iter, random_state=seed)
    ours = RBM(**settings).fit(train)
    theirs = BernoulliRBM(**settings).fit(train.astype(np.float64))
    twin = RBM(n_components=H, n_iter=0).fit(train)
    with torch.no_grad():
        twin.params_["W"].copy_(torch.from_numpy(theirs.components_.T))
        twin.params_["b"].copy_(torch.from_numpy(theirs.intercept_visible_))
        twin.params_["c"].copy_(torch.from_numpy(theirs.intercept_hidden_))
    out = {
        "fastseq exact PL": float(pseudo_likelihood(ours, test).mean()),
        "sklearn exact PL": float(pseudo_likelihood(twin, test).mean()),
        "sklearn own score_samples": float(np.mean([theirs.set_params(random_state=r).score_samples(
            test.astype(np.float64)).mean() for r in range(10)])),
    }
    if n_betas:
        def ais(m: RBM):
            r = ais_log_partition(m, train, n_betas=n_betas, n_runs=100, random_state=seed)
            return r, average_log_likelihood(m, test, r)

        for name, m in (("fastseq", ours), ("sklearn", twin)):
            took, (r, log_likelihood) = timed(lambda: ais(m))
            out[f"{name} AIS log Z"] = r.log_z
            out[f"{name} AIS log Z std"] = r.log_z_std
            out[f"{name} test log-likelihood (AIS)"] = log_likelihood
            out[f"{name} AIS seconds"] = took
    return out


def samples_png(X: np.ndarray, path: str, n_iter: int, n_steps: int) -> dict[str, float]:
    model = RBM(n_components=H, learning_rate=0.05, batch_size=20, n_iter=n_iter, momentum=0.5,
                n_chains=100, random_state=0, progress=True)
    fit_s, _ = timed(lambda: model.fit((X > 0.5).astype(np.float32)))
    sample_s, s = timed(lambda: model.sample(100, n_steps=n_steps, progress=True))
    save_png(tile(s, shape=(28, 28), width=10, spacing=2, scale=None, background=1.0), path)
    return {"train seconds": fit_s, "sampling seconds": sample_s}


def table(title: str, times: dict[str, float], spread: dict[str, float], base: str, unit: str = "ms",
          scale: float = 1e3) -> None:
    print(f"\n{title}")
    print(f"| case | median {unit} | ratio to {base} | max/min of repeats |")
    print("| --- | ---: | ---: | ---: |")
    for k, v in times.items():
        print(f"| {k} | {v * scale:.2f} | {v / times[base]:.2f} | {spread[k]:.2f} |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", default="1,2", help="thread counts to time at, comma-separated")
    ap.add_argument("--skip-timing", action="store_true")
    ap.add_argument("--sections", default="small,epoch,gibbs,beta", help="of small, epoch, gibbs, beta")
    ap.add_argument("--quality", action="store_true", help="pseudo-likelihood and AIS comparison with sklearn")
    ap.add_argument("--quality-epochs", type=int, default=10)
    ap.add_argument("--quality-seed", type=int, default=0, help="seed of the split and of both models")
    ap.add_argument("--ais-betas", type=int, default=14500, help="0 skips AIS")
    ap.add_argument("--samples", metavar="PNG", help="train on the digits and write a mosaic of generated samples")
    ap.add_argument("--sample-epochs", type=int, default=20)
    ap.add_argument("--sample-steps", type=int, default=1000)
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args(argv)
    X, labels = digits()
    result: dict[str, dict] = {}
    sections = set() if args.skip_timing else set(args.sections.split(","))
    for n in [int(t) for t in args.threads.split(",")] if sections else []:
        res = result.setdefault(f"threads={n}", {})
        with threads(n):
            print(f"\n## {n} thread(s): numba {numba.get_num_threads()}, "
                  f"torch {torch.get_num_threads()}")
            if "small" in sections:
                t, sp_ = bench_small(args.repeats)
                table("digits 64 -> 16, batch 10, 10 iterations (fit)", t, sp_, "sklearn BernoulliRBM")
                print(f"speed-up: {t['sklearn BernoulliRBM'] / t['fastseq RBM']:.2f}x BernoulliRBM")
                res["small"] = t
            if "epoch" in sections:
                t, sp_ = bench_epoch(X, args.repeats)
                floor = "floor: the epoch's matrix products (float32)"
                table("PCD-1 epoch, 784-500, batch 100, 5,000 digits", t, sp_, floor)
                ours = t["fastseq RBM (float32)"]
                print(f"speed-up: {t['sklearn BernoulliRBM (float64)'] / ours:.2f}x BernoulliRBM fed float64, "
                      f"{t['sklearn BernoulliRBM (float32)'] / ours:.2f}x fed float32; "
                      f"{ours / t[floor]:.2f}x the floor ({t[floor] * 1e3:.0f} ms)")
                res["epoch"] = t
            if "gibbs" in sections:
                t, sp_ = bench_gibbs(X, args.repeats)
                table("Gibbs step h -> v -> h, 784-500, batch 100 (per step)", t, sp_, "two matrix products")
                share = 1 - t["two matrix products"] / t["Gibbs step (the model's CPU chain)"]
                print(f"share of the step outside its two matrix products: {share:.0%}")
                res["gibbs"] = t
            if "beta" in sections:
                t, sp_ = bench_beta(args.repeats)
                table("Beta draws, 1e6 per call, after training a torch model (a, b ~ U(1, 20); "
                      "small: U(0.05, 0.95))", t, sp_, "numpy beta(a, b > 1)")
                for kind in ("beta(a, b > 1)", "beta(a, b < 1)"):
                    print(f"speed-up {kind}: {t['numpy ' + kind] / t['fastseq ' + kind]:.2f}x numpy")
                res["beta"] = t
    if args.quality:
        q = quality(X, labels, args.quality_epochs, args.ais_betas, args.quality_seed)
        print(f"\nHeld-out quality after {args.quality_epochs} epochs (4,000 train / 1,000 test digits, "
              f"stratified, seed {args.quality_seed}, binarised)")
        for k, v in q.items():
            print(f"| {k} | {v:.3f} |")
        result["quality"] = q
    if args.samples:
        result["samples"] = samples_png(X, args.samples, args.sample_epochs, args.sample_steps)
        print(f"\nwrote {args.samples}: {result['samples']}")
    if args.json:
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
