"""MNIST loaders with data that tell a right answer from a near miss: errors that name the
argument typed, the exact pixel scale, which half of a file pair is missing, the official
test pair used as it is, and byte-identical gzip output."""
from __future__ import annotations

import gzip

import numpy as np
import pytest

from fastseq.datasets.mnist import (
    embedded_digits,
    held_out_split,
    load_mnist,
    read_idx,
    write_idx,
)


def _pair(folder, prefix: str, n: int, seed: int, sep: str = "-", images=True, labels=True) -> tuple:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, 4, 3), dtype=np.uint8)
    x[0, 0, 0] = 255  # the brightest pixel reads exactly 1.0
    y = (np.arange(n) % 10).astype(np.uint8)
    if images:
        write_idx(folder / f"{prefix}-images{sep}idx3-ubyte", x)
    if labels:
        write_idx(folder / f"{prefix}-labels{sep}idx1-ubyte", y)
    return x, y


def test_held_out_split_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"^Expected labels\b"):
        held_out_split(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"^Expected fraction\b"):
        held_out_split(np.arange(10), fraction=float("nan"))
    for bad in (0.0, 1.0):
        with pytest.raises(ValueError, match=r"^Expected fraction in \(0, 1\), got"):
            held_out_split(np.arange(10), fraction=bad)
    with pytest.raises(ValueError, match=r"^Expected fraction to be a finite number in \[0.0, 1.0\], got 1.5"):
        held_out_split(np.arange(10), fraction=1.5)
    with pytest.raises((TypeError, ValueError), match=r"\bseed\b"):
        held_out_split(np.arange(10), seed="zero")


def test_held_out_split_of_no_labels_is_two_empty_int64_indices():
    tr, te = held_out_split(np.zeros(0, np.int64), fraction=0.5)
    assert tr.shape == te.shape == (0,) and tr.dtype == te.dtype == np.int64


def test_held_out_split_gives_the_largest_remainders_their_extra_digit():
    # classes of 3, 5 and 9 at 0.25: shares 0.75, 1.25, 2.25 -> floors 0, 1, 2, and round(17 * 0.25) = 4
    # holds one more, which goes to the largest remainder (0.75, class 0), never to the others
    labels = np.repeat([0, 1, 2], [3, 5, 9])
    for seed in range(5):
        _, te = held_out_split(labels, fraction=0.25, seed=seed)
        assert np.bincount(labels[te], minlength=3).tolist() == [1, 1, 2]


def test_held_out_split_default_is_a_tenth_with_seed_0():
    labels = np.repeat(np.arange(4), 10)
    assert len(held_out_split(labels)[1]) == 4
    default, seed0, seed1 = held_out_split(labels)[1], held_out_split(labels, 0.1, 0)[1], held_out_split(labels, 0.1, 1)[1]
    assert np.array_equal(default, seed0) and not np.array_equal(default, seed1)


def test_load_mnist_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"^Expected held_out\b"):
        load_mnist(held_out=2.0)
    with pytest.raises((TypeError, ValueError), match=r"\bseed\b"):
        load_mnist(seed="zero")
    with pytest.raises(TypeError, match=r"^Expected folder to be a folder path or None, got str ''"):
        load_mnist("")


def test_a_folder_pair_is_scaled_by_255_and_split(tmp_path):
    x, y = _pair(tmp_path, "train", 40, 0)
    d = load_mnist(tmp_path, held_out=0.25, seed=3)
    assert d.source == str(tmp_path)
    assert d.train_images.dtype == np.float32 and d.train_labels.dtype == np.int64
    tr, te = held_out_split(y, 0.25, 3)
    np.testing.assert_array_equal(d.train_images, x[tr].astype(np.float32) / np.float32(255.0))
    np.testing.assert_array_equal(d.test_labels, y[te])
    assert np.concatenate([d.train_images, d.test_images]).max() == 1.0


def test_the_official_test_pair_is_the_held_out_part(tmp_path):
    x, y = _pair(tmp_path, "train", 20, 0)
    xt, yt = _pair(tmp_path, "t10k", 7, 1, sep=".")  # the dotted spelling is found too
    d = load_mnist(tmp_path)
    np.testing.assert_array_equal(d.train_labels, y)
    np.testing.assert_array_equal(d.train_images, x / np.float32(255.0))
    np.testing.assert_array_equal(d.test_images, xt / np.float32(255.0))
    np.testing.assert_array_equal(d.test_labels, yt)
    assert d.source == str(tmp_path)


@pytest.mark.parametrize("missing", ["images", "labels"])
def test_a_pair_missing_one_half_says_which(tmp_path, missing):
    _pair(tmp_path, "train", 20, 0, images=missing != "images", labels=missing != "labels")
    rank = 3 if missing == "images" else 1
    with pytest.raises(FileNotFoundError, match=rf"^Expected train-{missing}-idx{rank}-ubyte\[\.gz\] in "):
        load_mnist(tmp_path)


