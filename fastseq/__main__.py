"""``python -m fastseq``: the same as the ``fastseq`` command."""
import sys

from fastseq.cli import main

if __name__ == "__main__":
    sys.exit(main())
