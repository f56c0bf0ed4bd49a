"""fastseq's one file format, and ``fastseq.save`` / ``fastseq.load``.

Every model, machine and checkpoint fastseq writes is a safetensors file: the tensors are
safetensors tensors and the metadata entry ``"fastseq"`` holds a JSON header

    {"format": "fastseq", "version": 1, "kind": KIND, ...what that kind needs}

Reading one runs no code (safetensors holds raw numbers, the header is JSON; never pickle),
and a file that is not fastseq's, cut short, of a newer version or of another kind than the
one asked for is refused with a ValueError that says which. Files are written next to the
destination and renamed over it (:mod:`fastseq._util.atomic`). The suffix is the caller's
choice; ``.safetensors`` says what the file is.

:data:`KINDS` maps each kind to its loader, named as ``"module:function"`` and imported
only when a file of that kind is read, so ``fastseq.load`` imports just the subpackage it
needs. The layouts of earlier fastseq versions (see :mod:`fastseq._util.old_files`) are
read as the header they would have today, so they load everywhere a new file does.
"""
from __future__ import annotations

import contextlib
import importlib
import json
import os
import struct
from dataclasses import dataclass
from typing import Any, Iterator

from fastseq._util.atomic import atomic_path
from fastseq._util.validate import file_path

__all__ = ["FORMAT", "KINDS", "VERSION", "FileError", "Kind", "building", "load", "read", "read_header", "save", "write"]

FORMAT = "fastseq"
VERSION = 1
KEY = "fastseq"  # the safetensors metadata entry that holds the header
RESERVED = ("format", "version", "kind")
_ZIP = (b"PK\x03\x04", b"PK\x05\x06")  # an .npz (a zip archive), as fastseq wrote before this format


@dataclass(frozen=True)
class Kind:
    """What a kind of file holds (``what``, for messages) and where its loader lives.

    ``loader`` is ``"module:function"``; the function takes the path (and ``device=`` when
    ``device`` is True) and returns the object the file holds.
    """

    what: str
    loader: str
    device: bool = True


KINDS: dict[str, Kind] = {
    "rbm": Kind("a fastseq Boltzmann machine (RBM) file", "fastseq.boltzmann._base:load_rbm"),
    "dbn": Kind("a fastseq deep belief net (DeepBeliefNet) file", "fastseq.boltzmann.deep:load_dbn"),
    "conv_autoencoder": Kind("a fastseq ConvAutoencoder model file", "fastseq.conv.model:load_autoencoder"),
    "rowrnn": Kind("a fastseq row model (RowRNN) file", "fastseq.rowrnn.models:load_model"),
    "train_bptt_checkpoint": Kind("a fastseq train_bptt checkpoint", "fastseq.bptt.checkpoint:load_checkpoint",
                                  device=False),
}


def _what(kind: str | None) -> str:
    return "a fastseq file" if kind is None else KINDS[kind].what


def write(path: str | os.PathLike, kind: str, header: dict[str, Any], tensors: dict) -> None:
    """Write ``tensors`` (torch tensors or NumPy arrays) and ``header`` as a ``kind`` file, atomically.

    Example:
        >>> import os, tempfile, torch
        >>> p = os.path.join(tempfile.mkdtemp(), "m.safetensors")
        >>> write(p, "rowrnn", {"model": "rnn", "n_visible": 2, "n_hidden": 1}, {"b": torch.zeros(1)})
        >>> read_header(p)["kind"]
        'rowrnn'
    """
    import numpy as np
    import torch
    from safetensors.torch import save_file

    if kind not in KINDS:
        raise ValueError(f"Expected kind to be one of {sorted(KINDS)}, got {kind!r}.")
    clash = sorted(set(header) & set(RESERVED))
    if clash:
        raise ValueError(f"Expected a header without the keys {list(RESERVED)}, got {clash}.")
    path = file_path("path", path)
    text = json.dumps({"format": FORMAT, "version": VERSION, "kind": kind, **header})
    out = {}
    for name, value in tensors.items():
        t = torch.from_numpy(np.ascontiguousarray(value)) if isinstance(value, np.ndarray) else value
        out[name] = t.detach().cpu().contiguous()
    with atomic_path(path) as tmp:
        save_file(out, tmp, metadata={KEY: text})


def _existing(path, name: str, kind: str | None) -> str:
    path = os.fspath(file_path(name, path))
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Expected {name} {path!r} to be {_what(kind)}, got no such file.")
    return path


def read_header(path: str | os.PathLike, kind: str | None = None, name: str = "path") -> dict[str, Any]:
    """The checked header of the file at ``path`` (tensors not read); ``kind``: the one expected."""
    return _read(path, kind, name, tensors=False)[0]


