"""One progress-bar helper: tqdm when asked for, a no-op otherwise (tqdm imported lazily)."""
from __future__ import annotations

from typing import Any


class _NoBar:
    """Stands in for a tqdm bar when progress is off: every call does nothing."""

    n = 0

    def update(self, n: float = 1) -> None:
        pass

    def refresh(self) -> None:
        pass

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> "_NoBar":
        return self

    def __exit__(self, *exc) -> None:
        pass


def progress_bar(enabled: bool, total: float | None = None, desc: str | None = None, **kwargs: Any):
    """A tqdm bar (context manager, ``update``, ``n``, ``refresh``, ``set_postfix``) or a silent stand-in.

    ``total`` should come from what will actually run (count the schedule's windows, not
    an estimate), so the bar ends at 100%.

    Example:
        >>> with progress_bar(False, total=3) as bar:
        ...     for _ in range(3):
        ...         bar.update()
    """
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, **kwargs)
