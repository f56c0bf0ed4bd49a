"""The ``fastseq train`` command: error paths (one line, exit 2) and a tiny end-to-end run."""
from __future__ import annotations

import gzip
import os

import numpy as np
import pytest
import skimage.io

from fastseq.cli import main


def _one_error_line(capsys, words):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("fastseq train: error:")
    for w in words:
        assert w in err, err


def _fails_with_one_line(capsys, argv, *words):
    """Errors found while running: main returns 2."""
    assert main(["train", *argv]) == 2
    _one_error_line(capsys, words)


def _argparse_fails_with_one_line(capsys, argv, *words):
    """Errors in the options: argparse exits with 2."""
    with pytest.raises(SystemExit) as exc:
        main(["train", *argv])
    assert exc.value.code == 2
    _one_error_line(capsys, words)


@pytest.mark.parametrize("argv,words", [
    (["--model", "transformer"], ["--model", "RNN, RNN_UNTIED, GRU, LSTM", "'transformer'"]),
    (["--epochs", "many"], ["--epochs", "'many'"]),
    (["--hidden", "0"], ["--hidden", ">= 1"]),
    (["--teacher_forcing", "2"], ["--teacher_forcing", "[0, 1]"]),
    (["--learning_rate", "-1"], ["--learning_rate", "> 0"]),
])
def test_bad_options_one_line(capsys, argv, words):
    _argparse_fails_with_one_line(capsys, argv, *words)


def test_missing_data_dir(capsys, tmp_path):
    _fails_with_one_line(capsys, ["--data", str(tmp_path / "nowhere"), "--output", str(tmp_path / "o")],
                         "nowhere", "not a folder")
    _fails_with_one_line(capsys, ["--data", str(tmp_path), "--output", str(tmp_path / "o")], "train-images")


