"""``fastseq mosaic`` draws exactly the picture the library draws from the same array and
options (corrsort, split_clusters, paragraph_layout, tile, save_png), tile shapes and all,
and says what it drew."""
from __future__ import annotations

import math
import re

import numpy as np
import pytest
import skimage.io

from fastseq.cli import main
from fastseq.mosaic import order as order_module
from fastseq.mosaic.layout import paragraph_layout
from fastseq.mosaic.order import corrsort, path_correlation, split_clusters
from fastseq.mosaic.tiles import save_png, tile

RNG = np.random.default_rng(7)
ROWS = np.repeat(RNG.random((6, 16)), 5, axis=0) + 0.3 * RNG.random((30, 16))  # 30 rows in 6 families


def _run(tmp_path, arr, *options) -> np.ndarray:
    np.save(tmp_path / "w.npy", arr)
    assert main(["mosaic", str(tmp_path / "w.npy"), "-o", str(tmp_path / "m.png"), *options]) == 0
    return skimage.io.imread(tmp_path / "m.png")


def _library(tmp_path, picture, zoom=1) -> np.ndarray:
    save_png(picture, tmp_path / "expected.png", zoom=zoom)
    return skimage.io.imread(tmp_path / "expected.png")


def _clustered(features, method, penalty=1.0, width=None):
    width = width or max(1, math.ceil(math.sqrt(1.2 * len(features))))
    return paragraph_layout(split_clusters(features, corrsort(features, method), penalty=penalty, max_size=width),
                            width)


@pytest.mark.parametrize("options, picture", [
    (("--order", "none"), lambda: tile(ROWS, shape=(4, 4))),
    (("--order", "greedy"), lambda: tile(ROWS, shape=(4, 4), order=corrsort(ROWS, "greedy"))),
    (("--order", "greedy", "--width", "3", "--spacing", "2", "--scale", "global"),
     lambda: tile(ROWS, shape=(4, 4), order=corrsort(ROWS, "greedy"), width=3, spacing=2, scale="global")),
    (("--order", "none", "--scale", "none", "--spacing", "0"), lambda: tile(ROWS / 2, shape=(4, 4), scale=None,
                                                                            spacing=0)),
    (("--order", "greedy", "--shape", "2", "8"), lambda: tile(ROWS, shape=(2, 8), order=corrsort(ROWS, "greedy"))),
    (("--order", "greedy", "--clusters"), lambda: tile(ROWS, shape=(4, 4), layout=_clustered(ROWS, "greedy"))),
    (("--order", "greedy", "--clusters", "--penalty", "0.1"),
     lambda: tile(ROWS, shape=(4, 4), layout=_clustered(ROWS, "greedy", penalty=0.1))),
    (("--order", "greedy", "--clusters", "--width", "4"),
     lambda: tile(ROWS, shape=(4, 4), layout=_clustered(ROWS, "greedy", width=4))),
])
def test_the_picture_is_the_librarys(tmp_path, options, picture):
    arr = ROWS / 2 if "--scale" in options and "none" in options else ROWS
    np.testing.assert_array_equal(_run(tmp_path, arr, *options), _library(tmp_path, picture()))


def test_the_options_change_the_picture(tmp_path):
    """The cases above differ from each other, so each option is seen to reach the picture."""
    seen = [_run(tmp_path, ROWS, "--order", "greedy", *extra).tobytes()
            for extra in [(), ("--clusters",), ("--clusters", "--penalty", "0.1"), ("--clusters", "--width", "4"),
                          ("--scale", "global"), ("--width", "3")]]
    seen.append(_run(tmp_path, ROWS, "--order", "none").tobytes())
    assert len(set(seen)) == len(seen), [seen.index(s) for s in seen]


def test_zoom_repeats_pixels(tmp_path):
    one = _run(tmp_path, ROWS, "--order", "none")
    three = _run(tmp_path, ROWS, "--order", "none", "--zoom", "3")
    np.testing.assert_array_equal(three, np.repeat(np.repeat(one, 3, axis=0), 3, axis=1))


def test_images_rgb_images_and_columns(tmp_path):
    images = RNG.random((6, 3, 5))
    np.testing.assert_array_equal(_run(tmp_path, images, "--order", "none"), _library(tmp_path, tile(images)))
    rgb = RNG.random((6, 3, 5, 3))
    np.testing.assert_array_equal(_run(tmp_path, rgb, "--order", "greedy"),
                                  _library(tmp_path, tile(rgb, order=corrsort(rgb.reshape(6, -1), "greedy"))))
    columns = ROWS.T.copy()
    np.testing.assert_array_equal(_run(tmp_path, columns, "--order", "greedy", "--transpose"),
                                  _library(tmp_path, tile(ROWS, shape=(4, 4), order=corrsort(ROWS, "greedy"))))


