"""The file layouts fastseq wrote before its one format, read as the header they would have today.

Four layouts, each recognised by its own marks and translated into a version-1 header of
:mod:`fastseq._util.files`, so that every loader reads one shape of header:

- Boltzmann machines: ``.npz`` with a JSON ``meta`` array, ``"format": "fastseq-rbm-1"``,
  parameters as ``param/NAME`` arrays;
- ConvAutoencoder: ``.npz`` with a JSON ``__meta__`` array or safetensors with string
  metadata, both ``"format": "fastseq-conv-1"`` and the configuration as a JSON string;
- row models: safetensors with metadata ``fastseq_model``, ``n_visible``, ``n_hidden``;
- train_bptt checkpoints: safetensors whose ``fastseq`` metadata is JSON with
  ``"format": "fastseq.train_bptt.checkpoint"`` and the checkpoint's own ``version``
  (kept as ``checkpoint_version``).

``.npz`` files are read with ``allow_pickle=False``: an object array is refused, never unpickled.
"""
from __future__ import annotations

import json
from typing import Any

_RBM = "fastseq-rbm-1"
_CONV = "fastseq-conv-1"
_CHECKPOINT = "fastseq.train_bptt.checkpoint"


def from_safetensors(metadata: dict[str, str]) -> dict[str, Any] | None:
    """The header (less ``format`` and ``version``) for the metadata of a safetensors file an
    older fastseq wrote; None if it is none of them. A damaged one raises ValueError, TypeError
    or KeyError."""
    if metadata.get("format") == _CONV:
        return {"kind": "conv_autoencoder", "config": json.loads(metadata["config"])}
    if "fastseq_model" in metadata:
        return {"kind": "rowrnn", "model": metadata["fastseq_model"], "n_visible": metadata["n_visible"],
                "n_hidden": metadata["n_hidden"]}
    meta = json.loads(metadata["fastseq"]) if "fastseq" in metadata else None
    if isinstance(meta, dict) and meta.get("format") == _CHECKPOINT:
        rest = {k: v for k, v in meta.items() if k not in ("format", "version", "kind")}
        return {"kind": "train_bptt_checkpoint", "checkpoint_version": meta.get("version"), **rest}
    return None


def read_npz(path: str, tensors: bool) -> tuple[dict[str, Any] | None, dict]:
    """The header (less ``format`` and ``version``) and tensors (torch, CPU) of an ``.npz``
    Boltzmann machine or network; None and no tensors for an ``.npz`` without fastseq's header.
    A damaged file, or one holding Python objects, raises (zipfile's, NumPy's or json's errors)."""
    import numpy as np
    import torch

    with np.load(path, allow_pickle=False) as data:
        names = list(data.files)
        key = "meta" if "meta" in names else "__meta__" if "__meta__" in names else None
        meta = json.loads(str(data[key])) if key is not None else None
        if not (isinstance(meta, dict) and meta.get("format") in (_RBM, _CONV)):
            return None, {}
        arrays = {name: data[name] for name in names if name != key} if tensors else {}
    if meta["format"] == _RBM:
        header = {"kind": "rbm", **{k: v for k, v in meta.items() if k not in ("format", "version", "kind")}}
        prefix = "param/"
    else:
        header = {"kind": "conv_autoencoder", "config": json.loads(meta["config"])}
        prefix = ""
    # torch.from_numpy refuses dtypes torch has not (strings, ...) with a TypeError
    return header, {name[len(prefix):]: torch.from_numpy(a) for name, a in arrays.items() if name.startswith(prefix)}
