"""Where one window's time goes in the fused engine, part by part, beside the plain module.

One layer, one window (K = 32 steps, F = 32 inputs, B slots, H hidden units, lognormal
resets), forward and backward timed separately, CPU time of the calling thread
(``time.thread_time``; run with ``--threads 1`` for a full account, since pool threads'
time is not counted), medians of ``--repeats`` calls:

- ``module``: ``nn.LSTM``/``nn.GRU`` on the same window without resets (oneDNN);
- ``fused``: ``run_window(engine="fused")``, and inside it, timed in place: the step
  kernels (forward, backward), the whole-window products (input projection, input-weight
  and hidden-weight gradients) and the rest (PyTorch, autograd and Python around them);
- the step kernels split into their per-step products (the same products on the same
  block shapes, timed alone) and the elementwise gate code (the difference).

    flock /tmp/fastseq-bench.lock python bench/bptt/breakdown_fused.py [--cell LSTM] [--hidden 128,512]
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from fastseq.bptt import _fused_nb, _products
from fastseq.bptt.engines import run_window

_SPENT: dict[str, float] = defaultdict(float)


@contextmanager
def _patched(module, name: str, label):
    """Count the calling thread's CPU time in ``module.name`` under ``label(*args)``."""
    original = getattr(module, name)
    depth = [0]  # a nested call (matmul calling itself flipped) counts once, under the outer label

    def timed(*args, **kwargs):
        depth[0] += 1
        start = time.thread_time()
        try:
            return original(*args, **kwargs)
        finally:
            depth[0] -= 1
            if not depth[0]:
                _SPENT[label(*args)] += time.thread_time() - start

    setattr(module, name, timed)
    try:
        yield
    finally:
        setattr(module, name, original)


def _product_label(a, b) -> str:
    if a.stride(0) == 1 and a.shape[1] > 1:  # a transposed view: a weight gradient, summed over the window
        return "dW_ih (window)" if b.shape[1] < a.shape[0] and b.shape[1] == _FEATURES else "dW_hh (window)"
    return "input projection (window)" if a.shape[1] == _FEATURES else "dx (window)"


_FEATURES = 32


def _median(values: list[float]) -> float:
    return float(np.median(values))


def _thread_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.thread_time()
        fn()
        times.append(time.thread_time() - start)
    return 1e3 * _median(times)


def _step_products_ms(cell: str, hidden: int, width: int, k_steps: int, repeats: int) -> tuple[float, float]:
    """The fused kernels' per-step products alone: forward ``block x H @ H x GH``, backward
    ``block x GH @ GH x H``, K steps for each block of the window."""
    from fastseq.bptt._blas_nb import gemm, matmul_rows

    gates = {"LSTM": 4, "GRU": 3, "RNN": 1}[cell] * hidden
    block = _fused_nb.SLOT_BLOCK
    rows = [min(block, width - lo) for lo in range(0, width, block)]
    fn = gemm().address(np.float32)
    rng = np.random.default_rng(0)
    w_t = rng.standard_normal((hidden, gates), dtype=np.float32)
    w = np.ascontiguousarray(w_t.T)
    a_f, o_f = rng.standard_normal((block, hidden), dtype=np.float32), np.empty((block, gates), np.float32)
    a_b, o_b = rng.standard_normal((block, gates), dtype=np.float32), np.empty((block, hidden), np.float32)
    kernel = _products_kernel(matmul_rows)

    def forward():
        for m in rows:
            kernel(fn, k_steps, a_f, w_t, o_f, m)

    def backward():
        for m in rows:
            kernel(fn, k_steps, a_b, w, o_b, m)

    saved = gemm().one_thread_here()
    try:
        return _thread_ms(forward, repeats), _thread_ms(backward, repeats)
    finally:
        gemm().restore_here(saved)


def _products_kernel(matmul_rows):
    from numba import njit

    @njit(nogil=True)
    def steps(fn, k_steps, a, b, out, m):
        scratch = np.empty(7, np.int32)
        scal = np.zeros(2, a.dtype)
        scal[0] = 1.0
        for _ in range(k_steps):
            matmul_rows(fn, scratch, scal, a.ctypes.data, a.shape[1], b.ctypes.data, b.shape[1],
                        out.ctypes.data, out.shape[1], m, b.shape[1], a.shape[1])

    return steps


