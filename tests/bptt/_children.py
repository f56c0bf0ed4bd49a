"""Child processes for the kill-at-random-moments tests, which never outlive their test.

A child left running (a failed assertion before the kill, a signal that did not stop it)
keeps the test process from exiting: multiprocessing joins its children at exit. Every
child here is a daemon, and ``killed_at_end`` kills and reaps it whatever the test did.
The child also installs Python's own Ctrl-C handler, so SIGINT interrupts it even when
the test run was started with SIGINT ignored (as a shell's background jobs are).
"""
from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
from typing import Callable, Iterator

_stopped: list[int] = []


def _on_sigint(signum, frame) -> None:
    _stopped.append(signum)
    raise KeyboardInterrupt


def interruptible() -> None:
    """In a child: SIGINT raises KeyboardInterrupt and sets :func:`stopped`."""
    signal.signal(signal.SIGINT, _on_sigint)


def stopped() -> bool:
    """True once SIGINT arrived (a KeyboardInterrupt raised in a ``__del__`` is swallowed)."""
    return bool(_stopped)


@contextlib.contextmanager
def killed_at_end(target: Callable, args: tuple, method: str = "fork") -> Iterator[multiprocessing.Process]:
    """A started daemon child running ``target(*args)``; SIGKILLed and reaped on leaving."""
    child = multiprocessing.get_context(method).Process(target=target, args=args, daemon=True)
    child.start()
    try:
        yield child
    finally:
        if child.exitcode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGKILL)
        child.join()


def signal_and_wait(child: multiprocessing.Process, sig: int, timeout: float = 60) -> int:
    """Send ``sig``, wait for the child to end and return its exit code; fail if it does not end."""
    os.kill(child.pid, sig)
    child.join(timeout)
    assert child.exitcode is not None, f"the child ignored signal {sig} for {timeout} s"
    return child.exitcode
