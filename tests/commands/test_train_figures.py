"""What `fastseq train` prints, draws and trains with, figure by figure: each number on its
lines and each pixel of its pictures is recomputed here from the data, the model it wrote
and what train_bptt was given and returned."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import skimage.io
import torch

import fastseq
from fastseq.cli import main
from fastseq.commands import _common
from fastseq.commands.train import parameter_count
from fastseq.datasets.mnist import load_mnist
from fastseq.mosaic.order import corrsort
from fastseq.mosaic.tiles import save_png, tile
from fastseq.rowrnn.models import (as_sequences, baseline_errors, complete, completion_mse, load_model,
                                   make_model)
from fastseq.rowrnn.units import hidden_unit_pictures


def _cross_entropy(pred, target):
    return torch.nn.functional.binary_cross_entropy(pred, target, reduction="none").sum(-1)


@pytest.fixture
def recorded(monkeypatch, digits_dir):
    """Run the real train_bptt, recording its arguments, losses and the held-out loss after
    each epoch (computed here from the model it trained), and every memory check."""
    calls, checks = [], []
    real_train, real_fits = fastseq.train_bptt, _common.fits

    def train_bptt(decoder, contexts, targets, visible_seed, hidden_seed, opt, slots, bptt, cost, **kwargs):
        losses = real_train(decoder, contexts, targets, visible_seed, hidden_seed, opt, slots, bptt, cost, **kwargs)
        model = decoder.model
        was_training = model.training
        model.eval()
        with torch.no_grad():
            y, _ = model(held_out[:-1])
            held = float(_cross_entropy(y, held_out[1:]).mean())
        model.train(was_training)
        calls.append(dict(decoder=decoder, contexts=contexts, targets=targets, visible_seed=visible_seed,
                          hidden_seed=hidden_seed, opt=opt, slots=slots, bptt=bptt, cost=cost, losses=losses,
                          held=held, threads=torch.get_num_threads(), **kwargs))
        return losses

    def fits(nbytes, what):
        checks.append((nbytes, what))
        real_fits(nbytes, what)

    held_out = torch.as_tensor(load_mnist(digits_dir).test_images).transpose(0, 1)
    monkeypatch.setattr(fastseq, "train_bptt", train_bptt)
    monkeypatch.setattr(_common, "fits", fits)
    before = torch.get_num_threads()
    yield calls, checks
    torch.set_num_threads(before)


def _train(capsys, data, tmp_path, *options, name="run"):
    argv = ["train", "--data", str(data), "--output", str(tmp_path / name), *options]
    assert main(argv) == 0
    return capsys.readouterr().out.splitlines()


def test_every_line_printed_is_recomputed_from_the_data_and_the_model_written(capsys, tmp_path, digits_dir,
                                                                            recorded):
    calls, _ = recorded
    out = _train(capsys, digits_dir, tmp_path, "--model", "GRU", "--hidden", "8", "--epochs", "2", "--batch", "7",
                 "--bptt", "9", "--learning-rate", "0.02", "--teacher-forcing", "0.7", "--random-seed", "3",
                 "--seen", "10")
    digits = load_mnist(digits_dir)
    prefix = tmp_path / "run"
    assert out[0] == (f"fastseq train --batch 7 --bptt 9 --checkpoint-every 100 --data {digits_dir} --epochs 2 "
                      f"--hidden 8 --learning-rate 0.02 --model gru --output {prefix} --random-seed 3 --seen 10 "
                      f"--teacher-forcing 0.7 --threads 1 --window 10 --windows 10000")
    assert out[1] == f"data: {digits.source}, 60 training and 20 held-out digits"
    model = load_model(prefix.with_name("run.safetensors"))
    assert out[2] == f"model: gru, 8 hidden units, {sum(p.numel() for p in model.parameters())} parameters"
    assert len(calls) == 2 and len(out) == 8
    for epoch, (call, line) in enumerate(zip(calls, out[3:5])):
        assert line.startswith(f"epoch {epoch + 1}/2: training loss {np.mean(call['losses']):.3f}, "
                               f"held-out loss {call['held']:.3f} (cross-entropy per row), "), line
        assert line.endswith(" s")
    completed = complete(model, digits.test_images, k=10)
    err = completion_mse(completed, digits.test_images, 10)
    base = baseline_errors(digits.train_images, digits.test_images, 10)
    assert out[5] == (f"completion MSE of rows 10-27 on 20 held-out digits: model {err:.4f}, repeat last seen row "
                      f"{base['repeat_last']:.4f}, mean bottom of training digits {base['mean_bottom']:.4f}")
    verdict = "beats both baselines" if err < min(base.values()) else "does NOT beat both baselines"
    assert out[6].startswith(f"model {verdict}; training took ") and out[6].endswith(" s")
    assert out[7] == f"wrote {prefix}.safetensors, {prefix}.log"
    assert prefix.with_name("run.log").read_text().splitlines() == out


def test_train_bptt_gets_the_digits_the_options_and_adam_over_the_models_parameters(capsys, tmp_path, digits_dir,
                                                                                  recorded):
    calls, _ = recorded
    _train(capsys, digits_dir, tmp_path, "--model", "lstm", "--hidden", "6", "--epochs", "2", "--batch", "5",
           "--bptt", "9", "--learning-rate", "0.003", "--teacher-forcing", "0.25", "--random-seed", "11",
           "--checkpoint-every", "20", "--checkpoint", str(tmp_path / "c.ckpt"), "--threads", "2")
    digits = load_mnist(digits_dir)
    contexts, targets = as_sequences(digits.train_images)
    model = calls[0]["decoder"].model
    for epoch, call in enumerate(calls):
        assert call["decoder"].model is model and call["decoder"].feedback is True
        assert len(call["contexts"]) == len(contexts) == 60
        assert all(np.array_equal(a, b) for a, b in zip(call["contexts"], contexts))
        assert all(np.array_equal(a, b) for a, b in zip(call["targets"], targets))
        assert torch.equal(call["visible_seed"], torch.zeros(28))
        h, c = call["hidden_seed"]
        assert torch.equal(h, torch.zeros(1, 6)) and torch.equal(c, torch.zeros(1, 6))
        opt = call["opt"]
        assert isinstance(opt, torch.optim.Adam) and opt is calls[0]["opt"]
        assert opt.param_groups[0]["lr"] == 0.003
        assert [id(p) for p in opt.param_groups[0]["params"]] == [id(p) for p in model.parameters()]
        assert (call["slots"], call["bptt"]) == (5, 9)
        assert call["teacher_forcing"] == 0.25 and call["shuffle"] is True
        assert (call["seed"], call["epoch"], call["progress"]) == (11, epoch, False)
        assert (call["checkpoint"], call["checkpoint_every"]) == (str(tmp_path / "c.ckpt"), 20)
        assert call["threads"] == min(2, _common.cpu_count())
    pred, target = torch.rand(3, 4, 28) * 0.98 + 0.01, torch.rand(3, 4, 28)
    loss = calls[0]["cost"](pred, target)
    manual = -(target * pred.log() + (1 - target) * (1 - pred).log()).sum(-1)
    assert loss.shape == (3, 4) and torch.allclose(loss, manual, atol=1e-5)  # cross-entropy summed over a row


@pytest.mark.parametrize("forcing,feedback", [("1", False), ("0.999", True), ("0", True)])
def test_the_decoder_reads_its_own_output_unless_always_forced(capsys, tmp_path, digits_dir, recorded, forcing,
                                                               feedback):
    calls, _ = recorded
    _train(capsys, digits_dir, tmp_path, "--hidden", "4", "--epochs", "1", "--bptt", "27",
           "--teacher-forcing", forcing)
    assert calls[0]["decoder"].feedback is feedback and calls[0]["teacher_forcing"] == float(forcing)


def test_more_slots_than_digits_use_one_slot_each_and_are_checked_as_such(capsys, tmp_path, digits_dir, recorded):
    calls, checks = recorded
    _train(capsys, digits_dir, tmp_path, "--hidden", "4", "--epochs", "1", "--batch", "61", "--bptt", "3")
    assert calls[0]["slots"] == 60
    assert checks[1] == (3 * 60 * (24.0 + 4 * (3 * 4 + 3 * 28)), "--batch 61 with --bptt 3 and --hidden 4")


@pytest.mark.parametrize("kind", ["rnn", "rnn_untied", "gru", "lstm"])
@pytest.mark.parametrize("hidden,visible", [(1, 1), (5, 3), (7, 28)])
def test_parameter_count_is_that_of_the_model_built(kind, hidden, visible):
    model = make_model(kind, hidden, visible)
    assert parameter_count(kind, hidden, visible) == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("kind,gates", [("rnn", 1), ("rnn_untied", 1), ("gru", 3), ("lstm", 4)])
def test_the_memory_checks_count_the_model_one_window_and_the_pictures(capsys, tmp_path, digits_dir, recorded,
                                                                      kind, gates):
    calls, checks = recorded
    _train(capsys, digits_dir, tmp_path, "--model", kind, "--hidden", "5", "--epochs", "1", "--batch", "4",
           "--bptt", "6", "--mosaic", "--window", "3", "--windows", "50")
    weights = sum(p.numel() for p in calls[0]["decoder"].model.parameters())
    # weights, gradients and Adam's two moments, float32; checked before the model is built
    assert checks[0] == (16.0 * weights, "--hidden 5")
    # per step and slot: three int64 schedule entries, and the float32 activations kept for backward
    # (the gates, the new and old state; the row read, the prediction and its gradient)
    assert checks[1] == (6 * 4 * (24.0 + 4 * ((gates + 2) * 5 + 3 * 28)), "--batch 4 with --bptt 6 and --hidden 5")
    # the windows drawn (float32) and, per unit, its weighted window and continuation (float64 sums, twice)
    assert checks[2] == (4.0 * 50 * 3 * 28 + 16.0 * 5 * 2 * 3 * 28, "--windows 50 of --window 3 rows for 5 units")
    assert len(checks) == 3


def test_a_saved_model_is_checked_with_its_own_sizes_once_it_is_read(capsys, tmp_path, digits_dir, recorded):
    calls, checks = recorded
    _train(capsys, digits_dir, tmp_path, "--model", "gru", "--hidden", "3", "--epochs", "1", "--batch", "2",
           "--bptt", "5", name="first")
    checks.clear()
    _train(capsys, digits_dir, tmp_path, "--params", str(tmp_path / "first.safetensors"), "--epochs", "1",
           "--batch", "2", "--bptt", "5", name="second")
    assert checks == [(16.0 * parameter_count("gru", 3, 28), "--hidden 3"),
                      (5 * 2 * (24.0 + 4 * (5 * 3 + 3 * 28)), "--batch 2 with --bptt 5 and --hidden 3")]


def test_a_model_too_big_is_refused_before_it_is_built(capsys, tmp_path, digits_dir, recorded, monkeypatch):
    from fastseq._util import memory
    from fastseq.rowrnn import models

    calls, checks = recorded
    built = []
    monkeypatch.setattr(models, "make_model", lambda *a: built.append(a))
    monkeypatch.setattr(memory, "machine_memory", lambda: 10**6)
    assert main(["train", "--data", str(digits_dir), "--output", str(tmp_path / "o"), "--hidden", "300"]) == 2
    assert "--hidden 300 would need" in capsys.readouterr().err
    assert not built and not calls and checks == [(16.0 * parameter_count("rnn", 300, 28), "--hidden 300")]


def _png(path):
    return skimage.io.imread(path)


def _expected_png(array, tmp_path, zoom):
    save_png(array, tmp_path / "expected.png", zoom=zoom)
    return _png(tmp_path / "expected.png")


@pytest.mark.parametrize("sort_units", [False, True])
def test_the_pictures_are_the_completions_and_the_hidden_units_of_the_model_written(capsys, tmp_path, digits_dir,
                                                                                   recorded, sort_units):
    calls, _ = recorded
    sort = ["--sort-units"] if sort_units else []
    out = _train(capsys, digits_dir, tmp_path, "--hidden", "9", "--epochs", "1", "--batch", "6", "--bptt", "9",
                 "--mosaic", "--seen", "12", "--window", "4", "--windows", "300", "--random-seed", "5", *sort)
    prefix = tmp_path / "run"
    assert out[-1] == (f"wrote {prefix}.safetensors, {prefix}.log, {prefix}_completion.png, "
                       f"{prefix}_hidden_units.png")
    digits = load_mnist(digits_dir)
    model = load_model(tmp_path / "run.safetensors")
    test, labels = digits.test_images, digits.test_labels
    completed = complete(model, test, k=12)
    # two groups of three rows of ten digits, one per class in order: seen (unseen rows grey), completed, truth
    groups = []
    for i in range(2):
        idx = np.array([np.flatnonzero(labels == c)[i] for c in range(10)])
        seen = test[idx].copy()
        seen[:, 12:] = 0.5
        groups += [seen, completed[idx], test[idx]]
    picture = tile(np.concatenate(groups), width=10, spacing=2, scale=None, background=1.0)
    assert np.array_equal(_png(tmp_path / "run_completion.png"), _expected_png(picture, tmp_path, 3))
    # each unit's window and continuation scaled to its own range, a grey row between them
    pics = hidden_unit_pictures(model, digits.train_images, 4, 300, seed=5)
    cells = []
    for p in pics:
        scaled = (p - p.min()) / (p.max() - p.min()) if p.max() > p.min() else np.full_like(p, 0.5)
        cells.append(np.concatenate([scaled[:4], np.full((1, 28), 0.5), scaled[4:]]))
    order = corrsort(pics.reshape(9, -1)) if sort_units else None
    picture = tile(np.array(cells), spacing=2, scale=None, background=1.0, order=order)
    assert np.array_equal(_png(tmp_path / "run_hidden_units.png"), _expected_png(picture, tmp_path, 2))


def test_a_unit_that_never_changes_is_drawn_grey():
    from fastseq.commands.train import _units_figure

    pics = np.stack([np.zeros((4, 3)), np.arange(12.0).reshape(4, 3) - 5])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and without a word about dividing by its zero range
        figure = _units_figure(pics, 2)
    first, second = figure[:5, :3], figure[:5, 5:8]
    assert np.array_equal(first, np.full((5, 3), 0.5))
    expected = np.concatenate([np.arange(6.0).reshape(2, 3) / 11, [[0.5] * 3], np.arange(6.0, 12).reshape(2, 3) / 11])
    assert np.allclose(second, expected)


def _digits_of(labels):
    """One 2 x 2 digit per label, each with its own grey level."""
    return np.arange(len(labels), dtype=np.float32)[:, None, None] / len(labels) * np.ones((1, 2, 2))


@pytest.mark.parametrize("labels,rows", [
    ([0, 1, 2, 3, 4, 5, 6, 7, 8, 9] * 3, 2),  # two digits of each class are shown, not three
    (list(range(10)), 1),  # one of each: the second group is left out
    ([3, 1, 3, 1, 10, 10], 2),  # classes missing, and a label that is not a digit
])
def test_the_completion_figure_shows_two_digits_per_class_at_most(labels, rows):
    from fastseq.commands.train import _completion_figure

    labels = np.array(labels)
    test = _digits_of(labels)
    completed = 1 - test
    figure = _completion_figure(test, completed, labels, k=1)
    groups = []
    for i in range(rows):
        idx = [np.flatnonzero(labels == c)[i] for c in range(10) if (labels == c).sum() > i]
        seen = test[idx].copy()
        seen[:, 1:] = 0.5
        groups += [seen, completed[idx], test[idx]]
    width = max(len(g) for g in groups)
    assert np.array_equal(figure, tile(np.concatenate(groups), width=width, spacing=2, scale=None))
    assert figure.shape[0] == 3 * rows * 2 + (3 * rows - 1) * 2
