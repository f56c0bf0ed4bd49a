"""``fastseq mosaic`` on inputs that have no true picture: NaN, infinity, constant rows, one tile."""
import io

import numpy as np
import pytest

from fastseq.cli import main


def _mosaic(tmp_path, arr, *options):
    np.save(tmp_path / "w.npy", arr)
    return main(["mosaic", str(tmp_path / "w.npy"), "-o", str(tmp_path / "m.png"), *options])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("options", [(), ("--order", "none"), ("--clusters",), ("--transpose", "--shape", "2", "4"),
                                     ("--scale", "none")])
def test_non_finite_values_are_one_line_exit_2_and_no_picture(capsys, tmp_path, bad, options):
    arr = np.random.default_rng(0).random((8, 4)).astype(np.float32)
    arr[5, 1] = bad
    assert _mosaic(tmp_path, arr, *options, "--time-budget", "0.01") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"fastseq mosaic: error: Expected '{tmp_path / 'w.npy'}' to hold finite numbers, got {bad} "
                          "at index [5, 1] (1 of its 32 values are NaN or infinite)."), err
    assert not (tmp_path / "m.png").exists()


@pytest.mark.parametrize("arr", [np.full((9, 4), 3.0), np.ones((1, 4)), np.arange(4.0).reshape(1, 4),
                                 np.c_[np.random.default_rng(0).random((9, 3)), np.zeros(9)]])
@pytest.mark.parametrize("options", [(), ("--clusters", "-v"), ("--scale", "global")])
def test_constant_rows_columns_and_one_tile_draw_a_picture(capsys, tmp_path, arr, options):
    skio = pytest.importorskip("skimage.io")
    assert _mosaic(tmp_path, arr, *options, "--time-budget", "0.01") == 0, capsys.readouterr().err
    img = skio.imread(tmp_path / "m.png")
    assert img.dtype == np.uint8 and min(img.shape) >= 2
    if np.ptp(arr, axis=1).max() == 0:  # every tile constant: all grey (tiles) and white (spacing)
        assert set(np.unique(img).tolist()) <= {128, 255}


def test_a_header_of_junk_is_one_line(capsys, tmp_path):
    buf = io.BytesIO()
    np.save(buf, np.array(0.0))
    (tmp_path / "w.npy").write_bytes(buf.getvalue()[:110] + b"\0" * 17 + b"[")  # found by tests/fuzz
    assert main(["mosaic", str(tmp_path / "w.npy"), "-o", str(tmp_path / "m.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("fastseq mosaic: error: Cannot read"), err


def test_tsp_solver_choices_are_corrsorts_and_a_missing_one_is_one_line(capsys, tmp_path, monkeypatch):
    import sys

    from fastseq.commands.mosaic import TSP_SOLVERS
    from fastseq.mosaic._tsp_solvers import SOLVERS

    assert TSP_SOLVERS == SOLVERS
    arr = np.random.default_rng(0).random((12, 4))
    for solver in ("builtin", "fast-tsp"):
        assert _mosaic(tmp_path, arr, "--tsp-solver", solver, "--time-budget", "0.01") == 0
    monkeypatch.setitem(sys.modules, "fast_tsp", None)
    assert _mosaic(tmp_path, arr, "--tsp-solver", "fast-tsp") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("fastseq mosaic: error: Expected the fast-tsp package"), err
    with pytest.raises(SystemExit) as exc:
        _mosaic(tmp_path, arr, "--tsp-solver", "own")
    assert exc.value.code == 2 and "invalid choice: 'own'" in capsys.readouterr().err
