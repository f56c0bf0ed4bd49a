"""Face images: the real LFW faces embedded in scikit-image, or a folder of face images
(an LFW copy, ``<root>/<Person_Name>/*.jpg``, or any flat folder of pictures).

Every face is turned grey, centre-cropped to a square, resized to ``S x S`` and normalised
to mean 0 and standard deviation 0.3, then clipped to [-1, 1] (the preprocessing of the
original face experiments). A folder's preprocessed faces are cached as a memory-mapped
``.npy`` file in the user's cache folder, so a second run starts at once.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fastseq._util.atomic import atomic_path
from fastseq._util.memory import check_fits
from fastseq._util.validate import finite_array, finite_float, flag, folder_path, positive_int, real_array

__all__ = ["Faces", "cache_folder", "lfw_subset_faces", "load_faces", "normalise_faces", "preprocess_faces"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".pgm", ".ppm", ".webp")
SD = 0.3  # standard deviation of every normalised face (as in the original experiments)
_CACHE_VERSION = 1
_BATCH = 256  # images resized and normalised per batch


@dataclass(frozen=True)
class Faces:
    """Preprocessed faces.

    Attributes:
        images: ``N x S x S`` float32, each with mean 0 and standard deviation 0.3, clipped
            to [-1, 1]; a read-only memory map when it came from the cache.
        people: ``N`` person names (``str``), one per image (the subfolder of an LFW copy;
            ``face_000``... for the embedded faces; the file stem for a flat folder).
        skipped: files that could not be read as images (corrupt, empty, unknown format).
        source: where the faces came from (a folder, or ``"skimage.lfw_subset"``).
    """

    images: np.ndarray
    people: np.ndarray
    skipped: int
    source: str

    def of(self, name: str) -> np.ndarray:
        """Indices of the images of one person (spaces and underscores alike, any case).

        Example:
            >>> lfw_subset_faces(size=8).of("face_003").tolist()
            [3]
        """
        want = _canon(name)
        hits = np.flatnonzero(np.array([_canon(p) == want for p in self.people], dtype=bool))
        if hits.size == 0:
            some = ", ".join(sorted(set(self.people.tolist()))[:5])
            raise ValueError(f"Expected people to name a person in {self.source} (e.g. {some}), got {name!r}.")
        return hits


def _canon(name: str) -> str:
    return re.sub(r"[\s_]+", "_", str(name).strip()).lower()


def cache_folder() -> Path | None:
    """The cache folder (``$FASTSEQ_CACHE``, else ``~/.cache/fastseq``), or None if it
    cannot be created or written (then nothing is cached).

    Example:
        >>> cache_folder() is None or cache_folder().is_dir()
        True
    """
    root = os.environ.get("FASTSEQ_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "fastseq")
    path = Path(root)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return path if os.access(path, os.W_OK | os.X_OK) else None


def normalise_faces(images) -> np.ndarray:
    """Each image to mean 0 and standard deviation 0.3, clipped to [-1, 1] (a new array).

    A constant image becomes all zeros.

    Args:
        images: ``N x H x W`` numbers.

    Example:
        >>> x = normalise_faces(np.arange(32.0).reshape(2, 4, 4))
        >>> [round(float(v), 3) for v in (*x.mean(axis=(1, 2)), *x.std(axis=(1, 2)))]
        [0.0, 0.0, 0.3, 0.3]
    """
    x = real_array("images", images, allow_empty=True)
    if x.ndim != 3 or (x.shape[0] and 0 in x.shape[1:]):
        raise ValueError(f"Expected images to be N x H x W with H, W >= 1, got shape {x.shape}.")
    if x.shape[0] == 0:
        return np.zeros(x.shape, dtype=np.float32)
    x = finite_array("images", x)
    mean = x.mean(axis=(1, 2), keepdims=True)
    sd = x.std(axis=(1, 2), keepdims=True)
    # constant by its values, not by sd: the rounded mean of a constant 0.1 leaves a spread of ~1e-17
    varies = (x.max(axis=(1, 2), keepdims=True) > x.min(axis=(1, 2), keepdims=True)) & (sd > 0)
    out = np.where(varies, (x - mean) * (SD / np.where(varies, sd, 1.0)), 0.0)
    return np.clip(out, -1.0, 1.0).astype(np.float32)


def _grey(img: np.ndarray, name: str = "the image") -> np.ndarray:
    """Any image array as 2-D grey float64 in [0, 1]; raises ValueError naming ``name`` when it cannot be."""
    from skimage.color import rgb2gray

    try:
        a = np.asarray(img)
    except (ValueError, TypeError) as exc:  # ragged nested lists
        raise ValueError(f"Expected {name} to be an image array, got {type(img).__name__} ({exc}).") from None
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise ValueError(f"Expected {name} to hold finite numbers, got NaN or infinity.")
    if a.dtype == bool:
        a = a.astype(np.float64)
    elif np.issubdtype(a.dtype, np.integer):
        a = a.astype(np.float64) / float(np.iinfo(a.dtype).max)
    elif np.issubdtype(a.dtype, np.floating):
        a = a.astype(np.float64)
        if a.size and (a.max() > 1.0 or a.min() < 0.0):
            lo, hi = a.min(), a.max()
            a = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
    else:
        raise ValueError(f"Expected {name} to be an image of real numbers, got dtype {a.dtype}.")
    if a.ndim == 3 and a.shape[2] in (3, 4):
        a = rgb2gray(a[..., :3])
    elif a.ndim == 3 and a.shape[2] in (1, 2):  # grey (+ alpha)
        a = a[..., 0]
    if a.ndim != 2 or min(a.shape) < 2:
        raise ValueError(f"Expected {name} to be a 2-D picture (grey, RGB or RGBA), got shape {np.asarray(img).shape}.")
    return a


def _square(a: np.ndarray, crop: float) -> np.ndarray:
    """The centred square whose side is ``crop`` times the shorter side."""
    side = max(2, int(round(min(a.shape) * crop)))
    top, left = (a.shape[0] - side) // 2, (a.shape[1] - side) // 2
    return a[top:top + side, left:left + side]


def _size_arg(size, n_faces: int) -> int:
    """The side S of the output faces: an integer >= 2 whose faces fit in memory."""
    size = positive_int("size", size)
    if size < 2:
        raise ValueError(f"Expected size to be at least 2 pixels, got {size}.")
    # the float32 faces, plus a batch of float64 squares while they are resized and normalised
    check_fits(f"size={size} ({n_faces} faces of {size} x {size} pixels)",
               4.0 * size * size * n_faces + 40.0 * size * size * max(1, min(n_faces, _BATCH)))
    return size


def _crop_arg(crop) -> float:
    """The share of the shorter side kept, in (0, 1]."""
    crop = finite_float("crop", crop, 0.0, 1.0)
    if crop == 0.0:
        raise ValueError(f"Expected crop to be in (0, 1], got {crop}.")
    return crop


def preprocess_faces(pictures, size: int = 64, crop: float = 1.0) -> np.ndarray:
    """Grey, centre-cropped, resized to ``size x size`` and normalised faces.

    Args:
        pictures: a sequence of images of any sizes and colour modes (grey ``H x W``,
            RGB/RGBA ``H x W x 3/4``; integer or float), or one ``N x H x W`` array.
        size: S, the side of the output faces.
        crop: share of the shorter side kept around the centre (1.0: the largest centred
            square; about 0.5 keeps the face of a 250 x 250 LFW picture).

    Returns:
        ``N x S x S`` float32 (see :func:`normalise_faces`).

    Example:
        >>> rgb = np.random.default_rng(0).random((30, 40, 3))
        >>> preprocess_faces([rgb, np.ones((9, 9))], size=16).shape
        (2, 16, 16)
    """
    from skimage.transform import resize

    if isinstance(pictures, np.ndarray):
        if pictures.ndim < 3:
            raise ValueError(f"Expected pictures to be a sequence of images or an N x H x W (x C) array, "
                             f"got shape {pictures.shape}.")
    elif isinstance(pictures, (str, bytes)) or not hasattr(pictures, "__iter__"):
        raise TypeError(f"Expected pictures to be a sequence of images, got {type(pictures).__name__} {pictures!r}.")
    else:
        pictures = list(pictures)
    size = _size_arg(size, len(pictures))
    crop = _crop_arg(crop)
    out = np.empty((len(pictures), size, size), dtype=np.float32)
    for lo in range(0, len(pictures), _BATCH):
        batch = pictures[lo:lo + _BATCH]
        squares = [resize(_square(_grey(p, f"pictures[{lo + i}]"), crop), (size, size), anti_aliasing=True,
                          preserve_range=True) for i, p in enumerate(batch)]
        out[lo:lo + len(squares)] = normalise_faces(np.stack(squares)) if squares else 0
    return out


def lfw_subset_faces(size: int = 25, mirror: bool = False) -> Faces:
    """The 100 real LFW faces that ship with scikit-image (``skimage.data.lfw_subset``).

    They are grey 25 x 25 crops of the face; the other 100 images of that data set are
    background patches and are not used. Nothing is downloaded.

    Args:
        size: S; the faces are resized from 25 x 25 when it differs.
        mirror: also return each face mirrored left to right (images ``100..199``, named
            like their originals).

    Example:
        >>> f = lfw_subset_faces(size=24, mirror=True)
        >>> f.images.shape, str(f.people[0]), str(f.people[100])
        ((200, 24, 24), 'face_000', 'face_000')
    """
    from skimage.data import lfw_subset

    size = positive_int("size", size)
    mirror = flag("mirror", mirror)
    raw = lfw_subset()[:100]
    images = preprocess_faces(raw, size=size) if size != raw.shape[1] else normalise_faces(raw)
    people = np.array([f"face_{i:03d}" for i in range(len(images))])
    if mirror:
        images, people = np.concatenate([images, images[:, :, ::-1]]), np.concatenate([people, people])
    return Faces(np.ascontiguousarray(images), people, 0, "skimage.lfw_subset")


def _list_images(root: Path) -> list[tuple[str, Path]]:
    """(person, file) for every image file: ``root/<person>/*`` and ``root/*`` (person = stem)."""
    found = []
    for entry in sorted(root.iterdir()):
        if entry.is_dir():
            found += [(entry.name, f) for f in sorted(entry.iterdir())
                      if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES]
        elif entry.is_file() and entry.suffix.lower() in IMAGE_SUFFIXES:
            found.append((entry.stem, entry))
    return found


def _cache_key(root: Path, files: list[tuple[str, Path]], size: int, crop: float) -> str:
    h = hashlib.sha256(json.dumps([_CACHE_VERSION, str(root.resolve()), size, crop]).encode())
    for person, f in files:
        st = f.stat()
        h.update(f"{person}\0{f.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:32]


def _read_all(files: list[tuple[str, Path]], size: int, crop: float, out: np.ndarray) -> tuple[list[str], int]:
    """Preprocess files into ``out`` in batches; return the people kept and the files skipped."""
    from skimage import io

    people: list[str] = []
    skipped = 0
    for lo in range(0, len(files), _BATCH):
        pictures, names = [], []
        for person, f in files[lo:lo + _BATCH]:
            try:
                with warnings.catch_warnings():  # image plugins warn while they try a corrupt file
                    warnings.simplefilter("ignore")
                    pictures.append(_grey(io.imread(f)))
                names.append(person)
            except Exception:  # any unreadable file (corrupt, truncated, odd format) is skipped, never fatal
                skipped += 1
        if pictures:
            out[len(people):len(people) + len(pictures)] = preprocess_faces(pictures, size, crop)
            people += names
    return people, skipped


def load_faces(folder: str | os.PathLike, size: int = 64, people=None, crop: float = 1.0,
               mirror: bool = False, cache: bool = True) -> Faces:
    """Load and preprocess a folder of face images (an LFW copy or any folder of pictures).

    Args:
        folder: ``<folder>/<Person_Name>/*.jpg`` (LFW's layout; the subfolder names the
            person) and/or image files directly in ``folder`` (each its own person).
        size: S, the side of the faces.
        people: names of the people to keep (``"George_W_Bush"`` or ``"george w bush"``);
            default everyone.
        crop: share of the shorter side kept around the centre (see :func:`preprocess_faces`).
        mirror: append every face mirrored left to right.
        cache: keep the preprocessed faces in :func:`cache_folder` as a memory-mapped
            ``.npy`` keyed by the folder, its files' sizes and times, ``size`` and ``crop``.

    Returns:
        :class:`Faces`; ``skipped`` counts the files that could not be read.

    Raises:
        FileNotFoundError: ``folder`` is not a folder.
        ValueError: no image files in it, none readable, or an unknown person.

    Example:
        >>> import tempfile, skimage.io
        >>> d = tempfile.mkdtemp(); os.mkdir(os.path.join(d, "Ann"))
        >>> skimage.io.imsave(os.path.join(d, "Ann", "1.png"), np.eye(20, dtype=np.uint8) * 255)
        >>> load_faces(d, size=8, cache=False).images.shape
        (1, 8, 8)
    """
    root = folder_path("folder", folder)
    if not root.is_dir():
        raise FileNotFoundError(f"Expected data to be a folder of face images, {str(root)!r} is not a folder.")
    size = positive_int("size", size)
    crop = _crop_arg(crop)
    mirror, cache = flag("mirror", mirror), flag("cache", cache)
    people = _people_arg(people)
    files = _list_images(root)
    if not files:
        raise ValueError(f"Expected data to hold image files ({', '.join(IMAGE_SUFFIXES[:3])}, ...) in {root} "
                         f"or its subfolders, got none.")
    if people is not None:
        known = {_canon(p) for p, _ in files}
        missing = sorted(str(p) for p in people if _canon(p) not in known)
        wanted = {_canon(p) for p in people}
        if missing:
            raise ValueError(f"Expected people to name subfolders of {root}, got unknown {', '.join(missing)}.")
        files = [(p, f) for p, f in files if _canon(p) in wanted]
    size = _size_arg(size, len(files))
    images, names, skipped = _cached_read(root, files, size, crop, cache)
    if not names:
        raise ValueError(f"Expected data to hold readable images in {root}, got {skipped} unreadable file(s).")
    people_arr = np.array(names)
    if mirror:
        images, people_arr = np.concatenate([images, images[:, :, ::-1]]), np.concatenate([people_arr, people_arr])
    return Faces(images, people_arr, skipped, str(root))


def _people_arg(people) -> list[str] | None:
    """None (everyone), one name, or a non-empty collection of names, as a list of str."""
    if people is None:
        return None
    if isinstance(people, str):
        return [people]
    if isinstance(people, np.ndarray):
        people = people.ravel().tolist()
    elif isinstance(people, bytes) or not hasattr(people, "__iter__"):
        raise TypeError(f"Expected people to be a list of names, got {type(people).__name__} {people!r}.")
    people = list(people)
    bad = [p for p in people if not isinstance(p, str)]
    if bad:
        raise TypeError(f"Expected people to be a list of names (str), got {type(bad[0]).__name__} {bad[0]!r}.")
    if not people:
        raise ValueError("Expected people to name at least one person (or None for everyone), got none.")
    return people


def _read_into_memory(files, size: int, crop: float) -> tuple[np.ndarray, list[str], int]:
    out = np.empty((len(files), size, size), dtype=np.float32)
    names, skipped = _read_all(files, size, crop, out)
    return out[:len(names)], names, skipped


def _cached_read(root: Path, files, size: int, crop: float, cache: bool) -> tuple[np.ndarray, list[str], int]:
    folder = cache_folder() if cache else None
    if folder is None:
        return _read_into_memory(files, size, crop)
    key = _cache_key(root, files, size, crop)
    arr_path, meta_path = folder / f"faces-{key}.npy", folder / f"faces-{key}.json"
    try:
        meta = json.loads(meta_path.read_text())
        images = np.load(arr_path, mmap_mode="r", allow_pickle=False)
        if isinstance(images, np.ndarray) and images.shape == (len(meta["people"]), size, size):
            return images, meta["people"], int(meta["skipped"])
    except (OSError, ValueError, KeyError, TypeError):
        pass  # no cache yet, or a broken one: rebuild it
    images, names, skipped = _read_into_memory(files, size, crop)
    try:
        # the array first, its metadata last: a reader that finds the metadata finds the array
        with atomic_path(arr_path) as tmp:
            np.save(tmp, images)
        with atomic_path(meta_path) as tmp, open(tmp, "w") as fh:
            json.dump({"people": names, "skipped": skipped, "source": str(root)}, fh)
        return np.load(arr_path, mmap_mode="r", allow_pickle=False), names, skipped
    except OSError:  # a full or read-only disk: go on without the cache
        return images, names, skipped
