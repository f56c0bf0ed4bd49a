"""Draw the README pictures: RBM filters unsorted, and sorted + clustered.

    python bench/mosaic/mosaic_figures.py            # writes docs/images/mosaic_*.png

Uses the RBM that ``bench/mosaic/compare_order.py`` trains and caches.
"""
from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
from compare_order import rbm_filters

from fastseq.mosaic import cluster_layout, save_png, tile


def main() -> int:
    w = rbm_filters()
    out = os.path.join(HERE, "..", "..", "docs", "images")
    os.makedirs(out, exist_ok=True)
    save_png(tile(w, shape=(28, 28), width=24), os.path.join(out, "mosaic_unsorted.png"))
    layout = cluster_layout(w, width=24, method="tsp", penalty=2.0, time_budget=1.0)
    save_png(tile(w, shape=(28, 28), layout=layout), os.path.join(out, "mosaic_sorted_clustered.png"))
    print(f"{len(layout.clusters)} clusters on {layout.lines} lines of {layout.width}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
