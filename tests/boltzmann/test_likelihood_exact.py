"""Exact values of the likelihood functions on tiny machines, computed independently here:

- ``ais_schedule``: the piece sizes of its documented rule (1/29, 8/29 and the rest of the
  points in [0, 0.5), [0.5, 0.9) and [0.9, 1]) at counts where rounding differs;
- ``ais_log_partition``: the AISResult fields from the returned log weights (bounds at
  ``mean -/+ 3 sd``, -inf exactly at ``mean == 3 sd``, zero spread for one run), the calls it
  makes on the annealing path for an explicit schedule, the checks of ``betas`` and their
  messages word for word, the seed handling, the progress bar's counts, the memory figures
  and the defaults;
- ``exact_log_partition`` against a brute-force sum over every joint state, for chunks that
  do not divide the number of states, the side it enumerates and the ``max_units`` boundary;
- ``average_log_likelihood`` summed over several chunks of rows, and ``pseudo_likelihood``
  passing ``chunk_elements`` through;
- AIS on a CUDA model (run only where a CUDA device is present).
"""
from __future__ import annotations

import itertools
import math
import re

import numpy as np
import pytest
import torch

import fastseq._util.memory as memory
import fastseq.boltzmann._base as base_mod
import fastseq.boltzmann.likelihood as lik
from fastseq.boltzmann import RBM
from fastseq.boltzmann.likelihood import (AISResult, ais_log_partition, ais_schedule, average_log_likelihood,
                                          exact_log_partition, pseudo_likelihood)


def _exactly(message: str) -> str:
    return "^" + re.escape(message) + "$"


def _rbm(d: int, h: int, seed: int = 0, scale: float = 0.5, random_state=0) -> RBM:
    """A float64 RBM with random parameters of the given scale."""
    rng = np.random.default_rng(seed)
    m = RBM(n_components=h, n_iter=1, dtype="float64", random_state=random_state)
    m.fit((rng.random((8, d)) < 0.5).astype(float))
    with torch.no_grad():
        m.params_["W"].copy_(torch.from_numpy(rng.normal(0, scale, (d, h))))
        m.params_["b"].copy_(torch.from_numpy(rng.normal(0, scale, d)))
        m.params_["c"].copy_(torch.from_numpy(rng.normal(0, scale, h)))
    return m


def _numpy_params(m):
    return (m.params_["W"].detach().numpy(), m.params_["b"].detach().numpy(), m.params_["c"].detach().numpy())


def _brute_log_z(m) -> float:
    """log of the sum of exp(b.v + c.h + v W h) over every joint binary state."""
    w, b, c = _numpy_params(m)
    d, h = w.shape
    terms = [np.dot(b, v) + np.dot(c, s) + np.dot(v, w @ s)
             for v in itertools.product((0.0, 1.0), repeat=d) for s in itertools.product((0.0, 1.0), repeat=h)]
    return float(np.logaddexp.reduce(terms))


def _minus_free_energy(m, v):
    w, b, c = _numpy_params(m)
    return v @ b + np.logaddexp(0, v @ w + c).sum(1)


class _Recording:
    """Wraps an annealing path and records the calls AIS makes on it and each weight increment."""

    def __init__(self, path):
        self.path, self.calls, self.increments = path, [], []

    def log_z_base(self):
        return self.path.log_z_base()

    def start(self, n):
        self.calls.append(("start", n))
        return self.path.start(n)

    def pre(self, v):
        return self.path.pre(v)

    def delta(self, v, pre, new, old):
        self.calls.append(("delta", new, old))
        out = self.path.delta(v, pre, new, old)
        self.increments.append(out.clone())
        return out

    def step(self, v, pre, beta):
        self.calls.append(("step", beta))
        return self.path.step(v, pre, beta)


class _FixedWeights:
    """A path whose single increment (schedule [0, 1]) is the given log weights, base log Z 1.5."""

    def __init__(self, log_weights):
        self.lw = torch.tensor(log_weights, dtype=torch.float64)

    def log_z_base(self):
        return 1.5

    def start(self, n):
        return torch.zeros(n, 1, dtype=torch.float64)

    def pre(self, v):
        return v

    def delta(self, v, pre, new, old):
        return self.lw.clone()

    def step(self, v, pre, beta):
        return v


