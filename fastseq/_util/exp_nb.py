"""The exponential's core for fastseq's Numba kernels: Cody-Waite reduction constants and the
degree-13 Taylor polynomial on ``|r| <= ln2 / 2``, shared by the fused recurrent kernels
(:mod:`fastseq.bptt._fused_nb`) and the samplers (:mod:`fastseq.boltzmann._sampling_nb`).

``exp(x) = 2^n * exp_reduced(r)`` with ``n = floor(x * LOG2E + 0.5)`` and
``r = (x - n * LN2_HI) - n * LN2_LO``; each caller scales by ``2^n`` its own way (a bit cast
per element, or a pass over an array of exponent bits) and within 1 ulp of libm over
``|x| < 700`` (tested against ``math.exp`` in both callers' tests).
"""
from __future__ import annotations

from numba import njit

__all__ = ["LOG2E", "LN2_HI", "LN2_LO", "exp_reduced"]

LOG2E = 1.4426950408889634
LN2_HI = 6.93147180369123816490e-01  # low bits zero: n * LN2_HI is exact for |n| < 2^11
LN2_LO = 1.90821492927058770002e-10


@njit(inline="always")
def exp_reduced(r):
    """``exp(r)`` for ``|r| <= ln2 / 2``: the Taylor polynomial of degree 13, in Horner form."""
    p = 1.0 / 6227020800.0
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    return p * r + 1.0
