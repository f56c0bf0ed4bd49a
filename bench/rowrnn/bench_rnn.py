"""Benchmarks of the row RNN: completing held-out digits, hidden-unit pictures, one training epoch.

Run with timings: ``flock /tmp/fastseq-bench.lock python -m pytest bench/rowrnn/bench_rnn.py --benchmark-enable``.
With the default ``--benchmark-disable`` each runs once as a plain test.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import fastseq
from fastseq.rowrnn.units import sample_windows, unit_responses
from fastseq.rowrnn.models import TiedRNN, as_sequences, complete


@pytest.fixture(scope="module")
def digits():
    rng = np.random.default_rng(0)
    return (rng.random((200, 28, 28)) < 0.2).astype(np.float32)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return TiedRNN(28, 169)


def test_complete_batched(benchmark, model, digits):
    out = benchmark(complete, model, digits, 14)
    assert out.shape == digits.shape


def test_unit_responses_batched(benchmark, model, digits):
    windows = sample_windows(digits, 10, 2000, seed=0)
    seen, expected = benchmark(unit_responses, model, windows)
    assert seen.shape == expected.shape == (169, 10, 28)


def test_train_epoch_tied_rnn(benchmark, digits):
    torch.manual_seed(0)
    m = TiedRNN(28, 169)
    contexts, targets = as_sequences(digits)
    opt = torch.optim.Adam(m.parameters(), lr=0.003)

    def cost(p, t):
        return torch.nn.functional.binary_cross_entropy(p, t, reduction="none").sum(-1)

    def epoch():
        return fastseq.train_bptt(m.as_decoder(feedback=True), contexts, targets, torch.zeros(28),
                                  m.hidden_seed(), opt, 20, 27, cost, teacher_forcing=0.5, seed=0)

    losses = benchmark.pedantic(epoch, rounds=3, iterations=1)
    assert len(losses) == 10 and np.isfinite(losses).all()
