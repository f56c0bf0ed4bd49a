"""Checkpoints of a train_bptt epoch in progress: one safetensors file, JSON in its header.

The file holds the decoder's parameters, the optimizer's state, the carried (fed-back visible
and hidden) state, the random states (torch, NumPy, teacher forcing), the losses so far, and
the loader's position. A checkpoint of several processes holds each process's carried state
and torch random state (``carried.<rank>.<i>``, ``rng.torch.<rank>``). It is written to a temporary file and renamed over the previous one,
so a kill at any moment leaves the previous checkpoint whole. Loading runs no code (no
pickle): tensors from safetensors, everything else from JSON.
"""
from __future__ import annotations

import os

import numpy as np
import torch

from fastseq.bptt.epoch import describe_difference

__all__ = ["load_checkpoint", "save_checkpoint", "config_differences"]

FORMAT = "fastseq.train_bptt.checkpoint"
VERSION = 1


def _flat_optimizer(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for pid, entries in state["state"].items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{pid}.{key}"] = value.detach().cpu().contiguous().clone()
            else:
                scalars.setdefault(str(pid), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        if name.startswith("optimizer."):
            _, pid, key = name.split(".", 2)
            state.setdefault(int(pid), {})[key] = value
    for pid, entries in meta["scalars"].items():
        state.setdefault(int(pid), {}).update(entries)
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_checkpoint(path: str | os.PathLike, *, config: dict, loader_state: dict, decoder: torch.nn.Module,
                    optimizer: torch.optim.Optimizer, carried: tuple[torch.Tensor, ...] | list[tuple[torch.Tensor, ...]],
                    losses: list[float], generator: torch.Generator | None,
                    torch_rng: list[torch.Tensor] | None = None) -> None:
    """Write one checkpoint atomically (see the module docstring). ``carried``: one process's
    parts, or a list with each process's; ``torch_rng``: each process's torch random state."""
    from fastseq._util import files

    tensors = {f"model.{k}": v.detach().cpu().contiguous().clone() for k, v in decoder.state_dict().items()}
    opt_tensors, opt_meta = _flat_optimizer(optimizer)
    tensors.update(opt_tensors)
    ranks = carried if isinstance(carried, list) else [carried]
    for r, parts in enumerate(ranks):
        tensors.update({f"carried.{r}.{i}": t.detach().cpu().contiguous().clone() for i, t in enumerate(parts)})
    for r, state in enumerate(torch_rng or [torch.get_rng_state()]):
        tensors[f"rng.torch.{r}"] = state
    if generator is not None:
        tensors["rng.teacher"] = generator.get_state()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    tensors["rng.numpy"] = torch.from_numpy(keys.astype(np.int64))
    tensors["losses"] = torch.tensor(losses, dtype=torch.float64)
    meta = {"format": FORMAT, "version": VERSION, "config": config, "loader": loader_state, "optimizer": opt_meta,
            "numpy_rng": [name, int(pos), int(has_gauss), float(cached)], "carried": len(ranks[0]),
            "ranks": len(ranks)}
    # fastseq's file format: the checkpoint's own format and version name its layout inside it
    header = {k: v for k, v in meta.items() if k not in ("format", "version")}
    files.write(path, "train_bptt_checkpoint", {"checkpoint_version": meta["version"], **header}, tensors)


def load_checkpoint(path: str | os.PathLike) -> tuple[dict, dict[str, torch.Tensor]]:
    """Read a checkpoint's JSON and tensors; a truncated or foreign file is a ValueError.

    :func:`fastseq.load` for checkpoint files only; reads the checkpoints of earlier
    fastseq versions too."""
    from fastseq._util import files

    header, tensors = files.read(path, "train_bptt_checkpoint")
    meta = {"format": FORMAT, "version": header.get("checkpoint_version"),
            **{k: v for k, v in header.items() if k not in (*files.RESERVED, "checkpoint_version")}}
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise ValueError(f"Expected {path} to be a {FORMAT} of version {VERSION}, got another file.")
    return meta, tensors


def _plain(value):
    """A hyperparameter as JSON keeps it: tuples as lists, tensors as numbers or lists."""
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def optimizer_differences(saved_groups: list[dict], optimizer: torch.optim.Optimizer) -> list[str]:
    """The optimizer's hyperparameters that differ from a checkpoint's, with both values:
    ``["optimizer group 0 lr (checkpoint 0.01, now 0.5)"]`` (keys only one side has are skipped)."""
    groups = optimizer.param_groups
    if len(saved_groups) != len(groups):
        return [f"optimizer param groups (checkpoint {len(saved_groups)}, now {len(groups)})"]
    out = []
    for i, (old, new) in enumerate(zip(saved_groups, groups)):
        for key in sorted((set(old) & set(new)) - {"params"}):
            a, b = _plain(old[key]), _plain(new[key])
            if a != b:
                out.append(describe_difference(f"optimizer group {i} {key}", a, b, ("checkpoint", "now")))
    return out


def config_differences(saved: dict, current: dict, prefix: str = "") -> list[str]:
    """Names of the settings that differ, with both values: ``["bptt (checkpoint 4, now 3)"]``."""
    out = []
    for key in sorted(set(saved) | set(current)):
        a, b = saved.get(key), current.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += config_differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(describe_difference(f"{prefix}{key}", a, b, ("checkpoint", "now")))
    return out


def restore(meta: dict, tensors: dict[str, torch.Tensor], decoder: torch.nn.Module,
            optimizer: torch.optim.Optimizer, generator: torch.Generator | None,
            device: torch.device, rank: int = 0) -> tuple[list[tuple[torch.Tensor, ...]], list[float]]:
    """Put the saved state back (the torch random state of process ``rank``, or of process
    ``rank % ranks`` on more processes); return every saved process's carried state (on
    ``device``) and the losses so far."""
    model = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    decoder.load_state_dict(model)
    _restore_optimizer(optimizer, tensors, meta["optimizer"])
    ranks = int(meta.get("ranks", 1))
    torch.set_rng_state(tensors[f"rng.torch.{rank % ranks}"])
    if generator is not None:
        generator.set_state(tensors["rng.teacher"])
    name, pos, has_gauss, cached = meta["numpy_rng"]
    np.random.set_state((name, tensors["rng.numpy"].numpy().astype(np.uint32), pos, has_gauss, cached))
    carried = [tuple(tensors[f"carried.{r}.{i}"].to(device) for i in range(meta["carried"])) for r in range(ranks)]
    return carried, tensors["losses"].tolist()


def run_config(decoder: torch.nn.Module, optimizer: torch.optim.Optimizer, contexts, targets,
               options: dict) -> dict:
    """What a checkpoint must match to be resumed besides the loader's state: data (checksums),
    model, optimizer, the step's settings. The loader's state (its position, the lengths'
    checksum and the :class:`~fastseq.bptt.EpochSpec` it ran) is saved beside it and compared
    by :meth:`~fastseq.bptt.SlotSwapLoader.state_differences`: the epoch's settings must be
    the same, the number of processes may change."""
    from fastseq.bptt._store_files import crc32

    def data(store) -> dict:
        value = crc32(np.ascontiguousarray(store.data))
        store.release()  # the checksum read every page of a memory map: do not keep them resident
        return {"dtype": store.dtype.str, "features": list(store.feature_shape), "crc32": value}

    model = {k: [list(v.shape), str(v.dtype)] for k, v in decoder.state_dict().items()}
    return {"data": {"contexts": data(contexts), "targets": data(targets)},
            "model": {"class": type(decoder).__name__, "tensors": model},
            "optimizer": type(optimizer).__name__, **options}