# ------------------------------------------------------------------ ais_schedule
@pytest.mark.parametrize("n", [3, 4, 5, 6, 29, 100, 919, 7265, 14500])
def test_schedule_pieces_follow_the_documented_proportions(n):
    n1 = max(1, round(n / 29))  # 500 of 14,500
    n2 = min(max(1, round(8 * n / 29)), n - n1 - 2)  # 4,000 of 14,500, leaving two points for [0.9, 1]
    n3 = n - n1 - n2
    b = ais_schedule(n)
    assert b.dtype == np.float64 and b.shape == (n,)
    assert (int(np.sum(b < 0.5)), int(np.sum((b >= 0.5) & (b < 0.9))), int(np.sum(b >= 0.9))) == (n1, n2, n3)
    expected = np.concatenate([np.arange(n1) * (0.5 / n1), 0.5 + np.arange(n2) * (0.4 / max(n2, 1)),
                               0.9 + np.arange(n3) * (0.1 / (n3 - 1))])
    np.testing.assert_allclose(b, expected, rtol=0, atol=1e-15)
    assert b[0] == 0.0 and b[-1] == 1.0


def test_schedule_piece_sizes_at_counts_where_rounding_matters():
    assert ais_schedule(5).tolist() == [0.0, 0.5, 0.9, 0.95, 1.0]
    for n, sizes in [(919, (32, 254, 633)), (7265, (251, 2004, 5010)), (14500, (500, 4000, 10000))]:
        b = ais_schedule(n)
        assert (int(np.sum(b < 0.5)), int(np.sum((b >= 0.5) & (b < 0.9))), int(np.sum(b >= 0.9))) == sizes


def test_schedule_refuses_fewer_than_three_points_naming_n_betas():
    with pytest.raises(ValueError, match=_exactly("Expected n_betas to be an integer >= 3, got 2.")):
        ais_schedule(2)


# ------------------------------------------------------------------ ais_log_partition: results
def test_ais_fields_follow_from_the_log_weights_and_the_base_log_z():
    m = _rbm(5, 3, scale=0.3)
    r = ais_log_partition(m, n_betas=40, n_runs=20, random_state=0)
    assert isinstance(r, AISResult)
    lw = r.log_weights
    assert lw.dtype == np.float64 and lw.shape == (20,)
    w, b, c = _numpy_params(m)
    base = float(np.logaddexp(0, b).sum() + 3 * math.log(2))  # visible biases as base rates, 3 hidden units
    assert r.log_z_base == pytest.approx(base, rel=1e-12)
    top = lw.max()
    assert top != 0
    ws = np.exp(lw - top)
    mean, sd = ws.mean(), ws.std(ddof=1) / math.sqrt(20)
    assert 0 < 3 * sd < mean  # the lower bound is finite here
    assert r.log_z == pytest.approx(base + top + math.log(mean), rel=1e-12)
    assert r.log_z_std == pytest.approx(sd / mean, rel=1e-12)
    assert r.log_z_low == pytest.approx(base + top + math.log(mean - 3 * sd), rel=1e-12)
    assert r.log_z_high == pytest.approx(base + top + math.log(mean + 3 * sd), rel=1e-12)
    assert abs(r.log_z - exact_log_partition(m)) < 0.1


def test_ais_two_runs_spread_is_the_standard_error_of_the_weights():
    m = _rbm(4, 3, scale=0.3)
    r = ais_log_partition(m, n_betas=10, n_runs=2, random_state=1)
    ws = np.exp(r.log_weights - r.log_weights.max())
    sd = abs(ws[0] - ws[1]) / math.sqrt(2) / math.sqrt(2)
    assert sd > 0
    assert r.log_z_std == pytest.approx(sd / ws.mean(), rel=1e-12)
    assert r.log_z_high == pytest.approx(r.log_z_base + r.log_weights.max() + math.log(ws.mean() + 3 * sd), rel=1e-12)


def test_ais_single_run_has_zero_spread():
    m = _rbm(4, 3)
    r = ais_log_partition(m, n_betas=10, n_runs=1, random_state=0)
    assert r.log_z_std == 0.0
    assert r.log_z == pytest.approx(r.log_z_base + r.log_weights[0], rel=1e-12)
    assert r.log_z_low == r.log_z_high == r.log_z


