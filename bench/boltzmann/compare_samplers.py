"""Plain Gibbs sampling against parallel tempering, and PCD training against tempered PCD, on
the embedded digits.

Three cases, each drawing ``--samples`` chains for ``--steps`` sweeps from random starts:

1. ``gibbs``: the guide's sample-mosaic machine (784-500 RBM, PCD-1 with 100 chains, batch
   20, rate 0.05, momentum 0.5, ``--epochs`` epochs) sampled by plain Gibbs steps;
2. ``pt``: the same machine sampled with parallel tempering (automatic ladder);
3. ``pt-trained``: a machine with the same settings trained with ``tempering="auto"`` on
   ``--pt-chains`` persistent chains per temperature, for the same wall time as the first
   (its epochs are whatever fit), sampled with parallel tempering.

The machines train on 80% of the 5,000 digits (``held_out_split``, seed 0; binarised at
0.5) and are scored on the other 20%. Each sample (the last step's ``E[v | h]``, binarised)
is labelled by a 5-nearest-neighbour classifier fitted on the real training digits (its
held-out accuracy is reported): mode coverage is the number of classes with at least 3 of
the samples, and the largest class share. The held-out log-likelihood is the AIS estimate
(``ais_log_partition`` with ``--ais-betas`` temperatures and ``--ais-runs`` runs, then
``average_log_likelihood``). Wall times are single-threaded (BLAS, Numba, PyTorch). Targets:
at least 9 of 10 classes with 3 samples or more, no class above 25%, and the tempered-trained
machine's held-out log-likelihood above the plain PCD machine's.

``--schedule linear`` trains both machines with ``learning_rate_schedule="linear"`` (the rate
falls to 0 over the epochs), so the tempered machine cannot train "for the same time" (the
schedule needs its epoch count up front): it trains ``--pt-epochs`` epochs (default
``--epochs``), and the times say how the two compare (about equal per update with
``--pt-rungs 4 --pt-chains 25``, where an update costs what a PCD update with 100 chains costs).

    flock /tmp/fastseq-bench.lock python bench/boltzmann/compare_samplers.py --json out.json
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.neighbors import KNeighborsClassifier
from threadpoolctl import threadpool_limits

from fastseq.boltzmann import RBM, ais_log_partition, average_log_likelihood
from fastseq.datasets import embedded_digits, held_out_split

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: the shared helpers, when run as a path
from _json_out import write_json  # noqa: E402
from _timing import timed  # noqa: E402


def settings(args) -> dict:
    return dict(n_components=args.hidden, learning_rate=0.05, batch_size=20, momentum=0.5, random_state=args.seed,
                learning_rate_schedule=args.schedule)


def train_for(model: RBM, X: np.ndarray, budget: float) -> tuple[RBM, int]:
    """Whole epochs until ``budget`` seconds have passed since the start (the last one is not
    started when half of it would not fit); returns the model and the updates made.

    ``fit`` makes the first epoch; the later ones go on from it through the machine's own
    epoch (``fit`` would start again, and ``partial_fit`` makes one update per call, paying
    its validation each time), so both machines train through the same fused kernel."""
    start = time.perf_counter()
    model.set_params(n_iter=1).fit(X)
    data, epochs, last = model._training_data(X), 1, time.perf_counter() - start
    with model._threads():
        while time.perf_counter() - start + 0.5 * last < budget:
            began = time.perf_counter()
            model._epoch(data, epochs)
            epochs, last = epochs + 1, time.perf_counter() - began
    return model, epochs * -(-len(X) // int(model.batch_size))


def digits_split(rows: int = 0):
    """The binarised embedded digits (``rows`` of them, seeded; 0: all), the 80/20 held-out
    split (seed 0) and the 5-NN labeller fitted on the training digits."""
    images, labels = embedded_digits(flat=True)
    X = (images / 255.0 > 0.5).astype(np.float32)
    if rows:
        keep = np.random.default_rng(0).permutation(len(X))[:rows]
        X, labels = X[keep], labels[keep]
    tr, te = held_out_split(labels, fraction=0.2, seed=0)
    return X, labels, tr, te, KNeighborsClassifier(n_neighbors=5).fit(X[tr], labels[tr])


def coverage(labels: np.ndarray) -> dict:
    counts = np.bincount(labels, minlength=10)
    return {"classes with >= 3": int((counts >= 3).sum()), "largest share": float(counts.max() / len(labels)),
            "counts": counts.tolist()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", type=int, default=500)
    ap.add_argument("--epochs", type=int, default=20, help="epochs of the plain PCD machine")
    ap.add_argument("--pt-epochs", type=int, default=None,
                    help="epochs of the tempered machine with --schedule linear (default: --epochs)")
    ap.add_argument("--pt-chains", type=int, default=10, help="persistent chains per temperature, tempered training")
    ap.add_argument("--pt-rungs", default="auto", help="tempered training's ladder: 'auto' or a number of rungs")
    ap.add_argument("--schedule", choices=("constant", "linear"), default="constant",
                    help="both machines' learning_rate_schedule (linear: the tempered one trains --pt-epochs epochs)")
    ap.add_argument("--seed", type=int, default=0, help="both machines' random_state")
    ap.add_argument("--samples", type=int, default=100, help="0 skips the sampling cases")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--ais-betas", type=int, default=2000, help="0 skips AIS")
    ap.add_argument("--ais-runs", type=int, default=100)
    ap.add_argument("--rows", type=int, default=0, help="use only this many digits (0: all 5,000), for a smoke run")
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    with threadpool_limits(1):
        X, labels, tr, te, clf = digits_split(args.rows)
        result: dict = {"settings": vars(args), "classifier held-out accuracy": float(clf.score(X[te], labels[te]))}

        for warm in ({}, {"tempering": 2}):  # compile (or load) both kernels before any clock runs
            RBM(n_components=4, n_iter=1, batch_size=20, **warm).fit(X[:40])
        pcd = RBM(**settings(args), n_iter=args.epochs, n_chains=100)
        train_s, _ = timed(lambda: pcd.fit(X[tr]))
        rungs = args.pt_rungs if args.pt_rungs == "auto" else int(args.pt_rungs)
        ptm = RBM(**settings(args), n_chains=args.pt_chains, tempering=rungs)
        if args.schedule == "constant":
            pt_train_s, (_, updates) = timed(lambda: train_for(ptm, X[tr], train_s))
        else:
            pt_epochs = args.epochs if args.pt_epochs is None else args.pt_epochs
            pt_train_s, _ = timed(lambda: ptm.set_params(n_iter=pt_epochs).fit(X[tr]))
            updates = pt_epochs * -(-len(tr) // 20)
        machines = {"pcd": (pcd, train_s, pcd.n_iter * -(-len(tr) // 20)), "pt-trained": (ptm, pt_train_s, updates)}

        cases = {"gibbs": ("pcd", "gibbs"), "pt": ("pcd", "pt"), "pt-trained": ("pt-trained", "pt")}
        if not args.samples:
            cases = {}
        rows = {}
        for name, (machine, sampler) in cases.items():
            model = machines[machine][0]
            took, s = timed(lambda: model.sample(args.samples, args.steps, sampler=sampler))
            row = {"machine": machine, "sampler": sampler, "sampling seconds": took,
                   **coverage(clf.predict((s > 0.5).astype(np.float32)))}
            if sampler == "pt":
                row["rungs"] = len(model.last_tempering_.betas)
                row["lowest beta"] = float(model.last_tempering_.betas[-1])
                row["swap rates"] = model.last_tempering_.swap_rates.round(3).tolist()
            rows[name] = row
        for machine, (model, seconds, n_updates) in machines.items():
            info = {"training seconds": seconds, "updates": n_updates, "updates per second": n_updates / seconds}
            if args.ais_betas:
                z = ais_log_partition(model, X[tr], n_betas=args.ais_betas, n_runs=args.ais_runs, random_state=0)
                info["AIS log Z"], info["AIS log Z std"] = z.log_z, z.log_z_std
                info["held-out log-likelihood"] = average_log_likelihood(model, X[te], z)
            if machine == "pt-trained":
                info["training rungs"] = len(model.tempering_.betas)
                info["training betas"] = model.tempering_.betas.round(4).tolist()
                info["training swap rates"] = model.tempering_.swap_rates.round(3).tolist()
            machines[machine] = info
    result["cases"], result["machines"] = rows, machines

    print(f"classifier (5-NN on the real training digits) held-out accuracy: "
          f"{result['classifier held-out accuracy']:.3f}")
    if rows:
        print(f"\n{args.samples} samples after {args.steps} sweeps from random starts, {args.hidden} hidden units")
        print("| case | classes with >= 3 | largest share | rungs | sampling s | counts by class |")
        print("| --- | ---: | ---: | ---: | ---: | --- |")
    for name, r in rows.items():
        print(f"| {name} | {r['classes with >= 3']} | {r['largest share']:.2f} | {r.get('rungs', 1)} "
              f"| {r['sampling seconds']:.1f} | {r['counts']} |")
    print("\n| machine | training s | updates | updates/s | held-out log-likelihood (AIS), nats | log Z +- s.e. |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, m in machines.items():
        ll = f"{m['held-out log-likelihood']:.1f}" if "held-out log-likelihood" in m else "-"
        z = f"{m['AIS log Z']:.2f} +- {m['AIS log Z std']:.2f}" if "AIS log Z" in m else "-"
        print(f"| {name} | {m['training seconds']:.1f} | {m['updates']} | {m['updates per second']:.0f} | {ll} | {z} |")
    if args.json:
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
