"""Run the slot-swap training comparisons (batching, engines, feedback, products, scheduler,
shards, checkpoints, stores, stores from Parquet, a Lightning Trainer) against their peers, each script in its
own process.

The pytest-benchmark files of this folder run with ``python -m pytest bench/bptt --benchmark-enable``.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: the shared helpers, when run as a path
from _runner import Job, main  # noqa: E402

HEADLINE = "lognormal,lognormal_lstm,lognormal_rnn,fixed28,original,h512,h512_lstm"
JOBS = (
    # the README's headline table
    Job("compare_batching_quick", "compare_batching.py",
        full=("--quick", "--threads", "1,2", "--repeats", "3", "--workloads", HEADLINE, "--skip-ttq"),
        quick=("--quick", "--threads", "1", "--repeats", "1", "--workloads", "fixed28", "--skip-ttq")),
    Job("compare_batching", "compare_batching.py",
        full=("--threads", "1,2", "--repeats", "3", "--ttq-seconds", "10"),
        quick=("--quick", "--threads", "1", "--repeats", "1", "--workloads", "h512", "--ttq-seconds", "1")),
    Job("compare_engines", "compare_engines.py", full=("--threads", "1,2", "--repeats", "5"),
        quick=("--threads", "1", "--repeats", "1", "--cells", "GRU")),
    Job("compare_feedback", "compare_feedback.py", full=("--threads", "1,2"),
        quick=("--quick", "--threads", "1", "--repeats", "1", "--cells", "gru")),
    Job("compare_gemm", "compare_gemm.py", full=(), quick=("--repeats", "1")),
    Job("compare_schedule", "compare_schedule.py", full=("--repeats", "5"),
        quick=("--sequences", "20000", "--repeats", "1", "--twin-windows", "4")),
    Job("compare_shards", "compare_shards.py",
        full=("--sequences", "100000", "--batch", "256", "--bptt", "64", "--worlds", "1", "2", "4", "8"),
        quick=("--sequences", "5000", "--worlds", "1", "2")),
    Job("compare_checkpoint", "compare_checkpoint.py", full=("--repeats", "9"), quick=("--repeats", "1")),
    Job("compare_store", "compare_store.py",
        full=("--rows", "500000", "--factor", "10", "--features", "64", "--limit-mib", "64"),
        quick=("--rows", "20000", "--factor", "2", "--features", "8", "--limit-mib", "1", "--repeats", "1")),
    Job("compare_columnar", "compare_columnar.py", full=("--sequences", "200000", "--features", "8"),
        quick=("--sequences", "2000", "--repeats", "1")),
    Job("compare_lightning", "compare_lightning.py", full=("--repeats", "3"),
        quick=("--sequences", "50", "--repeats", "1")),
)

if __name__ == "__main__":
    sys.exit(main(JOBS, Path(__file__).parent, __doc__))
