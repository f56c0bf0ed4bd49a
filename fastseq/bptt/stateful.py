"""Stateful: the one protocol of everything that resumes, in torchdata's shape.

:class:`~fastseq.bptt.SlotSwapLoader` (its position in the epochs), the state a
:func:`~fastseq.bptt.train_bptt` epoch carries between windows, and PyTorch's own modules
and optimizers all offer ``state_dict()`` and ``load_state_dict(state)``; a checkpoint is
the union of its parts' states.
"""
from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

__all__ = ["Stateful"]


@runtime_checkable
class Stateful(Protocol):
    """An object that saves its state to a dict and continues from one.

    ``load_state_dict(obj.state_dict())`` on a fresh object built with the same settings
    makes it continue exactly where ``obj`` was.

    Example:
        >>> import torch
        >>> from fastseq.bptt import SlotSwapLoader
        >>> isinstance(SlotSwapLoader([torch.ones(3, 1)]), Stateful), isinstance(torch.nn.Linear(1, 1), Stateful)
        (True, True)
    """

    def state_dict(self) -> dict[str, Any]:
        ...

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        ...
