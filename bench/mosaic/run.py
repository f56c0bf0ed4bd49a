"""Run the tile-ordering comparisons (corrsort against the solvers it replaces), each in its
own process. The first run trains the RBM whose filters are ordered (about a minute; cached in
the temp folder). The README pictures are drawn by mosaic_figures.py, not here.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: the shared helpers, when run as a path
from _runner import Job, main  # noqa: E402

JOBS = (
    Job("compare_order", "compare_order.py", full=(), quick=("--sets", "random450")),
    Job("compare_order_budgets", "compare_order.py", full=("--equal-budgets", "0.1", "0.43", "2"),
        quick=("--equal-budgets", "0.05", "--repeats", "1", "--no-lkh")),
    Job("compare_tsp", "compare_tsp.py", full=("--budgets", "0.2", "0.43", "2", "--repeats", "5"),
        quick=("--budgets", "0.05", "--repeats", "1")),
)

if __name__ == "__main__":
    sys.exit(main(JOBS, Path(__file__).parent, __doc__))
