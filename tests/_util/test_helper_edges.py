"""The edges of the small helpers every module leans on: bounds taken exactly, messages that
name what they should, and the words for a damaged safetensors file."""
from __future__ import annotations

import errno
import math
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest

from fastseq._util.atomic import _naming
from fastseq._util.deprecation import moved_names
from fastseq._util.files import _damage
from fastseq._util.memory import GiB, gib
from fastseq._util.validate import finite_array, finite_float, float32_array

TOP = float(np.finfo(np.float32).max)


def test_finite_float_takes_its_bounds_and_refuses_infinity():
    assert finite_float("rate", 0.0, low=0.0) == 0.0
    assert finite_float("rate", 2.5, low=0.0, high=2.5) == 2.5
    for bad in (math.inf, -math.inf, math.nan):
        with pytest.raises(ValueError, match="Expected rate to be a finite number"):
            finite_float("rate", bad)


def test_finite_array_keeps_allowing_empty():
    assert finite_array("x", [], allow_empty=True).shape == (0,)


def test_float32_array_points_at_the_first_value_beyond_float32():
    # the largest float32 itself fits; the error names the value that does not, and where
    assert float32_array("x", np.array([TOP, -TOP]))[0] == np.float32(TOP)
    with pytest.raises(ValueError, match=r"^Expected x to fit in float32 .* got -1e\+39 at index \[1\]\.$"):
        float32_array("x", np.array([TOP, -1e39]))
    with pytest.raises(TypeError, match="^Expected weights to hold real numbers"):
        float32_array("weights", ["a", "b"])


def test_gib_switches_to_whole_numbers_at_ten():
    assert gib(10 * GiB) == "10 GiB"
    assert gib(10.4 * GiB) == "10 GiB"
    assert gib(9.94 * GiB) == "9.9 GiB"


def test_an_error_about_the_temporary_file_names_the_users_path():
    hidden = OSError(errno.EACCES, "Permission denied", "/data/.out.npz.tmp123")
    named = _naming(hidden, Path("/data/out.npz"))
    assert (type(named), named.errno, named.strerror, named.filename) == (
        PermissionError, errno.EACCES, "Permission denied", "/data/out.npz")
    plain = OSError("no errno")
    assert _naming(plain, Path("/data/out.npz")) is plain  # nothing to rename: kept as raised


def test_moved_names_serve_the_new_home_with_a_warning():
    get = moved_names("fastseq.old", {"sqrt": ("math", "use math.sqrt")})
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert get("sqrt") is math.sqrt
    assert [w.category for w in seen] == [DeprecationWarning]
    with pytest.raises(AttributeError, match="module 'fastseq.old' has no attribute 'cos'"):
        get("cos")


def _file(tmp_path, data: bytes) -> str:
    path = tmp_path / "f.safetensors"
    path.write_bytes(data)
    return str(path)


def test_damage_words_for_each_way_a_safetensors_file_breaks(tmp_path):
    exc = ValueError("boom")
    assert _damage(_file(tmp_path, b"1234567"), exc) == "7 bytes, too few for a safetensors file"
    assert _damage(_file(tmp_path, b"12345678"), exc) == "not a safetensors file"  # 8 bytes: a length, no header
    header = struct.pack("<Q", 100) + b"{" + b" " * 11
    assert _damage(_file(tmp_path, header), exc) == (
        "a safetensors file cut short (its header alone needs 108 bytes, the file has 20)")
    huge = struct.pack("<Q", 2**63 + 5) + b"{}"  # a length past int64: read unsigned, never negative
    assert _damage(_file(tmp_path, huge), exc).startswith(
        f"a safetensors file cut short (its header alone needs {8 + 2**63 + 5} bytes")
    # an empty header, every byte accounted for: the damage is what safetensors said
    whole = struct.pack("<Q", 2) + b"{}"
    assert _damage(_file(tmp_path, whole), exc) == "a damaged safetensors file (boom)"
    assert _damage(_file(tmp_path, whole + b"xy"), exc) == "a safetensors file with 2 unexpected bytes after its tensors"
    entry = b'{"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'
    tensors = struct.pack("<Q", len(entry)) + entry
    assert _damage(_file(tmp_path, tensors + b"1234"), exc) == (
        f"a safetensors file cut short (its tensors need {8 + len(entry) + 8} bytes, the file has {len(tensors) + 4})")
    assert _damage(_file(tmp_path, tensors + b"12345678"), exc) == "a damaged safetensors file (boom)"


OLD = Path(__file__).parent / "old_files"