def read(path: str | os.PathLike, kind: str | None = None, name: str = "path") -> tuple[dict[str, Any], dict]:
    """The checked header and the tensors (``name -> torch.Tensor``, on the CPU) of a fastseq file.

    Args:
        path: the file.
        kind: the kind expected (a key of :data:`KINDS`); None takes any.
        name: the argument named in errors.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: not a fastseq file (unreadable, cut short, another format), a newer
            version, an unknown kind, or another kind than ``kind``.
    """
    return _read(path, kind, name, tensors=True)


def _read(path, kind: str | None, name: str, tensors: bool) -> tuple[dict[str, Any], dict]:
    from safetensors import safe_open

    from fastseq._util import old_files

    if kind is not None and kind not in KINDS:
        raise ValueError(f"Expected kind to be one of {sorted(KINDS)}, got {kind!r}.")
    path = _existing(path, name, kind)
    expected = f"Expected {name} {path!r} to be {_what(kind)}"
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic in _ZIP:
        try:
            header, arrays = old_files.read_npz(path, tensors)
        except Exception as exc:  # noqa: BLE001 - a damaged zip fails in many ways (BadZipFile, EOFError, zlib, ...)
            raise FileError(f"{expected}, got an unreadable file (a damaged .npz, or one holding Python objects: "
                            f"{type(exc).__name__}: {exc}).") from None
        if header is None:
            raise FileError(f"{expected}, got an .npz file without a fastseq format header.")
        return _checked({"format": FORMAT, "version": 1, **header}, expected, kind), _aligned(arrays)
    try:
        opened = safe_open(path, framework="pt")  # reads and checks the header and the file's size
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types for damaged files
        raise FileError(f"{expected}, got an unreadable file: {_damage(path, exc)}.") from None
    with opened as fh:
        header = _checked(_header(fh.metadata() or {}, expected), expected, kind)
        try:
            return header, (_aligned({key: fh.get_tensor(key) for key in fh.keys()}) if tensors else {})
        except Exception as exc:  # noqa: BLE001
            raise FileError(f"{expected}, got an unreadable file: {_damage(path, exc)}.") from None


def _aligned(tensors: dict) -> dict:
    """Each tensor in memory of its own from torch's allocator (64-byte aligned), as the saved
    one was. safetensors and NumPy hand back tensors at any address; MKL's matrix products
    round differently for differently aligned operands, so a run resumed from unaligned
    carried state or optimizer moments drifted from the uninterrupted one in the last bits."""
    return {key: t.clone() for key, t in tensors.items()}


def _header(metadata: dict[str, str], expected: str) -> dict[str, Any]:
    """The fastseq header in a safetensors file's metadata (an older layout's, translated)."""
    from fastseq._util import old_files

    try:
        header = json.loads(metadata[KEY]) if KEY in metadata else None
        if not (isinstance(header, dict) and header.get("format") == FORMAT):
            old = old_files.from_safetensors(metadata)
            header = None if old is None else {"format": FORMAT, "version": 1, **old}
    except (ValueError, TypeError, KeyError) as exc:
        raise FileError(f"{expected}, got a safetensors file whose fastseq header is damaged ({exc}).") from None
    if header is None:
        raise FileError(f"{expected}, got a safetensors file without a fastseq format header.")
    return header


def _checked(header: dict[str, Any], expected: str, kind: str | None) -> dict[str, Any]:
    version, got = header.get("version"), header.get("kind")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise FileError(f"{expected}, got a fastseq file of unknown version {version!r}.")
    if version > VERSION:
        from fastseq import __version__

        raise FileError(f"{expected}, got a file written by a newer fastseq (file format version {version}; "
                        f"fastseq {__version__} reads version {VERSION}): upgrade fastseq to read it.")
    if not isinstance(got, str) or got not in KINDS:
        raise FileError(f"{expected}, got a fastseq file of unknown kind {got!r} (known: {', '.join(KINDS)}; "
                        "a newer fastseq may know it).")
    if kind is not None and got != kind:
        raise FileError(f"{expected}, got {_what(got)}.")
    return header


