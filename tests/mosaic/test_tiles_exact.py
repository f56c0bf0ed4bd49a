"""tile and save_png to the pixel, the byte and the word: exact values, memory figures and messages."""
from __future__ import annotations

import os
import re
import warnings

import numpy as np
import pytest

from fastseq._util import memory
from fastseq.mosaic import paragraph_layout, save_png, tile
from fastseq.mosaic import tiles
from fastseq.mosaic.layout import MosaicLayout


def scaled_twin(tiles, scale):
    """Plain loop twin of tile's scaling: each tile (or all) to [0, 1], a constant one to 0.5."""
    out = np.empty(tiles.shape)
    groups = [[i] for i in range(len(tiles))] if scale == "tile" else [list(range(len(tiles)))]
    for g in groups:
        lo, hi = min(float(tiles[i].min()) for i in g), max(float(tiles[i].max()) for i in g)
        for i in g:
            out[i] = 0.5 if hi == lo else (tiles[i] - lo) / (hi - lo)
    return out


def tile_twin(tiles, width, spacing, order, scale, background):
    """Plain loop twin of tile without a layout: tiles in reading order, background between."""
    tiles = np.asarray(tiles, dtype=np.float64)
    if scale is not None:
        tiles = scaled_twin(tiles[order], scale)
        order = list(range(len(order)))
    h, w = tiles.shape[1:3]
    rows = (len(order) + width - 1) // width
    out = np.empty((rows * (h + spacing) - spacing, width * (w + spacing) - spacing) + tiles.shape[3:])
    out[...] = background
    for k, i in enumerate(order):
        y, x = k // width * (h + spacing), k % width * (w + spacing)
        out[y : y + h, x : x + w] = tiles[i]
    return out


@pytest.mark.parametrize("scale", ["tile", "global", None])
@pytest.mark.parametrize(
    "shape, width, spacing, order, background",
    [
        ((5, 2, 3), 2, 1, None, 0.25),
        ((5, 2, 3), 7, 0, [4, 0, 2], 0.0),  # width larger than the count
        ((1, 3, 1), 1, 3, None, 1.0),  # one tile
        ((6, 1, 2, 3), 4, 2, [5, 1, 3, 0, 2], (0.1, 0.6, 0.9)),  # RGB
        ((4, 2, 2, 3), 3, 0, None, 0.4),
    ],
)
def test_tile_matches_plain_twin_with_scaling(shape, width, spacing, order, background, scale):
    rng = np.random.default_rng(sum(shape))
    tiles = rng.random(shape) * 0.9  # ranges below 1: a tile of spread < 2 is not constant
    tiles[0] = 0.3  # and one constant tile
    shown = list(range(shape[0])) if order is None else order
    got = tile(tiles, width=width, spacing=spacing, order=order, scale=scale, background=background)
    assert got.dtype == np.float64 and got.flags.c_contiguous
    np.testing.assert_allclose(got, tile_twin(tiles, width, spacing, shown, scale, background), rtol=0, atol=1e-15)


def test_default_width_is_the_ceiling_of_the_square_root():
    for n, cols in [(1, 1), (2, 2), (4, 2), (5, 3), (10, 4)]:
        assert tile(np.zeros((n, 1, 1)), spacing=0).shape[1] == cols


