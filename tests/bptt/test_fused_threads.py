"""The fused engine gives the same bits on any number of threads: slot blocks are fixed, and
the thread count decides only who runs which block. The exceptions are the whole-window
products that PyTorch computes (where fastseq's float32 kernel does not): MKL may split them
across threads differently for each count, so a weight gradient, and where MKL computes the
input projection the outputs too, are equal to rounding. With the projection computed the
same way on every count, everything the slot blocks compute is compared bit for bit."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fastseq.bptt import _blas_nb, _fused_nb, _gemm_cy, _products, _slot_threads
from fastseq.bptt.engines import run_window

from _threads import torch_threads


class _OneThreadLinear(torch.autograd.Function):
    """The input projection and its gradients on one thread: the same bits on any thread count."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        with torch_threads(1):
            return F.linear(x, weight, bias)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        g = grad.reshape(-1, grad.shape[-1])
        with torch_threads(1):
            dx = (g @ weight).view(x.shape)
            dw = g.t() @ x.reshape(-1, x.shape[-1])
            db = g.sum(0) if ctx.has_bias else None
        return dx, dw, db


def _run(rnn, x, reset, state, seed):
    rnn.zero_grad(set_to_none=True)
    x = x.detach().requires_grad_()
    out, final = run_window(rnn, x, reset, state, reset_state=seed, engine="fused", detach=False)
    parts = final if isinstance(final, tuple) else (final,)
    loss = out.square().sum() + sum(p.square().sum() for p in parts)
    loss.backward()
    return [out.detach(), *(p.detach() for p in parts), x.grad, *(p.grad for p in rnn.parameters())]


@pytest.fixture(params=["default", "fastseq"])
def gemm_choice(request, monkeypatch):
    """The products as this processor runs them by default, and on fastseq's kernel (which runs
    by default only on AVX-512 processors other than Intel's)."""
    if request.param == "fastseq":
        if not _gemm_cy.available():
            pytest.skip("needs a processor with AVX-512")
        monkeypatch.setenv("FASTSEQ_GEMM", "fastseq")
    else:
        monkeypatch.delenv("FASTSEQ_GEMM", raising=False)
    monkeypatch.setattr(_products, "_AVAILABLE", None)  # found again under this setting
    monkeypatch.setattr(_blas_nb, "_GEMM", None)
    yield request.param
    _blas_nb._GEMM = None  # the next test finds the default again