def breakdown(cell: str, hidden: int, width: int = 64, k_steps: int = 32, repeats: int = 20) -> dict:
    torch.manual_seed(0)
    rnn = {"LSTM": nn.LSTM, "GRU": nn.GRU, "RNN": nn.RNN}[cell](_FEATURES, hidden)
    x = torch.randn(k_steps, width, _FEATURES)
    reset = torch.rand(k_steps, width) < 1 / 40
    reset[0] = True

    def module_forward():
        return rnn(x)[0]

    def fused_forward():
        return run_window(rnn, x, reset, engine="fused")[0]

    out = {}
    for name, forward in (("module", module_forward), ("fused", fused_forward)):
        graphs = []

        def fwd():
            rnn.zero_grad(set_to_none=True)
            graphs.append(forward().square().mean())

        def bwd():
            graphs.pop().backward()

        fwd(), bwd()  # warm-up: compile, allocators
        f_times, b_times = [], []
        for _ in range(repeats):
            start = time.thread_time()
            fwd()
            f_times.append(time.thread_time() - start)
            start = time.thread_time()
            bwd()
            b_times.append(time.thread_time() - start)
        out[name] = (1e3 * _median(f_times), 1e3 * _median(b_times))

    kernels = {"LSTM": ("lstm_forward", "lstm_backward"), "GRU": ("gru_forward", "gru_backward"),
               "RNN": ("rnn_forward", "rnn_backward")}[cell]
    _SPENT.clear()
    with _patched(_fused_nb, kernels[0], lambda *a: "step kernels forward"), \
            _patched(_fused_nb, kernels[1], lambda *a: "step kernels backward"), \
            _patched(_products, "matmul", _product_label):
        start = time.thread_time()
        for _ in range(repeats):
            rnn.zero_grad(set_to_none=True)
            fused_forward().square().mean().backward()
        total = time.thread_time() - start
    parts = {k: 1e3 * v / repeats for k, v in _SPENT.items()}
    parts["rest (torch, autograd, Python)"] = 1e3 * total / repeats - sum(parts.values())
    gemm_f, gemm_b = _step_products_ms(cell, hidden, width, k_steps, repeats)
    return {"module": out["module"], "fused": out["fused"], "parts": parts, "step products": (gemm_f, gemm_b)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cell", default="LSTM", choices=["LSTM", "GRU", "RNN"])
    p.add_argument("--hidden", default="128,512")
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=20)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    for hidden in (int(h) for h in args.hidden.split(",")):
        r = breakdown(args.cell, hidden, args.width, repeats=args.repeats)
        (mf, mb), (ff, fb) = r["module"], r["fused"]
        print(f"\n## {args.cell} H={hidden} B={args.width} K=32 F={_FEATURES}, {args.threads} thread(s), "
              "CPU ms of the calling thread, medians")
        print(f"| part | ms |\n|---|---:|")
        print(f"| module forward | {mf:.2f} |\n| module backward | {mb:.2f} |\n| module total | {mf + mb:.2f} |")
        print(f"| fused forward | {ff:.2f} |\n| fused backward | {fb:.2f} |\n| fused total | {ff + fb:.2f} |")
        print(f"| fused / module (speed) | {(mf + mb) / (ff + fb):.2f} |")
        parts = r["parts"]
        for name in sorted(parts, key=parts.get, reverse=True):
            print(f"| - {name} | {parts[name]:.2f} |")
        gf, gb = r["step products"]
        sf, sb = parts.get("step kernels forward", 0.0), parts.get("step kernels backward", 0.0)
        print(f"| -- forward per-step products | {gf:.2f} |\n| -- forward elementwise (kernel - products) | {sf - gf:.2f} |")
        print(f"| -- backward per-step products | {gb:.2f} |\n| -- backward elementwise (kernel - products) | {sb - gb:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
