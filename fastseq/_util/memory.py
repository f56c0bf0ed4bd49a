"""Refuse work that cannot fit: sizes needing more memory than the machine has fail up
front with the amount ("would need 149 GiB"), instead of a ``MemoryError`` deep inside or
the OOM killer. Also the number of cores, for capping thread counts."""
from __future__ import annotations

import os
from pathlib import Path

GiB = 1 << 30


def machine_memory() -> int:
    """Bytes of memory this process can have: physical memory, or a smaller cgroup or
    address-space (``RLIMIT_AS``) limit.

    The machine's memory, not what is free at this moment: a size is refused only when no
    amount of waiting could make it fit.
    """
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
    try:  # an address-space limit (ulimit -v) also caps what one process can allocate
        import resource

        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
        if soft != resource.RLIM_INFINITY and soft > 0:
            total = min(total, soft)
    except (ImportError, AttributeError, ValueError, OSError):
        pass
    return int(total)


def gib(nbytes: float) -> str:
    """``149 GiB``, ``0.5 GiB``: sizes in one unit, so messages compare at a glance."""
    n = nbytes / GiB
    return f"{n:.0f} GiB" if n >= 10 else f"{n:.1f} GiB"


def check_fits(what: str, nbytes: float, available: int | None = None) -> None:
    """Raise ValueError naming ``what`` if ``nbytes`` exceed the machine's memory.

    Example:
        >>> check_fits("a small array", 1000)
        >>> check_fits("zoom=1000000", 1e15, available=128 * GiB)
        Traceback (most recent call last):
        ...
        ValueError: zoom=1000000 would need 931323 GiB, more than the 128 GiB this machine has.
    """
    limit = machine_memory() if available is None else available
    if nbytes > limit:
        raise ValueError(f"{what} would need {gib(nbytes)}, more than the {gib(limit)} this machine has.")


def cpu_count() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)
