"""Weight mosaics: order tiles by correlation (``corrsort``), cut the order into
clusters and lay them out like words, and draw the tiles into one PNG."""
from fastseq._util.deprecation import moved_names
from fastseq.mosaic.layout import paragraph_layout
from fastseq.mosaic.order import cluster_layout, corrsort, path_correlation, split_clusters
from fastseq.mosaic.tiles import save_png, tile

__all__ = ["cluster_layout", "corrsort", "paragraph_layout", "path_correlation", "save_png", "split_clusters", "tile"]

# no longer public here (still in their modules)
MOVED = {
    "MosaicLayout": ("fastseq.mosaic.layout", "it is what paragraph_layout returns; import it from fastseq.mosaic.layout"),
    "adjacent_correlations": ("fastseq.mosaic.order", "path_correlation gives their mean; import it from fastseq.mosaic.order"),
}
__getattr__ = moved_names(__name__, MOVED)
