"""What a deep belief net adds over its bottom RBM on the embedded digits: held-out
log-likelihood, mode coverage of its samples, and time.

Two models on ``--rows`` digits (binarised at 0.5; 80% to train, 20% held out,
``held_out_split`` seed 0):

1. ``rbm``: a 784-H1 RBM (PCD-1 with 100 chains, batch 20, rate 0.05, momentum 0.5,
   ``--epochs`` epochs, seed 0: the settings of ``compare_samplers.py``);
2. ``dbn``: a ``DeepBeliefNet`` 784-H1-H2 whose bottom is that same RBM (same settings and
   seed, so the same parameters bit for bit) and whose top is an H1-H2 RBM with the same
   settings, trained greedily on the bottom's hidden means.

Held-out log-likelihood: the RBM's by AIS (``ais_log_partition`` with ``--ais-betas``
temperatures and 100 runs from the training digits' base rates, then
``average_log_likelihood``); the net's is its variational lower bound
(``log_likelihood_bound``, ``--bound-samples`` up-passes per digit) with the top machine's
log Z by the same AIS, started from the training digits' up-pass. Mode coverage: ``--samples``
chains of ``--steps`` Gibbs steps from random starts (the net: in its top machine, then
down with means), binarised at 0.5 and labelled by a 5-nearest-neighbour classifier fitted
on the real training digits; classes with at least 3 samples and the largest class share
(``coverage`` of ``compare_samplers.py``). Times are wall seconds, single-threaded, after an
untimed warm-up fit (Numba compiles once).

    flock /tmp/fastseq-bench.lock env PYTHONPATH=. python bench/boltzmann/compare_deep.py \\
        --json docs/benchmarks/compare_deep.json

The RBM is also sampled by parallel tempering (``sampler="pt"``) and by deep tempering
(``DeepBeliefNet.sample_bottom_machine``: chains in both layers of the net exchanging the
bottom's hidden codes with the top's visible states, exact for the RBM), from as many random
starts for as many steps; their rows give coverage, sampling time and swap rates.

``--figures DIR`` also draws, from the same models, the pictures of the README and the
guide: the RBM's samples by Gibbs chains and by parallel tempering (``sampler="pt"``,
same starts and steps), the net's samples, a bar chart of the three by class
(``samplers_coverage.png``, needs matplotlib) and strips interpolated at the net's top
layer between held-out digits of different classes.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from fastseq.boltzmann import RBM, DeepBeliefNet, ais_log_partition, average_log_likelihood

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/boltzmann/: compare_samplers, when run as a path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: the shared helpers
from _json_out import write_json  # noqa: E402
from _timing import timed  # noqa: E402
from compare_samplers import coverage, digits_split  # noqa: E402


def machine(n_hidden: int, epochs: int) -> RBM:
    """An RBM with the settings of compare_samplers.py's plain PCD machine."""
    return RBM(n_components=n_hidden, learning_rate=0.05, batch_size=20, momentum=0.5, n_iter=epochs, n_chains=100,
               random_state=0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", type=int, nargs=2, default=[500, 500], metavar=("H1", "H2"))
    ap.add_argument("--epochs", type=int, default=20, help="epochs of each layer")
    ap.add_argument("--rows", type=int, default=0,
                    help="digits used (0: all 5,000; 2000 run in about a fifth of the time)")
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--ais-betas", type=int, default=2000)
    ap.add_argument("--bound-samples", type=int, default=20, help="up-passes per held-out digit in the bound")
    ap.add_argument("--json", metavar="PATH")
    ap.add_argument("--figures", metavar="DIR", help="also write the sample grids, the coverage chart and "
                                                      "interpolation strips here")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    with threadpool_limits(1):
        X, labels, tr, te, clf = digits_split(args.rows)
        result: dict = {"settings": vars(args), "train digits": int(len(tr)), "held-out digits": int(len(te)),
                        "classifier held-out accuracy": float(clf.score(X[te], labels[te]))}
        h1, h2 = args.hidden
        machine(h1, 1).fit(X[tr][:40]).sample(2, 2)  # untimed: Numba compiles its kernels once

        rbm = machine(h1, args.epochs)
        rbm_train, _ = timed(lambda: rbm.fit(X[tr]))
        rbm_ais, z = timed(lambda: ais_log_partition(rbm, X[tr], n_betas=args.ais_betas, n_runs=100, random_state=0))
        rbm_ll = average_log_likelihood(rbm, X[te], z)
        rbm_sample, rbm_s = timed(lambda: rbm.sample(args.samples, args.steps))
        rows = {"rbm": {"layers": [784, h1], "training seconds": rbm_train, "held-out log-likelihood": rbm_ll,
                        "kind": "AIS", "AIS log Z": z.log_z, "AIS log Z std": z.log_z_std, "AIS seconds": rbm_ais,
                        "sampling seconds": rbm_sample, **coverage(clf.predict((rbm_s > 0.5).astype(np.float32)))}}

        dbn = DeepBeliefNet([machine(h1, args.epochs), machine(h2, args.epochs)])
        dbn_train, _ = timed(lambda: dbn.fit(X[tr]))
        same = all(torch.equal(dbn.layers_[0].params_[k], rbm.params_[k]) for k in rbm.params_)
        top = dbn.layers_[-1]
        dbn_ais, zt = timed(lambda: ais_log_partition(top, dbn.layers_[0].transform(X[tr]), n_betas=args.ais_betas,
                                                      n_runs=100, random_state=0))
        bound_s, bound = timed(lambda: dbn.log_likelihood_bound(X[te], log_z=zt, n_samples=args.bound_samples,
                                                                 random_state=0))
        dbn_sample, s = timed(lambda: dbn.sample(args.samples, args.steps))
        # the RBM (the net's bottom, bit for bit) sampled two more ways: parallel tempering, and
        # deep tempering (chains in both layers exchanging codes); same starts count and steps
        pt_sample, pt = timed(lambda: rbm.sample(args.samples, args.steps, sampler="pt"))
        rows["rbm, tempering"] = {"sampler": "pt", "sampling seconds": pt_sample,
                                  "rungs": len(rbm.last_tempering_.betas),
                                  "swap rates": rbm.last_tempering_.swap_rates.round(4).tolist(),
                                  **coverage(clf.predict((pt > 0.5).astype(np.float32)))}
        deep_sample, deep = timed(lambda: dbn.sample_bottom_machine(args.samples, args.steps))
        rows["rbm, deep tempering"] = {"sampler": "deep tempering (the net's two layers)",
                                       "sampling seconds": deep_sample,
                                       "swap rates": dbn.last_deep_tempering_.swap_rates.round(5).tolist(),
                                       **coverage(clf.predict((deep > 0.5).astype(np.float32)))}
        if args.figures:
            figures(Path(args.figures), dbn, {"Gibbs (RBM)": rbm_s, "tempering (RBM)": pt, "deep net": s},
                    X[te], labels[te], clf, args)
        rows["dbn"] = {"layers": [784, h1, h2], "training seconds": dbn_train,
                       "held-out log-likelihood": float(np.mean(bound)), "kind": "lower bound (AIS log Z of the top)",
                       "AIS log Z": zt.log_z, "AIS log Z std": zt.log_z_std, "AIS seconds": dbn_ais + bound_s,
                       "sampling seconds": dbn_sample, "bottom equals the rbm": bool(same),
                       **coverage(clf.predict((s > 0.5).astype(np.float32)))}
    result["models"] = rows

    print(f"{len(tr)} training and {len(te)} held-out digits; 5-NN classifier held-out accuracy "
          f"{result['classifier held-out accuracy']:.3f}; {args.samples} samples after {args.steps} Gibbs steps")
    print("| model | held-out log-likelihood, nats | log Z +- s.e. | classes with >= 3 | largest share "
          "| training s | AIS (+ bound) s | sampling s | counts by class |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for name, r in rows.items():
        if "layers" not in r:
            print(f"| {name} (swap rates {r['swap rates']}) | | | {r['classes with >= 3']} | {r['largest share']:.2f} "
                  f"| | | {r['sampling seconds']:.1f} | {r['counts']} |")
            continue
        sizes = "-".join(map(str, r["layers"]))
        ll = f"{r['held-out log-likelihood']:.1f}" + (" (bound)" if name == "dbn" else "")
        print(f"| {name} {sizes} | {ll} | {r['AIS log Z']:.2f} +- {r['AIS log Z std']:.2f} "
              f"| {r['classes with >= 3']} | {r['largest share']:.2f} | {r['training seconds']:.1f} "
              f"| {r['AIS seconds']:.1f} | {r['sampling seconds']:.1f} | {r['counts']} |")
    if args.json:
        write_json(args.json, result)
    return 0


def figures(folder: Path, dbn, grids: dict, X_test, y_test, clf, args) -> None:
    """Write the sample grids (Gibbs, tempering, the net's), the per-class chart and interpolation strips."""
    from fastseq.mosaic import save_png, tile

    folder.mkdir(parents=True, exist_ok=True)
    for name, grid in zip(("samples_rbm_gibbs", "samples_rbm_tempering", "samples_dbn"), grids.values()):
        save_png(tile(grid[:60], shape=(28, 28), width=10), folder / f"{name}.png", zoom=2)
    counts = {k: np.bincount(clf.predict((v > 0.5).astype(np.float32)), minlength=10) for k, v in grids.items()}
    pairs = [(int(np.flatnonzero(y_test == a)[0]), int(np.flatnonzero(y_test == b)[0]))
             for a, b in ((0, 6), (1, 7), (3, 8), (4, 9))]
    strips = np.concatenate([dbn.interpolate(X_test[i], X_test[j], n_steps=10) for i, j in pairs])
    save_png(tile(strips, shape=(28, 28), width=10), folder / "dbn_interpolation.png", zoom=2)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no samplers_coverage.png")
    else:
        fig, ax = plt.subplots(figsize=(6, 2.6))
        for k, (name, c) in enumerate(counts.items()):
            ax.bar(np.arange(10) + (k - 1) * 0.27, c, width=0.27, label=name)
        ax.set_xticks(range(10))
        ax.set_xlabel("digit the sample looks like (5-NN of real digits)")
        ax.set_ylabel(f"samples of {args.samples}")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(folder / "samplers_coverage.png", dpi=80)
        plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
