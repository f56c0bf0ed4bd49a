"""fastseq's float32 product kernel (csrc/gemm.cpp) and the whole-window products built on it,
against their twin ``a @ b``; and the ?gemm the fused kernels call."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fastseq.bptt import _blas_nb, _gemm_cy, _products

needs_kernel = pytest.mark.skipif(not _gemm_cy.available(), reason="needs a processor with AVX-512")


def _close(got, a, b):
    want = a.astype(np.float64) @ b.astype(np.float64)
    # float32 sums of k terms: the error grows with k and the terms' size, not with the answer
    scale = np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64)
    assert np.all(np.abs(got - want) <= 1e-6 * (1 + a.shape[1]) * (scale + 1e-30))


@needs_kernel
@settings(max_examples=80, deadline=None)
@given(m=st.integers(0, 40), n=st.integers(0, 70), k=st.integers(0, 600), transposed=st.booleans(),
       fill=st.sampled_from(["normal", "equal", "zero", "huge"]), seed=st.integers(0, 2**31))
def test_kernel_matches_its_twin(m, n, k, transposed, fill, seed):
    # k past 256 runs several passes; n not a multiple of 32 masks the edge; m not of 8 the short tile
    rng = np.random.default_rng(seed)
    make = {"normal": lambda s: rng.standard_normal(s), "equal": lambda s: np.full(s, 0.75),
            "zero": lambda s: np.zeros(s), "huge": lambda s: 1e18 * rng.standard_normal(s)}[fill]
    a = make((k, m)).astype(np.float32).T if transposed else make((m, k)).astype(np.float32)
    b = make((k, n)).astype(np.float32)
    a_before, b_before = a.copy(), b.copy()
    out = np.full((m, n), np.nan, np.float32)
    _gemm_cy.matmul(a, b, out)
    _close(out, a, b)
    assert np.array_equal(a, a_before) and np.array_equal(b, b_before)


@needs_kernel
@pytest.mark.parametrize("stride", [256, 512, 300])  # multiples of 256 floats take the packed path
@pytest.mark.parametrize("rows", [40, 43])  # 43: three rows past the last whole block of 8
def test_transposed_views_at_aliasing_strides(stride, rows):
    rng = np.random.default_rng(1)
    base = rng.standard_normal((700, stride)).astype(np.float32)
    a = base[:, :rows].T  # rows x 700, read along a stride of `stride` floats
    b = rng.standard_normal((700, 33)).astype(np.float32)
    out = np.full((rows, 33), np.nan, np.float32)
    _gemm_cy.matmul(a, b, out)
    _close(out, a, b)


@needs_kernel
@pytest.mark.parametrize("transposed", [False, True])
def test_a_product_over_no_terms_is_zero(transposed):
    """k = 0: every element of the result is an empty sum, written as 0 over what was there."""
    a = np.empty((0, 5), np.float32).T if transposed else np.empty((5, 0), np.float32)
    out = np.full((5, 3), np.nan, np.float32)
    _gemm_cy.matmul(a, np.empty((0, 3), np.float32), out)
    assert np.array_equal(out, np.zeros((5, 3), np.float32))


@pytest.mark.skipif(not Path("/proc/cpuinfo").is_file(), reason="reads the vendor from /proc/cpuinfo (Linux)")
def test_intel_names_the_processors_vendor():
    """Whether MKL or the kernel runs the products follows intel(): it must be the vendor's name."""
    vendors = {line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
               if line.startswith("vendor_id")}
    assert len(vendors) == 1
    assert _gemm_cy.intel() is (vendors.pop() == "GenuineIntel")


@needs_kernel
def test_kernel_refuses_mismatched_shapes():
    a, b = np.ones((3, 4), np.float32), np.ones((5, 2), np.float32)
    with pytest.raises(ValueError, match="Expected a"):
        _gemm_cy.matmul(a, b, np.empty((3, 2), np.float32))


