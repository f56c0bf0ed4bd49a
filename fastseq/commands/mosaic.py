"""``fastseq mosaic``: a weight array saved with NumPy -> an ordered, clustered PNG mosaic."""
from __future__ import annotations

import argparse
import math
import tokenize

TSP_SOLVERS = ("auto", "fast-tsp", "lkh", "builtin")  # corrsort's solver= values (not imported: --help stays quick)
HELP = "Draw the rows of a .npy array (weights, filters) as a PNG mosaic, ordered by correlation."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from fastseq.commands._common import add_option, count, finite_float, positive_float, positive_int

    parser.add_argument("file", metavar="FILE.npy", help="N x D, N x H x W or N x H x W x 3 array")
    add_option(parser, "--output", "-o", required=True, help="PNG file to write")
    add_option(parser, "--order", choices=["greedy", "tsp", "none"], default="tsp",
               help="tile order: greedy chain, refined path, or as stored")
    add_option(parser, "--clusters", action="store_true",
               help="cut the order into clusters and lay them out like words (blank between)")
    add_option(parser, "--penalty", type=finite_float, default=1.0,
               help="cost of one more cluster; larger gives fewer, larger clusters")
    add_option(parser, "--width", type=positive_int, default=None, help="tiles per line (default about sqrt(N))")
    add_option(parser, "--shape", type=positive_int, nargs="+", default=None, metavar="H W",
               help="tile shape for N x D input, H W or H W 3 (default: square grey tiles)")
    add_option(parser, "--transpose", action="store_true", help="tiles are the columns (D x N input)")
    add_option(parser, "--scale", choices=["tile", "global", "none"], default="tile",
               help="min-max scaling per tile, over all tiles, or none (values in [0, 1])")
    add_option(parser, "--spacing", type=count, default=1, help="pixels between tiles")
    add_option(parser, "--zoom", type=positive_int, default=1, help="integer upscaling of the picture")
    add_option(parser, "--time-budget", type=positive_float, default=None, help="seconds for --order tsp")
    add_option(parser, "--tsp-solver", choices=list(TSP_SOLVERS), default="auto",
               help="refinement for --order tsp: fast-tsp when installed (auto), fast-tsp, LKH through "
                    "elkai, or the built-in search (see fastseq.corrsort)")
    add_option(parser, "--verbose", "-v", action="store_true", help="progress and a summary line")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from fastseq._util.validate import refuse_non_finite
    from fastseq.commands._common import CommandError, output_file
    from fastseq.mosaic.tiles import save_png, tile
    from fastseq.mosaic.layout import paragraph_layout
    from fastseq.mosaic.order import corrsort, path_correlation, split_clusters

    if not args.file.endswith(".npy"):
        raise CommandError(f"Expected FILE to be a .npy array, got {args.file!r}.")
    output_file(args.output, suffix=".png")  # before any work: a bad path fails at once
    try:
        arr = np.load(args.file, allow_pickle=False)
    # object arrays need pickle: refused; truncated files; a header of junk (NumPy parses it
    # as Python source, which raises SyntaxError or tokenize's TokenError)
    except (ValueError, EOFError, SyntaxError, tokenize.TokenError) as exc:
        raise CommandError(f"Cannot read {args.file!r} as a plain numeric array: {exc}") from None
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "biuf":
        raise CommandError(f"Expected {args.file!r} to hold real numbers, got dtype {getattr(arr, 'dtype', None)}.")
    if arr.ndim == 0 or arr.shape[0] == 0 or arr.size == 0:
        raise CommandError(f"Expected {args.file!r} to hold at least one non-empty tile, got shape {arr.shape}.")
    try:  # NaN has no correlation and no grey level: a picture of it would show nothing true
        refuse_non_finite(repr(args.file), arr)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    if args.transpose:
        if arr.ndim != 2:
            raise CommandError(f"Expected a D x N array with --transpose, got shape {arr.shape}.")
        arr = arr.T
    shape = _tile_shape(arr, args.shape)
    if args.clusters and args.order == "none":
        raise CommandError("Expected --order greedy or tsp with --clusters, got --order none.")

    features = arr.reshape(arr.shape[0], -1) if arr.ndim >= 2 else arr
    order = layout = None
    if args.order != "none":
        try:
            order = corrsort(features, args.order, time_budget=args.time_budget, progress=args.verbose,
                             solver=args.tsp_solver)
        except ImportError as exc:  # a solver asked for by name and not installed
            raise CommandError(str(exc)) from None
    if args.clusters:
        width = args.width or max(1, math.ceil(math.sqrt(1.2 * arr.shape[0])))
        clusters = split_clusters(features, order, penalty=args.penalty, max_size=width)
        layout = paragraph_layout(clusters, width)
        order = None
        width = None
    else:
        width = args.width
    picture = tile(arr, shape=shape, width=width, spacing=args.spacing,
                   scale=None if args.scale == "none" else args.scale, order=order, layout=layout)
    save_png(picture, args.output, zoom=args.zoom)
    if args.verbose:
        shown = np.concatenate(layout.clusters) if layout is not None else order
        r = path_correlation(features, shown) / (arr.shape[0] - 1) if shown is not None and arr.shape[0] > 1 else None
        extra = f", {len(layout.clusters)} clusters" if layout is not None else ""
        extra += f", mean adjacent r = {r:.3f}" if r is not None else ""
        print(f"wrote {args.output}: {arr.shape[0]} tiles, {picture.shape[1]} x {picture.shape[0]} px{extra}")
    return 0


def _tile_shape(arr, shape):
    """The ``shape`` argument for tile(): given, inferred as square for N x D, or None."""
    from fastseq.commands._common import CommandError

    if arr.ndim == 2:
        if shape is not None:
            return tuple(shape)
        side = math.isqrt(arr.shape[1])
        if side * side != arr.shape[1]:
            raise CommandError(f"Expected --shape H W for rows of {arr.shape[1]} values (not a square).")
        return (side, side)
    if shape is not None:
        raise CommandError(f"Expected --shape only for N x D input, got shape {arr.shape}.")
    if arr.ndim == 3 or (arr.ndim == 4 and arr.shape[3] == 3):
        return None
    raise CommandError(f"Expected N x D, N x H x W or N x H x W x 3, got shape {arr.shape}.")
