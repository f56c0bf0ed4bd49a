"""`fastseq train`'s options at their edges: the defaults, the bounds of --seen and --window,
data whose rows are not 28 pixels wide, flags in the echoed command, the verdict at a tie,
the times printed, and resuming a checkpoint whose data, epochs or batch differ."""
from __future__ import annotations

import re
import time

import pytest
import torch

import fastseq.bptt.checkpoint
from fastseq.cli import main
from fastseq.commands import _common
from fastseq.commands import train as train_command
from fastseq.commands.train import parameter_count
from fastseq.datasets.mnist import embedded_digits, write_idx
from fastseq.rowrnn import models


@pytest.fixture(autouse=True)
def threads_restored():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _run(capsys, *argv, code=0):
    assert main(["train", *argv]) == code
    return capsys.readouterr()


def _error(capsys, *argv) -> str:
    err = _run(capsys, *argv, code=2).err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("fastseq train: error: "), err
    return err.removeprefix("fastseq train: error: ")


@pytest.fixture(scope="module")
def narrow_dir(tmp_path_factory):
    """Digits cut to 28 rows of 20 pixels (the rows are the sequence, the pixels a row)."""
    x, y = embedded_digits()
    folder = tmp_path_factory.mktemp("narrow")
    write_idx(folder / "train-images-idx3-ubyte.gz", x[:30, :, 4:24])
    write_idx(folder / "train-labels-idx1-ubyte.gz", y[:30])
    write_idx(folder / "t10k-images-idx3-ubyte.gz", x[30:40, :, 4:24])
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", y[30:40])
    return folder


def test_the_default_model_is_a_tied_rnn_of_169_units(capsys, tmp_path, digits_dir, monkeypatch):
    checks = []
    real = _common.fits
    monkeypatch.setattr(_common, "fits", lambda n, what: (checks.append((n, what)), real(n, what)))
    out = _run(capsys, "--data", str(digits_dir), "--epochs", "1", "--output", str(tmp_path / "o")).out
    count = parameter_count("rnn", 169, 28)
    assert f"model: rnn, 169 hidden units, {count} parameters" in out.splitlines()
    assert checks[0] == (16.0 * count, "--hidden 169")
    saved = models.load_model(tmp_path / "o.safetensors")
    assert (saved.kind, saved.n_hidden, saved.n_visible) == ("rnn", 169, 28)


def test_rows_of_another_width_make_a_model_that_reads_them(capsys, tmp_path, narrow_dir):
    out = _run(capsys, "--data", str(narrow_dir), "--epochs", "1", "--hidden", "5", "--seen", "27", "--mosaic",
               "--window", "28", "--windows", "20", "--output", str(tmp_path / "o")).out
    assert "completion MSE of rows 27-27 on 10 held-out digits" in out
    saved = models.load_model(tmp_path / "o.safetensors")
    assert (saved.n_visible, saved.n_hidden) == (20, 5)
    # the bounds are rows (28), not pixels (20)
    assert _error(capsys, "--data", str(narrow_dir), "--seen", "28", "--output", str(tmp_path / "p")) == (
        "--seen: expected 1 to 27 rows, got 28")
    assert _error(capsys, "--data", str(narrow_dir), "--window", "29", "--mosaic", "--output",
                  str(tmp_path / "p")) == "--window: expected at most 28 rows, got 29"


def test_one_seen_row_is_enough(capsys, tmp_path, digits_dir):
    out = _run(capsys, "--data", str(digits_dir), "--epochs", "1", "--hidden", "4", "--seen", "1",
               "--output", str(tmp_path / "o")).out
    assert "completion MSE of rows 1-27 on 20 held-out digits" in out


