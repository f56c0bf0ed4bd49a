"""One BLAS thread while the Numba chain kernels run (``serial_blas``).

The Gibbs and CD kernels call the BLAS that Numba's ``np.dot`` uses (scipy's) between
serial sampling loops. OpenBLAS splits a product over its threads once ``M N K`` passes
about 5e5 (for 288 x 128 weights: from 15 chains up), and its idle workers then spin while
the calling thread samples, so a step needs two cores for the work of one. Beside any other
busy process they and the sampler take turns on the cores, and a step that takes 0.8 ms
alone took 1 to 32 ms (bench/compare_gibbs_chains.py); on one thread it keeps its time.
The setting is changed only for the duration of the call and restored afterwards, so
importing fastseq, or running it, leaves the process's thread settings as they were.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

__all__ = ["serial_blas"]

_BLAS_LIBS: list | None = None


def _blas_libs() -> list:
    """threadpoolctl's controllers of the loaded BLAS libraries (found once)."""
    global _BLAS_LIBS
    if _BLAS_LIBS is None:
        import scipy.linalg.cython_blas  # noqa: F401  (loads the library Numba calls before the look-up)
        from threadpoolctl import ThreadpoolController

        _BLAS_LIBS = [lib for lib in ThreadpoolController().lib_controllers if lib.user_api == "blas"]
    return _BLAS_LIBS


@contextlib.contextmanager
def serial_blas() -> Iterator[None]:
    """Run the block with every BLAS library on one thread, then restore each one's count."""
    saved = [(lib, lib.get_num_threads()) for lib in _blas_libs()]
    for lib, n in saved:
        if n != 1:
            lib.set_num_threads(1)
    try:
        yield
    finally:
        for lib, n in saved:
            if n != 1:
                lib.set_num_threads(n)
