"""Fixtures of the command-line tests."""
from __future__ import annotations

from typing import Callable

import pytest

import fastseq.bptt.checkpoint


def _interrupt_after(patcher: pytest.MonkeyPatch, writes: int) -> None:
    real = fastseq.bptt.checkpoint.save_checkpoint
    left = [writes]

    def save(*args, **kwargs):
        real(*args, **kwargs)
        left[0] -= 1
        if left[0] == 0:
            raise KeyboardInterrupt

    patcher.setattr(fastseq.bptt.checkpoint, "save_checkpoint", save)


@pytest.fixture
def interrupt_after() -> Callable[[pytest.MonkeyPatch, int], None]:
    """``interrupt_after(monkeypatch, n)``: Ctrl-C right after the ``n``-th checkpoint is on disk
    (use it inside ``monkeypatch.context()`` to end it)."""
    return _interrupt_after
