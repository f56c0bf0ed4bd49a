"""MNIST IDX reader and loaders, on small files written by the tests."""
from __future__ import annotations

import gzip

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fastseq.datasets.mnist import embedded_digits, held_out_split, load_mnist, read_idx, write_idx


def _raw_idx(array: np.ndarray, code: int) -> bytes:
    """IDX bytes written plainly from the format description, independent of write_idx."""
    out = bytes([0, 0, code, array.ndim])
    for d in array.shape:
        out += int(d).to_bytes(4, "big")
    return out + array.astype(array.dtype.newbyteorder(">")).tobytes()


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_plain_and_gzip(tmp_path, gz):
    images = np.random.default_rng(0).integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    raw = _raw_idx(images, 0x08)
    path = tmp_path / ("x-idx3-ubyte" + (".gz" if gz else ""))
    path.write_bytes(gzip.compress(raw) if gz else raw)
    got = read_idx(path)
    assert got.dtype == np.uint8 and got.shape == (7, 28, 28)
    np.testing.assert_array_equal(got, images)


@pytest.mark.parametrize("dtype,code", [(np.int16, 0x0B), (np.int32, 0x0C), (np.float32, 0x0D), (np.float64, 0x0E)])
def test_read_idx_wide_types_are_big_endian(tmp_path, dtype, code):
    a = (np.arange(24).reshape(2, 3, 4) * 300 - 1000).astype(dtype)
    (tmp_path / "a").write_bytes(_raw_idx(a, code))
    got = read_idx(tmp_path / "a")
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(got, a)


@settings(max_examples=30, deadline=None)
@given(hnp.arrays(np.uint8, hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=5)), st.booleans())
def test_write_read_roundtrip(tmp_path_factory, array, gz):
    path = tmp_path_factory.mktemp("idx") / ("a.gz" if gz else "a")
    before = array.copy()
    write_idx(path, array)
    np.testing.assert_array_equal(read_idx(path), array)
    np.testing.assert_array_equal(array, before)
    assert path.read_bytes()[:2] == (b"\x1f\x8b" if gz else b"\x00\x00")


def test_truncated_and_trailing_files_are_rejected(tmp_path):
    raw = _raw_idx(np.zeros((3, 4, 4), np.uint8), 0x08)
    (tmp_path / "short").write_bytes(raw[:-1])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(tmp_path / "short")
    (tmp_path / "long").write_bytes(raw + b"\x00")
    with pytest.raises(ValueError, match="trailing"):
        read_idx(tmp_path / "long")
    (tmp_path / "header").write_bytes(raw[:9])
    with pytest.raises(ValueError, match="header"):
        read_idx(tmp_path / "header")


def test_bad_magic_and_corrupt_gzip_are_rejected(tmp_path):
    (tmp_path / "magic").write_bytes(b"\x01\x00\x08\x01" + b"\x00" * 8)
    with pytest.raises(ValueError, match="IDX header"):
        read_idx(tmp_path / "magic")
    (tmp_path / "badtype").write_bytes(b"\x00\x00\x07\x01" + b"\x00" * 8)
    with pytest.raises(ValueError, match="IDX header"):
        read_idx(tmp_path / "badtype")
    gz = gzip.compress(_raw_idx(np.zeros((50, 8), np.uint8), 0x08))
    (tmp_path / "cut.gz").write_bytes(gz[: len(gz) // 2])
    with pytest.raises(ValueError, match="gzip"):
        read_idx(tmp_path / "cut.gz")
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "missing")


def test_held_out_split_is_stratified_disjoint_and_deterministic():
    labels = np.repeat(np.arange(10), [30, 40, 50, 20, 10, 30, 30, 30, 30, 30])
    tr, te = held_out_split(labels, 0.1, seed=3)
    tr2, te2 = held_out_split(labels, 0.1, seed=3)
    np.testing.assert_array_equal(te, te2)
    np.testing.assert_array_equal(np.sort(np.concatenate([tr, te])), np.arange(labels.size))
    assert te.size == 30
    share = 0.1 * np.bincount(labels)
    assert np.all(np.abs(np.bincount(labels[te], minlength=10) - share) <= 1)
    assert not np.array_equal(te, held_out_split(labels, 0.1, seed=4)[1])


def _mnist_folder(path, n_train, n_test=0, gz=True):
    rng = np.random.default_rng(1)
    sfx = ".gz" if gz else ""
    write_idx(path / f"train-images-idx3-ubyte{sfx}", rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8))
    write_idx(path / f"train-labels-idx1-ubyte{sfx}", (np.arange(n_train) % 10).astype(np.uint8))
    if n_test:
        write_idx(path / f"t10k-images-idx3-ubyte{sfx}", rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8))
        write_idx(path / f"t10k-labels-idx1-ubyte{sfx}", (np.arange(n_test) % 10).astype(np.uint8))


