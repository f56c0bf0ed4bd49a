"""The shared helpers: atomic writes, memory checks, progress bars, argument checks."""
from __future__ import annotations

import os

import numpy as np
import pytest

from fastseq._util import memory, validate
from fastseq._util.atomic import atomic_open, atomic_path
from fastseq._util.progress import progress_bar


def test_atomic_open_replaces_only_on_success(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_open(path) as fh:
            fh.write(b"half")
            raise RuntimeError("stop")
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["f.bin"]
    with atomic_open(path, "w", encoding="utf-8") as fh:
        fh.write("new")
    assert path.read_text() == "new" and os.listdir(tmp_path) == ["f.bin"]
    with pytest.raises(ValueError, match="mode"):
        with atomic_open(path, "a"):
            pass
    (tmp_path / "d").mkdir()
    with pytest.raises(IsADirectoryError, match="folder"):
        with atomic_path(tmp_path / "d"):
            pass


def test_atomic_write_errors_name_the_destination_not_the_temporary_file(tmp_path):
    missing = tmp_path / "missing" / "c.ckpt"
    with pytest.raises(FileNotFoundError) as exc:
        with atomic_path(missing):
            pass
    assert exc.value.filename == str(missing) and ".tmp" not in str(exc.value)
    path = tmp_path / "c.ckpt"
    with pytest.raises(OSError) as exc:  # a writer failing on the temporary file (a full disk)
        with atomic_path(path) as tmp:
            raise OSError(28, "No space left on device", tmp)
    assert exc.value.errno == 28 and exc.value.filename == str(path) and os.listdir(tmp_path) == []
    with pytest.raises(OSError, match="other.txt"):  # about another file: as it was
        with atomic_path(path):
            raise OSError(2, "No such file or directory", "other.txt")


def test_check_fits_names_the_amount():
    memory.check_fits("half", memory.machine_memory() // 2)
    with pytest.raises(ValueError, match=r"^--batch 9 would need 149 GiB, more than the 24 GiB this machine has\.$"):
        memory.check_fits("--batch 9", 149 * memory.GiB, available=24 * memory.GiB)
    assert memory.gib(1.5 * memory.GiB) == "1.5 GiB" and memory.gib(2e12) == "1863 GiB"
    assert 1 <= memory.cpu_count() <= (os.cpu_count() or 1)


def test_progress_bar_off_is_silent(capsys):
    with progress_bar(False, total=2) as bar:
        bar.update()
    bar = progress_bar(True, total=2, disable=False)
    bar.update(2)
    bar.close()
    assert bar.n == 2 and capsys.readouterr().out == ""


@pytest.mark.parametrize("check,args,exc,text", [
    (validate.nonnegative_int, ("spacing", -1), ValueError, "Expected spacing to be an integer >= 0, got -1."),
    (validate.nonnegative_int, ("spacing", 1.5), TypeError, "Expected spacing to be an integer >= 0, got float 1.5."),
    (validate.finite_float, ("penalty", float("nan")), ValueError, "Expected penalty to be a finite number"),
    (validate.finite_float, ("penalty", "1"), TypeError, "Expected penalty to be a real number, got str"),
    (validate.one_of, ("scale", "x", ("tile", "global")), ValueError, "Expected scale to be one of 'tile', 'global'"),
    (validate.real_array, ("images", [[1, 2], [3]]), ValueError, "Expected images to be a numeric array"),
    (validate.real_array, ("images", np.array(["a"])), TypeError, "Expected images to hold real numbers"),
    (validate.real_array, ("images", np.zeros(3), (2,)), ValueError, "Expected images to be 2-D, got shape (3,)."),
    (validate.real_array, ("images", np.zeros((0, 2))), ValueError, "Expected images to be non-empty"),
])
def test_checks_say_expected_and_got(check, args, exc, text):
    with pytest.raises(exc) as info:
        check(*args)
    assert str(info.value).startswith(text)


def test_machine_memory_honours_an_address_space_limit():
    import subprocess
    import sys

    code = ("import resource; resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30)); "
            "from fastseq._util.memory import machine_memory; print(machine_memory())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    assert int(out.stdout) == min(3 << 30, memory.machine_memory())


def test_float32_array_refuses_what_float32_cannot_hold_and_keeps_float32_inputs():
    with pytest.raises(ValueError, match=r"Expected x to fit in float32 \(magnitudes up to 3.4e\+38\), got -1e\+39 at "
                                         r"index \[1, 0\]"):
        validate.float32_array("x", np.array([[1.0, 2.0], [-1e39, 0.0]]))
    with pytest.raises(ValueError, match=r"Expected x to hold finite numbers, got nan at index \[0\]"):
        validate.float32_array("x", [np.nan, 1e39])  # the NaN is named first
    edge = np.array([np.finfo(np.float32).max, -np.finfo(np.float32).max], np.float64)
    assert np.isfinite(validate.float32_array("x", edge)).all()
    same = np.ones((2, 3), np.float32)
    assert validate.float32_array("x", same) is same  # no copy, and the caller's array is not changed
    assert validate.float32_array("x", np.zeros((0, 3)), allow_empty=True).dtype == np.float32
    assert validate.float32_array("x", [True, False]).tolist() == [1.0, 0.0]

