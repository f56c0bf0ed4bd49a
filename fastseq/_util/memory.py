"""Refuse work that cannot fit: sizes needing more memory than the machine has fail up
front with the amount, instead of a ``MemoryError`` deep inside or the OOM killer."""
from __future__ import annotations

import os
from pathlib import Path

GiB = 1 << 30


def machine_memory() -> int:
    """Bytes of memory this process can have: physical memory, or a smaller cgroup limit."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not POSIX: no bound known
        return 1 << 62
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(limit_file).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return int(total)


def format_bytes(n: float) -> str:
    """``149 GiB``, ``3.2 MiB``: the size in the largest binary unit that keeps it >= 1."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if n >= 10 or unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError  # pragma: no cover


def check_fits(nbytes: float, what: str, available: int | None = None) -> None:
    """Raise ValueError naming ``what`` if ``nbytes`` exceed the machine's memory.

    Example:
        >>> check_fits(1000, "a small array")
        >>> check_fits(1e15, "zoom=1000000", available=128 * GiB)
        Traceback (most recent call last):
        ...
        ValueError: zoom=1000000 would need 909 TiB, more than the 128 GiB this machine has.
    """
    limit = machine_memory() if available is None else available
    if nbytes > limit:
        raise ValueError(f"{what} would need {format_bytes(nbytes)}, more than the "
                         f"{format_bytes(limit)} this machine has.")


def cpu_count() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)
