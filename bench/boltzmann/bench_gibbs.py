"""pytest-benchmark timings of one Gibbs step h -> v -> h at 8 and 64 chains (288 -> 128 units).

The machines of ``bench/boltzmann/compare_gibbs_chains.py`` (which reports the ratios and targets). Run with
``flock /tmp/fastseq-bench.lock python -m pytest bench/boltzmann/bench_gibbs.py --benchmark-enable``;
with the default ``--benchmark-disable`` each runs once as a plain test.
"""
from __future__ import annotations

import pytest
import torch

from compare_gibbs_chains import models

STEPS = 10


@pytest.fixture(scope="module")
def machines():
    return models(288, 128)


@pytest.mark.parametrize("chains", [8, 64])
@pytest.mark.parametrize("name", ["RBM", "RRBM", "R3BM", "BetaRBM"])
def test_gibbs_steps(benchmark, machines, name, chains):
    model = machines[name]
    h = torch.zeros(chains, 128)

    def steps():
        with torch.no_grad(), model._threads():
            return model._chain(h, STEPS + 1)

    v, h_last = benchmark(steps)
    assert v.shape == (chains, 288) and h_last.shape == (chains, 128)
    assert bool(((v >= 0) & (v <= 1)).all())