def test_flags_are_echoed_without_a_value_and_the_unit_pictures_show_a_bar(capsys, tmp_path, digits_dir):
    result = _run(capsys, "--data", str(digits_dir), "--epochs", "1", "--hidden", "4", "--mosaic", "--sort-units",
                  "--verbose", "--windows", "30", "--window", "3", "--output", str(tmp_path / "o"))
    first = result.out.splitlines()[0]
    assert " --mosaic --output " in first and " --sort-units --teacher-forcing " in first
    assert first.endswith(" --verbose --window 3 --windows 30")
    assert "True" not in first and "False" not in first
    assert "hidden units: 100%" in result.err, result.err  # the hidden-unit pictures' bar


def test_the_log_is_flushed_line_by_line_and_runs_are_separated_by_one_blank_line(capsys, tmp_path, digits_dir,
                                                                                   monkeypatch):
    printed, opened = [], []
    monkeypatch.setattr(train_command, "print", lambda *a, **k: printed.append((a, k)), raising=False)

    def logged_open(path, mode, **kwargs):
        opened.append((mode, kwargs))
        return open(path, mode, **kwargs)

    monkeypatch.setattr(train_command, "open", logged_open, raising=False)
    argv = ["--data", str(digits_dir), "--epochs", "1", "--hidden", "4", "--output", str(tmp_path / "o")]
    _run(capsys, *argv)
    first = (tmp_path / "o.log").read_text()
    assert printed and all(k == {"flush": True} for _, k in printed)
    assert opened == [("a", {"encoding": "utf-8"})]  # UTF-8 whatever the locale, appended to
    assert [a[0] for a, _ in printed] == first.splitlines()
    printed.clear()
    _run(capsys, *argv)
    both = (tmp_path / "o.log").read_text()
    assert both == first + "\n" + "".join(a[0] + "\n" for a, _ in printed)
    # a log of a single character (a file the user made) is separated too
    (tmp_path / "o.log").write_text("x")
    printed.clear()
    _run(capsys, *argv)
    assert (tmp_path / "o.log").read_text() == "x\n" + "".join(a[0] + "\n" for a, _ in printed)


def test_the_times_printed_are_the_seconds_spent(capsys, tmp_path, digits_dir):
    start = time.perf_counter()
    out = _run(capsys, "--data", str(digits_dir), "--epochs", "2", "--hidden", "4", "--output",
               str(tmp_path / "o")).out
    wall = time.perf_counter() - start
    epochs = [float(s) for s in re.findall(r"^epoch \d/2: .*, ([\d.]+) s$", out, re.M)]
    (total,) = [float(s) for s in re.findall(r"training took ([\d.]+) s$", out, re.M)]
    assert len(epochs) == 2 and all(0 <= s <= wall + 0.05 for s in epochs)
    assert sum(epochs) - 0.1 <= total <= wall + 0.05


@pytest.mark.parametrize("offset,verdict", [(0.0, "does NOT beat both baselines"), (-1e-6, "beats both baselines")])
def test_the_model_beats_the_baselines_only_below_both(capsys, tmp_path, digits_dir, monkeypatch, offset, verdict):
    # the model's error exactly at the better baseline's, or a hair below it
    monkeypatch.setattr(models, "baseline_errors", lambda train, test, k: {"repeat_last": 0.5, "mean_bottom": 0.25})
    monkeypatch.setattr(models, "completion_mse", lambda completed, test, k: 0.25 + offset)
    out = _run(capsys, "--data", str(digits_dir), "--epochs", "1", "--hidden", "4", "--output",
               str(tmp_path / "o")).out
    assert re.search(rf"^model {verdict}; training took [\d.]+ s$", out, re.M), out


def test_evaluating_a_saved_model_on_the_embedded_digits_says_where_it_came_from(capsys, tmp_path, digits_dir):
    _run(capsys, "--data", str(digits_dir), "--epochs", "1", "--hidden", "4", "--model", "gru", "--output",
         str(tmp_path / "a"))
    params = tmp_path / "a.safetensors"
    out = _run(capsys, "--params", str(params), "--epochs", "0", "--output", str(tmp_path / "b")).out.splitlines()
    assert out[1] == "data: embedded, 4500 training and 500 held-out digits"
    assert out[2] == f"model: gru, 4 hidden units, {parameter_count('gru', 4, 28)} parameters, resumed from {params}"


