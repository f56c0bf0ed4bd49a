"""pytest-benchmark: one tiny epoch per batching method (fast with --benchmark-disable).

The side-by-side race with real sizes is bench/bptt/compare_batching.py.
"""
from __future__ import annotations


import numpy as np
import pytest
import torch

import _batching_methods as bm

B, K, F, H = 8, 6, 4, 8


@pytest.fixture(scope="module")
def data():
    return bm.lognormal_data(40, F, mean=10.0, seed=0, max_length=60)


def _collated(data, bucketed):
    rng = np.random.default_rng(0)
    batches = bm.bucketed_batches(data, B, rng, megabatch=2) if bucketed else bm.random_batches(data, B, rng)
    return bm.collate(data, batches)


def _runs(data):
    return {
        "original": lambda m: bm.train_original(m, data, B, K),
        "padded_random": lambda m: bm.train_padded(m, _collated(data, False), K),
        "pack_padded": lambda m: bm.train_packed(m, _collated(data, False), K),
        "bucketed": lambda m: bm.train_padded(m, _collated(data, True), K),
        "fastseq_step": lambda m: bm.train_fastseq_steps(m, bm.fastseq_loader(data, B, K, plan=None)),
        "train_bptt": lambda m: bm.train_bptt_step_mode(m, data, B, K),
        "fastseq_seq_auto": lambda m: bm.train_fastseq(m, bm.fastseq_loader(data, B, K), "auto"),
        "fastseq_seq_dense": lambda m: bm.train_fastseq(m, bm.fastseq_loader(data, B, K, plan="dense"), "dense"),
        "fastseq_seq_packed": lambda m: bm.train_fastseq(m, bm.fastseq_loader(data, B, K, plan="packed"), "packed"),
        "ideal": lambda m: bm.train_ideal(m, bm.ideal_windows(data, B, K), K),
    }


@pytest.mark.parametrize("method", list(_runs(bm.lognormal_data(2, F)).keys()))
def test_epoch(benchmark, data, method):
    model = bm.Model(F, H)
    before = [p.detach().clone() for p in model.parameters()]
    real, computed = benchmark(_runs(data)[method], model)
    assert computed >= real > 0 or (method == "train_bptt" and computed == -1)
    if method not in ("original", "ideal"):  # these two do not cover the data exactly once
        assert real == int(data.lengths.sum())
    if method in ("padded_random", "bucketed"):
        assert computed > real  # they pay for padding
    if method in ("pack_padded", "fastseq_seq_packed"):
        assert computed == real
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))  # it trained


def test_padding_fraction_ranks_the_methods(data):
    """Random padded batches waste more than bucketed ones; fastseq's step engine wastes least."""
    rng = np.random.default_rng(0)
    pads = {}
    for name, batches in (("random", bm.random_batches(data, B, rng)), ("bucketed", bm.bucketed_batches(data, B, rng, 2))):
        real = sum(int(data.lengths[ids].sum()) for ids in batches)
        pads[name] = bm.padding_fraction(real, sum(int(data.lengths[ids].max()) * len(ids) for ids in batches))
    loader = bm.fastseq_loader(data, B, K, plan=None)
    pads["fastseq"] = bm.padding_fraction(loader.total_steps, sum(w.schedule.rows.size for w in loader))
    assert pads["random"] > pads["bucketed"] > pads["fastseq"] >= 0.0
