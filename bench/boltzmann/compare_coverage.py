"""Which digits an RBM generates from random starts: the guide's recipe against the covering one.

Two recipes, each trained on the embedded digits' training split (binarised at 0.5, 80%,
``held_out_split`` seed 0) with PCD (100 persistent chains, batch 20, momentum 0.5) from
``--seeds`` seeds:

1. ``guide``: 784-500, rate 0.05 for 20 epochs, no weight decay (the guide's sample mosaic);
2. ``covering``: 784-100, rate 0.05 falling linearly to 0 over 160 epochs
   (``learning_rate_schedule="linear"``), weight decay 3e-3.

Each trained machine generates ``--draws`` sets of ``--samples`` samples, each after
``--steps`` Gibbs steps from random starts; a 5-nearest-neighbour classifier fitted on the
real training digits labels them (its held-out accuracy is printed). A set meets the aim
when at least 9 of the 10 classes have 3 samples or more and no class takes more than 25%.
Each machine's held-out log-likelihood is estimated by AIS (``--ais-betas`` temperatures,
default the library's 14,500; 0 skips it; 100 runs): with 1,000 the 784-500 machines'
log-likelihoods read 12-13 nats higher.

``--samples-png PATH`` writes the covering recipe's first set (seed 0) as a mosaic.

    flock /tmp/fastseq-bench.lock python bench/boltzmann/compare_coverage.py \\
        --json docs/benchmarks/compare_coverage.json --samples-png docs/images/rbm_samples.png
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from fastseq.boltzmann import RBM, ais_log_partition, average_log_likelihood
from fastseq.mosaic import save_png, tile

sys.path.insert(0, str(Path(__file__).resolve().parent))  # compare_samplers: the split and the labeller
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: the shared helpers, when run as a path
from _json_out import write_json  # noqa: E402
from _timing import timed  # noqa: E402
from compare_samplers import coverage, digits_split  # noqa: E402

COMMON = dict(learning_rate=0.05, batch_size=20, momentum=0.5, n_chains=100)
RECIPES = {
    "guide": dict(n_components=500, n_iter=20),
    "covering": dict(n_components=100, n_iter=160, learning_rate_schedule="linear", weight_decay=3e-3),
}
MIN_CLASSES, MIN_COUNT, MAX_SHARE = 9, 3, 0.25


def meets(row: dict) -> bool:
    return row["classes with >= 3"] >= MIN_CLASSES and row["largest share"] <= MAX_SHARE


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=2, help="training seeds per recipe")
    ap.add_argument("--draws", type=int, default=3, help="sample sets per trained machine")
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--epochs-scale", type=float, default=1.0, help="multiply every recipe's epochs (smoke runs)")
    ap.add_argument("--rows", type=int, default=0, help="use only this many digits (0: all 5,000), for a smoke run")
    ap.add_argument("--ais-betas", type=int, default=14500, help="0 skips AIS")
    ap.add_argument("--samples-png", metavar="PATH")
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    with threadpool_limits(1):
        X, labels, tr, te, clf = digits_split(args.rows)
        result: dict = {"settings": vars(args), "classifier held-out accuracy": float(clf.score(X[te], labels[te])),
                        "recipes": {}}
        RBM(n_components=4, n_iter=1, batch_size=20).fit(X[:40])  # compile (or load) the kernels untimed
        for name, recipe in RECIPES.items():
            recipe = {**COMMON, **recipe, "n_iter": max(1, round(recipe["n_iter"] * args.epochs_scale))}
            runs = []
            for seed in range(args.seeds):
                model = RBM(**recipe, random_state=seed)
                train_s, _ = timed(lambda: model.fit(X[tr]))
                draws = []
                for draw in range(args.draws):
                    s = model.sample(args.samples, args.steps)
                    draws.append(coverage(clf.predict((s > 0.5).astype(np.float32))))
                    if args.samples_png and name == "covering" and seed == 0 and draw == 0:
                        save_png(tile(s, shape=(28, 28), width=10, spacing=2, scale=None, background=1.0),
                                 args.samples_png)
                run = {"seed": seed, "training seconds": train_s, "draws": draws}
                if args.ais_betas:
                    z = ais_log_partition(model, X[tr], n_betas=args.ais_betas, n_runs=100, random_state=0)
                    run["held-out log-likelihood"] = average_log_likelihood(model, X[te], z)
                    run["AIS log Z std"] = z.log_z_std
                runs.append(run)
            result["recipes"][name] = {"settings": recipe, "runs": runs}

    print(f"classifier (5-NN on the real training digits) held-out accuracy: "
          f"{result['classifier held-out accuracy']:.3f}")
    print(f"\n{args.samples} samples after {args.steps} Gibbs steps from random starts; aim: >= {MIN_CLASSES} classes "
          f"with >= {MIN_COUNT} samples and no class above {MAX_SHARE:.0%}")
    print("| recipe | seed | training s | held-out log-likelihood (AIS), nats | each set: classes >= 3, largest share "
          "| sets meeting the aim |")
    print("| --- | ---: | ---: | ---: | --- | ---: |")
    for name, rec in result["recipes"].items():
        for run in rec["runs"]:
            ll = f"{run['held-out log-likelihood']:.1f}" if "held-out log-likelihood" in run else "-"
            sets = ", ".join(f"{d['classes with >= 3']} / {d['largest share']:.2f}" for d in run["draws"])
            print(f"| {name} | {run['seed']} | {run['training seconds']:.0f} | {ll} | {sets} "
                  f"| {sum(map(meets, run['draws']))} of {len(run['draws'])} |")
    if args.json:
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
