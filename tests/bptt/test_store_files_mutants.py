"""The store's file helpers (``fastseq.bptt._store_files``) on the cases a mutation run left open.

Checks that ``crc32_file`` is the CRC-32 of exactly the first ``size`` bytes across chunk
boundaries (with a small ``CHUNK``) and of what is there when the file is shorter; that
``read_json`` refuses a wrong version, a wrong format and a non-object; that ``fsync_dir`` and
``remove_stale`` swallow the OS errors they are meant to (a folder that cannot be opened, a stale
file another process removed between listing and unlinking); that ``write_lengths`` always writes
little-endian int64 and returns that file's checksum; and that ``write_all`` writes bytes >= 128
through short writes unchanged.
"""
import errno
import os
import zlib

import numpy as np
import pytest

from fastseq.bptt import _store_files as files


def _content(n):
    return bytes((7 * i + 200) % 256 for i in range(n))  # bytes >= 128 included


@pytest.mark.parametrize("size", [0, 1, 6, 7, 8, 17, 40])
def test_crc32_file_is_the_crc_of_the_first_size_bytes(tmp_path, monkeypatch, size):
    monkeypatch.setattr(files, "CHUNK", 7)  # 6, 7, 8 and 17 straddle chunk edges; 40 is many chunks
    path = tmp_path / "f.bin"
    data = _content(size + 5)  # bytes past ``size`` must not count
    path.write_bytes(data)
    with open(path, "rb") as fh:
        fh.seek(3)  # the checksum starts from the file's beginning wherever the file stood
        assert files.crc32_file(fh, size) == zlib.crc32(data[:size])


def test_crc32_file_of_a_short_file_is_the_crc_of_what_is_there(tmp_path, monkeypatch):
    monkeypatch.setattr(files, "CHUNK", 4)
    path = tmp_path / "f.bin"
    data = _content(10)
    path.write_bytes(data)
    with open(path, "rb") as fh:
        got = files.crc32_file(fh, 25)  # the file ends first: a checksum of its 10 bytes, not None
    assert isinstance(got, int) and got == zlib.crc32(data)


def test_crc32_file_of_no_bytes_is_zero(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(_content(5))
    with open(path, "rb") as fh:
        # a size of zero or less (a negative one comes from a corrupt manifest's row count) reads nothing
        assert [files.crc32_file(fh, s) for s in (0, -1, -2)] == [0, 0, 0]


def _manifest(**kw):
    return {"format": files.FORMAT, "version": files.VERSION, "rows": 3, **kw}


def test_read_json_accepts_its_format_and_version(tmp_path):
    files.write_json(tmp_path / "m.json", _manifest())
    assert files.read_json(tmp_path / "m.json", "manifest") == _manifest()


@pytest.mark.parametrize("obj", [
    _manifest(version=files.VERSION + 1),       # right format, wrong version
    _manifest(format="fastseq.Other"),          # wrong format, right version
    _manifest(format="fastseq.Other", version=files.VERSION + 1),
    [files.FORMAT, files.VERSION],              # not an object at all
], ids=["version", "format", "both", "list"])
def test_read_json_refuses_anything_else(tmp_path, obj):
    files.write_json(tmp_path / "m.json", obj)
    with pytest.raises(ValueError, match="got something else"):
        files.read_json(tmp_path / "m.json", "manifest")


def test_fsync_dir_ignores_a_folder_it_cannot_open(tmp_path, monkeypatch):
    files.fsync_dir(tmp_path / "missing")  # FileNotFoundError is an OSError: ignored
    real_open = os.open

    def refuse(path, *args, **kwargs):
        if os.fspath(path) == os.fspath(tmp_path):
            raise OSError(errno.EINVAL, "folders cannot be opened here", os.fspath(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse)
    files.fsync_dir(tmp_path)
    files.write_json(tmp_path / "m.json", _manifest())  # a write still completes on such a filesystem
    assert files.read_json(tmp_path / "m.json", "manifest") == _manifest()


def test_remove_stale_ignores_a_file_removed_behind_its_back(tmp_path, monkeypatch):
    names = ["data-aa.bin", "lengths-bb.npy", "data-cc.bin", "lengths-dd.npy", "append-ee.log", "notes.txt"]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    real_scandir = os.scandir

    def racing_scandir(path):
        if os.fspath(path) != os.fspath(tmp_path):
            return real_scandir(path)
        with real_scandir(path) as it:
            entries = list(it)
        os.unlink(tmp_path / "data-cc.bin")  # another process tidies up between the listing and the unlink
        return iter(entries)

    monkeypatch.setattr(os, "scandir", racing_scandir)
    files.remove_stale(tmp_path, keep={"data-aa.bin", "lengths-bb.npy"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data-aa.bin", "lengths-bb.npy", "notes.txt"]


@pytest.mark.parametrize("lengths", [
    np.array([3, 0, 5], np.int32), np.array([3, 0, 5], ">i8"), np.array([3, 0, 5], np.uint16), [3, 0, 5],
], ids=["int32", "big-endian", "uint16", "list"])
def test_write_lengths_writes_little_endian_int64(tmp_path, lengths):
    name, crc = files.write_lengths(tmp_path, lengths)
    assert files._OWNED.match(name) and name.startswith("lengths-") and name.endswith(".npy")
    raw = np.load(tmp_path / name, allow_pickle=False)
    assert raw.dtype == np.dtype("<i8") and raw.tolist() == [3, 0, 5]
    # the checksum the reader recomputes from the int64 values
    assert crc == zlib.crc32(np.array([3, 0, 5], "<i8").tobytes())


class _ShortWriter:
    """An unbuffered file that takes at most 5 bytes a call, as raw writes may."""

    def __init__(self):
        self.out = bytearray()

    def write(self, b):
        chunk = bytes(b)[:5]
        self.out += chunk
        return len(chunk)


def test_write_all_writes_high_bytes_through_short_writes(tmp_path, monkeypatch):
    monkeypatch.setattr(files, "CHUNK", 8)
    arr = np.frombuffer(_content(37), np.uint8).reshape(37, 1)
    fh = _ShortWriter()
    files.write_all(fh, arr)
    assert bytes(fh.out) == arr.tobytes()
    with open(tmp_path / "f.bin", "wb", buffering=0) as raw:
        files.write_all(raw, arr.view(np.int8))
    assert (tmp_path / "f.bin").read_bytes() == arr.tobytes()
