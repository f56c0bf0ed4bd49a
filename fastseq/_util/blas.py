"""One BLAS thread while Numba kernels run (``serial_blas``).

Numba's ``np.dot`` calls scipy's BLAS from inside compiled loops: the Boltzmann machines'
Gibbs and CD kernels, and the fused recurrent engine where neither fastseq's product
kernel nor MKL is there. Those products are small and sit between serial loops.

The Gibbs and CD kernels call the BLAS that Numba's ``np.dot`` uses (scipy's) between
serial sampling loops. OpenBLAS splits a product over its threads once ``M N K`` passes
about 5e5 (for 288 x 128 weights: from 15 chains up), and the product then waits for its
second thread, which on a machine with other busy processes must first win a core: a
64-chain RRBM step went from 0.8 ms to anywhere between 1 and 32 ms, with the process
using no more CPU time than the wall clock (it waited, it did not work). 14 chains took
0.23 ms a step, 15 took 5 ms. On one thread the step keeps its time, linear in the chains.
The setting is changed only for the duration of the call and restored afterwards, so
importing fastseq, or running it, leaves the process's thread settings as they were.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

__all__ = ["serial_blas", "blas_libs"]

_BLAS_LIBS: list | None = None


def blas_libs() -> list:
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
    saved = [(lib, lib.get_num_threads()) for lib in blas_libs()]
    for lib, n in saved:
        if n != 1:
            lib.set_num_threads(1)
    try:
        yield
    finally:
        for lib, n in saved:
            if n != 1:
                lib.set_num_threads(n)
