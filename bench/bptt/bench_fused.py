"""pytest-benchmark: the fused engine against the others on one window (fast with --benchmark-disable).

CPU: fused against steps and the plain module on a small window. CUDA (skipped without
a device): fused (its steps as torch ops) against packed (one cuDNN call per window),
the comparison behind the CUDA default of ``run_window(engine="auto")``:

    flock /tmp/fastseq-bench.lock python -m pytest bench/bptt/bench_fused.py --benchmark-enable
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from fastseq.bptt.engines import run_window


def _window(device, k_steps, width, features, hidden, cell):
    torch.manual_seed(0)
    rnn = {"gru": nn.GRU, "lstm": nn.LSTM}[cell](features, hidden).to(device)
    x = torch.randn(k_steps, width, features, device=device)
    reset = torch.rand(k_steps, width, device=device) < 1 / 40  # lognormal sequences of ~40 steps
    reset[0] = True
    return rnn, x, reset


def _step(rnn, x, reset, engine):
    rnn.zero_grad(set_to_none=True)
    if engine == "module":
        out, _ = rnn(x)
    else:
        out, _ = run_window(rnn, x, reset, engine=engine)
    out.square().mean().backward()
    if x.is_cuda:
        torch.cuda.synchronize()
    return out


_CUDA = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]
# (device, engine, window K x W x F x H): a small window on the CPU, the benchmark's size on CUDA
CASES = [("cpu", e, (8, 16, 8, 32)) for e in ("fused", "steps", "module")]
CASES += [pytest.param("cuda", e, (32, 64, 32, 128), marks=_CUDA) for e in ("fused", "packed", "module")]


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("device,engine,size", CASES)
def test_window(benchmark, device, engine, size, cell):
    rnn, x, reset = _window(device, *size, cell)
    out = benchmark(_step, rnn, x, reset, engine)
    assert out.shape == (size[0], size[1], size[3]) and all(p.grad is not None for p in rnn.parameters())
