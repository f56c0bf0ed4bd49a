"""train_bptt checkpoints and the store's file helpers on the cases a second mutation run left open.

Checks the exact structure of ``run_config`` (what a checkpoint must match to be resumed: data
checksums with dtype and features, the model's class and tensor shapes and dtypes, the optimizer's
class, the options), and that train_bptt refuses to resume when only a tensor's dtype, the
decoder's class, the optimizer's class or the targets' data changed, naming what differs; that
``load_checkpoint`` refuses a checkpoint of another version and returns no reserved header keys;
that ``save_checkpoint`` keeps the losses as float64 (0.1 comes back exactly) and the NumPy
random key as int64; and that ``_store_files.as_numpy`` recognises a torch tensor by having both
``detach`` and ``cpu`` (a tensor that requires grad included) and ``crc32`` starts from 0.
"""
from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch
from torch import nn

import fastseq._util.files as files
from fastseq.bptt import _store_files, train_bptt
from fastseq.bptt.checkpoint import VERSION, load_checkpoint, restore, run_config, save_checkpoint

F, C, H = 3, 2, 4


class _Store:
    """What run_config reads of a SequenceStore."""

    def __init__(self, data):
        self.data, self.dtype, self.feature_shape, self.released = data, data.dtype, data.shape[1:], 0

    def release(self):
        self.released += 1


# run_config


def test_run_config_is_exactly_the_data_model_optimizer_and_options():
    ctx = _Store(np.arange(12, dtype=np.float32).reshape(6, 2))
    tgt = _Store(np.arange(6, dtype=np.float64).reshape(3, 1, 2))
    model = nn.Linear(2, 3)
    model.register_buffer("scale", torch.ones(2, dtype=torch.float64))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    config = run_config(model, opt, ctx, tgt, {"teacher_forcing": 0.5})
    assert config == {
        "data": {"contexts": {"dtype": "<f4", "features": [2], "crc32": zlib.crc32(ctx.data.tobytes())},
                 "targets": {"dtype": "<f8", "features": [1, 2], "crc32": zlib.crc32(tgt.data.tobytes())}},
        "model": {"class": "Linear", "tensors": {"weight": [[3, 2], "torch.float32"], "bias": [[3], "torch.float32"],
                                                 "scale": [[2], "torch.float64"]}},
        "optimizer": "SGD", "teacher_forcing": 0.5}
    assert (ctx.released, tgt.released) == (1, 1)


class Decoder(nn.Module):
    def __init__(self, buffer_dtype=torch.float32):
        super().__init__()
        self.rnn = nn.GRU(F + C, H)
        self.out = nn.Linear(H, F)
        self.register_buffer("scale", torch.ones(F, dtype=buffer_dtype))  # saved, compared, unused

    def forward(self, visible, context, hidden):
        h, hidden = self.rnn(torch.cat([visible, context.unsqueeze(0)], -1), hidden)
        return self.out(h), hidden


class OtherDecoder(Decoder):
    pass


def _data(seed=0):
    rng = np.random.default_rng(seed)
    lengths = [5, 7, 4, 6]
    return ([rng.standard_normal((t, C)).astype(np.float32) for t in lengths],
            [rng.standard_normal((t, F)).astype(np.float32) for t in lengths])


def _train(path, model=None, opt=None, target_seed=0):
    torch.manual_seed(0)
    model = (model or Decoder)()
    opt = torch.optim.Adam(model.parameters(), lr=0.01) if opt is None else opt(model.parameters(), lr=0.01)
    ctx, _ = _data()
    _, tgt = _data(target_seed)
    return train_bptt(model, ctx, tgt, torch.zeros(F), torch.zeros(1, H), opt, batch_size=2, bptt=3,
                      checkpoint=path, checkpoint_every=2)


@pytest.mark.parametrize("change, name", [
    ({"model": lambda: Decoder(torch.float64)}, r"model\.tensors\.scale \(checkpoint \[\[3\], 'torch\.float32'\], "
                                        r"now \[\[3\], 'torch\.float64'\]\)"),
    ({"model": OtherDecoder}, r"model\.class \(checkpoint 'Decoder', now 'OtherDecoder'\)"),
    ({"opt": torch.optim.SGD}, r"optimizer \(checkpoint 'Adam', now 'SGD'\)"),
    ({"target_seed": 1}, r"data\.targets\.crc32 \(checkpoint \d+, now \d+\)"),
])
def test_resuming_with_another_tensor_dtype_class_optimizer_or_targets_is_refused(tmp_path, rng_kept, change, name):
    path = tmp_path / "run.ckpt"
    _train(path)
    saved = path.read_bytes()
    with pytest.raises(ValueError, match=rf"to come from this training run, but {name} differ;"):
        _train(path, **change)
    assert path.read_bytes() == saved


