"""Mosaics: many small images (weights, filters, hidden-unit pictures) in one picture.

:func:`tile` arranges ``N`` tiles on a grid, in a given order or in a
:class:`~fastseq.mosaic.layout.MosaicLayout` (clusters laid out like words, blanks between);
:func:`save_png` writes the result as an 8-bit PNG, atomically.
"""
from __future__ import annotations

import numbers
import os
from typing import TYPE_CHECKING, Literal, Sequence

import numpy as np

from fastseq._util.atomic import atomic_path
from fastseq._util.memory import check_fits
from fastseq._util.validate import file_path, nonnegative_int, one_of, positive_int, real_array, refuse_non_finite

if TYPE_CHECKING:  # pragma: no cover
    from fastseq.mosaic.layout import MosaicLayout

__all__ = ["tile", "save_png"]

Scale = Literal["tile", "global"] | None


def tile(
    images,
    shape: Sequence[int] | None = None,
    width: int | None = None,
    spacing: int = 1,
    scale: Scale = "tile",
    order=None,
    layout: "MosaicLayout | None" = None,
    background: float | Sequence[float] = 1.0,
) -> np.ndarray:
    """Arrange N images on a grid and return the mosaic as one array.

    Args:
        images: ``N x H x W`` (grey) or ``N x H x W x 3`` (RGB) images, or ``N x D`` rows
            together with ``shape``. NumPy arrays, or anything ``np.asarray`` accepts
            (a CPU torch tensor is detached first), of finite numbers.
        shape: ``(H, W)`` or ``(H, W, 3)`` that each row of an ``N x D`` input is reshaped
            to (``D == H * W`` or ``H * W * 3``).
        width: tiles per line; default ``ceil(sqrt(M))`` for M tiles shown. With a
            ``layout`` it must be None or equal to ``layout.width``.
        spacing: pixels of background between neighbouring tiles (none around the edge).
        scale: ``"tile"`` scales each tile by its own min and max to [0, 1] (a constant
            tile becomes 0.5); ``"global"`` uses the min and max over the tiles shown; None
            means the values are already in [0, 1] and are used as they are.
        order: indices of the tiles to show, in reading order (a permutation of
            ``range(N)`` or a subset of it without repeats); default all, as given.
        layout: a :class:`~fastseq.mosaic.layout.MosaicLayout` placing tiles on the grid with
            blank cells (from :func:`fastseq.mosaic.paragraph_layout`); excludes ``order``.
        background: grey level in [0, 1] of the spacing and of blank cells, or an
            RGB triple for RGB tiles.

    Returns:
        ``R*H + (R-1)*spacing`` x ``C*W + (C-1)*spacing`` float64 array in [0, 1] with
        ``C`` tiles per line and ``R`` lines (a trailing ``x 3`` for RGB).

    Raises:
        ValueError: ``images`` holds NaN or infinity (named with its first position),
            among other checks on the arguments.

    Example:
        >>> import numpy as np
        >>> w = np.arange(6 * 4, dtype=float).reshape(6, 4)   # 6 tiles of 2 x 2 pixels
        >>> m = tile(w, shape=(2, 2), width=3, spacing=1)
        >>> m.shape
        (5, 8)
        >>> float(m.min()), float(m.max())
        (0.0, 1.0)
    """
    tiles = _as_tiles(images, shape)
    n = tiles.shape[0]
    rgb = tiles.ndim == 4
    spacing = nonnegative_int("spacing", spacing)
    one_of("scale", scale, ("tile", "global", None))
    bg = _background(background, rgb)

    if layout is not None:
        if order is not None:
            raise ValueError("Expected at most one of order and layout, got both.")
        cells = np.asarray(layout.cells, dtype=np.int64)
        if width is not None and positive_int("width", width) != cells.shape[1]:
            raise ValueError(f"Expected width to be None or layout.width = {cells.shape[1]}, got {width}.")
        shown = cells[cells >= 0]
        _check_indices("layout.cells", shown, n)
    else:
        shown = np.arange(n, dtype=np.int64) if order is None else _order(order, n)
        m = shown.size
        cols = positive_int("width", width) if width is not None else max(1, int(np.ceil(np.sqrt(m))))
        rows = max(1, -(-m // cols))
        _check_picture_fits(rows, cols, tiles.shape, spacing, width)
        cells = np.full(rows * cols, -1, dtype=np.int64)
        cells[:m] = shown
        cells = cells.reshape(rows, cols)

    if layout is not None:
        _check_picture_fits(*cells.shape, tiles.shape, spacing, width)
    scaled = _scaled(tiles, shown, scale)
    rows, cols = cells.shape
    h, w = tiles.shape[1:3]
    channels = tiles.shape[3:]
    # Each cell is a tile padded on its bottom and right by the spacing; the padding
    # after the last line and column is cut at the end.
    padded = np.empty((rows * cols, h + spacing, w + spacing) + channels, dtype=np.float64)
    padded[...] = bg
    flat = cells.ravel()
    where = np.flatnonzero(flat >= 0)
    if where.size:
        padded[where, :h, :w] = _lookup(scaled, shown, flat[where])
    out = padded.reshape((rows, cols, h + spacing, w + spacing) + channels)
    out = out.swapaxes(1, 2).reshape((rows * (h + spacing), cols * (w + spacing)) + channels)
    return np.ascontiguousarray(out[: out.shape[0] - spacing, : out.shape[1] - spacing])


_PNG_BLOCK_VALUES = 1 << 20  # values converted to 8 bits at a time: float64 temporaries stay near 24 MiB


def save_png(array, path: str | os.PathLike, zoom: int = 1) -> None:
    """Write a mosaic as an 8-bit PNG (grey, RGB or RGBA), atomically.

    Args:
        array: ``H x W``, ``H x W x 3`` or ``H x W x 4``; floats in [0, 1] (clipped;
            NaN drawn as 0), or uint8 / bool used as they are.
        path: ``.png`` file to write (any other extension is refused); it is replaced
            only once the new picture is complete.
        zoom: integer upscaling factor; each pixel becomes a ``zoom x zoom`` block.

    Example:
        >>> import numpy as np, os, tempfile
        >>> p = os.path.join(tempfile.mkdtemp(), "m.png")
        >>> save_png(np.eye(3), p, zoom=2)
        >>> import skimage.io; skimage.io.imread(p).shape
        (6, 6)
    """
    from skimage import io

    arr = real_array("array", array, allow_empty=True)
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (3, 4))):
        raise ValueError(f"Expected array to be H x W, H x W x 3 or H x W x 4, got shape {arr.shape}.")
    if arr.size == 0:
        raise ValueError(f"Expected array to be non-empty, got shape {arr.shape}.")
    zoom = positive_int("zoom", zoom)
    path = file_path("path", path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"Expected path to end in .png (save_png writes PNG only), got {str(path)!r}.")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"Expected path in an existing folder, got {str(path)!r}.")
    # the 8-bit picture, its zoomed copy and PNG encoding's copy of that, plus one block of
    # float64 temporaries (the conversion runs block by block)
    check_fits(f"save_png(zoom={zoom}) of a {' x '.join(map(str, arr.shape))} picture",
               arr.size * (1.0 + 2.0 * zoom * zoom) + 24.0 * min(arr.size, _PNG_BLOCK_VALUES))
    if arr.dtype == np.bool_:
        img = arr.astype(np.uint8) * 255
    elif arr.dtype == np.uint8:
        img = arr
    else:  # real numbers (real_array refused everything else)
        img = np.empty(arr.shape, np.uint8)
        rows = max(1, _PNG_BLOCK_VALUES // max(1, arr[0].size))
        for r in range(0, arr.shape[0], rows):
            a = np.nan_to_num(arr[r:r + rows].astype(np.float64), nan=0.0, posinf=1.0, neginf=0.0)
            img[r:r + rows] = np.round(np.clip(a, 0.0, 1.0) * 255.0)
    if zoom > 1:
        img = np.repeat(np.repeat(img, zoom, axis=0), zoom, axis=1)

    with atomic_path(path) as tmp:
        io.imsave(tmp, img, check_contrast=False)


# ---------------------------------------------------------------------------- helpers


def _as_tiles(images, shape) -> np.ndarray:
    arr = real_array("images", images, allow_empty=True)
    refuse_non_finite("images", arr)  # before any reshape: the index names the caller's position
    if arr.dtype == np.bool_:
        arr = arr.astype(np.float64)
    if shape is not None:
        if not isinstance(shape, (tuple, list)) or not all(
                isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in shape):
            raise TypeError(f"Expected shape to be (H, W) or (H, W, 3) integers, got {shape!r}.")
        shape = tuple(int(s) for s in shape)
        if len(shape) not in (2, 3) or (len(shape) == 3 and shape[2] != 3) or min(shape) < 1:
            raise ValueError(f"Expected shape to be (H, W) or (H, W, 3) with H, W >= 1, got {shape}.")
        if arr.ndim != 2 or arr.shape[1] != int(np.prod(shape)):
            raise ValueError(
                f"Expected images to be N x D with D = {int(np.prod(shape))} for shape {shape}, "
                f"got shape {arr.shape}."
            )
        arr = arr.reshape((arr.shape[0],) + shape)
    elif not (arr.ndim == 3 or (arr.ndim == 4 and arr.shape[3] == 3)):
        raise ValueError(
            f"Expected images to be N x H x W or N x H x W x 3 (or N x D with shape), got shape {arr.shape}."
        )
    if arr.size == 0:
        raise ValueError(f"Expected images to hold at least one image with pixels, got shape {arr.shape}.")
    return arr


def _check_picture_fits(rows: int, cols: int, tile_shape: tuple, spacing: int, width) -> None:
    """Refuse a mosaic that needs more memory than the machine has (float64 cells, twice)."""
    h, w = tile_shape[1:3]
    channels = tile_shape[3] if len(tile_shape) == 4 else 1
    nbytes = 16.0 * rows * cols * (h + spacing) * (w + spacing) * channels
    check_fits(f"tile(width={width}, spacing={spacing}) of {rows} x {cols} tiles of {h} x {w}", nbytes)


def _background(background, rgb: bool) -> np.ndarray:
    try:
        bg = np.asarray(background)
        bg = bg.astype(np.float64) if bg.dtype.kind in "biuf" else np.full(2, np.nan)  # complex, text: reported below
    except (TypeError, ValueError):
        bg = np.full(2, np.nan)  # not a number: reported below
    ok = bg.shape == () or (rgb and bg.shape == (3,))
    if not ok or not np.all((bg >= 0) & (bg <= 1)):
        want = "a number in [0, 1] or an RGB triple" if rgb else "a number in [0, 1]"
        raise ValueError(f"Expected background to be {want}, got {background!r}.")
    return bg


def _check_indices(name: str, idx: np.ndarray, n: int) -> None:
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise ValueError(f"Expected {name} to hold tile indices in [0, {n}), got values in [{idx.min()}, {idx.max()}].")
    if np.unique(idx).size != idx.size:
        raise ValueError(f"Expected {name} to hold each tile at most once, got repeats.")


def _order(order, n: int) -> np.ndarray:
    arr = real_array("order", order, allow_empty=True)
    if arr.ndim != 1:
        raise ValueError(f"Expected order to be 1-D, got shape {arr.shape}.")
    if arr.size == 0:
        raise ValueError("Expected order to name at least one tile, got an empty order.")
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"Expected order to hold integer tile indices, got dtype {arr.dtype}.")
    arr = arr.astype(np.int64)
    _check_indices("order", arr, n)
    return arr


