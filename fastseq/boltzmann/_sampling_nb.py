"""Numba sampling kernels for Boltzmann machines: Bernoulli from logits, Beta draws, Gibbs chains.

Random numbers and reproducibility
----------------------------------
Numba (>= 0.56) accepts ``np.random.Generator`` objects in ``njit`` code and advances
their state in place. The parallel drivers take a *tuple* of S generators (a stream
tuple) and cut the flat output into S fixed, contiguous chunks: chunk ``t`` is always
drawn from ``gens[t]``, whatever thread runs it and however many threads exist. A run
is therefore reproducible from a seed and S alone (see :func:`make_streams`), on any
machine, with any ``NUMBA_NUM_THREADS``, and serial (small inputs) or parallel.

A call through Numba's Generator costs about 2.5 ns per uniform (an indirect call into
the bit generator), more than the rest of a Bernoulli draw. So each chunk draws four
53-bit words from its Generator, spreads them with splitmix64 into the state of a
register-resident xoshiro256++ stream, and takes its uniforms from that (two 24-bit
uniforms per 64-bit step for Bernoulli units, 53-bit ones for Beta).

Bernoulli draws compare a uniform with sigmoid(x) computed in float32 by a degree-6
polynomial for 2^f (relative error ~1e-7), in loops LLVM vectorises. Beta draws use
Cheng's (1978) algorithms, exact rejection samplers with one log and one exp per try:
BB where both shapes exceed 1 (every shape the trained machines feed it, accepted ~89%
of the time at the first try), BC where one is at most 1, the latter in log space so that
tiny shapes give values at (not beyond) 0 and 1 in the right proportions, never 0 / 0.
BB goes a block at a time: the block's uniforms first, then one vectorised pass tries
every entry (with the branch-free fdlibm-style ``_log_block`` / ``_exp_block``, as Numba
has no vector libm here), and the rejected entries wait in a list that is tried again,
vectorised, whenever it holds a block's worth and at the end of the chunk. BC entries
are drawn one by one. A Beta draw costs about 12 ns (15 ns from logits), against about
22 ns for the pair of Marsaglia-Tsang gammas this replaced. ``fastseq.boltzmann._sampling_py``
holds the plain NumPy twins that tests compare with in distribution.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from fastseq._util.blas import serial_blas
from fastseq._util.exp_nb import LN2_HI, LN2_LO, LOG2E, exp_reduced
from fastseq._util.numba_cache import CACHE

__all__ = ["make_streams", "bernoulli_logits", "beta_ab", "beta_mean_sigma", "beta_params",
           "gibbs_chain", "swap_replicas", "BERNOULLI", "BETA"]

BERNOULLI = 0
BETA = 1
EPS_MEAN = 1e-6   # means are clamped to [EPS_MEAN, 1 - EPS_MEAN]
NU_MIN = 1e-3     # smallest Beta concentration; nu -> 0 is a Bernoulli(m) limit
# Below this many draws the chunks run one after another in the calling thread: on a
# small or busy machine a parallel launch costs more than it saves. The chunking (and so
# every draw) is the same either way. Both thresholds are about 5 ms of serial work: on
# 2 busy cores 65,536 Beta draws took 2 ms serially and 5-10 ms on Numba's pool (omp or
# workqueue), and at 262,144 the pool still only drew level; at the former 32,768 a
# BetaRBM step jumped from 114 chains up.
PARALLEL_MIN = 1 << 21        # Bernoulli draws (~2.5 ns each)
PARALLEL_MIN_BETA = 1 << 18   # Beta draws (~12 ns each)


def make_streams(seed, n_streams: int = 8) -> tuple[np.random.Generator, ...]:
    """Return ``n_streams`` independent PCG64 generators spawned from ``seed``.

    >>> len(make_streams(0, 4))
    4
    """
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    return tuple(np.random.default_rng(s) for s in ss.spawn(n_streams))


@njit(fastmath=True, cache=CACHE, inline="always")
def beta_params(mean, sigma):
    """(alpha, beta) of the Beta with this mean and standard deviation, guarded.

    var = min(sigma^2, m(1 - m)) and nu = m(1 - m) / var - 1 >= NU_MIN: where sigma is
    too wide for the mean, the unit tends to Bernoulli(m) rather than failing.
    """
    m = min(max(mean, EPS_MEAN), 1.0 - EPS_MEAN)
    mv = m * (1.0 - m)
    var = min(sigma * sigma, mv)
    nu = max(mv / var - 1.0, NU_MIN)
    return m * nu, (1.0 - m) * nu


CHUNK_MIN = 4096  # draws per chunk at least: small outputs use fewer streams (each chunk seeds a stream)


@njit(inline="always")
def _n_chunks(n, streams):
    """Chunks (and streams) used for n draws: a function of n and the stream count only."""
    return max(1, min(streams, n // CHUNK_MIN))


_U = np.uint64
_LOG2E = LOG2E
_TWO24 = 1.0 / 16777216.0
_BLOCK = 256
_BETA_BLOCK = 512  # Beta draws per vectorised pass: a pass costs ~0.3 us besides its draws


@njit(inline="always")
def _rotl(x, k):
    return (x << _U(k)) | (x >> _U(64 - k))


@njit(inline="always")
def _splitmix(z):
    z = z + _U(0x9E3779B97F4A7C15)
    z = (z ^ (z >> _U(30))) * _U(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> _U(27))) * _U(0x94D049BB133111EB)
    return z ^ (z >> _U(31))


@njit(inline="always")
def _seed_state(g):
    # 4 x 53 bits from the chunk's Generator, spread by splitmix64 (xoshiro needs a nonzero state)
    s0 = _splitmix(_U(g.random() * 9007199254740992.0))
    s1 = _splitmix(_U(g.random() * 9007199254740992.0))
    s2 = _splitmix(_U(g.random() * 9007199254740992.0))
    s3 = _splitmix(_U(g.random() * 9007199254740992.0)) | _U(1)
    return s0, s1, s2, s3


@njit(fastmath=True, cache=CACHE)
def _sigmoid_block(x, start, m, p, bits):
    """p[:m] = sigmoid(x[start:start+m]) in float32 by a polynomial 2^f: loops that vectorise."""
    for j in range(m):
        t = min(max(-np.float32(x[start + j]) * np.float32(_LOG2E), np.float32(-126.0)), np.float32(126.0))
        k = np.floor(t)
        f = t - k
        bits[j] = (np.int32(k) + np.int32(127)) << np.int32(23)
        p[j] = ((((((np.float32(2.18775048e-04) * f + np.float32(1.23878215e-03)) * f
                    + np.float32(9.68458045e-03)) * f + np.float32(5.54804263e-02)) * f
                  + np.float32(2.40230502e-01)) * f + np.float32(6.93146929e-01)) * f + np.float32(1.0))
    scale = bits.view(np.float32)
    for j in range(m):
        p[j] = np.float32(1.0) / (np.float32(1.0) + p[j] * scale[j])


@njit(fastmath=True, cache=CACHE)
def _bernoulli_chunk(g, x, out, lo, hi):
    """out[lo:hi] = 1 where u < sigmoid(x), u a 24-bit uniform.

    The chunk's Generator seeds a register-resident xoshiro256++ stream that gives two
    uniforms per 64-bit step: about 4x cheaper than one Generator call per draw.
    """
    s0, s1, s2, s3 = _seed_state(g)
    p = np.empty(_BLOCK, np.float32)
    bits = np.empty(_BLOCK, np.int32)
    scale = np.float32(_TWO24)
    for start in range(lo, hi, _BLOCK):
        m = min(_BLOCK, hi - start)
        _sigmoid_block(x, start, m, p, bits)
        for j in range(0, m, 2):
            r = _rotl(s0 + s3, 23) + s0
            t = s1 << _U(17)
            s2 ^= s0
            s3 ^= s1
            s1 ^= s2
            s0 ^= s3
            s2 ^= t
            s3 = _rotl(s3, 45)
            out[start + j] = 1.0 if np.float32(r >> _U(40)) * scale < p[j] else 0.0
            if j + 1 < m:
                out[start + j + 1] = 1.0 if np.float32((r >> _U(16)) & _U(0xFFFFFF)) * scale < p[j + 1] else 0.0


@njit(inline="always")
def _next64(st):
    s0, s1, s2, s3 = st[0], st[1], st[2], st[3]
    r = _rotl(s0 + s3, 23) + s0
    t = s1 << _U(17)
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    st[0], st[1], st[2], st[3] = s0, s1, s2, _rotl(s3, 45)
    return r


@njit(inline="always")
def _unif(st):
    """Uniform in (0, 1): 53 random bits, never exactly 0."""
    return (np.float64(_next64(st) >> _U(11)) + 0.5) * (1.0 / 9007199254740992.0)


# Cheng's algorithms need one log and one exp per try. Numba has no vector libm here (no
# SVML), so the block pass uses these two, after fdlibm: within about 1 ulp of libm on
# their domains, and loops of them vectorise. No reassociation (it would undo the
# Cody-Waite split of ln 2), hence the explicit flags.
_SAFE_MATH = {"nnan", "ninf", "nsz", "contract"}
_EXACT_MATH = {"nsz", "contract"}  # NaN and inf kept: the guard against shapes no try accepts
_HUGE = 1e150  # BB's constants (2 a b) overflow near the square root of the largest double
_LN2_HI, _LN2_LO = LN2_HI, LN2_LO
_LN4 = 1.3862943611198906
_I = np.int64


@njit(fastmath=_SAFE_MATH, error_model="numpy", cache=CACHE)
def _log_block(x, out, m):
    """out[:m] = log(x[:m]) for normal positive x (fdlibm's ``__ieee754_log``, branch-free).

    ``x`` is scratch: it is overwritten with the reduced mantissas."""
    xi = x.view(np.int64)
    for j in range(m):
        hx = xi[j]
        mant = hx & _I(0x000FFFFFFFFFFFFF)
        top = (mant + _I(0x95F6400000000)) & _I(0x10000000000000)  # set where the mantissa >= sqrt(2)
        out[j] = np.float64((hx >> _I(52)) - _I(1023) + (top >> _I(52)))
        xi[j] = mant | (_I(0x3FF0000000000000) ^ top)               # mantissa in [sqrt(2)/2, sqrt(2))
    for j in range(m):
        f = x[j] - 1.0
        k = out[j]
        s = f / (2.0 + f)
        z = s * s
        w = z * z
        t1 = w * (3.999999999940941908e-01 + w * (2.222219843214978396e-01 + w * 1.531383769920937332e-01))
        t2 = z * (6.666666666666735130e-01 + w * (2.857142874366239149e-01
                                                  + w * (1.818357216161805012e-01 + w * 1.479819860511658591e-01)))
        hfsq = 0.5 * f * f
        out[j] = k * _LN2_HI - ((hfsq - (s * (hfsq + t1 + t2) + k * _LN2_LO)) - f)


@njit(fastmath=_SAFE_MATH, error_model="numpy", cache=CACHE)
def _exp_block(x, out, bits, m):
    """out[:m] = exp(x[:m]) for |x| < 700 (Cody-Waite reduction, degree-13 Taylor on |r| <= ln2 / 2)."""
    for j in range(m):
        k = np.floor(x[j] * _LOG2E + 0.5)
        r = (x[j] - k * _LN2_HI) - k * _LN2_LO
        out[j] = exp_reduced(r)
        bits[j] = (_I(k) + _I(1023)) << _I(52)
    scale = bits.view(np.float64)
    for j in range(m):
        out[j] *= scale[j]


@njit(inline="always")
def _logit(u):
    return math.log(u / (1.0 - u))


@njit(inline="always")
def _cheng_bc(st, a, b):
    """Beta(a, b) draw by Cheng's BC, for min(a, b) <= 1, in log space: ``w = big e^v``
    over/underflows for tiny shapes (|v| up to ~37 / min), so the test and the result use
    ``log w`` and give values at (not beyond) 0 and 1 in the right proportions."""
    big, small = max(a, b), min(a, b)
    alpha = big + small
    beta = 1.0 / small
    delta = 1.0 + big - small
    k1 = delta * (0.0138889 + 0.0416667 * small) / (big * beta - 0.777778)
    k2 = 0.25 + (0.5 + 0.25 / delta) * small
    lsmall, lbig, lalpha = math.log(small), math.log(big), math.log(alpha)
    while True:
        u1 = _unif(st)
        u2 = _unif(st)
        if u1 < 0.5:
            y = u1 * u2
            z = u1 * y
            if 0.25 * u2 + z - y >= k1:
                continue
        else:
            z = u1 * u1 * u2
            if z <= 0.25:
                lw = lbig + beta * _logit(u1)
                break
            if z >= k2:
                continue
        v = beta * _logit(u1)
        lw = lbig + v
        # log(small + w), stably: w ranges over hundreds of orders of magnitude
        top = max(lsmall, lw)
        lsum = top + math.log1p(math.exp(min(lsmall, lw) - top))
        if alpha * (lalpha - lsum + v) - _LN4 >= math.log(z):
            break
    # w / (small + w) when a is the larger shape, small / (small + w) when it is the smaller
    d = lsmall - lw if a >= b else lw - lsmall
    return 1.0 / (1.0 + math.exp(min(d, 709.0)))


@njit(inline="always")
def _new_state(g):
    st = np.empty(4, np.uint64)
    st[0], st[1], st[2], st[3] = _seed_state(g)
    return st


@njit(inline="always")
def _bb_consts(a, b):
    """BB's (lo, hi, alpha, beta) of shapes a, b; placeholders 2, 2 where min(a, b) <= 1."""
    lo0, hi0 = min(a, b), max(a, b)
    lo = lo0 if lo0 > 1.0 else 2.0
    hi = hi0 if lo0 > 1.0 else 2.0
    return lo, hi, lo + hi, math.sqrt((lo + hi - 2.0) / (2.0 * lo * hi - lo - hi))


@njit(fastmath=_SAFE_MATH, error_model="numpy", cache=CACHE)
def _bb_try(a, b, u1, u2, x, buf, m):
    """One BB try for every entry of a block, vectorised: x[j] = the draw where the try is
    accepted, else -1 (always -1 where min(a, b) <= 1: BC's entries). ``buf`` is scratch."""
    q, lq, v, e, lz, t, bits = buf
    for j in range(m):
        x[j] = _bb_consts(a[j], b[j])[3]
        q[j] = u1[j] / (1.0 - u1[j])
        t[j] = u1[j] * u1[j] * u2[j]
    _log_block(q, lq, m)
    _log_block(t, lz, m)
    for j in range(m):
        v[j] = x[j] * lq[j]
    _exp_block(v, e, bits, m)
    for j in range(m):
        lo, hi, alpha, beta = _bb_consts(a[j], b[j])
        q[j] = alpha / (hi + lo * e[j])
    _log_block(q, t, m)
    for j in range(m):
        lo, hi, alpha, beta = _bb_consts(a[j], b[j])
        w = lo * e[j]
        r = (lo + 1.0 / beta) * v[j] - _LN4
        s = lo + r - w
        z = u1[j] * u1[j] * u2[j]
        # Cheng's squeeze, then the test it short-cuts, then the exact test
        ok = (s + 2.609438 >= 5.0 * z) | (s > lz[j]) | (r + alpha * t[j] >= lz[j])
        num = w if a[j] <= b[j] else hi
        val = num / (hi + w)
        x[j] = val if ok & (min(a[j], b[j]) > 1.0) else -1.0


@njit(fastmath=_EXACT_MATH, error_model="numpy", cache=CACHE)
def _beta_block(st, a, b, out, start, m, buf):
    """out[start:start+m] = Beta(a[j], b[j]) for the block's shapes a[:m], b[:m] (float64).

    Draws the block's uniforms and makes one BB try for every entry in a vectorised pass
    (``_bb_try``: about 89% are accepted). Entries with a shape <= 1 are drawn by BC one by
    one here; rejected BB entries join the chunk's pending list (their ``out`` is set when
    a later try is accepted), which is tried again, vectorised, whenever it holds a block's
    worth (``_retry``) and until it is empty at the end of the chunk (``_finish``). Every
    try takes fresh uniforms, so each value is an exact draw; the order of the uniforms
    depends on the chunk alone.
    """
    u1, u2, x, pidx, pa, pb, pn, scratch = buf
    for j in range(m):
        u1[j] = _unif(st)
        u2[j] = _unif(st)
    _bb_try(a, b, u1, u2, x, scratch, m)
    n = pn[0]
    for j in range(m):
        if x[j] >= 0.0 and a[j] < _HUGE and b[j] < _HUGE:
            continue
        if not (a[j] < _HUGE and b[j] < _HUGE):
            x[j] = a[j] / (a[j] + b[j])  # NaN or infinite shapes: no try would end
        elif min(a[j], b[j]) > 1.0:
            pidx[n], pa[n], pb[n] = start + j, a[j], b[j]
            n += 1
        else:
            x[j] = _cheng_bc(st, a[j], b[j])
    for j in range(m):
        out[start + j] = x[j]
    pn[0] = n
    while pn[0] >= _BETA_BLOCK:  # the list holds at most 2 blocks' worth
        _retry(st, out, buf)


@njit(fastmath=True, cache=CACHE)
def _retry(st, out, buf):
    """One more BB try for every pending entry (vectorised); the rejected stay pending."""
    u1, u2, x, pidx, pa, pb, pn, scratch = buf
    n = pn[0]
    for i in range(n):
        u1[i] = _unif(st)
        u2[i] = _unif(st)
    _bb_try(pa, pb, u1, u2, x, scratch, n)
    left = 0
    for i in range(n):
        if x[i] >= 0.0:
            out[pidx[i]] = x[i]
        else:
            pidx[left], pa[left], pb[left] = pidx[i], pa[i], pb[i]
            left += 1
    pn[0] = left


@njit(inline="always")
def _finish(st, out, buf):
    while buf[6][0] > 0:
        _retry(st, out, buf)


@njit(inline="always")
def _block_buffers():
    """``_beta_block``'s buffers: uniforms, draws, the pending list and its length, scratch."""
    n = 2 * _BETA_BLOCK
    return (np.empty(n), np.empty(n), np.empty(n), np.empty(n, np.intp), np.empty(n), np.empty(n),
            np.zeros(1, np.intp),
            (np.empty(n), np.empty(n), np.empty(n), np.empty(n), np.empty(n), np.empty(n), np.empty(n, np.int64)))


@njit(fastmath=True, cache=CACHE)
def _beta_ab_chunk(g, a, b, out, lo, hi):
    st = _new_state(g)
    buf = _block_buffers()
    sa, sb = np.empty(_BETA_BLOCK), np.empty(_BETA_BLOCK)
    for start in range(lo, hi, _BETA_BLOCK):
        m = min(_BETA_BLOCK, hi - start)
        for j in range(m):
            sa[j] = a[start + j]
            sb[j] = b[start + j]
        _beta_block(st, sa, sb, out, start, m, buf)
    _finish(st, out, buf)


@njit(fastmath=True, error_model="numpy", cache=CACHE)
def _params_block(mean, sig, sa, sb, m):
    """sa, sb = beta_params(mean, sig) over a block (vectorised)."""
    for j in range(m):
        sa[j], sb[j] = beta_params(mean[j], sig[j])


@njit(inline="always")
def _sigma_block(sigma, start, m, sig):
    """sig[:m] = sigma[i % size] for i in start..start+m, without a division per entry."""
    col = start % sigma.size
    for j in range(m):
        sig[j] = sigma[col]
        col += 1
        if col == sigma.size:
            col = 0


@njit(fastmath=True, cache=CACHE)
def _beta_ms_chunk(g, mean, sigma, out, lo, hi):
    st = _new_state(g)
    buf = _block_buffers()
    sa, sb, mu, sig = np.empty(_BETA_BLOCK), np.empty(_BETA_BLOCK), np.empty(_BETA_BLOCK), np.empty(_BETA_BLOCK)
    for start in range(lo, hi, _BETA_BLOCK):
        m = min(_BETA_BLOCK, hi - start)
        for j in range(m):
            mu[j] = mean[start + j]
        _sigma_block(sigma, start, m, sig)
        _params_block(mu, sig, sa, sb, m)
        _beta_block(st, sa, sb, out, start, m, buf)
    _finish(st, out, buf)


@njit(fastmath=_SAFE_MATH, error_model="numpy", cache=CACHE)
def _sigmoid64_block(x, start, m, mu, tmp, bits):
    """mu[:m] = sigmoid(x[start:start+m]) in float64 by ``_exp_block`` (vectorised). Inputs
    beyond +-700 are clipped there: their means are clamped to [EPS_MEAN, 1 - EPS_MEAN] anyway."""
    for j in range(m):
        tmp[j] = min(max(-np.float64(x[start + j]), -700.0), 700.0)
    _exp_block(tmp, mu, bits, m)
    for j in range(m):
        mu[j] = 1.0 / (1.0 + mu[j])


@njit(fastmath=True, cache=CACHE)
def _sigmoid_beta_chunk(g, x, sigma, out, lo, hi):
    st = _new_state(g)
    buf = _block_buffers()
    sa, sb, mu, sig = np.empty(_BETA_BLOCK), np.empty(_BETA_BLOCK), np.empty(_BETA_BLOCK), np.empty(_BETA_BLOCK)
    for start in range(lo, hi, _BETA_BLOCK):
        m = min(_BETA_BLOCK, hi - start)
        _sigmoid64_block(x, start, m, mu, sa, buf[7][6])
        _sigma_block(sigma, start, m, sig)
        _params_block(mu, sig, sa, sb, m)
        _beta_block(st, sa, sb, out, start, m, buf)
    _finish(st, out, buf)


@njit(parallel=True, cache=CACHE)
def _bernoulli_driver(gens, x, out):
    n = out.size
    s = _n_chunks(n, len(gens))
    for t in prange(s):
        _bernoulli_chunk(gens[t], x, out, n * t // s, n * (t + 1) // s)


@njit(parallel=True, cache=CACHE)
def _beta_ab_driver(gens, a, b, out):
    n = out.size
    s = _n_chunks(n, len(gens))
    for t in prange(s):
        _beta_ab_chunk(gens[t], a, b, out, n * t // s, n * (t + 1) // s)


@njit(parallel=True, cache=CACHE)
def _beta_ms_driver(gens, mean, sigma, out):
    n = out.size
    s = _n_chunks(n, len(gens))
    for t in prange(s):
        _beta_ms_chunk(gens[t], mean, sigma, out, n * t // s, n * (t + 1) // s)


@njit(parallel=True, cache=CACHE)
def _sigmoid_beta_driver(gens, x, sigma, out):
    n = out.size
    s = _n_chunks(n, len(gens))
    for t in prange(s):
        _sigmoid_beta_chunk(gens[t], x, sigma, out, n * t // s, n * (t + 1) // s)


def _run(leaf, driver, gens, *arrays, beta: bool = True) -> None:
    """Fill ``arrays[-1]`` chunk by chunk: in parallel if large, else serially (same draws)."""
    out = arrays[-1]
    n, s = out.size, _n_chunks(out.size, len(gens))
    if n >= (PARALLEL_MIN_BETA if beta else PARALLEL_MIN):
        driver(gens, *arrays)
        return
    for t in range(s):
        leaf(gens[t], *arrays, n * t // s, n * (t + 1) // s)


def _sigma_row(sigma, n_cols: int, dtype) -> np.ndarray:
    """sigma as a flat array indexed by ``i % size``: a scalar or one value per column."""
    s = np.ascontiguousarray(np.broadcast_to(np.asarray(sigma, dtype=dtype), (n_cols,)))
    return s if s.size else np.ones(1, dtype=dtype)


def bernoulli_logits(x: np.ndarray, gens, out: np.ndarray | None = None) -> np.ndarray:
    """Binary draws with P(1) = sigmoid(x), same shape and float dtype as ``x``.

    >>> bernoulli_logits(np.array([-50.0, 50.0]), make_streams(0)).tolist()
    [0.0, 1.0]
    """
    x = np.ascontiguousarray(x)
    res = np.empty_like(x) if out is None else out
    if x.size:
        _run(_bernoulli_chunk, _bernoulli_driver, gens, x.reshape(-1), res.reshape(-1), beta=False)
    return res


def beta_ab(alpha: np.ndarray, beta: np.ndarray, gens) -> np.ndarray:
    """Beta(alpha, beta) draws (arrays of one shape, all entries > 0), dtype of ``alpha``."""
    alpha = np.ascontiguousarray(alpha)
    beta = np.ascontiguousarray(beta, dtype=alpha.dtype)
    out = np.empty_like(alpha)
    if alpha.size:
        _run(_beta_ab_chunk, _beta_ab_driver, gens, alpha.reshape(-1), beta.reshape(-1), out.reshape(-1))
    return out


def beta_mean_sigma(mean: np.ndarray, sigma, gens) -> np.ndarray:
    """Beta draws with the given means and standard deviation (guarded, see beta_params).

    ``sigma`` is a scalar or one value per last-axis column of ``mean``.
    """
    mean = np.ascontiguousarray(mean)
    out = np.empty_like(mean)
    if mean.size:
        cols = mean.shape[-1] if mean.ndim else 1
        _run(_beta_ms_chunk, _beta_ms_driver, gens, mean.reshape(-1), _sigma_row(sigma, cols, mean.dtype),
             out.reshape(-1))
    return out


def sigmoid_beta(x: np.ndarray, sigma, gens, out: np.ndarray | None = None) -> np.ndarray:
    """Beta draws with mean sigmoid(x) and standard deviation sigma (fused)."""
    x = np.ascontiguousarray(x)
    res = np.empty_like(x) if out is None else out
    if x.size:
        cols = x.shape[-1] if x.ndim else 1
        _run(_sigmoid_beta_chunk, _sigmoid_beta_driver, gens, x.reshape(-1), _sigma_row(sigma, cols, x.dtype),
             res.reshape(-1))
    return res


@njit(cache=CACHE)
def _sample_units(kind, gens, pre, bias, sigma, out):
    """out = draws with mean sigmoid(pre + bias) (``pre`` is scratch: the bias is added in place).

    Serial over the fixed chunks, in the calling thread: the chain kernels run under
    ``serial_blas`` (their products on one BLAS thread too), so no step waits for a second
    thread to get a core and a step's time grows with the chains alone, on a busy machine too.
    """
    rows, cols = pre.shape
    for i in range(rows):
        for j in range(cols):
            pre[i, j] += bias[j]
    if kind == BERNOULLI:
        _bernoulli_units(gens, pre, out)
        return
    x, o = pre.reshape(-1), out.reshape(-1)
    n, s = o.size, _n_chunks(o.size, len(gens))
    for t in range(s):
        _sigmoid_beta_chunk(gens[t], x, sigma, o, n * t // s, n * (t + 1) // s)


@njit(cache=CACHE)
def _bernoulli_units(gens, logits, out):
    """out = 1 with probability sigmoid(logits), elementwise: the Bernoulli case of
    :func:`_sample_units` without a bias (the same chunks and streams)."""
    x, o = logits.reshape(-1), out.reshape(-1)
    n, s = o.size, _n_chunks(o.size, len(gens))
    for t in range(s):
        _bernoulli_chunk(gens[t], x, o, n * t // s, n * (t + 1) // s)


@njit(cache=CACHE)
def _gibbs_chain_kernel(gens, h, w, b, c, k, vis_kind, hid_kind, sigma_v, sigma_h, v_out):
    """k half-step pairs from hidden state h (B x H, updated in place): v ~ p(v|h), h ~ p(h|v).

    The last step draws v only, so v_out holds v_k and h holds h_{k-1}.
    """
    wt = w.T  # F-contiguous view: BLAS reads it transposed, no copy
    for step in range(k):
        _sample_units(vis_kind, gens, np.dot(h, wt), b, sigma_v, v_out)
        if step + 1 < k:
            _sample_units(hid_kind, gens, np.dot(v_out, w), c, sigma_h, h)


def gibbs_chain(h0: np.ndarray, w: np.ndarray, b: np.ndarray, c: np.ndarray, k: int, gens,
                vis_kind: int = BERNOULLI, hid_kind: int = BERNOULLI,
                sigma_v=1.0, sigma_h=1.0) -> tuple[np.ndarray, np.ndarray]:
    """Run k Gibbs steps of a sigmoid-mean RBM from hidden states ``h0`` (B x H).

    ``w`` is D x H, ``b`` (D,) visible and ``c`` (H,) hidden biases. Units are
    Bernoulli or Beta(mean sigmoid(pre), sigma). Returns ``(v_k, h_{k-1})`` as new
    arrays; ``h0`` is not modified. Runs on one thread (see ``_blas.serial_blas``).
    """
    dtype = w.dtype
    h = np.array(h0, dtype=dtype, order="C", copy=True)
    v = np.empty((h.shape[0], w.shape[0]), dtype=dtype)
    if k < 1 or h.shape[0] == 0:
        return v, h
    with serial_blas():
        _gibbs_chain_kernel(gens, h, np.ascontiguousarray(w), np.ascontiguousarray(b, dtype=dtype),
                            np.ascontiguousarray(c, dtype=dtype), int(k), int(vis_kind), int(hid_kind),
                            _sigma_row(sigma_v, w.shape[0], dtype), _sigma_row(sigma_h, w.shape[1], dtype), v)
    return v, h


@njit(cache=CACHE)
def _swap_kernel(energy, betas, parity, u, order, accepted):
    """Metropolis swaps of the pairs (m, m + 1), m = parity, parity + 2, ..., of every chain.

    No fastmath: a NaN energy difference must compare false (rejected), and an infinite one
    must keep its sign.
    """
    n_rungs, n_chains = energy.shape
    for n in range(n_chains):
        for m in range(parity, n_rungs - 1, 2):
            d = (betas[m] - betas[m + 1]) * (energy[m, n] - energy[m + 1, n])
            if d >= 0.0 or u[m, n] < math.exp(d):
                e, o = energy[m, n], order[m, n]
                energy[m, n], order[m, n] = energy[m + 1, n], order[m + 1, n]
                energy[m + 1, n], order[m + 1, n] = e, o
                accepted[m] += 1


def swap_replicas(energy: np.ndarray, betas: np.ndarray, parity: int, rng: np.random.Generator,
                  order: np.ndarray, accepted: np.ndarray) -> None:
    """One round of replica-exchange swaps between neighbouring temperatures, in place.

    ``energy`` is ``M x N`` float64: the energy ``E(v, h)`` (at inverse temperature 1) of the
    state that rung m of chain n holds; ``betas`` the M inverse temperatures. The pairs
    ``(m, m + 1)`` with ``m = parity, parity + 2, ...`` (disjoint, so they swap independently)
    exchange their states with probability ``min(1, exp((beta_m - beta_{m+1}) (E_m - E_{m+1})))``,
    which leaves the product of the tempered distributions ``exp(-beta_m E)`` unchanged. A swap
    exchanges the two entries of ``energy`` and of ``order`` (``M x N`` intp, where each state
    came from) and adds one to ``accepted[m]`` (``(M - 1,)`` int64). The uniforms are one
    ``rng.random((M - 1, N))`` draw whatever the parity, so a run depends on the seed alone.

    >>> e = np.array([[5.0], [1.0]]); order = np.array([[0], [1]]); acc = np.zeros(1, np.int64)
    >>> swap_replicas(e, np.array([1.0, 0.5]), 0, np.random.default_rng(0), order, acc)
    >>> order.ravel().tolist(), acc.tolist()   # the lower energy moves to beta = 1: always accepted
    ([1, 0], [1])
    """
    n_rungs, n_chains = energy.shape
    if n_rungs < 2:
        return
    _swap_kernel(energy, betas, int(parity), rng.random((n_rungs - 1, n_chains)), order, accepted)
