"""The engine race of bench/bptt/compare_engines.py at a tiny size (a test that it runs and that
``auto`` names an engine it raced), plus pytest-benchmark rows for the fused window."""
from __future__ import annotations

import pytest

import compare_engines as ce


@pytest.mark.parametrize("cell", ["GRU", "LSTM", "RNN"])
def test_race_runs_and_auto_is_one_of_the_engines(cell):
    row = ce.race(cell, 8, 5, "lognormal", repeats=1, inner=1)
    assert row["auto"] in row["ms"] and row["fastest"] in row["ms"]
    assert all(t > 0 for t in row["ms"].values())