def _scaled(tiles: np.ndarray, shown: np.ndarray, scale: Scale) -> np.ndarray:
    """The shown (finite) tiles as float64 in [0, 1], in the order of ``shown``."""
    t = tiles[shown].astype(np.float64)
    if t.shape[0] == 0:
        return t
    if scale is None:
        if t.min() < 0 or t.max() > 1:
            raise ValueError(
                f"Expected images in [0, 1] with scale=None, got values in [{t.min()}, {t.max()}]; "
                "use scale='tile' or 'global'."
            )
    elif scale in ("tile", "global"):
        axes = tuple(range(1, t.ndim)) if scale == "tile" else None
        lo = np.min(t, axis=axes, keepdims=True)
        hi = np.max(t, axis=axes, keepdims=True)
        # halves first: hi - lo of finite values can overflow to inf (e.g. -1e308 and 1e308)
        span = hi / 2 - lo / 2
        flat_tile = ~(span > 0)  # constant
        t = np.where(flat_tile, 0.5, (t / 2 - lo / 2) / np.where(flat_tile, 1.0, span))
    else:  # unreachable: checked by tile()
        raise ValueError(f"Expected scale to be 'tile', 'global' or None, got {scale!r}.")
    return t


def _lookup(scaled: np.ndarray, shown: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Rows of ``scaled`` (ordered like ``shown``) for tile ids ``ids``."""
    pos = np.empty(int(shown.max()) + 1, dtype=np.int64)
    pos[shown] = np.arange(shown.size)
    return scaled[pos[ids]]
