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
register-resident xoshiro256++ stream, and takes its bulk uniforms from that (two 24-bit
uniforms per 64-bit step for Bernoulli units, 53-bit ones for Beta). Normal variates
come from the Generator's own ziggurat, which is already fast.

Bernoulli draws compare a uniform with sigmoid(x) computed in float32 by a degree-6
polynomial for 2^f (relative error ~1e-7), in loops LLVM vectorises. Beta draws are
``X / (X + Y)`` of two Marsaglia-Tsang gamma variates, computed in log space when a
shape is below 1 (the boost ``Gamma(a) = Gamma(a + 1) U^(1/a)``), so tiny shapes give
values at 0 or 1 in the right proportions instead of 0 / 0. They go 256 at a time: the
block's normals and uniforms first, then one vectorised pass proposes every gamma and
keeps those the squeeze test accepts, and the few others are finished one by one by the
same algorithm (``_beta_block``): about 1.5x faster than one draw after another, and as
exact. ``fastseq.boltzmann._sampling_py``
holds the plain NumPy twins that tests compare with in distribution.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from fastseq._util.blas import serial_blas

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
PARALLEL_MIN_BETA = 1 << 18   # Beta draws (~25 ns each)


def make_streams(seed, n_streams: int = 8) -> tuple[np.random.Generator, ...]:
    """Return ``n_streams`` independent PCG64 generators spawned from ``seed``.

    >>> len(make_streams(0, 4))
    4
    """
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    return tuple(np.random.default_rng(s) for s in ss.spawn(n_streams))


@njit(fastmath=True, cache=True, inline="always")
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
_LOG2E = 1.4426950408889634
_TWO24 = 1.0 / 16777216.0
_BLOCK = 256


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


@njit(fastmath=True, cache=True)
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


@njit(fastmath=True, cache=True)
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


@njit(inline="always")
def _gamma_ge1(g, st, a):
    """Gamma(a, 1) for a >= 1 (Marsaglia & Tsang 2000): normals from the Generator's
    ziggurat, uniforms from the chunk's xoshiro stream."""
    d = a - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    while True:
        x = g.standard_normal()
        v = 1.0 + c * x
        if v <= 0.0:
            continue
        v = v * v * v
        u = _unif(st)
        xx = x * x
        if u < 1.0 - 0.0331 * xx * xx:
            return d * v
        if math.log(u) < 0.5 * xx + d * (1.0 - v + math.log(v)):
            return d * v


@njit(inline="always")
def _log_gamma_draw(g, st, a):
    """log of a Gamma(a, 1) draw; shapes < 1 by the boost Gamma(a) = Gamma(a + 1) U^(1/a)."""
    if a >= 1.0:
        return math.log(_gamma_ge1(g, st, a))
    return math.log(_gamma_ge1(g, st, a + 1.0)) + math.log(_unif(st)) / a


@njit(inline="always")
def _beta_draw(g, st, a, b):
    """Beta(a, b) as X / (X + Y) of two gammas; in log space when a shape is < 1, so that
    tiny shapes give values at (not beyond) 0 and 1 instead of 0 / 0."""
    if a >= 1.0 and b >= 1.0:
        x = _gamma_ge1(g, st, a)
        return x / (x + _gamma_ge1(g, st, b))
    if a < 1.0 and b < 1.0:
        # Johnk (1964), in log space as NumPy does: X = U^(1/a), Y = V^(1/b), accepted when
        # X + Y <= 1 (probability Gamma(a+1)Gamma(b+1)/Gamma(a+b+1) >= 1/2); no gammas needed
        while True:
            lx = math.log(_unif(st)) / a
            ly = math.log(_unif(st)) / b
            top = max(lx, ly)
            lsum = top + math.log(math.exp(lx - top) + math.exp(ly - top))
            if lsum <= 0.0:
                return math.exp(lx - lsum)
    lx = _log_gamma_draw(g, st, a)
    ly = _log_gamma_draw(g, st, b)
    return 1.0 / (1.0 + math.exp(min(ly - lx, 745.0)))


@njit(inline="always")
def _new_state(g):
    st = np.empty(4, np.uint64)
    st[0], st[1], st[2], st[3] = _seed_state(g)
    return st


@njit(fastmath=True, cache=True)
def _squeeze_gammas(s, z, u, out, m):
    """out[j] = Gamma(s[j]) by one Marsaglia-Tsang proposal (normal z[j], uniform u[j]) where
    the cheap squeeze test accepts it, else -1 (settled by ``_settle_gamma``). Branch-free,
    so LLVM vectorises it; shapes below 1 are proposed at 1 and redrawn by the caller."""
    for j in range(m):
        d = max(s[j], 1.0) - 1.0 / 3.0
        v = 1.0 + z[j] / math.sqrt(9.0 * d)
        zz = z[j] * z[j]
        ok = (v > 0.0) & (u[j] < 1.0 - 0.0331 * zz * zz)
        out[j] = d * v * v * v if ok else -1.0


@njit(inline="always")
def _settle_gamma(g, st, a, z, u):
    """Finish a proposal the squeeze left open: Marsaglia-Tsang's log test on the same
    (z, u), and a fresh ``_gamma_ge1`` draw if the proposal is rejected."""
    d = a - 1.0 / 3.0
    v = 1.0 + z / math.sqrt(9.0 * d)
    if v > 0.0:
        v = v * v * v
        if math.log(u) < 0.5 * z * z + d * (1.0 - v + math.log(v)):
            return d * v
    return _gamma_ge1(g, st, a)