def test_corrupt_data_files(capsys, tmp_path, digits_dir):
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        (tmp_path / name).write_bytes((digits_dir / name).read_bytes())
    raw = gzip.decompress((digits_dir / "train-images-idx3-ubyte.gz").read_bytes())
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(raw[:-100]))
    _fails_with_one_line(capsys, ["--data", str(tmp_path), "--output", str(tmp_path / "o")], "truncated")
    good = (digits_dir / "train-images-idx3-ubyte.gz").read_bytes()
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(good[: len(good) // 2])
    _fails_with_one_line(capsys, ["--data", str(tmp_path), "--output", str(tmp_path / "o")], "gzip")


def test_corrupt_params_and_bad_output(capsys, tmp_path, digits_dir):
    (tmp_path / "p.safetensors").write_bytes(b"not a model")
    _fails_with_one_line(capsys, ["--data", str(digits_dir), "--params", str(tmp_path / "p.safetensors"),
                                  "--output", str(tmp_path / "o")], "safetensors")
    _fails_with_one_line(capsys, ["--data", str(digits_dir), "--output", str(tmp_path / "no" / "o")], "--output")


def test_tiny_run_writes_everything_and_resumes(capsys, tmp_path, digits_dir):
    out = tmp_path / "run"
    common = ["--data", str(digits_dir), "--windows", "200", "--window", "6", "--output", str(out)]
    assert main(["train", "--model", "rnn", "--epochs", "1", "--hidden", "16", "--batch", "7", "--bptt", "9",
                 "--mosaic", *common]) == 0
    text = capsys.readouterr().out
    assert "epoch 1/1" in text and "60 training and 20 held-out digits" in text
    mse_line = next(line for line in text.splitlines() if line.startswith("completion MSE"))
    assert "repeat last seen row" in mse_line and "mean bottom" in mse_line
    log = (tmp_path / "run.log").read_text()
    assert mse_line in log
    units = skimage.io.imread(tmp_path / "run_hidden_units.png")
    completion = skimage.io.imread(tmp_path / "run_completion.png")
    assert units.dtype == np.uint8 and units.ndim == 2
    # 16 units on a 4 x 4 grid of 13 x 28 cells (6 + 1 + 6 rows), spacing 2, zoom 2
    assert units.shape == (2 * (4 * 13 + 3 * 2), 2 * (4 * 28 + 3 * 2))
    # 2 groups of (seen, completed, truth) rows of 10 digits, spacing 2, zoom 3
    assert completion.shape == (3 * (6 * 28 + 5 * 2), 3 * (10 * 28 + 9 * 2))

    # resuming with 0 epochs evaluates the saved model: the same completion error
    assert main(["train", "--params", str(tmp_path / "run.safetensors"), "--epochs", "0", *common]) == 0
    assert mse_line in capsys.readouterr().out
    # a resumed model keeps its shape; asking for another is an error
    _fails_with_one_line(capsys, ["--params", str(tmp_path / "run.safetensors"), "--hidden", "32", *common],
                         "--hidden 32", "16")
    _fails_with_one_line(capsys, ["--params", str(tmp_path / "run.safetensors"), "--model", "GRU", *common],
                         "--model GRU")


def test_checkpoint_resumes_the_next_epoch_with_the_optimizer(capsys, tmp_path, digits_dir):
    def run(name, epochs, checkpoint):
        argv = ["train", "--data", str(digits_dir), "--epochs", str(epochs), "--hidden", "8", "--batch", "7",
                "--bptt", "9", "--output", str(tmp_path / name), "--checkpoint", str(tmp_path / checkpoint),
                "--checkpoint_every", "2"]
        assert main(argv) == 0
        return [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("epoch ")]

    whole = run("whole", 3, "whole.ckpt")
    run("first", 1, "cut.ckpt")  # stopped after epoch 1 of 3
    resumed = run("rest", 3, "cut.ckpt")
    # epoch 1 is reported from the checkpoint, epochs 2 and 3 trained on from it: with Adam's state
    # restored the parameters are bit for bit those of the uninterrupted run
    assert [ln.split(",")[:2] for ln in resumed] == [ln.split(",")[:2] for ln in whole]
    from safetensors.torch import load_file  # (its header's metadata order varies: compare tensors)

    rest, whole_params = load_file(tmp_path / "rest.safetensors"), load_file(tmp_path / "whole.safetensors")
    assert rest.keys() == whole_params.keys() and all((rest[k] == whole_params[k]).all() for k in rest)
    assert run("again", 3, "cut.ckpt")[-1].split(",")[:2] == whole[-1].split(",")[:2]  # a finished run: no change

    (tmp_path / "bad.ckpt").write_bytes(b"not a checkpoint")
    _fails_with_one_line(capsys, ["--data", str(digits_dir), "--checkpoint", str(tmp_path / "bad.ckpt"),
                                  "--output", str(tmp_path / "bad")], "bad.ckpt", "checkpoint")
    _fails_with_one_line(capsys, ["--data", str(digits_dir), "--checkpoint", str(tmp_path / "cut.ckpt"),
                                  "--hidden", "8", "--batch", "5", "--bptt", "9", "--output", str(tmp_path / "other")],
                         "--batch 5 (checkpoint 7)")


def _train_lines(capsys, argv, code=0):
    assert main(["train", *argv]) == code
    return capsys.readouterr()


def test_resume_refuses_every_changed_option_in_one_line(capsys, tmp_path, digits_dir):
    ckpt = tmp_path / "c.ckpt"
    common = ["--data", str(digits_dir), "--hidden", "8", "--batch", "7", "--bptt", "9", "--checkpoint", str(ckpt)]
    _train_lines(capsys, [*common, "--epochs", "1", "--output", str(tmp_path / "first")])
    before = ckpt.read_bytes()
    # the learning rate used to be taken from the checkpoint while the log showed the new one
    _fails_with_one_line(capsys, [*common, "--epochs", "2", "--learning-rate", "0.5", "--output", str(tmp_path / "o")],
                         f"--checkpoint {ckpt}", "--learning-rate 0.5 (checkpoint 0.01)", "nothing was trained")
    changed = ["--epochs", "2", "--learning-rate", "0.02", "--teacher-forcing", "1", "--random-seed", "3",
               "--output", str(tmp_path / "o")]
    _fails_with_one_line(capsys, ["--data", str(digits_dir), "--hidden", "8", "--batch", "5", "--bptt", "4",
                                  "--checkpoint", str(ckpt), *changed],
                         "--learning-rate 0.02 (checkpoint 0.01)", "--teacher-forcing 1.0 (checkpoint 0.5)",
                         "--batch 5 (checkpoint 7)", "--bptt 4 (checkpoint 9)", "--random-seed 3 (checkpoint 0)")
    _fails_with_one_line(capsys, [*common, "--epochs", "2", "--model", "GRU", "--output", str(tmp_path / "o")],
                         "--model GRU with --hidden 8 (checkpoint: a model with model.Whh [8, 8]")
    _fails_with_one_line(capsys, [*common[:3], "16", *common[4:], "--epochs", "2", "--output", str(tmp_path / "o")],
                         "--model RNN with --hidden 16")
    assert ckpt.read_bytes() == before and not (tmp_path / "o.safetensors").exists()
    # options that are not the training's own (how many epochs, pictures, threads) are applied
    out = _train_lines(capsys, [*common, "--epochs", "2", "--threads", "1", "--output", str(tmp_path / "more")]).out
    assert "epoch 2/2" in out


def test_resumed_run_says_from_where(capsys, tmp_path, digits_dir):
    ckpt = tmp_path / "c.ckpt"
    common = ["--data", str(digits_dir), "--hidden", "8", "--batch", "7", "--bptt", "9", "--checkpoint", str(ckpt)]
    first = _train_lines(capsys, [*common, "--epochs", "1", "--output", str(tmp_path / "first")]).out
    assert not any(ln.startswith("resumed") for ln in first.splitlines())
    out = _train_lines(capsys, [*common, "--epochs", "2", "--output", str(tmp_path / "next")]).out
    line = f"resumed from checkpoint {ckpt}: epoch 2/2, window 0 (epoch 1 was done)"
    assert [ln for ln in out.splitlines() if ln.startswith("resumed")] == [line]
    assert line in (tmp_path / "next.log").read_text()
    out = _train_lines(capsys, [*common, "--epochs", "2", "--output", str(tmp_path / "again")]).out
    assert f"resumed from checkpoint {ckpt}: epoch 2/2, the last, was done; nothing is left to train" in out
    # --epochs 0 only evaluates --params: the checkpoint is neither read nor changed
    before = ckpt.read_bytes()
    out = _train_lines(capsys, [*common, "--epochs", "0", "--params", str(tmp_path / "next.safetensors"),
                                "--output", str(tmp_path / "eval")]).out
    assert not any(ln.startswith(("resumed", "epoch ")) for ln in out.splitlines()) and ckpt.read_bytes() == before


def test_resumed_line_mid_epoch():
    from argparse import Namespace

    from fastseq.commands.train import _resumed_line

    args = Namespace(epochs=3, checkpoint="c.ckpt", params="p.safetensors")
    assert _resumed_line(args, {"loader": {"epoch": 1, "window": 4}}) == (
        "resumed from checkpoint c.ckpt: epoch 2/3, window 4 (4 windows of it were done); "
        "its parameters replace those of --params p.safetensors")


@pytest.mark.parametrize("where", ["missing/c.ckpt", "folder", "file.txt/c.ckpt"])
def test_unwritable_checkpoint_is_found_before_training(capsys, tmp_path, digits_dir, where):
    (tmp_path / "folder").mkdir()
    (tmp_path / "file.txt").write_text("")
    path = str(tmp_path / where)
    result = _train_lines(capsys, ["--data", str(digits_dir), "--hidden", "8", "--epochs", "1", "--checkpoint", path,
                                   "--output", str(tmp_path / "o")], code=2)
    assert "epoch" not in result.out and not (tmp_path / "o.log").exists()
    assert len(result.err.splitlines()) == 1 and "--checkpoint" in result.err and repr(path) in result.err
    assert ".tmp" not in result.err


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root may write anywhere")
@pytest.mark.parametrize("option", ["--checkpoint", "--output"])
def test_read_only_folder_is_found_before_training(capsys, tmp_path, digits_dir, option):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        paths = {"--checkpoint": str(tmp_path / "c.ckpt"), "--output": str(tmp_path / "o"), option: str(folder / "x")}
        result = _train_lines(capsys, ["--data", str(digits_dir), "--hidden", "8", "--epochs", "1",
                                       *[w for kv in paths.items() for w in kv]], code=2)
        assert "epoch" not in result.out
        assert f"Expected {option} in a folder you can write to, got {str(folder / 'x')!r}" in result.err
    finally:
        folder.chmod(0o755)