def test_a_pair_must_hold_uint8_images(tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((3, 2, 2), np.int16))
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(3, np.uint8))
    with pytest.raises(ValueError, match=r"to hold N x H x W uint8 images, got int16"):
        load_mnist(tmp_path)


def test_one_digit_on_each_side_is_enough(tmp_path):
    _pair(tmp_path, "train", 2, 0)
    d = load_mnist(tmp_path, held_out=0.5)
    assert len(d.train_labels) == len(d.test_labels) == 1


def test_the_seed_is_checked_even_when_the_official_pair_needs_no_split(tmp_path):
    _pair(tmp_path, "train", 5, 0)
    _pair(tmp_path, "t10k", 3, 1)
    with pytest.raises((TypeError, ValueError), match=r"\bseed\b"):
        load_mnist(tmp_path, seed="zero")


def test_a_split_that_leaves_one_side_empty_is_refused(tmp_path):
    _pair(tmp_path, "train", 3, 0)
    with pytest.raises(ValueError, match=r"^Expected enough digits for a held-out split of 0.1, got 3 digits"):
        load_mnist(tmp_path, held_out=0.1)  # round(0.3) = 0 held out


def test_embedded_digits_flat_rows():
    images, labels = embedded_digits()
    flat, flat_labels = embedded_digits(flat=True)
    assert flat.shape == (5000, 784)
    np.testing.assert_array_equal(flat, images.reshape(5000, 784))
    np.testing.assert_array_equal(flat_labels, labels)
    flat[0, 0] = 7  # a fresh copy: the shared cache is not written
    assert embedded_digits(flat=True)[0][0, 0] == images[0, 0, 0]


def test_read_idx_explains_truncated_and_trailing_bytes(tmp_path):
    write_idx(tmp_path / "a", np.zeros((2, 3), np.uint8))
    raw = (tmp_path / "a").read_bytes()
    (tmp_path / "short").write_bytes(raw[:-1])
    (tmp_path / "long").write_bytes(raw + b"\x00")
    (tmp_path / "header").write_bytes(raw[:4])  # a 2-D header without its sizes
    with pytest.raises(ValueError, match=r"to be 18 bytes for shape \(2, 3\), got 17 \(truncated\)"):
        read_idx(tmp_path / "short")
    with pytest.raises(ValueError, match=r"to be 18 bytes for shape \(2, 3\), got 19 \(trailing bytes\)"):
        read_idx(tmp_path / "long")
    with pytest.raises(ValueError, match=r"12-byte IDX header, got 4 bytes"):
        read_idx(tmp_path / "header")
    (tmp_path / "tiny").write_bytes(raw[:3])
    with pytest.raises(ValueError, match=r"to start with an IDX header"):
        read_idx(tmp_path / "tiny")


def test_read_idx_of_a_header_only_scalar_file(tmp_path):
    (tmp_path / "s").write_bytes(bytes([0, 0, 0x08, 0]) + b"\x05")  # 0-D: 4 header bytes and one value
    got = read_idx(tmp_path / "s")
    assert got.shape == () and int(got) == 5


@pytest.mark.parametrize("dtype", [np.uint8, np.int32])
def test_read_idx_returns_a_writable_native_copy(tmp_path, dtype):
    write_idx(tmp_path / "a", np.arange(6, dtype=dtype).reshape(2, 3))
    got = read_idx(tmp_path / "a")
    assert got.flags.writeable and got.dtype == np.dtype(dtype).newbyteorder("=")
    got[0, 0] = 9  # bytes read from the file are immutable; a single-byte type must be copied too


def test_idx_errors_name_the_argument(tmp_path):
    with pytest.raises((TypeError, ValueError), match=r"^Expected path\b"):
        read_idx(3)
    with pytest.raises((TypeError, ValueError), match=r"^Expected path\b"):
        write_idx(3, np.zeros(2, np.uint8))
    with pytest.raises((TypeError, ValueError), match=r"^Expected array\b"):
        write_idx(tmp_path / "a", "text")


def test_write_idx_stores_the_arrays_own_type_and_reproducible_gzip(tmp_path):
    a = np.array([[1.5, -2.0]], np.float32)
    write_idx(tmp_path / "f", a)
    raw = (tmp_path / "f").read_bytes()
    assert raw[:4] == bytes([0, 0, 0x0D, 2]) and raw[12:] == a.astype(">f4").tobytes()
    write_idx(tmp_path / "one.gz", a)
    write_idx(tmp_path / "two.gz", a)
    assert (tmp_path / "one.gz").read_bytes() == (tmp_path / "two.gz").read_bytes() == gzip.compress(raw, mtime=0)
