"""Row models' measures and files, with data that tell a right answer from a near miss: rows
per sequence unlike features, per-row means unlike the overall mean, errors that name the
argument typed, files whose shape or extra tensors must be refused, and devices honoured."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from fastseq._util import files
from fastseq.rowrnn.models import (
    TiedRNN,
    baseline_errors,
    completion_mse,
    load_model,
    save_model,
)


def _names(name: str) -> str:
    """The argument's name as a whole word, case and all (not 'XXtestXX', 'TEST' or 'None')."""
    return rf"\b{re.escape(name)}\b"


@pytest.mark.parametrize("measure,names,bad_value", [(completion_mse, ("completed", "truth"), np.nan),
                                                     (baseline_errors, ("train", "test"), np.inf)])
@pytest.mark.parametrize("position", [0, 1])
def test_measures_errors_name_the_argument(measure, names, bad_value, position):
    good = np.zeros((2, 4, 2))
    for bad, kind in ((np.full((2, 4, 2), bad_value), ValueError), ("rows", (TypeError, ValueError))):
        args = [good, good]
        args[position] = bad
        with pytest.raises(kind, match=_names(names[position])):
            measure(*args, k=2)


def test_rows_per_sequence_not_features_bound_k():
    # T = 6 rows of F = 3 features: k = 5 is allowed (k <= T), and k = 7 is not
    rng = np.random.default_rng(0)
    truth = rng.random((2, 6, 3))
    completed = truth.copy()
    completed[:, 5:] += 0.5
    assert completion_mse(completed, truth, k=5) == pytest.approx(0.25, rel=1e-6)
    b = baseline_errors(truth, truth, k=5)
    assert set(b) == {"repeat_last", "mean_bottom"}
    with pytest.raises(ValueError, match=r"k <= 6"):
        completion_mse(completed, truth, k=7)


def test_mean_bottom_uses_each_rows_own_training_mean():
    # training rows 2 and 3 have means 1 and 3 (overall 2): the per-row baseline is exact
    train = np.zeros((2, 4, 1))
    train[:, 2], train[:, 3] = 1.0, 3.0
    test = np.zeros((1, 4, 1))
    test[0, 2], test[0, 3] = 1.0, 3.0
    assert baseline_errors(train, test, k=2)["mean_bottom"] == 0.0


def test_k_defaults_to_14_rows_seen():
    truth = np.zeros((1, 28, 2))
    completed = truth.copy()
    completed[0, 14] = 1.0  # row 14 is the first one completed with k = 14, seen with k = 15
    assert completion_mse(completed, truth) == completion_mse(completed, truth, k=14) > 0.0
    assert completion_mse(completed, truth, k=15) == 0.0
    train = np.zeros((3, 28, 2))
    assert baseline_errors(train, completed) == baseline_errors(train, completed, k=14)
    assert baseline_errors(train, completed) != baseline_errors(train, completed, k=15)


def test_measures_work_in_float32_and_sum_in_float64():
    # inputs are float32 (as the models are): a difference below float32's resolution is none
    assert completion_mse(np.full((1, 3, 2), 1.0 + 1e-9), np.ones((1, 3, 2)), k=1) == 0.0
    # and the mean is accumulated in float64, which a float32 accumulator would not give here
    rng = np.random.default_rng(1)
    truth = rng.random((64, 40, 1000)).astype(np.float32)
    completed = truth + rng.standard_normal(truth.shape).astype(np.float32)
    d = (completed[:, 1:] - truth[:, 1:]) ** 2
    exact = float(np.mean(d, dtype=np.float64))
    assert float(np.mean(d)) != exact  # the data do tell the two apart
    assert completion_mse(completed, truth, k=1) == exact


def test_save_model_names_what_it_expected():
    with pytest.raises(TypeError, match=r"Expected model to be a row model \(RowRNN\)"):
        save_model("not a model", "unused.safetensors")


def test_load_model_keeps_visible_and_hidden_sizes_apart(tmp_path):
    m = TiedRNN(5, 3)
    save_model(m, tmp_path / "m.safetensors")
    back = load_model(tmp_path / "m.safetensors")
    assert (back.n_visible, back.n_hidden) == (5, 3)


def test_load_model_moves_to_the_device_asked_for(tmp_path):
    save_model(TiedRNN(5, 3), tmp_path / "m.safetensors")
    on_meta = load_model(tmp_path / "m.safetensors", device="meta")
    assert {p.device.type for p in on_meta.parameters()} == {"meta"}
    assert {p.device.type for p in load_model(tmp_path / "m.safetensors").parameters()} == {"cpu"}
    with pytest.raises(ValueError, match=r"^Expected device to be a device such as 'cpu'"):
        load_model(tmp_path / "m.safetensors", device="nonsense")


def _write_row_model(path, tensors: dict) -> None:
    files.write(path, "rowrnn", {"model": "rnn", "n_visible": 5, "n_hidden": 3}, tensors)


def test_load_model_refuses_a_file_with_an_extra_tensor(tmp_path):
    tensors = dict(TiedRNN(5, 3).state_dict())
    tensors["unexpected"] = torch.zeros(2)
    path = tmp_path / "extra.safetensors"
    _write_row_model(path, tensors)
    with pytest.raises(ValueError, match=re.escape(f"Expected path {str(path)!r} to be a fastseq row model (RowRNN) "
                                                   "file whose contents fit together")):
        load_model(path)


def test_load_model_names_the_file_whose_parameters_are_not_finite(tmp_path):
    tensors = dict(TiedRNN(5, 3).state_dict())
    tensors["b"] = torch.full((3,), float("nan"))
    path = tmp_path / "nan.safetensors"
    _write_row_model(path, tensors)
    with pytest.raises(ValueError, match=re.escape(f"Expected finite parameters in {path}, got NaN or infinity in 'b'")):
        load_model(path)


def test_row_models_name_images_too_large_for_float32():
    from fastseq.rowrnn import as_sequences

    with pytest.raises(ValueError, match=r"Expected images to fit in float32 .*got 1e\+300 at index \[0, 1, 2\]"):
        as_sequences(np.pad(np.full((1, 1, 1), 1e300), ((0, 0), (1, 0), (2, 0))))