def _damage(path: str, exc: Exception) -> str:
    """Why safetensors could not read ``path``, in words: too short, cut short, or not safetensors."""
    size = os.path.getsize(path)
    if size < 8:
        return f"{size} bytes, too few for a safetensors file"
    with open(path, "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        start = fh.read(1)
    if start != b"{":
        return "not a safetensors file"
    if 8 + n > size:
        return f"a safetensors file cut short (its header alone needs {8 + n} bytes, the file has {size})"
    with open(path, "rb") as fh:
        fh.seek(8)
        try:
            entries = json.loads(fh.read(n))
            end = 8 + n + max([e["data_offsets"][1] for k, e in entries.items() if k != "__metadata__"] or [0])
        except (ValueError, TypeError, KeyError, IndexError, AttributeError):
            return f"a safetensors file with a damaged header ({exc})"
    if end > size:
        return f"a safetensors file cut short (its tensors need {end} bytes, the file has {size})"
    if end < size:
        return f"a safetensors file with {size - end} unexpected bytes after its tensors"
    return f"a damaged safetensors file ({exc})"


def load(path: str | os.PathLike, device=None) -> Any:
    """Load anything fastseq saved: a Boltzmann machine, a ConvAutoencoder, a row model or a checkpoint.

    The file's header names its kind; the loader of that kind builds the object:

    - a Boltzmann machine (``RBM``, ``RRBM``, ``R3BM``, ``BetaRBM``, ``GaussianRBM``):
      that estimator, fitted (as :func:`fastseq.boltzmann._base.load_rbm`);
    - a :class:`~fastseq.boltzmann.DeepBeliefNet`, fitted, with its stack of machines;
    - a :class:`~fastseq.conv.ConvAutoencoder` (as :func:`fastseq.conv.model.load_autoencoder`);
    - a row model (``TiedRNN``, ``UntiedRNN``, ``GRURows``, ``LSTMRows``; as
      :func:`fastseq.rowrnn.models.load_model`);
    - a ``train_bptt`` checkpoint: the pair ``(meta, tensors)`` that
      :func:`fastseq.bptt.checkpoint.load_checkpoint` returns (its JSON header as a dict and
      its tensors by name); ``train_bptt(checkpoint=...)`` resumes from the file itself.

    Files written by earlier fastseq versions (``.npz`` Boltzmann machines and networks,
    older safetensors layouts, older checkpoints) load too; ``save(load(old), new)``
    rewrites a model in the current format. No code in the file is run.

    Args:
        path: the file.
        device: where the model goes (``"cpu"``, ``"cuda"``, a ``torch.device``). None: a
            Boltzmann machine keeps its saved ``device`` setting, a network or row model
            goes to the CPU. Checkpoints take no device (``train_bptt`` places their tensors).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: not a fastseq file (unreadable, cut short, another format), written by a
            newer fastseq, or holding something that does not fit its kind.

    Example:
        >>> import os, tempfile
        >>> import fastseq
        >>> from fastseq.rowrnn import TiedRNN
        >>> p = os.path.join(tempfile.mkdtemp(), "rnn.safetensors")
        >>> fastseq.save(TiedRNN(28, 8), p)
        >>> type(fastseq.load(p)).__name__
        'TiedRNN'
    """
    kind = read_header(path)["kind"]
    entry = KINDS[kind]
    module, _, function = entry.loader.partition(":")
    loader = getattr(importlib.import_module(module), function)
    if device is None:
        return loader(path)
    if not entry.device:
        raise ValueError(f"Expected device to be None for {entry.what} (train_bptt places its tensors), "
                         f"got {device!r}.")
    return loader(path, device=device)


def save(obj: Any, path: str | os.PathLike) -> None:
    """Save a fastseq model to ``path`` in fastseq's one file format (atomically; see :func:`load`).

    ``obj`` is a fitted Boltzmann machine, a :class:`~fastseq.conv.ConvAutoencoder` or a row
    model; this is ``obj.save(path)``. Checkpoints are written by
    ``train_bptt(..., checkpoint=path)``.

    Example:
        >>> import os, tempfile
        >>> import numpy as np
        >>> import fastseq
        >>> X = (np.random.default_rng(0).random((20, 5)) < 0.5).astype(float)
        >>> p = os.path.join(tempfile.mkdtemp(), "rbm.safetensors")
        >>> fastseq.save(fastseq.RBM(n_components=3, n_iter=1, random_state=0).fit(X), p)
        >>> fastseq.load(p).components_.shape
        (3, 5)
    """
    kind = getattr(type(obj), "_file_kind", None)
    if kind not in KINDS or not callable(getattr(obj, "save", None)):
        raise TypeError("Expected obj to be a fastseq model (a Boltzmann machine, a ConvAutoencoder or a row "
                        f"model; checkpoints are written by train_bptt), got {type(obj).__name__}.")
    obj.save(path)


class FileError(ValueError):
    """A file refused with a message that names it (raised by the readers and the loaders' own checks)."""


@contextlib.contextmanager
def building(path: str | os.PathLike, kind: str) -> Iterator[None]:
    """Turn what goes wrong while a loader builds its object from a ``kind`` file's header and
    tensors (a setting of the wrong type, a missing key, a tensor of the wrong shape) into a
    ValueError naming the file; a :class:`FileError` passes through as it is."""
    try:
        yield
    except FileError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError, IndexError, OverflowError) as exc:
        details = " ".join(str(exc).split()) or "no details"
        raise FileError(f"Expected path {os.fspath(path)!r} to be {_what(kind)} whose contents fit together, "
                        f"got {type(exc).__name__}: {details}.") from None