@pytest.mark.parametrize("cell", ["GRU", "LSTM", "RNN"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_results_are_identical_on_1_2_and_more_threads_than_blocks_on_either_runner(cell, dtype, monkeypatch,
                                                                                    gemm_choice):
    torch.manual_seed(0)
    width = 2 * _fused_nb.SLOT_BLOCK + 5  # three blocks, the last one narrow
    rnn = getattr(nn, cell)(6, 11, num_layers=2).to(dtype)
    x = torch.randn(9, width, 6, dtype=dtype)
    reset = torch.rand(9, width) < 0.2
    hid = torch.randn(2, width, 11, dtype=dtype)
    state = (hid, torch.randn(2, width, 11, dtype=dtype)) if cell == "LSTM" else hid
    s = torch.randn(2, 11, dtype=dtype)
    seed = (s, s.clone()) if cell == "LSTM" else s
    saved, saved_openmp = torch.get_num_threads(), _slot_threads._OPENMP
    own_products = _products.usable(x)  # fastseq's kernel computes the whole-window products
    recurrence = 2 + len(state) if cell == "LSTM" else 3  # outputs, final state, input gradient
    for projection in ("as it runs", "on one thread"):
        if projection == "on one thread":
            monkeypatch.setattr(_products, "linear", _OneThreadLinear.apply)
        try:
            results = {}
            for threads in (1, 2, 8):  # 8 threads > 3 blocks
                torch.set_num_threads(threads)
                results[threads] = _run(rnn, x, reset, state, seed)
            _slot_threads._OPENMP = [None]  # fastseq's own pool instead of PyTorch's threads
            torch.set_num_threads(2)
            results["pool"] = _run(rnn, x, reset, state, seed)
        finally:
            torch.set_num_threads(saved)
            _slot_threads._OPENMP = saved_openmp
        # the outputs, final state and input gradient come from the slot blocks: the same bits on
        # any count, given the same input projection; the weight gradients too where fastseq's kernel
        # computes them (float32, AVX-512), while PyTorch's (MKL) may split a product differently
        # for each thread count (an AVX2 AMD processor's input projection of this window differed
        # in the last bit at 3 or more threads): equal to rounding
        for threads in (2, 8, "pool"):
            for i, (got, want) in enumerate(zip(results[threads], results[1])):
                exact = own_products or (i < recurrence and projection == "on one thread")
                if exact:
                    assert torch.equal(got, want), (projection, threads, i)
                else:
                    torch.testing.assert_close(got, want, msg=f"{projection}, {threads} threads, result {i}")


def test_kernels_refuse_strided_arrays():
    a = np.zeros((3, 4, 6), np.float32)[:, :, ::2]
    with pytest.raises(ValueError, match="C-contiguous"):
        _fused_nb.rnn_forward(a, np.zeros((3, 3), np.float32), np.zeros(3, np.float32), np.zeros((4, 3), np.float32),
                              np.zeros(3, np.float32), np.zeros((3, 4), bool), False, np.zeros((3, 4, 3), np.float32),
                              np.zeros((3, 4, 3), np.float32))


def test_auto_engine_is_visible_logged_once_and_overridable(caplog, monkeypatch):
    import logging

    from fastseq.bptt import engine_for
    from fastseq.bptt import engines as eng

    rnn = nn.LSTM(3, 7)
    reset = torch.zeros(8, 5, dtype=torch.bool)
    reset[0] = True
    eng._CHOSEN.clear()
    with caplog.at_level(logging.INFO, logger="fastseq.bptt"):
        chosen = engine_for(rnn, 8, 5, "cpu", reset)
        run_window(rnn, torch.randn(8, 5, 3), reset)  # the same choice: no second line
    lines = [r.getMessage() for r in caplog.records if r.name == "fastseq.bptt"]
    assert len(lines) == 1 and chosen in lines[0] and "LSTM" in lines[0] and "H=7" in lines[0]
    assert chosen in ("fused", "segments")
    assert engine_for(nn.LSTM(3, 4, proj_size=2), 8, 5, "cpu") == "steps"  # the fused engine does not run it
    assert ("slot blocks" in lines[0]) == (chosen == "fused")
    for threads, where in ((None, "PyTorch's OpenMP threads"), ([None], "a thread pool")):
        if threads is not None:
            monkeypatch.setattr(_slot_threads, "_OPENMP", threads)  # no OpenMP: fastseq's own pool
        elif _slot_threads.runner() != "openmp":
            continue
        eng._CHOSEN.clear()
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="fastseq.bptt"):
            assert engine_for(nn.GRU(3, 6), 8, 5, "cpu") == "fused"
        (line,) = [r.getMessage() for r in caplog.records if r.name == "fastseq.bptt"]
        assert line.endswith(f"thread(s), slot blocks on {where}"), line
    with pytest.raises(ValueError, match="k_steps"):
        engine_for(rnn, 0, 5)


@pytest.mark.parametrize("kernel", [True, False])
def test_auto_follows_the_measured_crossover_table(kernel, monkeypatch):
    from fastseq.bptt import engine_for

    from fastseq.bptt import engines

    # fastseq's product kernel runs the fused engine's products, or MKL does
    monkeypatch.setattr(engines, "_products", SimpleNamespace(kernel_in_use=lambda: kernel))
    calm = torch.zeros(32, 64, dtype=torch.bool)
    calm[0] = True  # one reset step of 32: few resets
    busy = torch.rand(32, 64, generator=torch.Generator().manual_seed(0)) < 0.2
    # the module between resets wins only beside fastseq's kernel (measured on AVX-512 and AVX2)
    assert engine_for(nn.LSTM(3, 128), 32, 64, "cpu", calm) == ("segments" if kernel else "fused")
    assert engine_for(nn.LSTM(3, 64), 32, 64, "cpu", calm) == ("segments" if kernel else "fused")
    assert engine_for(nn.LSTM(3, 256), 32, 64, "cpu", calm) == ("segments" if kernel else "fused")
    assert engine_for(nn.LSTM(3, 128), 32, 64, "cpu", busy) == "fused"
    assert engine_for(nn.LSTM(3, 512), 32, 64, "cpu", calm) == "fused"  # the fused engine wins at H=512
    assert engine_for(nn.LSTM(3, 32), 32, 64, "cpu", calm) == "fused"
    assert engine_for(nn.GRU(3, 128), 32, 64, "cpu", calm) == "fused"
    saved = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert engine_for(nn.GRU(3, 32), 32, 1024, "cpu") == "steps"
        assert engine_for(nn.GRU(3, 32), 32, 256, "cpu") == "fused"
        torch.set_num_threads(2)
        assert engine_for(nn.GRU(3, 32), 32, 1024, "cpu") == "fused"  # slot blocks share the cores
    finally:
        torch.set_num_threads(saved)
