"""Weight mosaics: order tiles by correlation (``corrsort``), cut the order into
clusters and lay them out like words, and draw the tiles into one PNG."""
from fastseq.mosaic.layout import MosaicLayout, paragraph_layout
from fastseq.mosaic.order import adjacent_correlations, cluster_layout, corrsort, path_correlation, split_clusters
from fastseq.mosaic.tiles import save_png, tile

__all__ = [
    "MosaicLayout", "adjacent_correlations", "cluster_layout", "corrsort", "paragraph_layout",
    "path_correlation", "save_png", "split_clusters", "tile",
]
