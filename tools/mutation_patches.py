"""Curated mutants for code mutmut cannot mutate: C++ (csrc/), Cython, Numba kernels.

Each entry is ``(name, file, old, new)``: ``old`` must occur exactly once in ``file``.
Every mutant is a bug a person could plausibly write (off by one, a flipped
comparison, a dropped reset, one step too many), aimed at a documented claim.
"""
from __future__ import annotations

# The native scheduler (csrc/schedule.cpp, through the Cython wrapper).
SCHEDULE_CPP = [
    ("admit: slots admit past the end of the order (no wrap)", "csrc/schedule.cpp",
     "if (admitted_ >= n && !(wrap_ && finished_first_ < n)) return false;",
     "if (admitted_ > n && !(wrap_ && finished_first_ < n)) return false;"),
    ("admit: wrap-around stops one sequence early", "csrc/schedule.cpp",
     "if (admitted_ >= n && !(wrap_ && finished_first_ < n)) return false;",
     "if (admitted_ >= n && !(wrap_ && finished_first_ + 1 < n)) return false;"),
    ("admit: a wrapped sequence counts as a first pass", "csrc/schedule.cpp",
     "slot_first_[slot] = admitted_ < n;", "slot_first_[slot] = admitted_ <= n;"),
    ("compact: keeps one slot fewer than the queue needs", "csrc/schedule.cpp",
     "int64_t queue = (wrap_ && finished_first_ < n) ? batch_ : n - admitted_;",
     "int64_t queue = (wrap_ && finished_first_ < n) ? batch_ : n - admitted_ - 1;"),
    ("compact: slot state not moved with the slot", "csrc/schedule.cpp",
     "      slot_pos_[kept] = slot_pos_[j];\n", ""),
    ("next: no reset flag on admission", "csrc/schedule.cpp",
     "reset[base + j] = fresh;", "reset[base + j] = 0;"),
    ("next: end flag one step early", "csrc/schedule.cpp",
     "const bool last = pos + 1 == lengths_[s];", "const bool last = pos + 2 == lengths_[s];"),
    ("next: wrap-around window loses its last step", "csrc/schedule.cpp",
     "      ++k;\n      done_ = true;", "      done_ = true;"),
    ("next: stops when any slot is idle, not all", "csrc/schedule.cpp",
     "if (!any_left) done_ = true;", "done_ = true;"),
]

# The row gather (csrc/gather.cpp).
GATHER_CPP = [
    ("gather: idle rows left unwritten", "csrc/gather.cpp",
     "std::memset(out, 0, static_cast<size_t>(row_bytes));", ";"),
    ("gather: last row refused", "csrc/gather.cpp", "} else if (r >= n_rows) {", "} else if (r >= n_rows - 1) {"),
]

# Numba Gibbs chain: the documented (v_k, h_{k-1}) return and the number of steps.
SAMPLING_NB = [
    # (The kernel's loop bound is not mutated: with the `step + 1 < k` guard an extra pass only
    # redraws v from the same h_{k-1}, which leaves the distribution of (v_k, h_{k-1}) unchanged.)
    ("gibbs chain: one extra step (CD-1 becomes CD-2)", "fastseq/boltzmann/_sampling_nb.py",
     "int(k), int(vis_kind)", "int(k) + 1, int(vis_kind)"),
    ("gibbs chain: returns h_k instead of h_{k-1}", "fastseq/boltzmann/_sampling_nb.py",
     "        if step + 1 < k:\n", "        if step < k:\n"),
    ("gibbs chain: visible bias dropped", "fastseq/boltzmann/_sampling_nb.py",
     "_sample_units(vis_kind, gens, np.dot(h, wt), b, sigma_v, v_out)",
     "_sample_units(vis_kind, gens, np.dot(h, wt), np.zeros_like(b), sigma_v, v_out)"),
]

# Numba whole-epoch CD kernel: the gradient signs and scales, momentum, the persistent chain.
CD_NB = [
    ("cd epoch: one extra Gibbs step (CD-1 becomes CD-2)", "fastseq/boltzmann/_cd_nb.py",
     "_gibbs_chain_kernel(gens, hk, w, b, c, k, vis_kind", "_gibbs_chain_kernel(gens, hk, w, b, c, k + 1, vis_kind"),
    ("cd epoch: positive phase not divided by the batch", "fastseq/boltzmann/_cd_nb.py",
     "_sigmoid_rows(pre0, c, sh[:n], -1.0 / n)", "_sigmoid_rows(pre0, c, sh[:n], -1.0)"),
    ("cd epoch: visible-bias gradient sign flipped", "fastseq/boltzmann/_cd_nb.py",
     "scale = 1.0 / mneg if r >= n else -1.0 / n", "scale = -1.0 / mneg if r >= n else 1.0 / n"),
    ("cd epoch: weight decay dropped", "fastseq/boltzmann/_cd_nb.py",
     "+ grad_w[i, j] + weight_decay * w[i, j]", "+ grad_w[i, j]"),
    ("cd epoch: momentum buffer not carried", "fastseq/boltzmann/_cd_nb.py",
     "mw[i, j] = momentum * mw[i, j] + grad_w", "mw[i, j] = grad_w"),
    ("cd epoch: persistent chain advanced with the new hidden bias", "fastseq/boltzmann/_cd_nb.py",
     "_sample_units(hid_kind, gens, pren, c_old, sigma_h, chain)", "_sample_units(hid_kind, gens, pren, c, sigma_h, chain)"),
    ("cd epoch: last partial batch dropped", "fastseq/boltzmann/_cd_nb.py",
     "    for s in range(0, n, batch_size):\n        e = min(n, s + batch_size)",
     "    for s in range(0, n - batch_size + 1, batch_size):\n        e = min(n, s + batch_size)"),
]

