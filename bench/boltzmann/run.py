"""Run the Boltzmann machine comparisons (fastseq's RBMs against scikit-learn and NumPy, Gibbs
chains of the Beta-unit machines against a Bernoulli RBM, plain Gibbs sampling and training against
parallel tempering and the cost of a tempered update, a deep belief net against its bottom RBM, which digits two recipes generate), each script in its own process.

Held-out quality and the sample mosaic are separate runs of compare_rbm.py (``--quality``,
``--samples PNG``; see docs/guide/boltzmann.md).
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: the shared helpers, when run as a path
from _runner import Job, main  # noqa: E402

JOBS = (
    Job("compare_rbm", "compare_rbm.py", full=("--repeats", "7"),
        quick=("--repeats", "1", "--threads", "1", "--sections", "small,gibbs,beta")),
    Job("compare_gibbs_chains_new", "compare_gibbs_chains.py", full=("--runs", "10"),
        quick=("--runs", "1", "--repeats", "1", "--steps", "4")),
    Job("compare_samplers", "compare_samplers.py",
        quick=("--hidden", "32", "--epochs", "1", "--rows", "500", "--samples", "20", "--steps", "40",
               "--ais-betas", "100")),
    Job("compare_tempered_update", "compare_tempered_update.py", quick=("--hidden", "32", "--rows", "500",
                                                                     "--repeats", "1")),
    Job("compare_deep", "compare_deep.py",
        quick=("--hidden", "32", "16", "--epochs", "1", "--rows", "500", "--samples", "20", "--steps", "40",
               "--ais-betas", "100", "--bound-samples", "2")),
    Job("compare_coverage", "compare_coverage.py",
        quick=("--seeds", "1", "--draws", "1", "--epochs-scale", "0.05", "--rows", "500", "--samples", "20",
               "--steps", "40", "--ais-betas", "100")),
    # beside one CPU-bound process it starts itself: left out of a smoke run
    Job("compare_gibbs_chains_new-loaded", "compare_gibbs_chains.py", full=("--runs", "10", "--load"), quick=None),
)

if __name__ == "__main__":
    sys.exit(main(JOBS, Path(__file__).parent, __doc__))
