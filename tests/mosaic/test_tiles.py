"""tile, save_png and the paragraph layout."""
from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastseq.mosaic import paragraph_layout, save_png, tile
from fastseq.mosaic.layout import MosaicLayout


def reference_tile(tiles, cells, spacing, background):
    """Plain loop twin of tile for scale=None: copy each tile into its cell."""
    h, w = tiles.shape[1:3]
    rows, cols = cells.shape
    out = np.full((rows * (h + spacing) - spacing, cols * (w + spacing) - spacing) + tiles.shape[3:], background)
    for r in range(rows):
        for c in range(cols):
            if cells[r, c] >= 0:
                y, x = r * (h + spacing), c * (w + spacing)
                out[y : y + h, x : x + w] = tiles[cells[r, c]]
    return out


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 12), h=st.integers(1, 4), w=st.integers(1, 4), cols=st.integers(1, 6),
    spacing=st.integers(0, 2), rgb=st.booleans(), seed=st.integers(0, 2**16),
)
def test_tile_matches_loop_twin(n, h, w, cols, spacing, rgb, seed):
    rng = np.random.default_rng(seed)
    tiles = rng.random((n, h, w, 3) if rgb else (n, h, w))
    order = rng.permutation(n)[: rng.integers(1, n + 1)]
    got = tile(tiles, width=cols, spacing=spacing, scale=None, order=order, background=0.25)
    rows = -(-order.size // cols)
    cells = np.full(rows * cols, -1)
    cells[: order.size] = order
    np.testing.assert_array_equal(got, reference_tile(tiles, cells.reshape(rows, cols), spacing, 0.25))


def test_tile_scaling_modes():
    tiles = np.stack([np.full((2, 2), 5.0), np.array([[0.0, 1.0], [2.0, 4.0]])])
    per_tile = tile(tiles, width=2, spacing=0, scale="tile")
    np.testing.assert_allclose(per_tile[:, :2], 0.5)  # constant tile -> mid grey
    np.testing.assert_allclose(per_tile[:, 2:], [[0, 0.25], [0.5, 1.0]])
    glob = tile(tiles, width=2, spacing=0, scale="global")
    np.testing.assert_allclose(glob[:, :2], 1.0)
    np.testing.assert_allclose(glob[:, 2:], [[0, 0.2], [0.4, 0.8]])
    with pytest.raises(ValueError, match="scale=None"):
        tile(tiles, scale=None)
    with pytest.raises(ValueError, match="Expected scale"):
        tile(tiles, scale="row")


def test_tile_flat_rows_with_shape_default_width():
    rows = np.arange(10 * 6, dtype=np.float32).reshape(10, 6)
    before = rows.copy()
    m = tile(rows, shape=(2, 3), spacing=1)
    assert m.shape == (3 * 3 - 1, 4 * 4 - 1)  # ceil(sqrt(10)) = 4 tiles of 2 x 3 per line, 3 lines
    assert np.isfinite(m).all() and m.min() == 0.0 and m.max() == 1.0
    np.testing.assert_array_equal(rows, before, strict=True)
    rgb = tile(np.random.default_rng(0).random((4, 12)), shape=(2, 2, 3), width=2, background=(1, 0, 0))
    assert rgb.shape == (5, 5, 3) and rgb[2, 2].tolist() == [1, 0, 0]


def test_tile_accepts_torch_tensor_with_grad():
    torch = pytest.importorskip("torch")
    w = torch.randn(6, 4, requires_grad=True)
    np.testing.assert_array_equal(tile(w, shape=(2, 2)), tile(w.detach().numpy(), shape=(2, 2)))


def test_tile_with_layout_places_tiles_and_blanks():
    tiles = np.arange(5, dtype=float)[:, None, None] * np.ones((5, 1, 1)) / 4
    lay = paragraph_layout([[4, 3], [0], [1, 2]], width=5)
    m = tile(tiles, layout=lay, spacing=0, scale=None, background=0.9)
    expect = np.where(lay.cells >= 0, lay.cells / 4, 0.9)
    np.testing.assert_array_equal(m, expect)
    with pytest.raises(ValueError, match="at most one of order and layout"):
        tile(tiles, layout=lay, order=[0, 1])
    with pytest.raises(ValueError, match="layout.width = 5"):
        tile(tiles, layout=lay, width=4)
    with pytest.raises(ValueError, match=r"tile indices in \[0, 3\)"):
        tile(tiles[:3], layout=lay)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(images=np.zeros((3, 4))), "N x H x W"),
        (dict(images=np.zeros((3, 5)), shape=(2, 2)), "D = 4"),
        (dict(images=np.zeros((0, 2, 2))), "at least one (non-empty )?image"),
        (dict(images=np.zeros((3, 2, 2)), order=[0, 0]), "at most once"),
        (dict(images=np.zeros((3, 2, 2)), order=[3]), r"\[0, 3\)"),
        (dict(images=np.zeros((3, 2, 2)), spacing=-1), "spacing"),
        (dict(images=np.zeros((3, 2, 2)), background=2.0), "background"),
        (dict(images=np.zeros((3, 2, 2)), background=0.5 + 0j), r"background to be a number in \[0, 1\], got \(0.5\+0j\)"),
        (dict(images=np.zeros((3, 2, 2)), background="0.5"), r"background to be a number in \[0, 1\], got '0.5'"),
        (dict(images=np.zeros((3, 2, 2)), width=0), "width"),
    ],
)
def test_tile_errors_name_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tile(**kwargs)