@njit(fastmath=True, cache=True)
def _beta_block(g, st, a, b, out, lo, m, za, zb, ua, ub, ga, gb):
    """out[lo:lo+m] = Beta(a[j], b[j]) for the block's shapes a[:m], b[:m] (float64).

    Draws all the block's normals and uniforms first, proposes every gamma at once in a
    vectorised pass (``_squeeze_gammas``; about 92% of gammas settle there), then fixes the rest one
    by one: the log test for squeeze failures, ``_beta_draw`` (log space, Johnk) where a
    shape is below 1. Each fix uses the draws' own rule, so every value is an exact draw.
    """
    for j in range(m):
        za[j] = g.standard_normal()
        zb[j] = g.standard_normal()
        ua[j] = _unif(st)
        ub[j] = _unif(st)
    _squeeze_gammas(a, za, ua, ga, m)
    _squeeze_gammas(b, zb, ub, gb, m)
    for j in range(m):
        out[lo + j] = ga[j] / (ga[j] + gb[j])
    for j in range(m):
        if a[j] < 1.0 or b[j] < 1.0:
            # the proposals above are independent of this draw: discarding them is exact
            out[lo + j] = _beta_draw(g, st, a[j], b[j])
        elif ga[j] < 0.0 or gb[j] < 0.0:
            x = ga[j] if ga[j] >= 0.0 else _settle_gamma(g, st, a[j], za[j], ua[j])
            y = gb[j] if gb[j] >= 0.0 else _settle_gamma(g, st, b[j], zb[j], ub[j])
            out[lo + j] = x / (x + y)


@njit(inline="always")
def _block_buffers():
    return (np.empty(_BLOCK), np.empty(_BLOCK), np.empty(_BLOCK), np.empty(_BLOCK), np.empty(_BLOCK),
            np.empty(_BLOCK), np.empty(_BLOCK), np.empty(_BLOCK))


@njit(fastmath=True, cache=True)
def _beta_ab_chunk(g, a, b, out, lo, hi):
    st = _new_state(g)
    sa, sb, za, zb, ua, ub, ga, gb = _block_buffers()
    for start in range(lo, hi, _BLOCK):
        m = min(_BLOCK, hi - start)
        for j in range(m):
            sa[j] = a[start + j]
            sb[j] = b[start + j]
        _beta_block(g, st, sa, sb, out, start, m, za, zb, ua, ub, ga, gb)


@njit(fastmath=True, cache=True)
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


@njit(fastmath=True, cache=True)
def _beta_ms_chunk(g, mean, sigma, out, lo, hi):
    st = _new_state(g)
    sa, sb, za, zb, ua, ub, ga, gb = _block_buffers()
    mu, sig = np.empty(_BLOCK), np.empty(_BLOCK)
    for start in range(lo, hi, _BLOCK):
        m = min(_BLOCK, hi - start)
        for j in range(m):
            mu[j] = mean[start + j]
        _sigma_block(sigma, start, m, sig)
        _params_block(mu, sig, sa, sb, m)
        _beta_block(g, st, sa, sb, out, start, m, za, zb, ua, ub, ga, gb)


@njit(fastmath=True, cache=True)
def _sigmoid_beta_chunk(g, x, sigma, out, lo, hi):
    st = _new_state(g)
    sa, sb, za, zb, ua, ub, ga, gb = _block_buffers()
    mu, sig = np.empty(_BLOCK), np.empty(_BLOCK)
    for start in range(lo, hi, _BLOCK):
        m = min(_BLOCK, hi - start)
        for j in range(m):
            mu[j] = 1.0 / (1.0 + math.exp(-x[start + j]))
        _sigma_block(sigma, start, m, sig)
        _params_block(mu, sig, sa, sb, m)
        _beta_block(g, st, sa, sb, out, start, m, za, zb, ua, ub, ga, gb)


@njit(parallel=True, cache=True)
def _bernoulli_driver(gens, x, out):
    n = out.size
    s = _n_chunks(n, len(gens))
    for t in prange(s):
        _bernoulli_chunk(gens[t], x, out, n * t // s, n * (t + 1) // s)


@njit(parallel=True, cache=True)
def _beta_ab_driver(gens, a, b, out):
    n = out.size
    s = _n_chunks(n, len(gens))
    for t in prange(s):
        _beta_ab_chunk(gens[t], a, b, out, n * t // s, n * (t + 1) // s)


@njit(parallel=True, cache=True)
def _beta_ms_driver(gens, mean, sigma, out):
    n = out.size
    s = _n_chunks(n, len(gens))
    for t in prange(s):
        _beta_ms_chunk(gens[t], mean, sigma, out, n * t // s, n * (t + 1) // s)


@njit(parallel=True, cache=True)
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


@njit(cache=True)
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
    x, o = pre.reshape(-1), out.reshape(-1)
    n, s = o.size, _n_chunks(o.size, len(gens))
    for t in range(s):
        if kind == BERNOULLI:
            _bernoulli_chunk(gens[t], x, o, n * t // s, n * (t + 1) // s)
        else:
            _sigmoid_beta_chunk(gens[t], x, sigma, o, n * t // s, n * (t + 1) // s)


@njit(cache=True)
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


@njit(cache=True)
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