# Numba corrsort kernels.
ORDER_NB = [
    ("greedy: ties go to the highest index", "fastseq/mosaic/_order_nb.py",
     "if not used[k] and row[k] > val:", "if not used[k] and row[k] >= val:"),
    # Equivalent today (it survives): _local_search skips every move whose gain is <= EPS, so a
    # zero-gain 2-opt move found here is never made. Kept in case that caller's guard changes.
    ("2-opt: a move with zero gain is taken", "fastseq/mosaic/_order_nb.py",
     "    best, blo, bhi = EPS, -1, -1\n    for k in range(cand.shape[0]):\n        c_ = cand[k]\n        if c_ < 0 or c_ == a:\n            continue\n        j = pos[c_]\n        # a's successor",
     "    best, blo, bhi = -EPS, -1, -1\n    for k in range(cand.shape[0]):\n        c_ = cand[k]\n        if c_ < 0 or c_ == a:\n            continue\n        j = pos[c_]\n        # a's successor"),
    ("2-opt: wrong edge removed on the predecessor side", "fastseq/mosaic/_order_nb.py",
     "g = d_pred + _dist(c, z, pc, c_) - dac[k] - _dist(c, z, pred, pc)",
     "g = d_pred + _dist(c, z, pc, c_) - dac[k] - _dist(c, z, pred, c_)"),
    ("path end: missing end costs 1", "fastseq/mosaic/_order_nb.py",
     "    if a < 0 or b < 0:\n        return 0.0", "    if a < 0 or b < 0:\n        return 1.0"),
]

# fastseq's float32 product kernel (csrc/gemm.cpp): mutants that change values only where the
# kernel runs (a processor with AVX-512); elsewhere its tests skip and every one survives.
GEMM_CPP = [
    ("gemm: a later pass over k restarts the sum instead of continuing it", "csrc/gemm.cpp",
     "acc[r][0] = add ? _mm512_maskz_loadu_ps(m0, c + r * ldc) : _mm512_setzero_ps();",
     "acc[r][0] = _mm512_setzero_ps();"),
    ("gemm: the right edge's second register masks one column too few", "csrc/gemm.cpp",
     "(cols <= 16 ? __mmask16(0) : __mmask16((1u << (cols - 16)) - 1u));",
     "(cols <= 16 ? __mmask16(0) : __mmask16((1u << (cols - 17)) - 1u));"),
    ("gemm: the right edge's first register masks one column too few", "csrc/gemm.cpp",
     "cols >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << cols) - 1u);",
     "cols >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (cols - 1)) - 1u);"),
    ("gemm: each pass leaves out its last term", "csrc/gemm.cpp",
     "kTiles[rows](depth, ai,", "kTiles[rows](depth - 1, ai,"),
    ("gemm: the last row block is skipped when it holds one row", "csrc/gemm.cpp",
     "for (int64_t i = 0; i < m; i += kRows) {", "for (int64_t i = 0; i < m - 1; i += kRows) {"),
    ("gemm: a product over no terms leaves C unwritten", "csrc/gemm.cpp",
     "for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = 0.0f;", "for (int64_t j = 0; j < n; ++j) ;"),
    ("gemm: packing drops the rows past the last whole block of 8", "csrc/gemm.cpp",
     "for (int64_t i = whole * kRows; i < m; ++i)", "for (int64_t i = whole * kRows; i < m - 1; ++i)"),
    ("gemm: packing starts one term of the sum late", "csrc/gemm.cpp",
     "if (packed) pack_rows(a + q * acs, ars, acs, m, depth, pack.data());",
     "if (packed) pack_rows(a + (q + 1) * acs, ars, acs, m, depth, pack.data());"),
    ("gemm: B's column panels after the first start one column late", "csrc/gemm.cpp",
     "b + q * ldb + j, ldb,", "b + q * ldb + j + (j > 0), ldb,"),
    ("gemm: the Fortran entry swaps its operands", "csrc/gemm.cpp",
     "fastseq::sgemm_rows(*n, *m, *k, b, *ldb, a, *lda, c, *ldc);",
     "fastseq::sgemm_rows(*n, *m, *k, a, *lda, b, *ldb, c, *ldc);"),
    ("gemm: every processor counts as Intel's (MKL runs the products)", "csrc/gemm.cpp",
     'static const bool intel = __builtin_cpu_is("intel");',
     'static const bool intel = !__builtin_cpu_is("intel") || __builtin_cpu_is("intel");'),
]

PATCHES = {
    "native_schedule": (SCHEDULE_CPP, ["tests/bptt/test_schedule.py", "tests/bptt/test_schedule_partial_orders.py"]),
    "native_gather": (GATHER_CPP, ["tests/bptt/test_store.py"]),
    "sampling_nb": (SAMPLING_NB, ["tests/boltzmann/test_sampling.py"]),
    "order_nb": (ORDER_NB, ["tests/mosaic/test_order.py"]),
    "cd_nb": (CD_NB, ["tests/boltzmann/test_cd.py"]),
    "native_gemm": (GEMM_CPP, ["tests/bptt/test_gemm.py", "tests/bptt/test_products_split.py",
                               "tests/bptt/test_fused_calls.py"]),
}
