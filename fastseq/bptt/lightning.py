"""Slot-swap truncated BPTT in PyTorch Lightning (needs ``pytorch-lightning>=2.1``).

Lightning 2 has no ``truncated_bptt_steps``; these two pieces give it slot-swap windows:
:class:`SlotSwapDataModule` hands Lightning a :class:`~fastseq.bptt.SlotSwapLoader` and
resumes it mid-epoch from Lightning's own checkpoints, and :class:`SlotSwapMixin` keeps
each slot's carried state across the windows of an epoch, so ``training_step`` only
computes the loss. Not imported by ``import fastseq``: the base install does not need
Lightning.

Example (a whole fit, not run here)::

    import pytorch_lightning as pl
    from fastseq.bptt import SlotSwapLoader, masked_mean
    from fastseq.bptt.lightning import SlotSwapDataModule, SlotSwapMixin

    class ByteModel(SlotSwapMixin, pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.emb, self.rnn, self.head = nn.Embedding(256, 32), nn.GRU(32, 128), nn.Linear(128, 256)
        def training_step(self, window, batch_idx):
            out = self.run_window(self.rnn, self.emb(window.inputs.long()), window)
            ce = F.cross_entropy(self.head(out).flatten(0, 1), window.targets.flatten().long(),
                                 reduction="none")
            return masked_mean(ce.view(window.targets.shape), window.valid)
        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=3e-3)

    data = SlotSwapDataModule(SlotSwapLoader(xs, ys, batch_size=64, bptt=32, shuffle=True, seed=0))
    trainer = pl.Trainer(max_epochs=2, gradient_clip_val=1.0)
    trainer.fit(ByteModel(), datamodule=data)            # or ckpt_path=... to resume mid-epoch
"""
from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from fastseq.bptt.engines import Engine, run_window
from fastseq.bptt.loader import LoaderWindow, SlotSwapLoader
from fastseq.bptt.state import State

__all__ = ["SlotSwapDataModule", "SlotSwapMixin"]

_CHECKPOINT_KEY = "slot_swap_states"


class _Windows:
    """What ``train_dataloader`` returns: the loader's windows, and the loader's position after
    the last window *trained* (Lightning draws one window ahead to know the epoch's last).

    No ``__len__``: the number of windows depends on the epoch's order, and Lightning fixes a
    length once per fit, so it runs each epoch until the loader stops instead."""

    def __init__(self, loader: SlotSwapLoader) -> None:
        self.loader = loader
        self._drawn: deque[dict] = deque()  # the loader's state after each window drawn, not yet trained
        self._trained: dict | None = None

    def __iter__(self) -> Iterator[LoaderWindow]:
        self._drawn.clear()
        for window in self.loader:
            self._drawn.append(self.loader.state_dict())
            yield window
        # the epoch ended: after its last window comes the next epoch's start, not an empty rest of this one
        if self._drawn:
            self._drawn[-1] = self.loader.state_dict()
        else:
            self._trained = self.loader.state_dict()

    def trained(self) -> None:
        """The oldest drawn window is about to be trained: from now on a checkpoint resumes after it."""
        if self._drawn:
            self._trained = self._drawn.popleft()

    def state_dict(self) -> dict:
        return self.loader.state_dict() if self._trained is None else dict(self._trained)

    def load_state_dict(self, state: dict) -> None:
        self.loader.load_state_dict(state)
        self._drawn.clear()
        self._trained = None


class SlotSwapDataModule(pl.LightningDataModule):
    """A Lightning data module over a :class:`~fastseq.bptt.SlotSwapLoader`.

    ``train_dataloader`` returns the loader's windows (:class:`~fastseq.bptt.loader.LoaderWindow`)
    as they are: Lightning adds no sampler, and each epoch is one pass of the loader. Build
    the loader with ``device=`` the trainer's device; windows are not moved. Under DDP build
    it with ``world_size="auto"``: Lightning starts the processes after the loader exists, so
    :meth:`setup` gives it the trainer's ``global_rank`` of ``world_size`` (every rank then
    draws the same number of windows each epoch); a loader built with an explicit shard must
    match the trainer's. Lightning's checkpoints save the position after the last window
    trained (:meth:`state_dict`), so ``trainer.fit(..., ckpt_path=...)`` resumes mid-epoch with
    the windows that were still to come.

    Args:
        loader: the slot-swap loader; kept, not copied (its position advances with training).

    Example:
        >>> import numpy as np
        >>> data = SlotSwapDataModule(SlotSwapLoader([np.ones((5, 1)), np.ones((3, 1))], None, batch_size=1, bptt=2))
        >>> [w.index for w in data.train_dataloader()]
        [0, 1, 2, 3]
        >>> data.state_dict()["epoch"], data.state_dict()["window"]
        (1, 0)
    """

    def __init__(self, loader: SlotSwapLoader) -> None:
        super().__init__()
        if not isinstance(loader, SlotSwapLoader):
            raise TypeError(f"Expected loader to be a SlotSwapLoader, got {type(loader).__name__}.")
        self.loader = loader
        self._windows = _Windows(loader)

    def setup(self, stage: str) -> None:
        """Give a ``world_size="auto"`` loader the trainer's shard; refuse a loader built for another."""
        trainer = self.trainer
        if trainer is None:
            return
        rank, world = trainer.global_rank, trainer.world_size
        if self.loader.auto_shard:
            self.loader.set_shard(rank, world)
        elif (self.loader.rank, self.loader.world_size) != (rank, world):
            raise ValueError(f"Expected the loader's shard to be the trainer's, rank {rank} of {world} processes, got "
                             f"rank {self.loader.rank} of {self.loader.world_size}; build the SlotSwapLoader with "
                             f"world_size='auto'.")

    def train_dataloader(self) -> _Windows:
        return self._windows

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if isinstance(batch, LoaderWindow):
            self._windows.trained()
        return batch

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        if isinstance(batch, LoaderWindow):
            if batch.inputs.device != torch.device(device):
                raise ValueError(f"Expected the loader's windows on the trainer's device {device}, got windows "
                                 f"on {batch.inputs.device}; build the SlotSwapLoader with device={str(device)!r}.")
            return batch
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def state_dict(self) -> dict:
        """The loader's :meth:`~fastseq.bptt.SlotSwapLoader.state_dict` after the last window
        trained (plain JSON-able values)."""
        return self._windows.state_dict()

    def load_state_dict(self, state_dict: dict) -> None:
        """Continue from a :meth:`state_dict`: the next epoch's pass resumes where it stopped."""
        self._windows.load_state_dict(state_dict)


