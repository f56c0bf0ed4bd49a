"""Numba kernels for ordering tiles by correlation (used by :mod:`fastseq.mosaic.order`).

Rows ``z`` arrive standardized (zero mean and unit norm, or all zero for constant
rows), so the correlation of two rows is their dot product and the distance
between them is ``1 - r``. Correlations come from an ``N x N`` matrix ``c`` when one
fits in memory; a ``0 x 0`` ``c`` means "compute dot products of ``z`` instead".
Plain twins of every kernel live in :mod:`fastseq.mosaic._order_py`.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from fastseq._util.numba_cache import CACHE

EPS = 1e-9  # smallest gain that counts as an improvement (float noise stays out)


@njit(cache=CACHE, fastmath=True)
def _corr(c, z, a, b):
    if c.shape[0] > 0:
        return np.float64(c[a, b])
    s = 0.0
    for t in range(z.shape[1]):
        s += z[a, t] * z[b, t]
    return s


@njit(cache=CACHE)
def _dist(c, z, a, b):
    """``1 - r(a, b)``; 0 when either end is missing (-1), as at the ends of a path."""
    if a < 0 or b < 0:
        return 0.0
    return 1.0 - _corr(c, z, a, b)


# ---------------------------------------------------------------------------- greedy chain


@njit(cache=CACHE)
def _best_unused_row(row, used):
    """Index of the unused entry with the largest value (lowest index on ties), or -1."""
    best = -1
    val = -np.inf
    for k in range(row.shape[0]):
        if not used[k] and row[k] > val:
            val = row[k]
            best = k
    return best, val


@njit(cache=CACHE)
def _best_unused(e, c, z, nbr, nsim, ptr, used, row):
    """Best unused tile for the chain end ``e``: from the matrix row, else the first
    unused entry of its sorted neighbour list, else a full row of dot products."""
    if c.shape[0] > 0:
        return _best_unused_row(c[e], used)
    k = nbr.shape[1]
    while ptr[e] < k and used[nbr[e, ptr[e]]]:
        ptr[e] += 1
    if ptr[e] < k:
        return nbr[e, ptr[e]], np.float64(nsim[e, ptr[e]])
    for i in range(z.shape[0]):
        row[i] = -np.inf if used[i] else _corr(c, z, e, i)
    return _best_unused_row(row, used)


@njit(cache=CACHE)
def greedy_chain(c, z, nbr, nsim, first, second):
    """Greedy chain from the pair ``(first, second)``; returns the N tile indices in order.

    The chain grows at whichever end has the more correlated unused tile (the right
    end on ties); each end keeps its best candidate until that tile is taken, so the
    work is O(N^2). Without a matrix, ``nbr`` / ``nsim`` are ``N x K`` neighbour lists
    sorted by decreasing correlation (lowest index first on ties).
    """
    n = c.shape[0] if c.shape[0] > 0 else z.shape[0]
    path = np.empty(2 * n, dtype=np.intp)
    used = np.zeros(n, dtype=np.bool_)
    ptr = np.zeros(n, dtype=np.intp)
    row = np.empty(n, dtype=np.float64)
    lo = n
    hi = n + 1
    path[lo] = first
    path[hi] = second
    used[first] = True
    used[second] = True
    ba, va = _best_unused(first, c, z, nbr, nsim, ptr, used, row)
    bb, vb = _best_unused(second, c, z, nbr, nsim, ptr, used, row)
    for _ in range(n - 2):
        if vb >= va:
            x = bb
            hi += 1
            path[hi] = x
            used[x] = True
            bb, vb = _best_unused(x, c, z, nbr, nsim, ptr, used, row)
            if ba == x:
                ba, va = _best_unused(path[lo], c, z, nbr, nsim, ptr, used, row)
        else:
            x = ba
            lo -= 1
            path[lo] = x
            used[x] = True
            ba, va = _best_unused(x, c, z, nbr, nsim, ptr, used, row)
            if bb == x:
                bb, vb = _best_unused(path[hi], c, z, nbr, nsim, ptr, used, row)
    return path[lo : hi + 1].copy()


@njit(cache=CACHE)
def top_k_rows(s, k, offset):
    """Per row of ``s``, the ``k`` largest columns by (value desc, index asc), leaving out
    column ``offset + row`` (the row itself when ``s`` is a block of a similarity matrix).
    Returns ``(indices, values)``, both ``rows x k``; needs ``0 <= k <= n - 1`` (every row
    has ``n - 1`` columns to choose from when its own lies in the block)."""
    rows, n = s.shape
    if k < 0 or k > n - 1:
        raise ValueError("top_k_rows needs 0 <= k <= columns - 1")
    idx = np.empty((rows, k), dtype=np.intp)
    val = np.empty((rows, k), dtype=s.dtype)
    if k == 0:  # nothing to keep (and no last kept value to compare with)
        return idx, val
    for r in range(rows):
        filled = 0
        for j in range(n):
            if j == offset + r:
                continue
            v = s[r, j]
            if filled == k and not v > val[r, k - 1]:
                continue
            m = filled if filled < k else k - 1  # insertion point, from the back
            while m > 0 and v > val[r, m - 1]:
                if m < k:
                    val[r, m] = val[r, m - 1]
                    idx[r, m] = idx[r, m - 1]
                m -= 1
            val[r, m] = v
            idx[r, m] = j
            if filled < k:
                filled += 1
    return idx, val


# ---------------------------------------------------------------------------- refinement


@njit(cache=CACHE)
def _reverse(p, pos, i, j):
    while i < j:
        a = p[i]
        b = p[j]
        p[i] = b
        pos[b] = i
        p[j] = a
        pos[a] = j
        i += 1
        j -= 1


@njit(cache=CACHE)
def _at(p, k):
    return p[k] if 0 <= k < p.shape[0] else -1


@njit(cache=CACHE)
def _best_2opt(a, p, pos, c, z, cand, dac, max_rev):
    """Best 2-opt move that makes ``a`` adjacent to a candidate: (gain, lo, hi) of the
    segment ``p[lo..hi]`` to reverse. ``dac[k]`` is the distance from ``a`` to
    ``cand[k]``; as in Lin-Kernighan, the new edge must be shorter than the edge of
    ``a`` it replaces (moves at a path end are always tried). Reversals longer than
    ``max_rev`` tiles are skipped."""
    i = pos[a]
    succ = _at(p, i + 1)
    pred = _at(p, i - 1)
    d_succ = _dist(c, z, a, succ)
    d_pred = _dist(c, z, a, pred)
    best, blo, bhi = EPS, -1, -1
    for k in range(cand.shape[0]):
        c_ = cand[k]
        if c_ < 0 or c_ == a:
            continue
        j = pos[c_]
        # a's successor side: ... a b ... c sc ...  ->  ... a c ... b sc ...
        if succ < 0 or dac[k] < d_succ:
            if j > i + 1:
                sc = _at(p, j + 1)
                g = d_succ + _dist(c, z, c_, sc) - dac[k] - _dist(c, z, succ, sc)
                if g > best and j - i <= max_rev:
                    best, blo, bhi = g, i + 1, j
            elif j < i - 1:
                sc = p[j + 1]
                g = d_succ + _dist(c, z, c_, sc) - dac[k] - _dist(c, z, succ, sc)
                if g > best and i - j <= max_rev:
                    best, blo, bhi = g, j + 1, i
        # a's predecessor side: ... pc c ... b a ...  ->  ... pc b ... c a ...
        if pred < 0 or dac[k] < d_pred:
            if j < i - 1:
                pc = _at(p, j - 1)
                g = d_pred + _dist(c, z, pc, c_) - dac[k] - _dist(c, z, pc, pred)
                if g > best and i - j <= max_rev:
                    best, blo, bhi = g, j, i - 1
            elif j > i + 1:
                pc = p[j - 1]
                g = d_pred + _dist(c, z, pc, c_) - dac[k] - _dist(c, z, pred, pc)
                if g > best and j - i <= max_rev:
                    best, blo, bhi = g, i, j - 1
    return best, blo, bhi


@njit(cache=CACHE)
def _best_oropt(a, p, pos, c, z, cand, dac, max_len):
    """Best move of a segment of 1..max_len tiles with ``a`` at one end, to sit next to
    a candidate (only candidates closer than the edges the move removes).
    Returns (gain, start, length, cand, after, forward)."""
    n = p.shape[0]
    i = pos[a]
    best = EPS
    res = (-1, 0, -1, False, False)
    for length in range(1, max_len + 1):
        if length >= n:
            break
        for side in range(2):
            s = i if side == 0 else i - length + 1
            if s < 0 or s + length > n or (side == 1 and length == 1):
                continue
            other = p[s + length - 1] if side == 0 else p[s]
            prev = _at(p, s - 1)
            nxt = _at(p, s + length)
            x = p[s]
            removed = _dist(c, z, prev, x) + _dist(c, z, p[s + length - 1], nxt)
            if prev >= 0 and nxt >= 0:
                removed -= _dist(c, z, prev, nxt)
            for k in range(cand.shape[0]):
                c_ = cand[k]
                if c_ < 0 or dac[k] >= removed or s <= pos[c_] < s + length:
                    continue
                for after in (True, False):
                    m = pos[c_] + 1 if after else pos[c_] - 1
                    if after and m == s:
                        m = s + length
                    if not after and m == s + length - 1:
                        m = s - 1
                    e = _at(p, m)
                    added = dac[k] + _dist(c, z, other, e)
                    if e >= 0:
                        added -= _dist(c, z, c_, e)
                    g = removed - added
                    if g > best:
                        best = g
                        res = (s, length, c_, after, (a == x) == after)
    return best, res[0], res[1], res[2], res[3], res[4]


@njit(cache=CACHE)
def _move_segment(p, pos, s, length, c_, after, forward):
    """Move ``p[s:s+length]`` next to ``c_`` (after or before it), forward or reversed."""
    seg = p[s : s + length].copy()
    if not forward:
        seg = seg[::-1].copy()
    j = pos[c_]
    if j > s:
        last = j if after else j - 1  # shift p[s+length..last] left
        for k in range(s + length, last + 1):
            p[k - length] = p[k]
            pos[p[k]] = k - length
        start = last - length + 1
    else:
        first = j + 1 if after else j  # shift p[first..s-1] right
        for k in range(s - 1, first - 1, -1):
            p[k + length] = p[k]
            pos[p[k]] = k + length
        start = first
    for t in range(length):
        p[start + t] = seg[t]
        pos[seg[t]] = start + t


@njit(cache=CACHE)
def _push(queue, inq, head, count, node):
    if node >= 0 and not inq[node]:
        n = queue.shape[0]
        queue[(head + count) % n] = node
        inq[node] = True
        return count + 1
    return count


@njit(cache=CACHE)
def _local_search(p, pos, c, z, nbr, queue, inq, head, count, max_len, max_rev):
    """2-opt and Or-opt from the queued nodes until none improves.

    Returns the gain and the first and last position that changed (lo > hi if none).
    """
    n = p.shape[0]
    k = nbr.shape[1]
    cand = np.empty(k + 2, dtype=np.intp)
    dac = np.empty(k + 2, dtype=np.float64)
    total = 0.0
    changed_lo = n
    changed_hi = -1
    while count > 0:
        a = queue[head]
        head = (head + 1) % n
        count -= 1
        inq[a] = False
        cand[:k] = nbr[a]
        cand[k] = p[0]
        cand[k + 1] = p[n - 1]
        for m in range(k + 2):
            dac[m] = _dist(c, z, a, cand[m])
        g2, lo, hi = _best_2opt(a, p, pos, c, z, cand, dac, max_rev)
        go, s, length, c_, after, forward = _best_oropt(a, p, pos, c, z, cand, dac, max_len)
        if g2 <= EPS and go <= EPS:
            continue
        if g2 >= go:
            touched = (_at(p, lo - 1), p[lo], p[hi], _at(p, hi + 1))
            _reverse(p, pos, lo, hi)
            total += g2
            changed_lo = min(changed_lo, lo)
            changed_hi = max(changed_hi, hi)
        else:
            touched = (_at(p, s - 1), _at(p, s + length), p[s], c_)
            j = pos[c_]
            changed_lo = min(changed_lo, min(s, j))
            changed_hi = max(changed_hi, max(s + length - 1, j))
            _move_segment(p, pos, s, length, c_, after, forward)
            total += go
        for node in touched:
            count = _push(queue, inq, head, count, node)
            count = _push(queue, inq, head, count, _at(p, pos[node] - 1) if node >= 0 else -1)
            count = _push(queue, inq, head, count, _at(p, pos[node] + 1) if node >= 0 else -1)
        count = _push(queue, inq, head, count, a)
    return total, changed_lo, changed_hi


@njit(cache=CACHE)
def path_length(p, c, z):
    """Sum of ``1 - r`` over adjacent tiles of the path."""
    s = 0.0
    for k in range(p.shape[0] - 1):
        s += _dist(c, z, p[k], p[k + 1])
    return s


@njit(cache=CACHE)
def refine(path, c, z, nbr, kicks, rng, search=True, max_len=3, max_kick=50, max_rev=1 << 62):
    """2-opt + Or-opt local search, then ``kicks`` rounds of iterated local search.

    Each kick swaps two short neighbouring segments (a local double bridge), repairs
    with local search from the touched tiles, and is kept only if the path got
    shorter; repairs may skip 2-opt reversals longer than ``max_rev`` tiles (cheaper
    kicks, but on 10,000 digits the long reversals pay for themselves, so the default
    keeps them all). Returns the refined path (a new array) and its length; never longer
    than ``path``.
    """
    n = path.shape[0]
    p = path.copy()
    pos = np.empty(n, dtype=np.intp)
    for k in range(n):
        pos[p[k]] = k
    queue = np.empty(max(n, 1), dtype=np.intp)
    inq = np.zeros(max(n, 1), dtype=np.bool_)
    if n < 3:
        return p, path_length(p, c, z)
    while search:  # don't-look bits may miss a move: sweep until a full pass finds none
        count = 0
        for k in range(n):
            count = _push(queue, inq, 0, count, p[k])
        search = _local_search(p, pos, c, z, nbr, queue, inq, 0, count, max_len, n)[0] > 0.0
    cost = path_length(p, c, z)
    best_p = p.copy()
    for _ in range(kicks):
        l1 = rng.integers(1, min(max_kick, n // 3) + 1)
        l2 = rng.integers(1, min(max_kick, n // 3) + 1)
        i = rng.integers(-1, n - l1 - l2)  # swap p[i+1 .. i+l1] with the next l2 tiles
        b0, b1 = p[i + 1], p[i + l1]
        c0, c1 = p[i + l1 + 1], p[i + l1 + l2]
        before, after = _at(p, i), _at(p, i + l1 + l2 + 1)
        delta = (_dist(c, z, before, c0) + _dist(c, z, c1, b0) + _dist(c, z, b1, after)
                 - _dist(c, z, before, b0) - _dist(c, z, b1, c0) - _dist(c, z, c1, after))
        seg = p[i + 1 : i + l1 + l2 + 1].copy()
        p[i + 1 : i + l2 + 1] = seg[l1:]
        p[i + l2 + 1 : i + l1 + l2 + 1] = seg[:l1]
        for k in range(i + 1, i + l1 + l2 + 1):
            pos[p[k]] = k
        count = 0
        for node in (before, b0, b1, c0, c1, after):
            count = _push(queue, inq, 0, count, node)
        gain, lo, hi = _local_search(p, pos, c, z, nbr, queue, inq, 0, count, max_len, max_rev)
        lo = min(lo, i + 1)  # only p[lo..hi] differs from best_p
        hi = max(hi, i + l1 + l2)
        if delta - gain < -EPS or (delta - gain <= EPS and delta > EPS):
            cost += delta - gain
            best_p[lo : hi + 1] = p[lo : hi + 1]
        else:
            p[lo : hi + 1] = best_p[lo : hi + 1]
            for k in range(lo, hi + 1):
                pos[p[k]] = k
    return best_p, path_length(best_p, c, z)


# ---------------------------------------------------------------------------- clusters


@njit(cache=CACHE)
def _clearly_less(cost, incumbent):
    """Tie rule of :func:`segment`: a cost counts as lower only by more than float noise."""
    return cost < incumbent - EPS * (1.0 + abs(cost))


@njit(cache=CACHE)
def segment(order, c, z, penalty, max_size):
    """Cut the ordered tiles into runs minimizing sum of within-run scatter + penalty each.

    The scatter of a run is ``sum ||z_i - mean||^2`` over its tiles (in [0, L) for L
    standardized tiles); runs hold at most ``max_size`` tiles. Returns the start index
    of each run in ``order`` (the first is 0).

    Tie rule: costs within ``EPS * (1 + cost)`` of each other are equal, and among equal
    costs the shortest last run wins (runs are tried shortest first and a longer one
    must be clearly cheaper). So rows that are identical after standardization stay
    separate at ``penalty=0`` on every CPU, whatever the rounding of their scatter.
    """
    n = order.shape[0]
    best = np.full(n + 1, np.inf)
    best[0] = 0.0
    start = np.zeros(n + 1, dtype=np.intp)
    d = z.shape[1]
    s = np.zeros(d)
    for j in range(1, n + 1):
        s[:] = 0.0
        sq = 0.0  # ||sum of z in the run||^2
        norms = 0.0  # sum of ||z_i||^2 in the run
        for i in range(j - 1, max(0, j - max_size) - 1, -1):
            t = order[i]
            zz = _corr(c, z, t, t)
            if c.shape[0] > 0:
                cross = 0.0
                for k in range(i + 1, j):
                    cross += c[t, order[k]]
            else:
                cross = 0.0
                for k in range(d):
                    cross += s[k] * z[t, k]
                for k in range(d):
                    s[k] += z[t, k]
            sq += 2.0 * cross + zz
            norms += zz
            length = j - i
            scatter = max(norms - sq / length, 0.0)  # >= 0 exactly; rounding can dip below
            cost = best[i] + scatter + penalty
            if _clearly_less(cost, best[j]):
                best[j] = cost
                start[j] = i
    cuts = []
    j = n
    while j > 0:
        cuts.append(start[j])
        j = start[j]
    return np.array(cuts[::-1], dtype=np.intp)
