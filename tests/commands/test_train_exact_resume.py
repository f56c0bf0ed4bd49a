"""``fastseq train --checkpoint`` stopped with Ctrl-C mid-epoch and run again ends bit for bit
where the uninterrupted run ends: the saved model, and in the final checkpoint the parameters,
Adam's state, the random states and every window's loss."""
from __future__ import annotations

import pytest
import torch

import fastseq.bptt.checkpoint
from fastseq.cli import main


def _argv(digits_dir, tmp_path, name, checkpoint):
    return ["train", "--data", str(digits_dir), "--epochs", "2", "--hidden", "8", "--batch", "7", "--bptt", "9",
            "--teacher-forcing", "0.5", "--output", str(tmp_path / name), "--checkpoint", str(tmp_path / checkpoint),
            "--checkpoint-every", "1"]


def _epoch_lines(capsys) -> list[str]:
    """The losses each epoch reports (its time left out)."""
    out = capsys.readouterr().out
    return [ln.rsplit(",", 1)[0] for ln in out.splitlines() if ln.startswith("epoch ")]


def _tensors(path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(path)


@pytest.fixture(scope="module")
def whole(tmp_path_factory, digits_dir):
    folder = tmp_path_factory.mktemp("whole")
    assert main(_argv(digits_dir, folder, "run", "run.ckpt")) == 0
    return folder


@pytest.mark.parametrize("cut", ["after the first window", "mid-epoch 1", "before the last window of epoch 2",
                                 "twice"])
def test_interrupted_run_resumes_bit_for_bit(capsys, monkeypatch, tmp_path, digits_dir, whole, cut,
                                             interrupt_after):
    capsys.readouterr()
    reference = _tensors(whole / "run.ckpt")
    windows = len(reference["losses"])  # the last epoch's; both have as many
    assert windows > 10
    cuts = {"after the first window": [1], "mid-epoch 1": [windows // 2], "twice": [4, windows + 3],
            "before the last window of epoch 2": [2 * windows - 1]}[cut]
    writes = 0
    for at in cuts:  # windows trained when Ctrl-C comes
        # a write after every window, and one more at the end of epoch 1
        with monkeypatch.context() as m:
            interrupt_after(m, at + (at > windows) - writes)
            assert main(_argv(digits_dir, tmp_path, "run", "run.ckpt")) == 130
        writes = at + (at > windows)
        meta, saved = fastseq.bptt.checkpoint.load_checkpoint(tmp_path / "run.ckpt")
        assert (meta["loader"]["epoch"], meta["loader"]["window"]) == divmod(at, windows)
        if at > windows:
            assert saved["losses"].tolist() == reference["losses"][: at - windows].tolist()
    capsys.readouterr()
    assert main(_argv(digits_dir, tmp_path, "run", "run.ckpt")) == 0
    resumed_lines = _epoch_lines(capsys)
    ckpt = _tensors(tmp_path / "run.ckpt")
    assert ckpt.keys() == reference.keys() and any(k.startswith("optimizer.") for k in ckpt)
    differ = [k for k in ckpt if not (ckpt[k].dtype == reference[k].dtype and torch.equal(ckpt[k], reference[k]))]
    assert differ == []  # parameters, Adam's moments and steps, carried state, random states, losses
    model, model_ref = _tensors(tmp_path / "run.safetensors"), _tensors(whole / "run.safetensors")
    assert model.keys() == model_ref.keys() and all(torch.equal(model[k], model_ref[k]) for k in model)
    assert resumed_lines and resumed_lines[-1].startswith("epoch 2/2")
