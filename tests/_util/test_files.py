"""fastseq's one file format: fastseq.save / fastseq.load for every kind, the old loaders,
files of earlier versions, and clear errors for every file that is not what was asked for."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

import fastseq
from fastseq._util import files
from fastseq.boltzmann import R3BM, RBM, RRBM, BetaRBM, GaussianRBM
from fastseq.boltzmann._base import load_rbm
from fastseq.bptt import train_bptt
from fastseq.bptt.checkpoint import load_checkpoint
from fastseq.conv import ConvAutoencoder, ConvConfig
from fastseq.conv.model import load_autoencoder
from fastseq.rowrnn.models import load_model, make_model

OLD = Path(__file__).parent / "old_files"  # written by fastseq before this format (see make_old_files.py)
EXPECTED = dict(np.load(OLD / "expected.npz"))
MACHINES = [(RBM, {}), (RRBM, {"sigma": 0.2}), (R3BM, {}), (BetaRBM, {"eps": 1e-2}), (GaussianRBM, {"learn_sigma": True})]


def _assert_as_computed(got, expected):
    """``expected`` was computed when the old files were written, on another processor: a float32
    product's rounding depends on the processor's kernels (AVX2 or AVX-512, MKL's path), so the
    outputs agree to float32 rounding, not bit for bit; a file read wrongly (a weight transposed,
    missing or misplaced) is off by far more."""
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def _raw_header(path) -> dict:
    """The header as safetensors itself reads it, without fastseq's reader."""
    with safe_open(str(path), framework="pt") as fh:
        return json.loads(fh.metadata()["fastseq"])


def _raw_tensors(path) -> dict[str, torch.Tensor]:
    with safe_open(str(path), framework="pt") as fh:
        return {k: fh.get_tensor(k) for k in fh.keys()}


def _checkpoint(path) -> nn.Module:
    """Train a GRU row model for an epoch with checkpoints; return its decoder."""
    torch.manual_seed(0)
    model = make_model("gru", 4, 3)
    rows = [np.random.default_rng(t).random((t, 3)).astype(np.float32) for t in (3, 5, 2, 4)]
    decoder = model.as_decoder()
    train_bptt(decoder, rows, rows, torch.zeros(3), model.hidden_seed(),
               torch.optim.Adam(model.parameters(), lr=0.01), batch_size=2, bptt=2, seed=1, checkpoint=path,
               checkpoint_every=2)
    return decoder


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict[str, Path]:
    """One file of each kind, written by this fastseq."""
    folder = tmp_path_factory.mktemp("saved")
    x = (np.random.default_rng(0).random((12, 5)) < 0.5).astype(float)
    out = {"rbm": folder / "rbm.safetensors", "conv_autoencoder": folder / "conv.safetensors",
           "rowrnn": folder / "rnn.safetensors", "train_bptt_checkpoint": folder / "run.ckpt"}
    fastseq.save(RBM(n_components=3, n_iter=1, random_state=0).fit(x), out["rbm"])
    fastseq.save(ConvAutoencoder(ConvConfig(8, (2,), (2,)), seed=0), out["conv_autoencoder"])
    fastseq.save(make_model("gru", 3, 4), out["rowrnn"])
    _checkpoint(out["train_bptt_checkpoint"])
    return out


# ---------------------------------------------------------------- round trips in the new format
@pytest.mark.parametrize("cls,kw", MACHINES)
def test_every_boltzmann_machine_round_trips(tmp_path, cls, kw):
    x = np.random.default_rng(1).random((16, 5))
    m = cls(n_components=3, n_iter=2, batch_size=4, random_state=0, **kw).fit(x)
    path = tmp_path / "m.safetensors"
    fastseq.save(m, path)
    assert _raw_header(path) == {"format": "fastseq", "version": 1, "kind": "rbm", "class": cls.__name__,
                                 "config": m._config(), "n_features_in": 5, "n_chains": 4}
    for back in (fastseq.load(path), load_rbm(path), cls.load(path)):
        assert type(back) is cls and back.get_params() == m.get_params()
        assert back.params_.keys() == m.params_.keys()
        for name, p in m.params_.items():
            assert torch.equal(back.params_[name], p) and back.params_[name].requires_grad == p.requires_grad
        np.testing.assert_array_equal(back.transform(x), m.transform(x))
        np.testing.assert_array_equal(back.free_energy(x), m.free_energy(x))
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # written atomically: no temp file left


def test_conv_autoencoder_round_trips(tmp_path):
    net = ConvAutoencoder(ConvConfig(9, (3, 2), (2, 1), activation="elu"), seed=2)
    path = tmp_path / "net.safetensors"
    fastseq.save(net, path)
    assert _raw_header(path)["kind"] == "conv_autoencoder"
    x = np.random.default_rng(0).uniform(-1, 1, (4, 9, 9)).astype(np.float32)
    for back in (fastseq.load(path), load_autoencoder(path, config=net.config), fastseq.load(path, device="cpu")):
        assert back.config == net.config
        assert all(torch.equal(a, b) for a, b in zip(back.state_dict().values(), net.state_dict().values()))
        np.testing.assert_array_equal(back.reconstruct(x), net.reconstruct(x))


@pytest.mark.parametrize("kind", ["rnn", "rnn_untied", "gru", "lstm"])
def test_every_row_model_round_trips(tmp_path, kind):
    torch.manual_seed(0)
    m = make_model(kind, 5, 4)
    path = tmp_path / "m.safetensors"
    fastseq.save(m, path)
    assert _raw_header(path) == {"format": "fastseq", "version": 1, "kind": "rowrnn", "model": kind,
                                 "n_visible": 4, "n_hidden": 5}
    x = torch.rand(6, 2, 4)
    for back in (fastseq.load(path), load_model(path), fastseq.load(path, device="cpu")):
        assert type(back) is type(m) and back.kind == kind
        torch.testing.assert_close(back(x)[0], m(x)[0], rtol=0, atol=0)


def test_checkpoints_read_as_before(saved):
    path = saved["train_bptt_checkpoint"]
    header = _raw_header(path)
    assert (header["format"], header["version"], header["kind"], header["checkpoint_version"]) == \
        ("fastseq", 1, "train_bptt_checkpoint", 1)
    meta, tensors = load_checkpoint(path)
    # the dict load_checkpoint has always returned: the checkpoint's own format and version first
    assert meta == {"format": "fastseq.train_bptt.checkpoint", "version": 1,
                    **{k: v for k, v in header.items() if k not in ("format", "version", "kind", "checkpoint_version")}}
    assert {"config", "loader", "optimizer", "numpy_rng", "carried", "ranks"} <= meta.keys()
    raw = _raw_tensors(path)
    assert tensors.keys() == raw.keys() and all(torch.equal(tensors[k], raw[k]) for k in raw)
    again, again_tensors = fastseq.load(path)
    assert again == meta and all(torch.equal(again_tensors[k], raw[k]) for k in raw)


def test_checkpoint_holds_the_trained_parameters(tmp_path):
    path = tmp_path / "run.ckpt"
    model = _checkpoint(path)
    _, tensors = fastseq.load(path)
    for name, p in model.state_dict().items():
        assert torch.equal(tensors[f"model.{name}"], p)


# ---------------------------------------------------------------- files of earlier versions
@pytest.mark.parametrize("cls", [c for c, _ in MACHINES])
def test_old_boltzmann_npz_files_load(tmp_path, cls):
    old = OLD / f"{cls.__name__}.npz"
    for back in (fastseq.load(old), load_rbm(old), cls.load(old)):
        assert type(back) is cls
        _assert_as_computed(back.transform(EXPECTED["rbm_input"]), EXPECTED[cls.__name__])
    with np.load(old, allow_pickle=False) as data:
        for name, p in back.params_.items():
            np.testing.assert_array_equal(p.detach().numpy(), data[f"param/{name}"])
    fastseq.save(back, tmp_path / "new.safetensors")  # converts it
    assert _raw_header(tmp_path / "new.safetensors")["kind"] == "rbm"
    np.testing.assert_array_equal(fastseq.load(tmp_path / "new.safetensors").transform(EXPECTED["rbm_input"]),
                                  back.transform(EXPECTED["rbm_input"]))


@pytest.mark.parametrize("name", ["conv.safetensors", "conv.npz"])
def test_old_conv_files_load(tmp_path, name):
    for back in (fastseq.load(OLD / name), load_autoencoder(OLD / name, config=ConvConfig(8, (2,), (2,)))):
        _assert_as_computed(back.encode(EXPECTED["conv_input"]), EXPECTED["conv"])
    fastseq.save(back, tmp_path / "new.safetensors")
    np.testing.assert_array_equal(fastseq.load(tmp_path / "new.safetensors").encode(EXPECTED["conv_input"]),
                                  back.encode(EXPECTED["conv_input"]))


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_old_row_model_files_load(kind):
    old = OLD / f"rowrnn_{kind}.safetensors"
    x = torch.as_tensor(EXPECTED["rowrnn_input"])
    for back in (fastseq.load(old), load_model(old)):
        assert back.kind == kind
        _assert_as_computed(back(x)[0].detach().numpy(), EXPECTED[f"rowrnn_{kind}"])


def test_old_checkpoint_loads_as_it_did():
    then = json.loads((OLD / "checkpoint.json").read_text())
    raw = _raw_tensors(OLD / "checkpoint.ckpt")
    for meta, tensors in (load_checkpoint(OLD / "checkpoint.ckpt"), fastseq.load(OLD / "checkpoint.ckpt")):
        assert meta == then
        assert tensors.keys() == raw.keys() and all(torch.equal(tensors[k], raw[k]) for k in raw)


# ---------------------------------------------------------------- clear errors
WHAT = {"rbm": "Boltzmann machine", "conv_autoencoder": "ConvAutoencoder", "rowrnn": "row model",
        "train_bptt_checkpoint": "train_bptt checkpoint"}
LOADERS = {"rbm": load_rbm, "conv_autoencoder": load_autoencoder, "rowrnn": load_model,
           "train_bptt_checkpoint": load_checkpoint}


@pytest.mark.parametrize("asked", sorted(LOADERS))
@pytest.mark.parametrize("got", sorted(LOADERS))
def test_a_file_of_another_kind_is_named(saved, asked, got):
    if asked == got:
        return
    with pytest.raises(ValueError, match=rf"Expected path .* to be a fastseq {WHAT[asked]}.*, got a fastseq "
                                         rf"{WHAT[got]}"):
        LOADERS[asked](saved[got])


def test_old_files_of_another_kind_are_named():
    with pytest.raises(ValueError, match="to be a fastseq row model .*, got a fastseq Boltzmann machine"):
        load_model(OLD / "RBM.npz")
    with pytest.raises(ValueError, match="to be a fastseq Boltzmann machine .*, got a fastseq train_bptt checkpoint"):
        load_rbm(OLD / "checkpoint.ckpt")
    with pytest.raises(ValueError, match="to be a fastseq ConvAutoencoder .*, got a fastseq row model"):
        load_autoencoder(OLD / "rowrnn_rnn.safetensors")


@pytest.mark.parametrize("kind", sorted(LOADERS))
def test_truncated_files_are_named_as_cut_short(saved, tmp_path, kind):
    data = saved[kind].read_bytes()
    for cut, words in [(5, "too few"), (20, "cut short"), (len(data) // 2, "cut short"), (len(data) - 1, "cut short")]:
        path = tmp_path / "cut.safetensors"
        path.write_bytes(data[:cut])
        for load in (fastseq.load, LOADERS[kind]):
            with pytest.raises(ValueError, match=rf"Expected path .*cut\.safetensors.* got an unreadable file.*{words}"):
                load(path)
    path.write_bytes(data + b"\0\0")
    with pytest.raises(ValueError, match="2 unexpected bytes after its tensors"):
        fastseq.load(path)


def test_files_that_are_not_fastseq_files(tmp_path):
    plain = tmp_path / "plain.safetensors"
    save_file({"x": torch.zeros(2)}, str(plain), metadata={"note": "someone else's"})
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00" * 64)
    text = tmp_path / "a.json"
    text.write_text(json.dumps({"format": "fastseq", "version": 1, "kind": "rbm"}))
    npz = tmp_path / "arrays.npz"
    np.savez(npz, a=np.zeros(3))
    cases = [(plain, "got a safetensors file without a fastseq format header"),
             (junk, "got an unreadable file: not a safetensors file"),
             (text, "got an unreadable file: not a safetensors file"),
             (npz, "got an .npz file without a fastseq format header")]
    for path, message in cases:
        with pytest.raises(ValueError, match=rf"Expected path .* to be a fastseq file, {message}"):
            fastseq.load(path)
        with pytest.raises(ValueError, match=rf"to be a fastseq row model \(RowRNN\) file, {message}"):
            load_model(path)
    with pytest.raises(FileNotFoundError, match=r"Expected path .*none.safetensors.* to be a fastseq file, got no "
                                                "such file"):
        fastseq.load(tmp_path / "none.safetensors")
    with pytest.raises(IsADirectoryError, match="Expected path to be a file"):
        fastseq.load(tmp_path)
    with pytest.raises(TypeError, match="Expected path to be a file path"):
        fastseq.load(3)


def _with_header(path: Path, header: dict) -> None:
    save_file({"b": torch.zeros(1)}, str(path), metadata={"fastseq": json.dumps(header)})


def test_newer_versions_and_unknown_kinds_and_damaged_headers(tmp_path):
    path = tmp_path / "f.safetensors"
    _with_header(path, {"format": "fastseq", "version": 2, "kind": "rbm"})
    for load in (fastseq.load, load_rbm, load_checkpoint):
        with pytest.raises(ValueError, match=r"written by a newer fastseq \(file format version 2; fastseq .* reads "
                                             r"version 1\): upgrade fastseq"):
            load(path)
    for kind, shown in [("transformer", "'transformer'"), (["rbm"], r"\['rbm'\]"), (None, "None")]:
        _with_header(path, {"format": "fastseq", "version": 1, "kind": kind})
        with pytest.raises(ValueError, match=f"unknown kind {shown}"):
            fastseq.load(path)
    for version in (0, "1", True, None):
        _with_header(path, {"format": "fastseq", "version": version, "kind": "rbm"})
        with pytest.raises(ValueError, match="unknown version"):
            fastseq.load(path)
    save_file({"b": torch.zeros(1)}, str(path), metadata={"fastseq": "{not json"})
    with pytest.raises(ValueError, match="fastseq header is damaged"):
        fastseq.load(path)


def test_contents_that_do_not_fit_their_kind_name_the_file(tmp_path):
    path = tmp_path / "f.safetensors"
    files.write(path, "rowrnn", {"model": "rnn", "n_visible": 4, "n_hidden": 3}, {"Wxh": torch.zeros(2, 2)})
    with pytest.raises(ValueError, match=r"Expected path .*f\.safetensors.* to be a fastseq row model \(RowRNN\) file "
                                         "whose contents fit together, got RuntimeError"):
        fastseq.load(path)
    files.write(path, "rowrnn", {"model": "transformer", "n_visible": 4, "n_hidden": 3}, {})
    with pytest.raises(ValueError, match="contents fit together, got ValueError: .*transformer"):
        fastseq.load(path)
    files.write(path, "conv_autoencoder", {"config": {"size": 8, "channels": [2], "strides": [2], "colour": 1}}, {})
    with pytest.raises(ValueError, match="contents fit together, got TypeError"):
        fastseq.load(path)
    m = RBM(n_components=3, n_iter=1, random_state=0).fit(np.eye(4))
    files.write(path, "rbm", {"class": "RBM", "config": m._config(), "n_features_in": 5, "n_chains": 2}, m.params_)
    with pytest.raises(ValueError, match=r"parameter 'W' in .* to fit 5 visible and 3 hidden units, got shape \(4, 3\)"):
        fastseq.load(path)
    files.write(path, "rbm", {"class": "RBM", "config": {**m._config(), "dtype": " loat32"}, "n_features_in": 4,
                              "n_chains": 2}, m.params_)  # a damaged dtype (found by the fuzzer)
    with pytest.raises(ValueError, match="contents fit together, got KeyError: ' loat32'"):
        fastseq.load(path)
    files.write(path, "rbm", {"class": "Pickle", "config": {}, "n_features_in": 4}, {})
    with pytest.raises(ValueError, match=r"to hold one of \['BetaRBM', 'GaussianRBM', 'R3BM', 'RBM', 'RRBM'\], got "
                                         "class 'Pickle'"):
        fastseq.load(path)


class _Marker:
    """Unpickling this creates the file ``path``: proof that a reader unpickled."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def test_loading_never_unpickles(tmp_path):
    marker = tmp_path / "unpickled"
    meta = np.array([_Marker(str(marker))], dtype=object)
    cases = {"meta.npz": {"meta": meta}, "conv.npz": {"__meta__": meta},
             "param.npz": {"meta": np.array(json.dumps({"format": "fastseq-rbm-1", "class": "RBM", "config": {},
                                                         "n_features_in": 1})),
                           "param/W": meta}}
    for name, arrays in cases.items():
        np.savez(tmp_path / name, **arrays)  # np.savez pickles object arrays
        for load in (fastseq.load, load_rbm, load_autoencoder):
            with pytest.raises(ValueError, match="unreadable file .*Python objects"):
                load(tmp_path / name)
    assert not marker.exists()


def test_save_takes_fastseq_models_only(tmp_path):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(TypeError, match="Expected obj to be a fastseq model .*checkpoints are written by train_bptt.*"
                                        "got dict"):
        fastseq.save({"W": torch.zeros(2)}, tmp_path / "x.safetensors")
    with pytest.raises(TypeError, match="got Linear"):
        fastseq.save(nn.Linear(2, 2), tmp_path / "x.safetensors")
    with pytest.raises(NotFittedError):
        fastseq.save(RBM(), tmp_path / "x.safetensors")
    with pytest.raises(ValueError, match="Expected a header without the keys"):
        files.write(tmp_path / "x.safetensors", "rowrnn", {"kind": "rbm"}, {})
    with pytest.raises(ValueError, match="Expected kind to be one of"):
        files.write(tmp_path / "x.safetensors", "pickle", {}, {})
    assert list(tmp_path.iterdir()) == []


def test_load_takes_a_device_but_checkpoints_do_not(saved):
    for kind in ("rbm", "conv_autoencoder", "rowrnn"):
        model = fastseq.load(saved[kind], device=torch.device("cpu"))
        tensors = model.params_.values() if kind == "rbm" else model.parameters()
        assert all(t.device.type == "cpu" for t in tensors)
    with pytest.raises(ValueError, match="Expected device to be None for a fastseq train_bptt checkpoint"):
        fastseq.load(saved["train_bptt_checkpoint"], device="cpu")
    with pytest.raises(ValueError, match="Expected device to be a device such as"):
        fastseq.load(saved["rbm"], device="gpu-please")


def test_load_imports_only_the_subpackage_of_the_file(saved):
    code = ("import sys, fastseq\n"
            f"fastseq.load({str(saved['rowrnn'])!r})\n"
            "print(sorted(m for m in ('fastseq.boltzmann', 'fastseq.conv', 'fastseq.bptt', 'fastseq.rowrnn') "
            "if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    assert out.stdout.split() == ["['fastseq.rowrnn']"]


def test_save_needs_both_a_known_kind_and_a_save_method(tmp_path):
    class SavesButIsNoModel:
        def save(self, path):
            raise AssertionError("save must not be called")

    class KindWithoutSave:
        _file_kind = "rbm"

    for obj in (SavesButIsNoModel(), KindWithoutSave()):
        with pytest.raises(TypeError, match=f"Expected obj to be a fastseq model .*got {type(obj).__name__}"):
            fastseq.save(obj, tmp_path / "x.safetensors")


def test_write_takes_numpy_arrays_and_names_the_path_argument(tmp_path):
    a = np.arange(12, dtype=np.float32).reshape(3, 4)[:, ::2]  # not contiguous
    path = tmp_path / "m.safetensors"
    files.write(path, "rowrnn", {"model": "rnn", "n_visible": 2, "n_hidden": 1}, {"a": a, "t": torch.ones(2)})
    header, tensors = files.read(path, "rowrnn")
    assert header["format"] == files.FORMAT and torch.equal(tensors["a"], torch.from_numpy(np.ascontiguousarray(a)))
    assert torch.equal(tensors["t"], torch.ones(2))
    with pytest.raises(TypeError, match="Expected path to be a file path"):
        files.write(3, "rowrnn", {}, {})


def test_old_npz_headers_read_as_version_one_of_the_format(tmp_path):
    header = files.read_header(OLD / "RBM.npz")
    assert header["format"] == files.FORMAT and header["version"] == 1 and header["kind"] == "rbm"
    with pytest.raises(ValueError, match="to be a fastseq row model .*got a fastseq Boltzmann machine"):
        files.read_header(OLD / "RBM.npz", kind="rowrnn")
    with pytest.raises(FileNotFoundError, match="to be a fastseq row model"):
        files.read_header(tmp_path / "missing.safetensors", kind="rowrnn")


def test_read_header_reads_no_tensor(tmp_path):
    """The header of an old .npz reads even where its arrays could not become tensors."""
    path = tmp_path / "strings.npz"
    np.savez(path, meta=json.dumps({"format": "fastseq-rbm-1", "class": "RBM"}), **{"param/w": np.array(["a"])})
    assert files.read_header(path)["kind"] == "rbm"
    with pytest.raises(ValueError, match="unreadable file"):
        files.read(path)
