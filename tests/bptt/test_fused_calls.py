"""The fused engine's calls around its kernels: dropout between layers, where the input bias is
added, frozen weights, the product kernel for the weight gradient, and the checks on the
arrays the kernels read by address."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from fastseq.bptt import _engines_fused, _fused_nb, _fused_py, _gemm_cy, _products
from fastseq.bptt.engines import run_window


def _window(k=5, w=3, f=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(k, w, f, generator=g)
    reset = torch.rand(k, w, generator=g) < 0.3
    return x, reset


@pytest.mark.parametrize("training", [True, False])
def test_dropout_runs_between_layers_only_while_training(monkeypatch, training):
    """One call per layer above the first, at the module's rate, on the whole window of the
    layer below, and its result is what the next layer reads."""
    torch.manual_seed(1)
    rnn = nn.GRU(3, 4, num_layers=3, dropout=0.3).train(training)
    x, reset = _window()
    calls = []

    def dropout(inp, p=0.5, training=True, inplace=False):
        calls.append((tuple(inp.shape), p, training))
        return inp * 0.5

    monkeypatch.setattr(torch.nn.functional, "dropout", dropout)
    out, _ = run_window(rnn, x, reset, engine="fused")
    assert calls == ([((5, 3, 4), 0.3, True)] * 2 if training else [])
    want, _ = run_window(rnn, x, reset, engine="steps")  # the step engine, through the same dropout
    torch.testing.assert_close(out, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("module, folded", [(lambda: nn.LSTM(3, 4), True), (lambda: nn.RNN(3, 4), True),
                                            (lambda: nn.GRU(3, 4), False), (lambda: nn.LSTM(3, 4, bias=False), False)])
def test_the_input_bias_is_added_inside_the_layer_except_for_the_gru(monkeypatch, module, folded):
    torch.manual_seed(2)
    rnn = module()
    biases = []
    real = _products.linear

    def recording(x, weight, bias):
        biases.append(bias)
        return real(x, weight, bias)

    monkeypatch.setattr(_products, "linear", recording)
    x, reset = _window()
    out, _ = run_window(rnn, x, reset, engine="fused")
    torch.testing.assert_close(out, run_window(rnn, x, reset, engine="steps")[0], rtol=1e-5, atol=1e-6)
    assert len(biases) == 1
    assert biases[0] is (None if folded or not rnn.bias else rnn.bias_ih_l0)


@pytest.mark.parametrize("frozen", ["weight_hh_l0", "bias_hh_l0", "bias_ih_l0", "weight_ih_l0"])
@pytest.mark.parametrize("mode", ["GRU", "LSTM", "RNN"])
def test_a_frozen_parameter_leaves_the_others_gradients_as_stepped(frozen, mode):
    torch.manual_seed(3)
    rnn = getattr(nn, mode)(3, 4).double()
    getattr(rnn, frozen).requires_grad_(False)
    x, reset = _window()
    x = x.double().requires_grad_(True)
    grads = {}
    for engine in ("fused", "steps"):
        out, _ = run_window(rnn, x, reset, engine=engine)
        params = [p for p in rnn.parameters() if p.requires_grad]
        grads[engine] = torch.autograd.grad(out.square().sum(), [x, *params])
    for a, b in zip(grads["fused"], grads["steps"]):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.skipif(not _gemm_cy.available(), reason="needs a processor with AVX-512")
def test_the_hidden_weight_gradient_runs_on_the_product_kernel(monkeypatch):
    monkeypatch.setenv("FASTSEQ_GEMM", "fastseq")  # on Intel's processors MKL runs it unless asked
    monkeypatch.setattr(_products, "_AVAILABLE", None)
    torch.manual_seed(4)
    rnn = nn.GRU(3, 8)
    shapes = []
    real = _products.matmul

    def recording(a, b):
        shapes.append((tuple(a.shape), tuple(b.shape)))
        return real(a, b)

    monkeypatch.setattr(_products, "matmul", recording)
    x, reset = _window(k=6, w=5)
    out, _ = run_window(rnn, x, reset, engine="fused")
    out.square().sum().backward()
    assert ((24, 30), (30, 8)) in shapes  # dgh^T (3H x K*W) by the previous states (K*W x H)


def test_the_twin_kernels_take_tensors_as_they_are():
    kernels, arr = _engines_fused._kernels(torch.device("meta"))
    t = torch.zeros(2)
    assert kernels is _fused_py and arr(t) is t
    kernels, arr = _engines_fused._kernels(torch.device("cpu"))
    assert kernels is _fused_nb and isinstance(arr(t), np.ndarray)


def _rnn_arrays(dtype=np.float32):
    k, w, h = 2, 3, 4
    z = lambda *s: np.zeros(s, dtype)  # noqa: E731
    return [z(k, w, h), z(h, h), z(h), z(w, h), z(h), np.zeros((k, w), bool), False, z(k, w, h), z(k, w, h)]


def test_the_kernels_refuse_a_strided_array_after_a_flag():
    args = _rnn_arrays()
    args[7] = np.zeros((2, 3, 8), np.float32)[:, :, ::2]  # hs, after the relu flag
    with pytest.raises(ValueError, match="C-contiguous arrays for the fused kernels"):
        _fused_nb.rnn_forward(*args)


def test_the_kernels_refuse_a_strided_gate_array_inside_the_tuple():
    k, w, h = 2, 3, 4
    z = lambda *s: np.zeros(s, np.float32)  # noqa: E731
    gates = (z(k, w, h), z(k, w, h), np.zeros((k, w, 2 * h), np.float32)[:, :, ::2], z(k, w, h))
    with pytest.raises(ValueError, match="C-contiguous arrays for the fused kernels"):
        _fused_nb.gru_forward(z(k, w, 3 * h), z(h, 3 * h), z(3 * h), z(w, h), z(h), np.zeros((k, w), bool),
                              z(k, w, h), z(k, w, h), gates)