def _matmul_rows(fn, a, b):
    """The fused kernels' own call path: matmul_rows on a block of rows, by address."""
    from numba import njit

    @njit
    def run(fn, a, b, out, lo, hi):
        scratch = np.empty(7, np.int32)
        scal = np.zeros(2, a.dtype)
        scal[0] = 1.0
        _blas_nb.matmul_rows(fn, scratch, scal, a.ctypes.data + lo * a.shape[1] * a.itemsize, a.shape[1],
                             b.ctypes.data, b.shape[1], out.ctypes.data + lo * out.shape[1] * out.itemsize,
                             out.shape[1], hi - lo, b.shape[1], a.shape[1])

    out = np.zeros((a.shape[0], b.shape[1]), a.dtype)
    run(fn, a, b, out, 2, a.shape[0] - 1)
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_kernels_gemm_by_address_on_a_block_of_rows(dtype):
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((9, 37)).astype(dtype), rng.standard_normal((37, 45)).astype(dtype)
    got = _matmul_rows(_blas_nb.gemm().address(dtype), a, b)
    want = np.zeros_like(got)
    want[2:8] = a[2:8].astype(np.float64) @ b
    np.testing.assert_allclose(got, want, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-5)


def test_every_gemm_source_agrees():
    """fastseq's kernel (where the processor has AVX-512), MKL and scipy's BLAS give one product."""
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((12, 64)).astype(np.float32), rng.standard_normal((64, 96)).astype(np.float32)
    sources = {"default": _blas_nb.gemm()}
    for name in ("mkl", "scipy"):
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("FASTSEQ_GEMM", name)
            sources[name] = _blas_nb.Gemm()
    assert "scipy" in sources["scipy"].source
    results = {k: _matmul_rows(g.address(np.float32), a, b) for k, g in sources.items()}
    for k, r in results.items():
        np.testing.assert_allclose(r, results["scipy"], rtol=1e-5, atol=1e-5, err_msg=k)


@needs_kernel
@pytest.mark.parametrize("threads", [1, 2, 7])
def test_window_products_do_not_depend_on_threads(threads):
    rng = np.random.default_rng(4)
    x = torch.from_numpy(rng.standard_normal((500, 48)).astype(np.float32))
    w = torch.from_numpy(rng.standard_normal((200, 48)).astype(np.float32))
    saved = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        want = (_products.matmul(x, w.t()), _products.matmul(x.t(), x))
        torch.set_num_threads(threads)
        got = (_products.matmul(x, w.t()), _products.matmul(x.t(), x))
    finally:
        torch.set_num_threads(saved)
    for g, r in zip(got, want):
        assert torch.equal(g, r)
    _close(got[0].numpy(), x.numpy(), w.t().numpy())


@needs_kernel
def test_linear_matches_torch_with_its_gradients():
    torch.manual_seed(5)
    x = torch.randn(7, 9, 20, requires_grad=True)
    w = torch.randn(100, 20, requires_grad=True)  # 100 outputs by 20 inputs: the weight gradient flips
    b = torch.randn(100, requires_grad=True)
    got = _products.linear(x, w, b)
    grads = torch.autograd.grad(got.square().sum(), (x, w, b))
    want = torch.nn.functional.linear(x, w, b)
    wgrads = torch.autograd.grad(want.square().sum(), (x, w, b))
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    for g, r in zip(grads, wgrads):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-4)