def test_save_png_round_trip_zoom_and_atomic(tmp_path):
    skio = pytest.importorskip("skimage.io")
    a = np.array([[0.0, 0.5], [1.0, np.nan]])
    p = tmp_path / "m.png"
    save_png(a, p, zoom=3)
    img = skio.imread(p)
    assert img.dtype == np.uint8 and img.shape == (6, 6)
    np.testing.assert_array_equal(img[::3, ::3], [[0, 128], [255, 0]])
    save_png(np.ones((2, 2, 3)), p)  # replaces the old file
    assert skio.imread(p).shape == (2, 2, 3)
    assert sorted(os.listdir(tmp_path)) == ["m.png"]  # no temporary left behind
    umask = os.umask(0o022)
    os.umask(umask)
    assert os.stat(p).st_mode & 0o777 == 0o666 & ~umask  # not the 0600 of a temp file
    with pytest.raises(ValueError, match="H x W"):
        save_png(np.zeros((2, 2, 2)), p)
    with pytest.raises(FileNotFoundError):
        save_png(a, tmp_path / "missing" / "m.png")
    assert sorted(os.listdir(tmp_path)) == ["m.png"]


# ---------------------------------------------------------------------------- layout


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(1, 14), max_size=25), width=st.integers(1, 12))
def test_paragraph_layout_invariants(sizes, width):
    bounds = np.cumsum([0] + sizes)
    clusters = [list(range(a, b)) for a, b in zip(bounds[:-1], bounds[1:])]
    lay = paragraph_layout(clusters, width)
    assert isinstance(lay, MosaicLayout) and lay.width == width
    flat = lay.cells.ravel()
    assert sorted(flat[flat >= 0].tolist()) == list(range(bounds[-1]))  # every tile once
    where = {t: divmod(i, width) for i, t in enumerate(flat) if t >= 0}
    for c in clusters:
        full = len(c) // width * width if len(c) > width else 0
        # a long cluster fills whole lines, then its tail is a word like the others
        assert [where[t] for t in c[:full]] == [divmod(where[c[0]][0] * width + k, width) for k in range(full)]
        tail = c[full:]
        if tail:  # intact: one line, consecutive cells, in order
            assert len({where[t][0] for t in tail}) == 1
            assert [where[t][1] for t in tail] == list(range(where[tail[0]][1], where[tail[0]][1] + len(tail)))
    for row in lay.cells:  # centered, one blank between neighbouring clusters
        filled = np.flatnonzero(row >= 0)
        if filled.size:
            left, right = filled[0], width - 1 - filled[-1]
            assert right - left in (0, 1)
            gaps = np.diff(filled)
            assert set(gaps.tolist()) <= {1, 2}