# load_checkpoint and save_checkpoint


def _checkpoint(path, losses=(0.25,)):
    torch.manual_seed(0)
    model = nn.Linear(2, 3)
    save_checkpoint(path, config={"a": 1}, loader_state={"epoch": 0}, decoder=model,
                    optimizer=torch.optim.SGD(model.parameters(), lr=0.1), carried=(torch.zeros(1, 2),),
                    losses=list(losses), generator=None)
    return model


def test_loaded_meta_has_exactly_the_checkpoint_keys(tmp_path):
    path = tmp_path / "c.ckpt"
    _checkpoint(path)
    meta, _ = load_checkpoint(path)
    assert set(meta) == {"format", "version", "config", "loader", "optimizer", "numpy_rng", "carried", "ranks"}
    assert (meta["format"], meta["version"]) == ("fastseq.train_bptt.checkpoint", VERSION)
    assert set(files.read_header(path)) == {*files.RESERVED, "checkpoint_version", "config", "loader", "optimizer",
                                            "numpy_rng", "carried", "ranks"}


@pytest.mark.parametrize("version", [VERSION + 1, 0, None])
def test_a_checkpoint_of_another_version_is_refused(tmp_path, version):
    path = tmp_path / "c.ckpt"
    _checkpoint(path)
    header, tensors = files.read(path, "train_bptt_checkpoint")
    header = {k: v for k, v in header.items() if k not in files.RESERVED}
    header["checkpoint_version"] = version
    files.write(path, "train_bptt_checkpoint", header, tensors)
    with pytest.raises(ValueError, match=rf"to be a fastseq\.train_bptt\.checkpoint of version {VERSION}"):
        load_checkpoint(path)


def test_losses_come_back_exactly_and_the_numpy_key_is_saved_as_int64(tmp_path, rng_kept):
    path = tmp_path / "c.ckpt"
    np.random.seed(7)
    keys = np.random.get_state()[1]
    losses = [0.1, 1 / 3, 1e-40]  # float32 would round the first two and flush the last to 0
    model = _checkpoint(path, losses)
    meta, tensors = load_checkpoint(path)
    assert tensors["losses"].dtype == torch.float64
    assert tensors["rng.numpy"].dtype == torch.int64 and np.array_equal(tensors["rng.numpy"].numpy(), keys)
    np.random.seed(0)
    _, back = restore(meta, tensors, model, torch.optim.SGD(model.parameters(), lr=0.1), None, torch.device("cpu"))
    assert back == losses and all(type(v) is float for v in back)
    assert np.array_equal(np.random.get_state()[1], keys)


# _store_files.as_numpy and crc32


def test_as_numpy_detaches_a_tensor_that_requires_grad():
    t = torch.arange(6, dtype=torch.float32).reshape(3, 2).requires_grad_()
    arr = _store_files.as_numpy(t, "x")
    assert isinstance(arr, np.ndarray) and np.array_equal(arr, t.detach().numpy())


class _ArrayLike:
    def __array__(self, dtype=None, copy=None):
        return np.arange(4.0)


class _OnlyCpu(_ArrayLike):
    def cpu(self):
        raise AssertionError("not a tensor: read through __array__")


class _OnlyDetach(_ArrayLike):
    def detach(self):
        raise AssertionError("not a tensor: read through __array__")


def test_as_numpy_reads_an_object_with_only_cpu_or_only_detach_as_an_array():
    for obj in (_OnlyCpu(), _OnlyDetach()):
        assert np.array_equal(_store_files.as_numpy(obj, "x"), np.arange(4.0))
    arr = np.arange(3)
    assert _store_files.as_numpy(arr, "x") is arr


def test_crc32_starts_from_zero_and_continues_from_value():
    assert _store_files.crc32(b"abc") == zlib.crc32(b"abc")
    assert _store_files.crc32(b"") == 0
    assert _store_files.crc32(b"def", zlib.crc32(b"abc")) == zlib.crc32(b"abcdef")
    data = np.arange(5, dtype=np.int32)
    assert _store_files.crc32(data) == zlib.crc32(data.tobytes())
    high = bytes(range(128, 256))
    assert _store_files.crc32(high) == zlib.crc32(high)
