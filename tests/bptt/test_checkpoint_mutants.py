"""train_bptt checkpoints in detail: the exact wording of the differences a resume reports
(config_differences, optimizer_differences), files of another kind refused by name
(load_checkpoint), and restore's defaults (rank 0, a checkpoint without "ranks" is one
process, the carried state on the device asked for)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import fastseq._util.files as files
from fastseq.bptt.checkpoint import config_differences, load_checkpoint, optimizer_differences, restore, save_checkpoint


def _model():
    torch.manual_seed(0)
    model = nn.Linear(2, 3)
    return model, torch.optim.SGD(model.parameters(), lr=0.1)


def _two_process_checkpoint(path):
    """A checkpoint of 2 processes, each with its own carried state and torch random state."""
    model, opt = _model()
    states = [torch.manual_seed(seed).get_state() for seed in (11, 22)]
    save_checkpoint(path, config={}, loader_state={}, decoder=model, optimizer=opt,
                    carried=[(torch.full((1, 2), 0.5),), (torch.full((1, 2), 1.5),)], losses=[0.25],
                    generator=None, torch_rng=states)
    return states


# config_differences


def test_config_differences_name_the_key_and_both_values_with_their_labels():
    assert config_differences({"bptt": 4}, {"bptt": 3}) == ["bptt (checkpoint 4, now 3)"]
    assert config_differences({"a": 1, "opt": {"lr": 0.1, "eps": 1}}, {"a": 1, "opt": {"lr": 0.2, "eps": 1}}) \
        == ["opt.lr (checkpoint 0.1, now 0.2)"]
    assert config_differences({"x": 1}, {"x": 2}, "p.") == ["p.x (checkpoint 1, now 2)"]


def test_config_differences_report_keys_only_one_side_has():
    assert config_differences({"a": 1, "b": 2}, {"b": 2}) == ["a (checkpoint 1, now None)"]
    assert config_differences({}, {"c": [1, 2]}) == ["c (checkpoint None, now [1, 2])"]


def test_config_differences_compare_a_dict_with_a_scalar_whole():
    assert config_differences({"m": {"x": 1}}, {"m": 5}) == ["m (checkpoint {'x': 1}, now 5)"]
    assert config_differences({"m": 5}, {"m": {"x": 1}}) == ["m (checkpoint 5, now {'x': 1})"]
    assert config_differences({"m": {"x": 1}}, {}) == ["m (checkpoint {'x': 1}, now None)"]


# optimizer_differences and _plain


def test_optimizer_differences_compare_tuples_by_their_values():
    model = nn.Linear(2, 2)
    opt = torch.optim.Adam(model.parameters(), lr=0.01, betas=(0.8, 0.999))
    saved = [{**opt.param_groups[0], "params": [0, 1], "betas": [0.9, 0.999]}]
    assert optimizer_differences(saved, opt) == ["optimizer group 0 betas (checkpoint [0.9, 0.999], now [0.8, 0.999])"]
    saved[0]["betas"] = [0.8, 0.999]  # a tuple saved as JSON comes back a list: the same setting
    assert optimizer_differences(saved, opt) == []


def test_optimizer_differences_skip_keys_only_one_side_has():
    model = nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    group = {k: v for k, v in opt.param_groups[0].items() if k != "momentum"}
    saved = [{**group, "params": [0, 1], "lr": 0.01, "old_option": 3}]
    assert optimizer_differences(saved, opt) == ["optimizer group 0 lr (checkpoint 0.01, now 0.5)"]


# load_checkpoint


def test_a_file_of_another_kind_is_refused_by_name(tmp_path):
    path = tmp_path / "model.safetensors"
    files.write(path, "rowrnn", {"model": "rnn", "n_visible": 2, "n_hidden": 1}, {"b": torch.zeros(1)})
    with pytest.raises(ValueError, match="to be a fastseq train_bptt checkpoint, got a fastseq row model"):
        load_checkpoint(path)


# restore


def test_restore_takes_process_0s_random_state_by_default(tmp_path, rng_kept):
    path = tmp_path / "run.ckpt"
    states = _two_process_checkpoint(path)
    model, opt = _model()
    meta, tensors = load_checkpoint(path)
    carried, losses = restore(meta, tensors, model, opt, None, torch.device("cpu"))
    assert torch.equal(torch.get_rng_state(), states[0])
    assert [c[0].tolist() for c in carried] == [[[0.5, 0.5]], [[1.5, 1.5]]] and losses == [0.25]
    restore(meta, tensors, model, opt, None, torch.device("cpu"), rank=3)
    assert torch.equal(torch.get_rng_state(), states[1])


def test_a_checkpoint_without_ranks_is_one_process(tmp_path, rng_kept):
    """Checkpoints written before several processes could checkpoint have no "ranks"."""
    path = tmp_path / "run.ckpt"
    model, opt = _model()
    state = torch.manual_seed(5).get_state()
    save_checkpoint(path, config={}, loader_state={}, decoder=model, optimizer=opt,
                    carried=(torch.ones(1, 2),), losses=[1.0], generator=None)
    header, tensors = files.read(path, "train_bptt_checkpoint")
    del header["ranks"]
    files.write(path, "train_bptt_checkpoint", {k: v for k, v in header.items() if k not in files.RESERVED},
                tensors)
    meta, tensors = load_checkpoint(path)
    assert "ranks" not in meta
    torch.manual_seed(6)
    carried, losses = restore(meta, tensors, model, opt, None, torch.device("cpu"))
    assert len(carried) == 1 and carried[0][0].tolist() == [[1.0, 1.0]] and losses == [1.0]
    assert torch.equal(torch.get_rng_state(), state)


def test_restore_puts_the_carried_state_on_the_device(tmp_path, rng_kept):
    path = tmp_path / "run.ckpt"
    _two_process_checkpoint(path)
    model, opt = _model()
    meta, tensors = load_checkpoint(path)
    carried, _ = restore(meta, tensors, model, opt, None, torch.device("meta"))  # a device every machine has
    assert [c[0].device.type for c in carried] == ["meta", "meta"]
