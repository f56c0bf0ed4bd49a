"""Run the faces pipeline's speed comparison (encoding and generating, batched against one at
a time) in its own process."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: the shared helpers, when run as a path
from _runner import Job, main  # noqa: E402

JOBS = (
    Job("compare_faces", "compare_faces.py", full=("--repeats", "3"),
        quick=("--repeats", "1", "--gibbs-steps", "10", "--single-chains", "1")),
)

if __name__ == "__main__":
    sys.exit(main(JOBS, Path(__file__).parent, __doc__))