def test_ais_lower_bound_is_minus_infinity_exactly_at_three_standard_errors(monkeypatch):
    m = _rbm(3, 2)
    # weights 1, 1, 1, 0 (times e^7): mean 0.75, standard error 0.5 / sqrt(4) = 0.25, so mean == 3 sd
    monkeypatch.setattr(m, "_anneal_path", lambda data: _FixedWeights([7.0, 7.0, 7.0, -np.inf]))
    r = ais_log_partition(m, betas=[0, 1], n_runs=4)
    assert r.log_z_low == -math.inf
    assert r.log_z == pytest.approx(1.5 + 7 + math.log(0.75), rel=1e-14)
    assert r.log_z_high == pytest.approx(1.5 + 7 + math.log(1.5), rel=1e-14)
    assert r.log_z_std == pytest.approx(1 / 3, rel=1e-14)


def test_ais_lower_bound_is_finite_just_above_three_standard_errors(monkeypatch):
    m = _rbm(3, 2)
    # weights 1, 1, 1, 1, 0, 0: mean 2/3, standard error sqrt(4/15) / sqrt(6), mean / sd = sqrt(10)
    monkeypatch.setattr(m, "_anneal_path", lambda data: _FixedWeights([7.0] * 4 + [-np.inf] * 2))
    r = ais_log_partition(m, betas=[0, 1], n_runs=6)
    sd = math.sqrt(4 / 15) / math.sqrt(6)
    assert r.log_z_low == pytest.approx(1.5 + 7 + math.log(2 / 3 - 3 * sd), rel=1e-14)
    assert r.log_z_high == pytest.approx(1.5 + 7 + math.log(2 / 3 + 3 * sd), rel=1e-14)


# ------------------------------------------------------------------ ais_log_partition: the schedule
def test_ais_weights_one_increment_per_temperature_and_steps_between(monkeypatch):
    m = _rbm(4, 3)
    rec = _Recording(m._anneal_path(None))
    monkeypatch.setattr(m, "_anneal_path", lambda data: rec)
    r = ais_log_partition(m, betas=[0, 0.25, 0.5, 0.5, 1], n_runs=6, random_state=2)  # equal neighbours allowed
    assert rec.calls == [("start", 6), ("delta", 0.25, 0.0), ("step", 0.25), ("delta", 0.5, 0.25), ("step", 0.5),
                         ("delta", 0.5, 0.5), ("step", 0.5), ("delta", 1.0, 0.5)]
    total = sum(inc.numpy() for inc in rec.increments)
    np.testing.assert_allclose(r.log_weights, total, rtol=1e-15, atol=0)
    assert not np.all(r.log_weights == 0)


def test_ais_accepts_a_two_point_schedule_of_integers(monkeypatch):
    m = _rbm(4, 3)
    rec = _Recording(m._anneal_path(None))
    monkeypatch.setattr(m, "_anneal_path", lambda data: rec)
    r = ais_log_partition(m, betas=[0, 1], n_runs=5, random_state=0)
    assert rec.calls == [("start", 5), ("delta", 1.0, 0.0)]
    assert all(isinstance(x, float) for x in rec.calls[1][1:])
    np.testing.assert_array_equal(r.log_weights, rec.increments[0].numpy())
    assert r.log_weights.dtype == np.float64 and np.all(r.log_weights != 0)


@pytest.mark.parametrize("betas, message", [
    ([0, 2], "Expected betas to increase from 0 to 1, got 2 values from [0.] to [2.]."),
    ([], "Expected betas to increase from 0 to 1, got 0 values from [] to []."),
    ([1], "Expected betas to increase from 0 to 1, got 1 values from [1.] to [1.]."),
    ([0.0, 0.6, 0.4, 1.0], "Expected betas to increase from 0 to 1, got 4 values from [0.] to [1.]."),
    ([[0.0, 1.0]], "Expected betas to be 1-D, got shape (1, 2)."),
    (0.5, "Expected betas to be 1-D, got shape ()."),
])
def test_ais_refuses_bad_schedules_word_for_word(betas, message):
    with pytest.raises(ValueError, match=_exactly(message)):
        ais_log_partition(_rbm(3, 2), betas=betas, n_runs=2)


