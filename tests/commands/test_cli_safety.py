"""The command line under user error: one line and exit 2, nothing lost, sizes refused up front."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from fastseq.cli import build_parser, main
from fastseq.commands import _common


def _one_line(capsys, command: str, *words: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"fastseq {command}: error:"), err
    for w in words:
        assert w in err, err
    return err


def _run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-P", *argv], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})


# ---------------------------------------------------------------------------- entry points


def test_python_m_fastseq_and_version():
    from fastseq import __version__

    proc = _run("-m", "fastseq", "--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"fastseq {__version__}", proc
    proc = _run("-m", "fastseq", "mosaic", "--help")
    assert proc.returncode == 0 and "--time-budget" in proc.stdout


def test_command_errors_are_one_line_when_run_as_module(tmp_path):
    # `python -m fastseq.cli` once loaded a second copy of the error class: a traceback
    np.save(tmp_path / "empty.npy", np.zeros(0))
    for module in ("fastseq", "fastseq.cli"):
        proc = _run("-m", module, "mosaic", str(tmp_path / "empty.npy"), "-o", str(tmp_path / "m.png"))
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and "shape (0,)" in lines[0], proc.stderr


# ---------------------------------------------------------------------------- option spelling


def test_dashed_options_with_underscore_aliases():
    parser = build_parser()
    for argv, dest, value in [
        (["demo", "--max-length", "7"], "max_length", 7), (["demo", "--max_length", "7"], "max_length", 7),
        (["demo", "--learning-rate", "0.5"], "learning_rate", 0.5),
        (["train", "--teacher-forcing", "0.25"], "teacher_forcing", 0.25),
        (["train", "--teacher_forcing", "0.25"], "teacher_forcing", 0.25),
        (["train", "--random_seed", "3"], "random_seed", 3), (["train", "--sort_units"], "sort_units", True),
        (["mosaic", "x.npy", "-o", "x.png", "--time_budget", "2"], "time_budget", 2.0),
    ]:
        assert getattr(parser.parse_args(argv), dest) == value, argv
    sub = parser._subparsers._group_actions[0].choices  # the help shows the dashed names only
    for name, p in sub.items():
        text = p.format_help()
        long_options = [w.strip("[],") for w in text.split() if w.startswith("--")]
        assert long_options and not [o for o in long_options if "_" in o], (name, long_options)


# ---------------------------------------------------------------------------- user errors


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_device_cuda_on_cpu_build_is_one_line(capsys):
    assert main(["demo", "--device", "cuda", "--sequences", "5"]) == 2
    _one_line(capsys, "demo", "--device", "'cuda'")
    assert main(["demo", "--device", "potato"]) == 2
    _one_line(capsys, "demo", "--device", "'potato'")


def test_nan_parameter_file_is_one_line(capsys, tmp_path, digits_dir):
    from fastseq.rowrnn.models import make_model, save_model

    model = make_model("rnn", 8, 28)
    with torch.no_grad():
        next(model.parameters())[0, 0] = float("nan")
    save_model(model, tmp_path / "nan.safetensors")
    argv = ["train", "--data", str(digits_dir), "--params", str(tmp_path / "nan.safetensors"),
            "--epochs", "0", "--output", str(tmp_path / "o")]
    assert main(argv) == 2
    _one_line(capsys, "train", "NaN", "nan.safetensors")
    assert not (tmp_path / "o.safetensors").exists()


@pytest.mark.parametrize("content", [np.zeros(0), np.zeros((0, 4)), np.zeros((3, 0)), np.array(1.5),
                                     np.array(["a", "b"]), np.zeros((2, 2), dtype=complex)])
def test_mosaic_bad_arrays_are_one_line(capsys, tmp_path, content):
    np.save(tmp_path / "a.npy", content)
    assert main(["mosaic", str(tmp_path / "a.npy"), "-o", str(tmp_path / "m.png")]) == 2
    _one_line(capsys, "mosaic", "a.npy")
    assert not (tmp_path / "m.png").exists()


def test_truncated_npy_is_one_line(capsys, tmp_path):
    np.save(tmp_path / "a.npy", np.random.default_rng(0).random((16, 9)))
    data = (tmp_path / "a.npy").read_bytes()
    (tmp_path / "a.npy").write_bytes(data[: len(data) // 2])
    assert main(["mosaic", str(tmp_path / "a.npy"), "-o", str(tmp_path / "m.png")]) == 2
    _one_line(capsys, "mosaic", "a.npy")


# ---------------------------------------------------------------------------- output paths


def test_output_folder_is_refused_and_nothing_is_written(capsys, tmp_path, digits_dir):
    (tmp_path / "sub").mkdir()
    before = sorted(os.listdir(tmp_path))
    assert main(["train", "--data", str(digits_dir), "--epochs", "1", "--output", str(tmp_path / "sub") + "/"]) == 2
    _one_line(capsys, "train", "--output", "folder")
    assert main(["train", "--data", str(digits_dir), "--epochs", "1", "--output", str(tmp_path / "sub")]) == 2
    _one_line(capsys, "train", "--output", "folder")
    np.save(tmp_path / "w.npy", np.random.default_rng(0).random((4, 9)))
    for out, words in [(tmp_path / "sub", ["folder"]), (tmp_path / "m.jpg", [".png", "m.jpg"]),
                       (tmp_path / "m", [".png"]), (tmp_path / "no" / "m.png", ["existing folder"])]:
        assert main(["mosaic", str(tmp_path / "w.npy"), "-o", str(out)]) == 2
        _one_line(capsys, "mosaic", "--output", *words)
    assert sorted(os.listdir(tmp_path)) == sorted(before + ["w.npy"])
    assert os.listdir(tmp_path / "sub") == []


def test_save_png_writes_png_only(tmp_path):
    from fastseq.mosaic import save_png

    for name in ("x.jpg", "x.tif", "x.unknown", "x"):
        with pytest.raises(ValueError, match=r"\.png"):
            save_png(np.eye(3), tmp_path / name)
    with pytest.raises(FileNotFoundError, match="existing folder"):
        save_png(np.eye(3), tmp_path / "no" / "x.png")
    with pytest.raises(IsADirectoryError, match="folder"):
        (tmp_path / "d.png").mkdir()
        save_png(np.eye(3), tmp_path / "d.png")
    assert sorted(os.listdir(tmp_path)) == ["d.png"]
    save_png(np.eye(3), tmp_path / "x.PNG")
    assert (tmp_path / "x.PNG").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------------- nothing lost


def test_evaluation_only_writes_no_model_and_logs_append(capsys, tmp_path, digits_dir):
    common = ["--data", str(digits_dir), "--output", str(tmp_path / "run"), "--hidden", "8"]
    assert main(["train", "--epochs", "0", *common]) == 2  # nothing to evaluate: refused
    _one_line(capsys, "train", "--params", "--epochs 0")
    assert not (tmp_path / "run.safetensors").exists() and not (tmp_path / "run.log").exists()

    assert main(["train", "--epochs", "1", "--batch", "1000000000", *common]) == 0  # slots capped at the digits
    model = (tmp_path / "run.safetensors").read_bytes()
    first_log = (tmp_path / "run.log").read_text()
    assert "epoch 1/1" in first_log and "--batch 1000000000" in first_log
    (tmp_path / "old.safetensors").write_bytes(model)
    assert main(["train", "--epochs", "0", "--params", str(tmp_path / "old.safetensors"),
                 "--data", str(digits_dir), "--output", str(tmp_path / "run")]) == 0
    assert (tmp_path / "run.safetensors").read_bytes() == model  # evaluation wrote no model
    log = (tmp_path / "run.log").read_text()
    assert log.startswith(first_log) and log.count("completion MSE") == 2
    assert "wrote " + str(tmp_path / "run.log") in log.splitlines()[-1]


# ---------------------------------------------------------------------------- memory and threads


@pytest.mark.parametrize("argv,words", [
    (["train", "--hidden", "10000000"], ["--hidden 10000000", "would need", "GiB"]),
    (["train", "--bptt", "1000000000", "--batch", "50"], ["--batch 50 with --bptt 1000000000", "would need"]),
    (["train", "--mosaic", "--windows", "100000000000"], ["--windows 100000000000", "would need"]),
    (["demo", "--hidden", "10000000"], ["--hidden 10000000", "would need"]),
    (["demo", "--sequences", "50", "--bptt", "1000000000", "--batch", "1000000000"], ["--bptt", "would need"]),
])
def test_sizes_beyond_memory_are_refused_up_front(capsys, tmp_path, digits_dir, argv, words):
    if argv[0] == "train":
        argv = [*argv, "--data", str(digits_dir), "--output", str(tmp_path / "o")]
    assert main(argv) == 2
    _one_line(capsys, argv[0], *words)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("option", [["--zoom", "1000000"], ["--spacing", "1000000"], ["--width", "100000000000"]])
def test_mosaic_sizes_beyond_memory_are_refused(capsys, tmp_path, option):
    np.save(tmp_path / "w.npy", np.random.default_rng(0).random((9, 16)))
    assert main(["mosaic", str(tmp_path / "w.npy"), "-o", str(tmp_path / "m.png"), "--order", "none", *option]) == 2
    _one_line(capsys, "mosaic", "would need", f"{option[0][2:]}={option[1]}")
    assert not (tmp_path / "m.png").exists()


def test_threads_are_capped_at_the_cores(capsys):
    cores = _common.cpu_count()
    assert _common.threads(cores) == cores
    assert _common.threads(100000) == cores
    err = capsys.readouterr().err
    assert "--threads 100000" in err and f"using {cores}" in err


def test_demo_with_many_threads_runs_capped(capsys):
    before = torch.get_num_threads()
    try:
        assert main(["demo", "--sequences", "20", "--hidden", "8", "--batch", "4", "--bptt", "8", "--quiet",
                     "--threads", "100000"]) == 0
        assert torch.get_num_threads() <= _common.cpu_count()
    finally:
        torch.set_num_threads(before)
    assert "--threads 100000 is more than" in capsys.readouterr().err