def test_corrsort_gets_the_method_budget_progress_and_solver(tmp_path, monkeypatch):
    calls = []
    real = order_module.corrsort

    def corrsort_spy(features, method, **kwargs):
        calls.append((features.shape, method, kwargs))
        return real(features, "greedy")

    monkeypatch.setattr(order_module, "corrsort", corrsort_spy)
    _run(tmp_path, RNG.random((6, 2, 2)), "--order", "tsp", "--time-budget", "0.5", "--tsp-solver", "builtin", "-v")
    _run(tmp_path, ROWS, "--order", "greedy")
    assert calls == [((6, 4), "tsp", dict(time_budget=0.5, progress=True, solver="builtin")),
                     ((30, 16), "greedy", dict(time_budget=None, progress=False, solver="auto"))]


def test_verbose_says_what_it_drew(tmp_path, capsys):
    out_path = tmp_path / "m.png"
    img = _run(tmp_path, ROWS, "--order", "greedy", "-v")
    r = path_correlation(ROWS, corrsort(ROWS, "greedy")) / (len(ROWS) - 1)
    assert capsys.readouterr().out == (f"wrote {out_path}: 30 tiles, {img.shape[1]} x {img.shape[0]} px, "
                                       f"mean adjacent r = {r:.3f}\n")
    wide = _run(tmp_path, ROWS[:, :12], "--order", "greedy", "--shape", "2", "6", "--clusters", "-v")
    assert wide.shape[0] != wide.shape[1]
    layout = _clustered(ROWS[:, :12], "greedy")
    r = path_correlation(ROWS[:, :12], np.concatenate(layout.clusters)) / (len(ROWS) - 1)
    assert capsys.readouterr().out == (f"wrote {out_path}: 30 tiles, {wide.shape[1]} x {wide.shape[0]} px, "
                                       f"{len(layout.clusters)} clusters, mean adjacent r = {r:.3f}\n")
    _run(tmp_path, ROWS, "--order", "none", "-v")
    assert re.fullmatch(rf"wrote {re.escape(str(out_path))}: 30 tiles, \d+ x \d+ px\n", capsys.readouterr().out)
    _run(tmp_path, ROWS[:1], "--order", "greedy", "-v")  # one tile: no adjacent pair
    assert re.fullmatch(r"wrote .*: 1 tiles, \d+ x \d+ px\n", capsys.readouterr().out)
    _run(tmp_path, ROWS[:2], "--order", "greedy", "-v")
    r = path_correlation(ROWS[:2], corrsort(ROWS[:2], "greedy"))
    assert capsys.readouterr().out.endswith(f"mean adjacent r = {r:.3f}\n")
    _run(tmp_path, ROWS, "--order", "greedy")
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("arr, options, message", [
    (np.zeros((3, 2, 2)), ("--transpose",), "Expected a D x N array with --transpose, got shape (3, 2, 2)."),
    (np.zeros((3, 4)), ("--clusters", "--order", "none"),
     "Expected --order greedy or tsp with --clusters, got --order none."),
    (np.zeros((3, 5)), (), "Expected --shape H W for rows of 5 values (not a square)."),
    (np.zeros((3, 2, 2)), ("--shape", "2", "2"), "Expected --shape only for N x D input, got shape (3, 2, 2)."),
    (np.zeros((3, 2, 2, 4)), (), "Expected N x D, N x H x W or N x H x W x 3, got shape (3, 2, 2, 4)."),
    (np.zeros((3, 2, 2, 3, 1)), (), "Expected N x D, N x H x W or N x H x W x 3, got shape (3, 2, 2, 3, 1)."),
    (np.zeros(4), (), "Expected N x D, N x H x W or N x H x W x 3, got shape (4,)."),
    (np.array([1, None], dtype=object), (), "Cannot read"),
    (np.array(3.0), (), "Expected '"),  # 0-D: no tiles at all
    (np.zeros((3, 4), complex), (), "Expected '"),
])
def test_shapes_without_a_picture_are_one_line(tmp_path, capsys, arr, options, message):
    np.save(tmp_path / "w.npy", arr, allow_pickle=True)
    assert main(["mosaic", str(tmp_path / "w.npy"), "-o", str(tmp_path / "m.png"), *options]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"fastseq mosaic: error: {message}") and err.count("\n") == 1, err
    assert not (tmp_path / "m.png").exists()


def test_a_zip_named_npy_is_one_line(tmp_path, capsys):
    np.savez(tmp_path / "w.npz", a=np.zeros((3, 4)))
    (tmp_path / "w.npz").rename(tmp_path / "w.npy")  # np.load returns the archive, not an array
    assert main(["mosaic", str(tmp_path / "w.npy"), "-o", str(tmp_path / "m.png")]) == 2
    err = capsys.readouterr().err
    assert err == f"fastseq mosaic: error: Expected '{tmp_path / 'w.npy'}' to hold real numbers, got dtype None.\n"


def test_the_output_name_is_checked_before_the_input_is_read(tmp_path, capsys):
    assert main(["mosaic", str(tmp_path / "missing.npy"), "-o", str(tmp_path / "m.jpg")]) == 2
    assert capsys.readouterr().err.startswith("fastseq mosaic: error: Expected --output to end in .png, got ")


def test_a_single_value_is_a_one_pixel_tile(tmp_path):
    img = _run(tmp_path, np.ones((1, 1)), "--order", "none", "--spacing", "0")
    np.testing.assert_array_equal(img, _library(tmp_path, tile(np.ones((1, 1)), shape=(1, 1), spacing=0)))