def test_ais_argument_messages_name_the_argument():
    m = _rbm(3, 2)
    with pytest.raises(ValueError, match=_exactly("Expected n_runs to be an integer >= 1, got 0.")):
        ais_log_partition(m, n_runs=0)
    with pytest.raises(ValueError, match=_exactly("Expected n_betas to be an integer >= 3, got 2.")):
        ais_log_partition(m, n_betas=2, n_runs=2)


# ------------------------------------------------------------------ ais_log_partition: seeds, bars, memory
def test_ais_seed_repeats_the_estimate_and_restores_the_model_seed():
    m = _rbm(4, 3, random_state=11)
    a = ais_log_partition(m, n_betas=10, n_runs=8, random_state=3)
    assert m.random_state == 11
    b = ais_log_partition(m, n_betas=10, n_runs=8, random_state=3)
    assert m.random_state == 11
    np.testing.assert_array_equal(a.log_weights, b.log_weights)


def test_ais_progress_bar_counts_the_temperature_pairs(monkeypatch, capsys):
    seen = []
    real = lik._bar

    def spy(total, show, desc):
        bar = real(total, show, desc)
        seen.append((total, show, desc, bar))
        return bar

    monkeypatch.setattr(lik, "_bar", spy)
    m = _rbm(3, 2)
    ais_log_partition(m, betas=[0, 0.3, 0.6, 0.8, 1], n_runs=2, progress=True)
    (total, show, desc, bar), = seen
    assert (total, show, desc) == (4, True, "AIS")
    assert bar.n == 4
    assert "AIS" in capsys.readouterr().err
    ais_log_partition(m, betas=[0, 0.5, 1], n_runs=2)
    assert seen[1][:3] == (2, False, "AIS")


def test_ais_defaults_are_14500_betas_and_100_runs(monkeypatch):
    asked = []
    monkeypatch.setattr(lik, "ais_schedule", lambda n: (asked.append(n), np.array([0.0, 0.5, 1.0]))[1])
    shown = []
    real = lik._bar
    monkeypatch.setattr(lik, "_bar", lambda total, show, desc: (shown.append(show), real(total, show, desc))[1])
    r = ais_log_partition(_rbm(3, 2), random_state=0)
    assert asked == [14500]
    assert r.log_weights.shape == (100,)
    assert shown == [False]


def test_ais_memory_figures_per_run_and_per_temperature(monkeypatch):
    seen = []
    real = lik.check_fits
    monkeypatch.setattr(lik, "check_fits", lambda what, nbytes: (seen.append((what, nbytes)), real(what, nbytes))[1])
    m = _rbm(5, 3)
    ais_log_partition(m, n_betas=30, n_runs=7, random_state=0)
    # per run: four model-dtype copies of the 5 + 3 states (8 bytes each) and 16 bytes of weights
    assert seen == [("n_runs=7", 7 * (4 * 8 * 8 + 16)), ("n_betas=30", 16 * 30)]


def test_ais_refuses_runs_that_do_not_fit(monkeypatch):
    m = _rbm(5, 3)
    need = 7 * (4 * 8 * 8 + 16)
    monkeypatch.setattr(memory, "machine_memory", lambda: need)
    assert ais_log_partition(m, n_betas=3, n_runs=7, random_state=0).log_weights.shape == (7,)
    monkeypatch.setattr(memory, "machine_memory", lambda: need - 1)
    with pytest.raises(ValueError, match="^n_runs=7 would need "):
        ais_log_partition(m, n_betas=3, n_runs=7, random_state=0)


# ------------------------------------------------------------------ exact_log_partition
@pytest.mark.parametrize("d, h", [(4, 3), (3, 5), (3, 3)])
@pytest.mark.parametrize("chunk", [1, 3, 5, 7, 1 << 14])
def test_exact_log_z_matches_the_sum_over_every_joint_state(d, h, chunk):
    m = _rbm(d, h, seed=d * 10 + h, scale=1.0)
    assert exact_log_partition(m, chunk=chunk) == pytest.approx(_brute_log_z(m), rel=1e-12)


def _spy_sides(monkeypatch, m):
    used = []
    for name in ("_log_sum_visible", "_log_sum_hidden"):
        real = getattr(m, name)
        monkeypatch.setattr(m, name, lambda p, s, real=real, name=name: (used.append(name), real(p, s))[1])
    return used