class SlotSwapMixin:
    """Carries each slot's recurrent state across the windows of an epoch in a ``LightningModule``.

    Put it before ``pl.LightningModule`` in the bases. In ``training_step(window, batch_idx)``,
    :meth:`run_window` runs a standard ``nn.RNN``/``nn.GRU``/``nn.LSTM`` over the window from
    the state the previous window left (narrowed by ``window.slot_map``, detached: truncated
    BPTT), keeps the new state, and returns the outputs; the first window of an epoch starts
    from zeros. One optimizer step per window (automatic optimization). Lightning's checkpoints
    hold the carried states as tensors (``torch.load(weights_only=True)`` reads them), so a
    resume mid-epoch continues bit for bit. After each window it logs
    ``slot_swap/real_steps_per_s`` and ``slot_swap/padding_share`` (idle (step, slot) pairs
    of the window); a subclass overriding ``on_train_batch_end`` or the checkpoint hooks
    calls ``super()``.

    Example (in a ``LightningModule``, ``training_step`` calls ``self.run_window`` the same way):
        >>> import numpy as np
        >>> class Carrier(SlotSwapMixin, nn.Module): pass
        >>> carrier, rnn = Carrier(), nn.GRU(1, 4)
        >>> loader = SlotSwapLoader([np.ones((5, 1), np.float32), np.ones((3, 1), np.float32)], None, batch_size=2, bptt=2)
        >>> [tuple(carrier.run_window(rnn, w.inputs, w).shape) for w in loader]
        [(2, 2, 4), (2, 2, 4), (1, 1, 4)]
    """

    _slot_states: dict[str, State]
    _last_window_end: float | None

    def run_window(self, rnn: nn.Module, inputs: Tensor, window: LoaderWindow, *, name: str = "rnn",
                   engine: Engine = "auto", reset_state: State | None = None) -> Tensor:
        """Run ``rnn`` over ``inputs`` (``K x W x F``) with ``window``'s resets, mask and slot map,
        from the state carried under ``name`` (one name per recurrent module); returns the
        ``K x W x H`` outputs and carries the final state, detached, to the next window.
        ``engine`` and ``reset_state`` are :func:`~fastseq.bptt.run_window`'s."""
        if not isinstance(window, LoaderWindow):
            raise TypeError(f"Expected window to be a LoaderWindow from SlotSwapLoader, got {type(window).__name__}.")
        states = self.__dict__.setdefault("_slot_states", {})
        carried = None if window.index == 0 else states.get(name)  # an epoch starts every slot afresh
        out, states[name] = run_window(rnn, inputs, window.reset, carried, valid=window.valid,
                                       slot_map=window.slot_map, plan=window.plan, engine=engine,
                                       reset_state=reset_state)
        return out

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if isinstance(batch, LoaderWindow):
            now = time.perf_counter()
            last = self.__dict__.get("_last_window_end")
            self._last_window_end = now
            self.log("slot_swap/padding_share", 1.0 - batch.real_steps / max(1, batch.valid.numel()))
            if last is not None and batch.index > 0:
                self.log("slot_swap/real_steps_per_s", batch.real_steps / max(now - last, 1e-9))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        states = self.__dict__.get("_slot_states", {})
        checkpoint[_CHECKPOINT_KEY] = {
            name: [t.detach().clone() for t in state] if isinstance(state, tuple) else state.detach().clone()
            for name, state in states.items()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get(_CHECKPOINT_KEY, {})
        self._slot_states = {name: tuple(state) if isinstance(state, list) else state for name, state in saved.items()}