def test_a_checkpoint_in_a_missing_folder_is_named_as_the_option(capsys, tmp_path, digits_dir):
    where = str(tmp_path / "missing" / "c.ckpt")
    assert _error(capsys, "--data", str(digits_dir), "--checkpoint", where, "--output", str(tmp_path / "o")) == (
        f"Expected --checkpoint in an existing folder, got {where!r} ({tmp_path / 'missing'} does not exist).")


def test_resume_refuses_other_data_and_fewer_epochs_than_the_checkpoint_reached(capsys, tmp_path, digits_dir,
                                                                                 narrow_dir):
    ckpt = tmp_path / "c.ckpt"
    common = ["--hidden", "4", "--batch", "7", "--bptt", "9", "--checkpoint", str(ckpt), "--output",
              str(tmp_path / "o")]
    _run(capsys, "--data", str(digits_dir), "--epochs", "2", *common)
    assert _error(capsys, "--data", str(digits_dir), "--epochs", "1", *common).startswith(
        f"Expected the options of the run that wrote --checkpoint {ckpt} to resume it, got --epochs 1 "
        "(checkpoint: in epoch 3 after 0 windows); nothing was trained")
    # 30 digits of 20 pixels: another count, and a model of other shapes (listed in name order)
    err = _error(capsys, "--data", str(narrow_dir), "--epochs", "2", *common)
    assert "got --data with 30 training digits (checkpoint 60), --model RNN with --hidden 4 (checkpoint: a model " \
           "with model.Whh [4, 4], model.Wxh [28, 4], model.b [4], model.c [28]); nothing" in err


def test_resume_refuses_fewer_epochs_one_window_into_the_last(capsys, tmp_path, digits_dir, monkeypatch,
                                                              interrupt_after):
    common = ["--data", str(digits_dir), "--hidden", "4", "--batch", "7", "--bptt", "9", "--checkpoint-every", "1",
              "--output", str(tmp_path / "o")]
    _run(capsys, *common, "--epochs", "1", "--checkpoint", str(tmp_path / "whole.ckpt"))
    windows = len(fastseq.bptt.checkpoint.load_checkpoint(tmp_path / "whole.ckpt")[1]["losses"])
    ckpt = tmp_path / "c.ckpt"
    common += ["--checkpoint", str(ckpt)]
    with monkeypatch.context() as m:
        interrupt_after(m, windows + 2)  # a write per window, one at the end of epoch 1, one window more
        assert main(["train", *common, "--epochs", "2"]) == 130
    capsys.readouterr()
    meta, _ = fastseq.bptt.checkpoint.load_checkpoint(ckpt)
    assert (meta["loader"]["epoch"], meta["loader"]["window"]) == (1, 1)
    assert "got --epochs 1 (checkpoint: in epoch 2 after 1 windows); nothing" in _error(capsys, *common, "--epochs",
                                                                                         "1")
    out = _run(capsys, *common, "--epochs", "2").out
    assert f"resumed from checkpoint {ckpt}: epoch 2/2, window 1 (1 windows of it were done)" in out


def test_resume_with_more_slots_than_digits_is_the_same_batch(capsys, tmp_path, digits_dir):
    ckpt = tmp_path / "c.ckpt"
    common = ["--data", str(digits_dir), "--hidden", "4", "--bptt", "9", "--checkpoint", str(ckpt), "--output",
              str(tmp_path / "o")]
    _run(capsys, *common, "--batch", "64", "--epochs", "1")
    out = _run(capsys, *common, "--batch", "61", "--epochs", "2").out  # 60 slots either way
    assert "epoch 2/2: training loss" in out
    assert "--batch 59 (checkpoint 60)" in _error(capsys, *common, "--batch", "59", "--epochs", "3")