def test_paragraph_layout_minimizes_raggedness():
    # greedy filling would give lines of 5+1+... ; the optimum balances them
    lay = paragraph_layout([[0, 1, 2], [3, 4], [5]], width=6)
    assert lay.cells.tolist() == [[-1, 0, 1, 2, -1, -1], [-1, 3, 4, -1, 5, -1]]
    assert paragraph_layout([], 4).cells.tolist() == [[-1, -1, -1, -1]]
    with pytest.raises(ValueError, match="at most once"):
        paragraph_layout([[0, 1], [1]], 4)
    with pytest.raises(ValueError, match=r"clusters\[1\] empty"):
        paragraph_layout([[0], []], 4)


# ---------------------------------------------------------------------------- command


@pytest.fixture
def fastseq_main(monkeypatch):
    from fastseq import cli

    monkeypatch.setattr(cli, "COMMANDS", {"mosaic": "fastseq.commands.mosaic"})
    return cli.main


def test_mosaic_command_writes_clustered_png(tmp_path, fastseq_main, capsys):
    skio = pytest.importorskip("skimage.io")
    rng = np.random.default_rng(0)
    base = rng.normal(size=(4, 36))
    w = np.repeat(base, 6, axis=0) + 0.3 * rng.normal(size=(24, 36))  # 4 families of 6
    np.save(tmp_path / "w.npy", w)
    out = tmp_path / "m.png"
    args = ["mosaic", str(tmp_path / "w.npy"), "--output", str(out), "--clusters", "--width", "8",
            "--penalty", "2", "--time-budget", "0.05", "--zoom", "2", "-v"]
    assert fastseq_main(args) == 0
    img = skio.imread(out)
    assert img.dtype == np.uint8 and img.shape[1] == 2 * (8 * 7 - 1)
    said = capsys.readouterr().out
    assert "24 tiles" in said and "4 clusters" in said
    assert fastseq_main(["mosaic", str(tmp_path / "w.npy"), "-o", str(out), "--order", "none",
                         "--shape", "4", "9", "--width", "6"]) == 0
    assert skio.imread(out).shape == (4 * 5 - 1, 6 * 10 - 1)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--order", "none", "--clusters"], "--clusters"),
        (["--shape", "3", "3"], "--shape only for N x D"),
        (["--transpose"], "D x N"),
    ],
)
def test_mosaic_command_user_errors_exit_2(tmp_path, fastseq_main, capsys, extra, message):
    np.save(tmp_path / "w.npy", np.zeros((3, 2, 2)))
    assert fastseq_main(["mosaic", str(tmp_path / "w.npy"), "-o", str(tmp_path / "m.png")] + extra) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "m.png").exists()


def test_mosaic_command_refuses_pickled_arrays(tmp_path, fastseq_main, capsys):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert fastseq_main(["mosaic", str(tmp_path / "obj.npy"), "-o", str(tmp_path / "m.png")]) == 2
    assert "plain numeric array" in capsys.readouterr().err
    assert fastseq_main(["mosaic", str(tmp_path / "x.txt"), "-o", str(tmp_path / "m.png")]) == 2


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("kwargs", [dict(shape=(2, 3)), dict(shape=(2, 3), scale="global"),
                                    dict(shape=(2, 3), scale=None), dict(shape=(2, 3), order=[0, 1])])
def test_non_finite_images_are_refused_naming_the_first(bad, kwargs):
    rows = np.random.default_rng(0).random((10, 6))
    rows[3, 2] = rows[7, 0] = bad  # also a tile that is not shown: the argument is wrong as a whole
    with pytest.raises(ValueError, match=rf"^Expected images to hold finite numbers, got {bad} at index \[3, 2\] "
                                         r"\(2 of its 60 values are NaN or infinite\)\.$"):
        tile(rows, **kwargs)


def test_constant_tiles_one_tile_and_huge_values():
    constant = tile(np.full((3, 4), 7.0), shape=(2, 2), width=3, scale="global")
    np.testing.assert_array_equal(constant[:, [0, 1, 3, 4, 6, 7]], 0.5)  # grey, not NaN
    one = tile(np.array([[0.0, 1.0, 2.0, 3.0]]), shape=(2, 2))
    np.testing.assert_array_equal(one, [[0, 1 / 3], [2 / 3, 1]])
    huge = tile(np.array([[-1e308, 1e308, 0.0, 1e308]]), shape=(2, 2))  # hi - lo overflows float64
    np.testing.assert_array_equal(huge, [[0, 1], [0.5, 1]])
