"""Run the row RNN's speed comparison (completing digits and picturing hidden units, batched
against one at a time) in its own process."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: the shared helpers, when run as a path
from _runner import Job, main  # noqa: E402

JOBS = (
    Job("compare_rnn", "compare_rnn.py", full=("--repeats", "5"),
        quick=("--repeats", "1", "--digits", "20", "--windows", "100")),
)

if __name__ == "__main__":
    sys.exit(main(JOBS, Path(__file__).parent, __doc__))
