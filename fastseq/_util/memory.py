"""Refuse sizes that cannot fit in memory up front, with the amount, instead of an OOM kill."""
from __future__ import annotations

import os


def available_bytes() -> int:
    """Memory available to this process now: MemAvailable on Linux, else physical memory."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1 << 62  # unknown: never refuse


def gib(nbytes: float) -> str:
    return f"{nbytes / (1 << 30):.1f} GiB"


def check_fits(what: str, nbytes: int) -> None:
    """Raise ValueError naming ``what`` when ``nbytes`` exceed the memory available now.

    >>> check_fits("a small buffer", 1024)
    >>> check_fits("a window", 1 << 70)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: Expected a window to fit in memory, would need 1073741824.0 GiB (... available).
    """
    have = available_bytes()
    if nbytes > have:
        raise ValueError(f"Expected {what} to fit in memory, would need {gib(nbytes)} ({gib(have)} available).")