def test_linear_falls_back_to_torch_off_the_kernel():
    x, w = torch.randn(4, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    assert not _products.usable(x)
    torch.testing.assert_close(_products.linear(x, w, None), x @ w.t())


def _torch_mkl():
    """MKL's ``sgemm_``/``dgemm_`` addresses and thread setter in PyTorch's CPU library, or None."""
    import ctypes
    import os

    try:
        lib = ctypes.CDLL(os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so"))
        return tuple(ctypes.cast(getattr(lib, n), ctypes.c_void_p).value for n in ("sgemm_", "dgemm_")), \
            lib.MKL_Set_Num_Threads_Local
    except (OSError, AttributeError):
        return None


def _kernel_expected(forced: str) -> bool:
    """Where fastseq's kernel should run float32: on AVX-512, unless FASTSEQ_GEMM names a library;
    on Intel's processors (MKL's own AVX-512 path) only when FASTSEQ_GEMM=fastseq."""
    if not _gemm_cy.available() or forced in ("mkl", "scipy"):
        return False
    return forced == "fastseq" or not _gemm_cy.intel()


@pytest.mark.parametrize("vendor_intel, avx512, setting, kernel", [
    (False, True, "", True), (True, True, "", False), (True, True, "fastseq", True), (True, True, "FastSeq", True),
    (False, True, "mkl", False), (True, True, "scipy", False), (False, False, "", False), (False, False, "fastseq", False),
])
def test_the_kernel_runs_where_mkl_has_no_avx512_path_or_when_asked(monkeypatch, vendor_intel, avx512, setting, kernel):
    """AMD's AVX-512 processors: MKL takes AVX2 code there and fastseq's kernel ran 1.3-2.6x
    faster; Intel's: MKL's AVX-512 code won (compare_gemm.py), so MKL runs unless asked."""
    monkeypatch.setattr(_gemm_cy, "intel", lambda: vendor_intel)
    monkeypatch.setattr(_gemm_cy, "available", lambda: avx512)
    monkeypatch.setenv("FASTSEQ_GEMM", setting)
    assert _products.kernel_preferred() is kernel
    assert _blas_nb.Gemm().source.startswith("fastseq avx512") is kernel


@pytest.mark.parametrize("setting", [None, "", "mkl", "MKL", "scipy", "Scipy", "fastseq", "other"])
def test_the_gemm_in_use_follows_fastseq_gemm(monkeypatch, setting):
    """FASTSEQ_GEMM (any case) forces MKL or scipy's BLAS for float32 too, or fastseq's kernel
    where the processor has AVX-512; unset, empty or anything else, float32 runs the kernel on
    AVX-512 processors other than Intel's (see :func:`_kernel_expected`). float64 runs
    PyTorch's MKL where its library exports it, else scipy's BLAS, whose threads are not
    pinned here (no thread setter)."""
    if setting is None:
        monkeypatch.delenv("FASTSEQ_GEMM", raising=False)
    else:
        monkeypatch.setenv("FASTSEQ_GEMM", setting)
    g = _blas_nb.Gemm()
    mkl = _torch_mkl()
    forced = (setting or "").lower()
    base = "mkl (torch)" if mkl is not None and forced != "scipy" else "scipy"
    kernel = _kernel_expected(forced)
    assert g.source == (f"fastseq avx512 (float64: {base})" if kernel else base)
    if base == "mkl (torch)":
        assert g.dgemm == mkl[0][1] and (kernel or g.sgemm == mkl[0][0])
        saved = g.one_thread_here()
        g.restore_here(saved)
        assert isinstance(saved, int)
    else:
        assert g.one_thread_here() is None
    if kernel:
        assert g.sgemm == _gemm_cy.fortran_address()
    assert g.address(np.float32) == g.sgemm and g.address(np.float64) == g.dgemm


@pytest.mark.parametrize("setting", [None, "mkl", "MKL", "scipy", "fastseq", "other"])
def test_whole_window_products_use_the_kernel_unless_fastseq_gemm_names_a_library(monkeypatch, setting):
    if setting is None:
        monkeypatch.delenv("FASTSEQ_GEMM", raising=False)
    else:
        monkeypatch.setenv("FASTSEQ_GEMM", setting)
    monkeypatch.setattr(_products, "_AVAILABLE", None)  # found again under this setting
    assert _products.kernel_in_use() == _kernel_expected((setting or "").lower())


@needs_kernel
def test_linear_gives_the_input_its_gradient_under_a_frozen_weight():
    """Each gradient is computed where its own input needs one: here the input, not the weight."""
    torch.manual_seed(6)
    x = torch.randn(4, 5, 20, requires_grad=True)
    w, b = torch.randn(30, 20), torch.randn(30)
    (got,) = torch.autograd.grad(_products.linear(x, w, b).square().sum(), (x,))
    (want,) = torch.autograd.grad(torch.nn.functional.linear(x, w, b).square().sum(), (x,))
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