@pytest.mark.parametrize("name", ["RBM.npz", "conv.safetensors"])
def test_reading_without_tensors_reads_none(name):
    """``read_header``'s path: the header only, no tensor loaded (a large file costs no memory)."""
    from fastseq._util import files, old_files

    header, arrays = files._read(str(OLD / name), None, "path", tensors=False)
    assert arrays == {} and header["kind"] in ("rbm", "conv_autoencoder")
    if name.endswith(".npz"):
        header, arrays = old_files.read_npz(str(OLD / name), tensors=False)
        assert arrays == {} and header["kind"] == "rbm"
    assert files._read(str(OLD / name), None, "path", tensors=True)[1]  # and with them, some


def test_old_headers_drop_their_format_version_and_kind(tmp_path):
    """An old file's own ``format``, ``version`` and ``kind`` never reach the header: the header's
    kind is the one the reader decides, the checkpoint's version moves to ``checkpoint_version``."""
    import json

    from fastseq._util import old_files

    assert "format" not in old_files.read_npz(str(OLD / "RBM.npz"), tensors=False)[0]
    path = tmp_path / "odd.npz"
    np.savez(path, meta=json.dumps({"format": old_files._RBM, "version": 3, "kind": "odd", "class": "RBM"}),
             w=np.zeros(2))
    assert old_files.read_npz(str(path), tensors=False)[0] == {"kind": "rbm", "class": "RBM"}
    meta = {"format": old_files._CHECKPOINT, "version": 2, "kind": "odd", "window": 7}
    assert old_files.from_safetensors({"fastseq": json.dumps(meta)}) == {
        "kind": "train_bptt_checkpoint", "checkpoint_version": 2, "window": 7}


def test_cpu_count_reads_the_affinity_mask_else_the_machine(monkeypatch):
    import os

    from fastseq._util.memory import cpu_count

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert cpu_count() == 1
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    assert cpu_count() == 3
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    for n, want in ((5, 5), (1, 1), (None, 1)):
        monkeypatch.setattr(os, "cpu_count", lambda n=n: n)
        assert cpu_count() == want


def test_arrays_refuse_empty_unless_allowed_and_messages_name_the_argument():
    from fastseq._util.validate import path_arg

    for check in (finite_array, float32_array):
        with pytest.raises(ValueError, match="^Expected weights "):
            check("weights", [])
        assert check("weights", [], allow_empty=True).shape == (0,)
    with pytest.raises(TypeError, match="^Expected data to hold real numbers"):
        finite_array("data", ["a"])
    with pytest.raises(TypeError, match=r"^Expected out to be a path \(str or os.PathLike\), got int 3\.$"):
        path_arg("out", 3)


def test_blas_libs_finds_the_blas_numba_calls_once(monkeypatch):
    from fastseq._util import blas

    monkeypatch.setattr(blas, "_BLAS_LIBS", None)
    libs = blas.blas_libs()
    assert isinstance(libs, list) and libs and all(lib.user_api == "blas" for lib in libs)
    assert blas.blas_libs() is libs  # looked up once
    scipy_blas = [lib for lib in libs if "scipy" in lib.filepath or "openblas" in lib.internal_api]
    assert scipy_blas, [(lib.internal_api, lib.filepath) for lib in libs]  # the one Numba's np.dot calls


def test_serial_blas_runs_on_one_thread_and_restores_each_count(monkeypatch):
    from fastseq._util import blas

    class Lib:
        def __init__(self, n):
            self.n, self.calls = n, []

        def get_num_threads(self):
            return self.n

        def set_num_threads(self, n):
            self.calls.append(n)
            self.n = n

    libs = [Lib(4), Lib(1)]
    monkeypatch.setattr(blas, "_BLAS_LIBS", libs)
    with blas.serial_blas():
        assert [lib.n for lib in libs] == [1, 1]
    assert [lib.n for lib in libs] == [4, 1] and libs[1].calls == []  # one already serial: left alone
    with pytest.raises(RuntimeError), blas.serial_blas():
        raise RuntimeError("restored even so")
    assert [lib.n for lib in libs] == [4, 1]


def test_the_stub_lists_subpackages_then_flagships_by_module_and_name(monkeypatch, tmp_path):
    import fastseq
    from fastseq._util import stub

    text = stub.top_level_stub()
    assert text == (Path(fastseq.__file__).with_name("__init__.pyi")).read_text()
    monkeypatch.setattr(fastseq, "_FLAGSHIPS", {"b_x": "m", "bz": "m", "A": "m", "c": "a"})
    monkeypatch.setattr(fastseq, "SUBPACKAGES", ("sub",))
    lines = stub.top_level_stub().splitlines()
    assert lines[:5] == ["from fastseq import sub as sub", "from a import c as c", "from m import A as A",
                         "from m import b_x as b_x", "from m import bz as bz"]  # "_" sorts before letters
    monkeypatch.setattr(fastseq, "__file__", str(tmp_path / "__init__.py"))
    assert stub.write_stub() == tmp_path / "__init__.pyi"
    assert (tmp_path / "__init__.pyi").read_text() == stub.top_level_stub()
