"""One way the benchmark scripts time things: one clock, interleaved repeats, medians and spread.

Contenders take turns (A, B, C, A, B, C, ...) so drifts in machine load hit them alike;
each runs once untimed first (Numba compiles, allocators and caches warm up) unless the
script says otherwise. A case returns its own sample (:func:`interleave`: seconds, a rate,
anything) or is timed here (:func:`time_cases`: seconds per call).

Example:
    >>> samples = time_cases({"sum": lambda: sum(range(100)), "max": lambda: max(range(100))}, repeats=3)
    >>> [len(v) for v in samples.values()]
    [3, 3]
    >>> summary([3.0, 1.0, 2.0])
    {'median': 2.0, 'min': 1.0, 'max': 3.0}
    >>> spread([3.0, 1.0, 2.0])
    [0.5, 1.5]
"""
from __future__ import annotations

import statistics
import time
from typing import Callable, Hashable, Mapping, Sequence, TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    """Seconds one call of ``fn`` took (``time.perf_counter``), and what it returned."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def seconds(fn: Callable[[], object], inner: int = 1) -> float:
    """Seconds per call of ``fn``, averaged over ``inner`` calls in a row (for calls too short
    to time one by one)."""
    if inner < 1:
        raise ValueError(f"Expected inner to be at least 1, got {inner}")
    start = time.perf_counter()
    for _ in range(inner):
        fn()
    return (time.perf_counter() - start) / inner


def per_second(fn: Callable[[], float]) -> float:
    """Work per second of one call: ``fn`` returns the work it did (steps, windows, ...)."""
    t, work = timed(fn)
    return work / t


def interleave(cases: Mapping[K, Callable[[], T]], repeats: int | Mapping[K, int], *,
               warmup: bool = True) -> dict[K, list[T]]:
    """Each case's samples: one untimed call each (``warmup``), then rounds taking turns in
    the order of ``cases``. ``repeats`` is the number of rounds, or a number per case: a case
    with fewer sits out the later rounds."""
    counts = {k: repeats for k in cases} if isinstance(repeats, int) else {k: repeats[k] for k in cases}
    if any(n < 0 for n in counts.values()):
        raise ValueError(f"Expected repeats to be at least 0, got {counts}")
    if warmup:
        for fn in cases.values():
            fn()
    out: dict[K, list[T]] = {k: [] for k in cases}
    for r in range(max(counts.values(), default=0)):
        for k, fn in cases.items():
            if r < counts[k]:
                out[k].append(fn())
    return out


def time_cases(cases: Mapping[K, Callable[[], object]], repeats: int | Mapping[K, int], *,
               warmup: bool = True, inner: int = 1) -> dict[K, list[float]]:
    """Seconds per call of each case (``inner`` calls a sample), interleaved as in
    :func:`interleave`; the warm-up is one plain call of each."""
    if warmup:
        for fn in cases.values():
            fn()
    return interleave({k: (lambda fn=fn: seconds(fn, inner)) for k, fn in cases.items()}, repeats, warmup=False)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def summary(values: Sequence[float]) -> dict[str, float]:
    """Median, smallest and largest of the samples."""
    return {"median": median(values), "min": float(min(values)), "max": float(max(values))}


def spread(values: Sequence[float]) -> list[float]:
    """Smallest and largest sample over the median: how far the repeats strayed."""
    m = median(values)
    return [min(values) / m, max(values) / m]


def processor() -> str:
    """The processor's model name (Linux), and which product library the fused engine uses on it:
    figures from different processors are not comparable (MKL runs AVX-512 code on Intel's, AVX2
    on AMD's, where fastseq's own kernel runs instead)."""
    name = "unknown processor"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            name = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), name)
    except OSError:
        pass
    from fastseq.bptt._blas_nb import gemm

    return f"{name}; float32 products: {gemm().source}"