def test_load_mnist_folder_with_and_without_test_files(tmp_path):
    _mnist_folder(tmp_path, 40, gz=False)
    d = load_mnist(tmp_path)
    assert d.train_images.shape == (36, 28, 28) and d.test_images.shape == (4, 28, 28)
    assert d.train_images.dtype == np.float32 and 0.0 <= d.train_images.min() and d.train_images.max() <= 1.0
    _mnist_folder(tmp_path, 40, n_test=12)  # gz files are found too; t10k becomes the held-out part
    d = load_mnist(tmp_path)
    assert d.train_images.shape == (40, 28, 28) and d.test_labels.shape == (12,)


def test_load_mnist_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a folder"):
        load_mnist(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="train-images"):
        load_mnist(tmp_path)
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((5, 28, 28), np.uint8))
    with pytest.raises(FileNotFoundError, match="labels"):
        load_mnist(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(6, np.uint8))
    with pytest.raises(ValueError, match="5 labels"):
        load_mnist(tmp_path)


def test_embedded_digits_are_real_mnist():
    d = load_mnist()
    assert d.source == "embedded"
    assert d.train_images.shape == (4500, 28, 28) and d.test_images.shape == (500, 28, 28)
    assert np.bincount(d.test_labels).tolist() == [50] * 10
    x, y = embedded_digits()
    tr, te = held_out_split(y, 0.1, seed=0)
    for images, labels, index in ((d.train_images, d.train_labels, tr), (d.test_images, d.test_labels, te)):
        np.testing.assert_array_equal(images.reshape(-1, 784), (x[index].reshape(-1, 784) / 255.0).astype(np.float32))
        np.testing.assert_array_equal(labels, y[index])
    x[0, 0, 0] = 255  # fresh copies: the cache is not handed out
    assert embedded_digits()[0][0, 0, 0] == 0
    # real digits: dark border, ink in the middle
    assert d.train_images[:, 0].mean() < 0.01 and d.train_images[:, 10:18, 10:18].mean() > 0.2
    d.train_images[:] = 0  # the cache behind load_mnist() is not handed out
    assert load_mnist().train_images.max() == 1.0


def test_embedded_files_match_their_recorded_checksums():
    import hashlib
    from pathlib import Path

    import fastseq.datasets.mnist as mnist

    folder = Path(mnist.__file__).parent / "data"
    notes = (folder / "README.md").read_text()
    for name in ("mnist5000-images-idx3-ubyte.gz", "mnist5000-labels-idx1-ubyte.gz"):
        digest = hashlib.sha256((folder / name).read_bytes()).hexdigest()
        assert f"{digest}  {name}" in notes, name


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 4), min_size=1, max_size=60), st.floats(0.01, 0.99), st.integers(0, 2**31))
def test_held_out_split_properties(labels, fraction, seed):
    labels = np.array(labels)
    before = labels.copy()
    tr, te = held_out_split(labels, fraction, seed)
    np.testing.assert_array_equal(labels, before)
    np.testing.assert_array_equal(np.sort(np.concatenate([tr, te])), np.arange(labels.size))
    assert te.size == round(fraction * labels.size)
    counts = np.bincount(labels, minlength=5)
    assert np.all(np.abs(np.bincount(labels[te], minlength=5) - fraction * counts) <= 1 + 1e-9)