def test_exact_log_z_enumerates_visible_states_only_when_fewer_than_hidden(monkeypatch):
    wide = _rbm(3, 5, scale=1.0)
    used = _spy_sides(monkeypatch, wide)
    assert exact_log_partition(wide, max_units=3) == pytest.approx(_brute_log_z(wide), rel=1e-12)
    assert set(used) == {"_log_sum_hidden"}
    square = _rbm(3, 3, scale=1.0)
    used = _spy_sides(monkeypatch, square)
    exact_log_partition(square, chunk=3)
    assert used == ["_log_sum_visible"] * 3  # 8 hidden states in chunks of 3


def test_exact_log_z_allows_exactly_max_units():
    m = _rbm(4, 3, scale=1.0)
    assert exact_log_partition(m, max_units=3) == pytest.approx(_brute_log_z(m), rel=1e-12)
    with pytest.raises(ValueError, match=_exactly(
            "Expected at most max_units=2 hidden units (or visible units for RBM) for exact log Z, "
            "got 4 visible and 3 hidden; use ais_log_partition.")):
        exact_log_partition(m, max_units=2)


def test_exact_log_z_chunk_message_names_chunk():
    with pytest.raises(ValueError, match=_exactly("Expected chunk to be an integer >= 1, got 0.")):
        exact_log_partition(_rbm(3, 2), chunk=0)


# ------------------------------------------------------------------ average_log_likelihood, pseudo_likelihood
def test_average_log_likelihood_sums_every_chunk_of_rows(monkeypatch):
    monkeypatch.setattr(base_mod, "_CHUNK_ELEMENTS", 8)  # 8 // 4 columns = 2 rows a chunk
    m = _rbm(4, 3, scale=1.0)
    X = np.random.default_rng(5).random((7, 4))
    v = (X > 0.5).astype(float)
    expected = float(np.mean(_minus_free_energy(m, v))) - 1.25
    assert average_log_likelihood(m, X, 1.25) == pytest.approx(expected, rel=1e-12)
    r = AISResult(log_z=1.25, log_z_std=0.0, log_z_low=1.25, log_z_high=1.25, log_weights=np.zeros(1),
                  log_z_base=0.0)
    assert average_log_likelihood(m, X, r) == pytest.approx(expected, rel=1e-12)


def _numpy_pseudo_likelihood(m, v):
    out = np.zeros(v.shape[0])
    for i in range(v.shape[1]):
        flipped = v.copy()
        flipped[:, i] = 1 - flipped[:, i]
        out += -np.logaddexp(0, _minus_free_energy(m, flipped) - _minus_free_energy(m, v))
    return out


def test_pseudo_likelihood_passes_chunk_elements_through(monkeypatch):
    m = _rbm(4, 3, scale=1.0)
    X = (np.random.default_rng(6).random((9, 4)) < 0.5).astype(float)
    expected = _numpy_pseudo_likelihood(m, X)
    for chunk_elements in (1, 12, 1 << 22):
        np.testing.assert_allclose(pseudo_likelihood(m, X, chunk_elements=chunk_elements), expected, rtol=1e-6)
    asked = []
    real = m.score_samples
    monkeypatch.setattr(m, "score_samples", lambda X, chunk_elements: (asked.append(chunk_elements),
                                                                        real(X, chunk_elements=chunk_elements))[1])
    pseudo_likelihood(m, X, chunk_elements=np.int64(12))
    pseudo_likelihood(m, X)
    assert asked == [12, 1 << 22] and type(asked[0]) is int


def test_pseudo_likelihood_chunk_message_names_chunk_elements():
    with pytest.raises(ValueError, match=_exactly("Expected chunk_elements to be an integer >= 1, got 0.")):
        pseudo_likelihood(_rbm(3, 2), np.zeros((2, 3)), chunk_elements=0)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_ais_on_a_cuda_model_accumulates_weights_on_its_device():
    X = (np.random.default_rng(0).random((20, 5)) < 0.5).astype(float)
    m = RBM(n_components=3, n_iter=1, dtype="float64", device="cuda", random_state=0).fit(X)
    r = ais_log_partition(m, X, n_betas=50, n_runs=16, random_state=0)
    assert r.log_weights.dtype == np.float64 and r.log_weights.shape == (16,)
    assert abs(r.log_z - exact_log_partition(m)) < 0.2
