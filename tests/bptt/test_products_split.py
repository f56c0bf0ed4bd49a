"""How the whole-window products are cut into kernel calls: every block of the result once,
operands read in place where the kernel can, and the flip to ``(B^T A)^T`` where it was
measured to pay. The values are checked in test_gemm.py; here, the calls."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fastseq.bptt import _blas_nb, _gemm_cy, _products

needs_kernel = pytest.mark.skipif(not _gemm_cy.available(), reason="needs a processor with AVX-512")


@pytest.fixture
def kernel_calls(monkeypatch):
    """Every call of the product kernel: ``(a, b, out)`` as the kernel received them."""
    calls: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    real = _gemm_cy.matmul

    def recording(a, b, out):
        calls.append((a, b, out))
        return real(a, b, out)

    monkeypatch.setattr(_gemm_cy, "matmul", recording)
    return calls


@pytest.fixture
def two_threads():
    saved = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(saved)


def _blocks(calls, out: torch.Tensor) -> list[tuple[int, int, int, int]]:
    """``(row0, row1, col0, col1)`` of each call's output block within ``out``."""
    base, item = out.data_ptr(), out.element_size()
    width = out.shape[1]
    found = []
    for _, _, o in calls:
        offset = (o.ctypes.data - base) // item
        r0, c0 = divmod(offset, width)
        found.append((r0, r0 + o.shape[0], c0, c0 + o.shape[1]))
    return sorted(found)


@needs_kernel
@pytest.mark.parametrize("rows, cols", [(1, 1), (63, 130), (64, 300), (65, 129), (200, 40), (129, 257)])
def test_each_block_of_the_result_is_computed_once(kernel_calls, two_threads, rows, cols):
    """Rows in units of 64; a result of one unit of rows also in columns of 128; no block
    twice, none left out."""
    torch.manual_seed(rows * 1000 + cols)
    a, b = torch.randn(rows, 24), torch.randn(24, cols)
    out = _products.matmul(a, b)
    torch.testing.assert_close(out, a @ b, rtol=1e-5, atol=1e-5)
    row_cuts = list(range(0, rows, 64))
    col_cuts = list(range(0, cols, 128)) if rows <= 64 else [0]
    want = sorted((r, min(r + 64, rows), c, min(c + 128, cols) if rows <= 64 else cols)
                  for r in row_cuts for c in col_cuts)
    assert _blocks(kernel_calls, out) == want


@needs_kernel
def test_a_row_major_or_transposed_operand_is_read_in_place(kernel_calls):
    x = torch.randn(100, 40)
    b = torch.randn(100, 30)
    # x^T b: a transposed view (stride 1 along rows), 40 x 30 by 100 terms, not a shape that flips
    _products.matmul(x.t(), b)
    assert all(np.shares_memory(a, x.numpy()) for a, _, _ in kernel_calls)
    kernel_calls.clear()
    w = torch.randn(40, 30)
    _products.matmul(x, w)
    assert all(np.shares_memory(a, x.numpy()) and np.shares_memory(bb, w.numpy()) for a, bb, _ in kernel_calls)
    kernel_calls.clear()
    big = torch.randn(100, 60)
    got = _products.matmul(big[:, :40], w)  # row-major, rows 60 apart: read in place too
    torch.testing.assert_close(got, big[:, :40] @ w, rtol=1e-5, atol=1e-5)
    assert kernel_calls and all(np.shares_memory(a, big.numpy()) for a, _, _ in kernel_calls)


@needs_kernel
def test_an_operand_strided_both_ways_is_copied_first(kernel_calls):
    big = torch.randn(50, 60)
    a = big[::3, ::2]  # strides (180, 2): neither is 1
    b = torch.randn(30, 7)
    got = _products.matmul(a, b)
    torch.testing.assert_close(got, a @ b, rtol=1e-5, atol=1e-5)
    assert kernel_calls and not any(np.shares_memory(x, big.numpy()) for x, _, _ in kernel_calls)


@needs_kernel
@pytest.mark.parametrize("k, flips", [(1, False), (2, True), (3, True)])
def test_a_transposed_weight_gradient_with_few_columns_runs_flipped(kernel_calls, k, flips):
    """``g^T x`` with 512 rows and 32 columns runs as ``(x^T g)^T``: the kernel's result has
    32 rows; with one term per element (k = 1) the view is also row-major and is not flipped."""
    g, x = torch.randn(k, 512), torch.randn(k, 32)
    got = _products.matmul(g.t(), x)
    torch.testing.assert_close(got, g.t() @ x, rtol=1e-5, atol=1e-5)
    assert got.is_contiguous()
    assert {o.shape[0] for _, _, o in kernel_calls} == ({32} if flips else {64})


@pytest.mark.parametrize("m, n, k, stride, want", [
    (64, 63, 8192, 1, True), (64, 64, 8192, 1, False), (63, 63, 100, 1, False),
    (64, 63, 8193, 1, False), (65, 10, 8192, 3, True),
    (129, 128, 9000, 256, True), (129, 128, 9000, 512, True), (128, 128, 9000, 256, False),
    (129, 129, 9000, 256, False), (130, 129, 9000, 256, False), (129, 100, 9000, 257, False), (129, 100, 9000, 255, False),
    (129, 100, 9000, 1, False), (500, 200, 100, 256, False),
])
def test_the_flip_follows_the_measured_rule(m, n, k, stride, want):
    """Fewer than 64 columns on at least 64 rows and at most 8192 terms; or rows a multiple of
    256 elements apart, at most 128 columns on more than 128 rows."""
    assert _products._flip(m, n, k, stride) is want


def test_linear_with_a_weight_of_another_dtype_gives_torchs_error():
    x, w = torch.randn(4, 3), torch.randn(5, 3, dtype=torch.float64)
    with pytest.raises(RuntimeError, match="dtype"):
        _products.linear(x, w, None)
    with pytest.raises(RuntimeError, match="dtype"):
        torch.nn.functional.linear(x, w, None)


def test_an_unset_or_empty_fastseq_gemm_keeps_the_kernel(monkeypatch):
    for setting in (None, ""):
        if setting is None:
            monkeypatch.delenv("FASTSEQ_GEMM", raising=False)
        else:
            monkeypatch.setenv("FASTSEQ_GEMM", setting)
        monkeypatch.setattr(_products, "_AVAILABLE", None)
        assert _products.kernel_in_use() == bool(_gemm_cy.available() and not _gemm_cy.intel())


def test_restoring_a_setting_without_mkl_does_nothing(monkeypatch):
    monkeypatch.setenv("FASTSEQ_GEMM", "scipy")
    g = _blas_nb.Gemm()
    assert g.one_thread_here() is None
    for saved in (None, 0, 1, 2, 3):
        g.restore_here(saved)  # nothing to call: no error


def test_restoring_puts_back_the_callers_mkl_setting(monkeypatch):
    monkeypatch.delenv("FASTSEQ_GEMM", raising=False)
    g = _blas_nb.Gemm()
    if g.one_thread_here() is None:
        pytest.skip("PyTorch's library exports no MKL thread setter here")
    g.restore_here(0)
    try:
        for setting in (2, 3):
            g._local(setting)
            saved = g.one_thread_here()
            assert saved == setting
            g.restore_here(saved)
            assert g.one_thread_here() == setting  # what one_thread_here replaced: the caller's setting
    finally:
        g._local(0)