def test_tiles_of_small_spread_are_stretched_and_constant_ones_warn_nothing():
    tiles = np.array([[[0.0, 0.5], [0.25, 1.0]], [[3.0, 3.0], [3.0, 3.0]]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 0 / 0 for a constant tile would warn
        got = tile(tiles, width=2, spacing=0, scale="tile")
    np.testing.assert_array_equal(got, [[0.0, 0.5, 0.5, 0.5], [0.25, 1.0, 0.5, 0.5]])


def test_bool_tiles_and_bool_rows():
    b = np.array([[[True, False], [False, False]], [[False, True], [True, True]]])
    np.testing.assert_array_equal(tile(b, width=2, spacing=1, scale=None, background=0.5),
                                  [[1, 0, 0.5, 0, 1], [0, 0, 0.5, 1, 1]])
    np.testing.assert_array_equal(tile(b.reshape(2, 4), shape=(2, 2), width=2, spacing=0, scale="tile"),
                                  [[1, 0, 0, 1], [0, 0, 1, 1]])


def test_shape_of_one_pixel_rows_and_columns():
    rows = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(tile(rows, shape=(1, 3), width=1, spacing=0, scale="global"),
                                  [[0, 0.2, 0.4], [0.6, 0.8, 1.0]])
    np.testing.assert_array_equal(tile(rows, shape=(3, 1), width=2, spacing=1, scale="global", background=1.0),
                                  [[0, 1, 0.6], [0.2, 1, 0.8], [0.4, 1, 1.0]])


def test_layout_of_blank_cells_only_is_all_background():
    for scale in ("tile", "global", None):
        got = tile(np.zeros((2, 2, 3)), layout=paragraph_layout([], 3), spacing=1, scale=scale, background=0.75)
        np.testing.assert_array_equal(got, np.full((2, 11), 0.75))


def test_layout_cells_of_whole_floats_are_tile_indices():
    tiles = np.array([0.0, 0.5, 1.0])[:, None, None] * np.ones((3, 1, 2))
    lay = MosaicLayout(cells=np.array([[2.0, -1.0], [0.0, 1.0]]), clusters=())
    np.testing.assert_array_equal(tile(tiles, layout=lay, spacing=0, scale=None, background=0.25),
                                  [[1, 1, 0.25, 0.25], [0, 0, 0.5, 0.5]])


def message(text):
    """pytest's match for exactly this message."""
    return "^" + re.escape(text) + "$"


@pytest.mark.parametrize(
    "kwargs, error, text",
    [
        (dict(images=np.array([["a", "b"]])), TypeError, "Expected images to hold real numbers, got dtype <U1."),
        (dict(images=np.zeros((3, 4)), shape=(2.0, 2)), TypeError,
         "Expected shape to be (H, W) or (H, W, 3) integers, got (2.0, 2)."),
        (dict(images=np.zeros((3, 0)), shape=(0, 2)), ValueError,
         "Expected shape to be (H, W) or (H, W, 3) with H, W >= 1, got (0, 2)."),
        (dict(images=np.zeros((3, 16)), shape=(2, 2, 4)), ValueError,
         "Expected shape to be (H, W) or (H, W, 3) with H, W >= 1, got (2, 2, 4)."),
        (dict(images=np.zeros((3, 2, 2)), spacing=-1), ValueError, "Expected spacing to be an integer >= 0, got -1."),
        (dict(images=np.zeros((3, 2, 2)), scale="row"), ValueError,
         "Expected scale to be one of 'tile', 'global', None, got 'row'."),
        (dict(images=np.zeros((3, 2, 2)), width=0), ValueError, "Expected width to be an integer >= 1, got 0."),
        (dict(images=np.full((1, 2, 2), 1.5), scale=None), ValueError,
         "Expected images in [0, 1] with scale=None, got values in [1.5, 1.5]; use scale='tile' or 'global'."),
        (dict(images=np.zeros((3, 2, 2)), background=(0.1, 0.2, 0.3)), ValueError,
         "Expected background to be a number in [0, 1], got (0.1, 0.2, 0.3)."),
        (dict(images=np.zeros((3, 2, 2, 3)), background=[0.5, 0.5]), ValueError,
         "Expected background to be a number in [0, 1] or an RGB triple, got [0.5, 0.5]."),
        (dict(images=np.zeros((3, 2, 2, 3)), background=(0.5, 1.5, 0.0)), ValueError,
         "Expected background to be a number in [0, 1] or an RGB triple, got (0.5, 1.5, 0.0)."),
        (dict(images=np.zeros((3, 2, 2, 3)), background=[0.5, [0.5, 0.5]]), ValueError,  # ragged: not a number
         "Expected background to be a number in [0, 1] or an RGB triple, got [0.5, [0.5, 0.5]]."),
        (dict(images=np.zeros((3, 2, 2)), order=[]), ValueError,
         "Expected order to name at least one tile, got an empty order."),
        (dict(images=np.zeros((3, 2, 2)), order=["a"]), TypeError, "Expected order to hold real numbers, got dtype <U1."),
        (dict(images=np.zeros((3, 2, 2)), order=[2, -1]), ValueError,
         "Expected order to hold tile indices in [0, 3), got values in [-1, 2]."),
        (dict(images=np.zeros((3, 2, 2)), order=[1, 1]), ValueError,
         "Expected order to hold each tile at most once, got repeats."),
    ],
)
def test_tile_error_messages_word_for_word(kwargs, error, text):
    with pytest.raises(error, match=message(text)):
        tile(**kwargs)


def test_layout_error_messages_word_for_word():
    lay = paragraph_layout([[0, 3], [1]], width=4)
    with pytest.raises(ValueError, match=message("Expected width to be an integer >= 1, got 0.")):
        tile(np.zeros((4, 2, 2)), layout=lay, width=0)
    with pytest.raises(ValueError, match=message(
            "Expected layout.cells to hold tile indices in [0, 3), got values in [0, 3].")):
        tile(np.zeros((3, 2, 2)), layout=lay)
    twice = MosaicLayout(cells=np.array([[0, 1, 0]]), clusters=())
    with pytest.raises(ValueError, match=message("Expected layout.cells to hold each tile at most once, got repeats.")):
        tile(np.zeros((3, 2, 2)), layout=twice)


@pytest.fixture
def no_memory(monkeypatch):
    """A machine with no memory at all, whose messages give sizes in bytes, exactly."""
    monkeypatch.setattr(memory, "machine_memory", lambda: 0)
    monkeypatch.setattr(memory, "gib", lambda nbytes: f"{nbytes!r} B")


@pytest.mark.parametrize(
    "kwargs, text",
    [  # 16 bytes (float64, twice) per pixel of R x C cells of (H + spacing) x (W + spacing) x channels
        (dict(images=np.zeros((7, 2, 3)), width=2, spacing=2),
         "tile(width=2, spacing=2) of 4 x 2 tiles of 2 x 3 would need 2560.0 B"),
        (dict(images=np.zeros((7, 2, 3, 3)), width=2, spacing=2),
         "tile(width=2, spacing=2) of 4 x 2 tiles of 2 x 3 would need 7680.0 B"),
        (dict(images=np.zeros((1, 5, 4)), width=6, spacing=0),
         "tile(width=6, spacing=0) of 1 x 6 tiles of 5 x 4 would need 1920.0 B"),
        (dict(images=np.zeros((5, 1, 2)), spacing=1),
         "tile(width=None, spacing=1) of 2 x 3 tiles of 1 x 2 would need 576.0 B"),
        (dict(images=np.zeros((4, 3, 1)), layout=paragraph_layout([[0, 1], [2, 3]], width=3), width=3, spacing=1),
         "tile(width=3, spacing=1) of 2 x 3 tiles of 3 x 1 would need 768.0 B"),
    ],
)
def test_tile_refuses_a_picture_larger_than_memory_with_its_size(no_memory, kwargs, text):
    with pytest.raises(ValueError, match=message(text + ", more than the 0 B this machine has.")):
        tile(**kwargs)


# ---------------------------------------------------------------------------- save_png


def read_png(path):
    from PIL import Image

    with Image.open(path) as im:
        return im.mode, np.asarray(im)


def test_save_png_exact_pixels_grey(tmp_path):
    a = np.array([[-0.5, 0.0, 0.2, 0.5], [1.0, 1.5, np.nan, np.inf], [-np.inf, 0.998, 0.002, 3.0]])
    save_png(a, tmp_path / "a.png")
    mode, img = read_png(tmp_path / "a.png")
    assert mode == "L"
    np.testing.assert_array_equal(img, [[0, 0, 51, 128], [255, 255, 0, 255], [0, 254, 1, 255]])


def test_save_png_integer_float32_bool_and_uint8_inputs(tmp_path):
    p = tmp_path / "a.png"
    save_png(np.array([[0, 1], [2, -3]]), p)  # integers: clipped like floats
    np.testing.assert_array_equal(read_png(p)[1], [[0, 255], [255, 0]])
    save_png(np.array([[0.25, 0.75]], dtype=np.float32), p)
    np.testing.assert_array_equal(read_png(p)[1], [[64, 191]])
    save_png(np.array([[True, False], [False, True]]), p)
    np.testing.assert_array_equal(read_png(p)[1], [[255, 0], [0, 255]])
    u = np.array([[0, 7, 200, 255]], dtype=np.uint8)
    save_png(u, p)
    np.testing.assert_array_equal(read_png(p)[1], u)


def test_save_png_rgb_and_rgba_with_zoom(tmp_path):
    p = tmp_path / "c.png"
    rgba = np.array([[[1.0, 0.0, 0.5, 1.0], [0.0, 1.0, 0.0, 0.2]]])
    save_png(rgba, p, zoom=2)
    mode, img = read_png(p)
    assert mode == "RGBA" and img.shape == (2, 4, 4)
    np.testing.assert_array_equal(img[:, :2], np.broadcast_to([255, 0, 128, 255], (2, 2, 4)))
    np.testing.assert_array_equal(img[:, 2:], np.broadcast_to([0, 255, 0, 51], (2, 2, 4)))
    save_png(rgba[..., :3], p, zoom=1)
    mode, img = read_png(p)
    assert mode == "RGB"
    np.testing.assert_array_equal(img, [[[255, 0, 128], [0, 255, 0]]])


def test_save_png_of_a_low_contrast_picture_warns_nothing(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        save_png(np.full((3, 3), 0.5), tmp_path / "flat.png")
        save_png(np.zeros((2, 2), dtype=np.uint8), tmp_path / "black.png", zoom=2)
    np.testing.assert_array_equal(read_png(tmp_path / "flat.png")[1], np.full((3, 3), 128))


@pytest.mark.parametrize(
    "array, kwargs, error, text",
    [
        (np.zeros((0,)), {}, ValueError, "Expected array to be H x W, H x W x 3 or H x W x 4, got shape (0,)."),
        (np.zeros((0, 2, 5)), {}, ValueError, "Expected array to be H x W, H x W x 3 or H x W x 4, got shape (0, 2, 5)."),
        (np.zeros((0, 3)), {}, ValueError, "Expected array to be non-empty, got shape (0, 3)."),
        (np.array([["a"]]), {}, TypeError, "Expected array to hold real numbers, got dtype <U1."),
        (np.zeros((2, 2)), dict(zoom=0), ValueError, "Expected zoom to be an integer >= 1, got 0."),
        (np.zeros((2, 2)), dict(path=123), TypeError,
         "Expected path to be a file path (str or os.PathLike), got int 123."),
    ],
)
def test_save_png_error_messages_word_for_word(tmp_path, array, kwargs, error, text):
    kwargs = dict(dict(path=tmp_path / "m.png"), **kwargs)
    with pytest.raises(error, match=message(text)):
        save_png(array, **kwargs)
    assert os.listdir(tmp_path) == []


def test_save_png_to_a_folder_names_the_path(tmp_path):
    (tmp_path / "d.png").mkdir()
    with pytest.raises(IsADirectoryError, match=message(f"Expected path to be a file, got the folder {str(tmp_path / 'd.png')!r}.")):
        save_png(np.zeros((2, 2)), tmp_path / "d.png")


@pytest.mark.parametrize(
    "shape, zoom, text",
    [  # the 8-bit picture (1 byte a value), the zoomed one and PNG encoding's copy (2 bytes a
        # zoomed value) and one block of float64 temporaries (24 bytes a value, up to a block)
        ((2, 3), 3, "save_png(zoom=3) of a 2 x 3 picture would need 258.0 B"),
        ((2, 5, 4), 1, "save_png(zoom=1) of a 2 x 5 x 4 picture would need 1080.0 B"),
    ],
)
def test_save_png_refuses_a_picture_larger_than_memory_leaving_the_old_file(tmp_path, no_memory, shape, zoom, text):
    p = tmp_path / "m.png"
    p.write_bytes(b"old")
    with pytest.raises(ValueError, match=message(text + ", more than the 0 B this machine has.")):
        save_png(np.zeros(shape), p, zoom=zoom)
    assert p.read_bytes() == b"old" and os.listdir(tmp_path) == ["m.png"]


def test_save_png_counts_one_block_of_temporaries_however_large_the_picture(tmp_path, no_memory, monkeypatch):
    monkeypatch.setattr(tiles, "_PNG_BLOCK_VALUES", 8)
    with pytest.raises(ValueError, match=message("save_png(zoom=1) of a 4 x 5 picture would need 252.0 B, more than the 0 B this machine has.")):  # 20 * 3 + 24 * 8
        save_png(np.zeros((4, 5)), tmp_path / "m.png")


@pytest.mark.parametrize("block", [1, 7, 12, 1 << 20])
def test_save_png_in_blocks_writes_the_same_pixels(tmp_path, monkeypatch, block):
    # blocks of whole rows: 1 value (still one row of 4 at a time), part of a row, 3 rows, all
    rng = np.random.default_rng(0)
    a = rng.uniform(-0.2, 1.2, (9, 4))
    a[rng.random(a.shape) < 0.2] = np.nan
    a[0, 0], a[5, 3] = np.inf, -np.inf
    monkeypatch.setattr(tiles, "_PNG_BLOCK_VALUES", block)
    save_png(a, tmp_path / "m.png")
    want = np.round(np.clip(np.nan_to_num(a, nan=0.0, posinf=1.0, neginf=0.0), 0, 1) * 255).astype(np.uint8)
    np.testing.assert_array_equal(read_png(tmp_path / "m.png")[1], want)


def test_failed_png_write_leaves_no_file_and_the_old_one_untouched(tmp_path, monkeypatch):
    from skimage import io

    def broken(path, *args, **kwargs):
        with open(path, "wb") as fh:
            fh.write(b"half a picture")
        raise OSError("disk full")

    p = tmp_path / "m.png"
    monkeypatch.setattr(io, "imsave", broken)
    with pytest.raises(OSError, match="disk full"):
        save_png(np.zeros((2, 2)), p)
    assert os.listdir(tmp_path) == []
    p.write_bytes(b"old")
    with pytest.raises(OSError, match="disk full"):
        save_png(np.zeros((2, 2)), p)
    assert p.read_bytes() == b"old" and os.listdir(tmp_path) == ["m.png"]
