"""The face cache: a second load reads the cache instead of the pictures, a cache file is
never unpickled, the key tells folders apart, ``cache=False`` writes nothing, and an
unwritable cache folder is not used."""
from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import numpy as np
import pytest

from fastseq.datasets import faces as faces_module
from fastseq.datasets.faces import cache_folder, load_faces


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTSEQ_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


_MTIME_NS = 1_700_000_000_000_000_000


def _pgm(path, pixels: np.ndarray) -> None:
    """An uncompressed grey picture: its byte size depends only on its shape."""
    h, w = pixels.shape
    path.write_bytes(b"P5\n%d %d\n255\n" % (w, h) + pixels.astype(np.uint8).tobytes())
    os.utime(path, ns=(_MTIME_NS, _MTIME_NS))


def _people_folder(root, seed: int = 0):
    """Two people with two 10 x 8 pictures each, and one corrupt file (skipped)."""
    rng = np.random.default_rng(seed)
    for person in ("Ann", "Bob"):
        (root / person).mkdir(parents=True)
        for i in range(2):
            _pgm(root / person / f"{i}.pgm", rng.integers(0, 256, (10, 8)))
    (root / "Bob" / "broken.pgm").write_bytes(b"P5\nnot a picture")
    os.utime(root / "Bob" / "broken.pgm", ns=(_MTIME_NS, _MTIME_NS))
    return root


def _refuse_to_read(monkeypatch):
    def read(*args):
        raise AssertionError("the pictures were read again instead of the cache")

    monkeypatch.setattr(faces_module, "_read_into_memory", read)


def test_a_second_load_reads_the_cache_not_the_pictures(tmp_path, monkeypatch):
    folder = _people_folder(tmp_path / "faces")
    first = load_faces(folder, size=4)
    assert isinstance(first.images, np.memmap) and not first.images.flags.writeable  # served from the cache too
    assert first.images.dtype == np.float32 and first.skipped == 1
    _refuse_to_read(monkeypatch)
    again = load_faces(folder, size=4)
    assert isinstance(again.images, np.memmap) and not again.images.flags.writeable
    assert again.images.dtype == np.float32
    np.testing.assert_array_equal(again.images, first.images)
    assert again.people.tolist() == ["Ann", "Ann", "Bob", "Bob"] and again.skipped == 1
    assert again.source == str(folder)


def test_cache_files_are_named_by_a_32_digit_key(tmp_path, own_cache):
    load_faces(_people_folder(tmp_path / "faces"), size=4)
    names = sorted(p.name for p in own_cache.iterdir())
    assert len(names) == 2 and all(re.fullmatch(r"faces-[0-9a-f]{32}\.(json|npy)", n) for n in names), names
    assert names[0][:-5] == names[1][:-4]  # one key for the metadata and the array


def test_a_pickle_at_the_cache_path_is_rebuilt_not_loaded(tmp_path, own_cache):
    folder = _people_folder(tmp_path / "faces")
    first = np.array(load_faces(folder, size=4).images)
    (arr_path,) = own_cache.glob("faces-*.npy")
    # the metadata still matches: only the refusal to unpickle stops the crafted array
    arr_path.write_bytes(pickle.dumps(np.full(first.shape, 0.5, np.float32)))
    again = load_faces(folder, size=4)
    np.testing.assert_array_equal(again.images, first)
    assert np.load(arr_path, allow_pickle=False).shape == first.shape  # a plain .npy again


def test_a_zip_archive_at_the_cache_path_is_rebuilt(tmp_path, own_cache):
    folder = _people_folder(tmp_path / "faces")
    first = np.array(load_faces(folder, size=4).images)
    (arr_path,) = own_cache.glob("faces-*.npy")
    with open(arr_path, "wb") as fh:  # np.load reads a zip archive as an NpzFile, not an array
        np.savez(fh, images=np.full(first.shape, 0.5, np.float32))
    again = load_faces(folder, size=4)
    np.testing.assert_array_equal(again.images, first)
    assert isinstance(np.load(arr_path, allow_pickle=False), np.ndarray)  # a plain .npy again


def test_a_cache_file_replaced_by_a_pickle_before_it_is_read_back_is_refused(tmp_path, monkeypatch):
    folder = _people_folder(tmp_path / "faces")
    monkeypatch.setattr(faces_module.np, "save", lambda file, arr: Path(file).write_bytes(pickle.dumps(arr)))
    with pytest.raises(ValueError, match="pickled"):
        load_faces(folder, size=4)


def test_the_key_tells_apart_folders_with_the_same_file_names_sizes_and_times(tmp_path):
    a, b = _people_folder(tmp_path / "a", seed=1), _people_folder(tmp_path / "b", seed=2)
    faces_a, faces_b = load_faces(a, size=4), load_faces(b, size=4)
    assert not np.array_equal(faces_a.images, faces_b.images)
    np.testing.assert_array_equal(faces_b.images, load_faces(b, size=4, cache=False).images)


def test_no_cache_writes_nothing_and_returns_memory(tmp_path, own_cache):
    f = load_faces(_people_folder(tmp_path / "faces"), size=4, cache=False)
    assert not isinstance(f.images, np.memmap) and f.images.dtype == np.float32
    assert f.images.shape == (4, 4, 4) and f.skipped == 1
    assert not own_cache.exists() or not list(own_cache.iterdir())


@pytest.mark.parametrize("lacking", [os.W_OK, os.X_OK])
def test_a_cache_folder_without_write_or_search_permission_is_none(own_cache, monkeypatch, lacking):
    real_access = os.access

    def access(path, mode, **kw):  # the test may run as root, whom a chmod does not stop
        if os.fspath(path) == str(own_cache):
            return not mode & lacking
        return real_access(path, mode, **kw)

    monkeypatch.setattr(os, "access", access)
    assert cache_folder() is None
