"""Bad arguments to the machines and likelihoods fail up front with an error naming them;
sizes that cannot fit are refused with the memory they would need; a diverged fit names
learning_rate; save is atomic."""
from __future__ import annotations

import os
import re
import stat

import numpy as np
import pytest
import safetensors.torch

from fastseq.boltzmann import (RBM, RRBM, BetaRBM, GaussianRBM, ais_log_partition, average_log_likelihood,
                               exact_log_partition, pseudo_likelihood)
from fastseq.boltzmann._base import load_rbm
from fastseq.boltzmann.likelihood import ais_schedule

RAGGED = [[1.0, 0.0], [1.0]]
HUGE = 2**40  # no machine has the memory this would need


@pytest.fixture(scope="module")
def X():
    return (np.random.default_rng(0).random((10, 6)) > 0.5).astype(float)


@pytest.fixture(scope="module")
def fitted(X):
    return RBM(n_components=3, n_iter=1, batch_size=4, random_state=0).fit(X)


def test_ragged_X_is_named(X, fitted):
    calls = [lambda: RBM(n_components=2, n_iter=1).fit(RAGGED), lambda: fitted.transform(RAGGED),
             lambda: average_log_likelihood(fitted, RAGGED, 1.0), lambda: pseudo_likelihood(fitted, RAGGED)]
    for call in calls:
        with pytest.raises(ValueError, match=r"Expected X to be an N x D array of numbers, got a ragged list"):
            call()


@pytest.mark.parametrize("call", [lambda: ais_log_partition(None), lambda: exact_log_partition("rbm"),
                                  lambda: average_log_likelihood(None, [[1.0]], 1.0),
                                  lambda: pseudo_likelihood(None, [[1.0]])])
def test_model_is_named(call):
    with pytest.raises(TypeError, match=r"Expected model to be .*, got (NoneType|str)"):
        call()


def test_small_schedules_end_at_one_and_numpy_integers_count(fitted):
    for n in (3, 4, np.int64(3)):
        b = ais_schedule(n)
        assert len(b) == n and b[0] == 0.0 and b[-1] == 1.0 and np.all(np.diff(b) > 0)
    assert np.isfinite(ais_log_partition(fitted, n_betas=np.int64(3), n_runs=4, random_state=0).log_z)


def test_sizes_that_cannot_fit_are_refused_with_their_memory(X, fitted):
    with pytest.raises(ValueError, match=r"n_betas=1099511627776 would need \d+ GiB, more than"):
        ais_schedule(HUGE)
    with pytest.raises(ValueError, match=r"n_betas=1099511627776 would need"):
        ais_log_partition(fitted, n_betas=HUGE)
    with pytest.raises(ValueError, match=r"n_runs=1099511627776 would need \d+ GiB"):
        ais_log_partition(fitted, n_runs=HUGE)
    with pytest.raises(ValueError, match=r"RBM\(n_components=1099511627776\) on 6 features would need \d+ GiB"):
        RBM(n_components=HUGE, n_iter=1).fit(X)
    with pytest.raises(ValueError, match=r"n_chains=1099511627776\) on 6 features would need"):
        GaussianRBM(n_components=2, n_chains=HUGE, n_iter=1).fit(X)


def test_named_errors_for_none(fitted, tmp_path):
    with pytest.raises(TypeError, match=r"Expected log_z to be a number or an AISResult, got NoneType None"):
        average_log_likelihood(fitted, [[1.0] * 6], None)
    with pytest.raises(ValueError, match=r"Expected log_z to be a finite number"):
        average_log_likelihood(fitted, [[1.0] * 6], np.nan)
    with pytest.raises(TypeError, match=r"Expected max_units to be an integer >= 0, got NoneType None"):
        exact_log_partition(fitted, max_units=None)
    with pytest.raises(ValueError, match=r"at most max_units=2 hidden units"):
        exact_log_partition(fitted, max_units=2)
    with pytest.raises(TypeError, match=r"Expected path to be a file path .*, got NoneType None"):
        load_rbm(None)


@pytest.mark.parametrize("batch_size", [10, 11, HUGE])
@pytest.mark.parametrize("cls,kw", [(RBM, {}), (RBM, {"optimizer": "adam"}), (GaussianRBM, {})])
def test_batch_size_above_the_rows_trains_on_all_rows(X, batch_size, cls, kw):
    # as scikit-learn's BernoulliRBM: one mini-batch of every row, nothing allocated for the rest
    ref = cls(n_components=3, n_iter=2, batch_size=len(X), random_state=0, **kw).fit(X)
    got = cls(n_components=3, n_iter=2, batch_size=batch_size, random_state=0, **kw).fit(X)
    assert got.batch_size == batch_size  # the estimator's parameter is not changed
    assert got.h_samples_.shape == (len(X), 3)
    for name, value in ref.params_.items():
        np.testing.assert_array_equal(got.params_[name].detach().numpy(), value.detach().numpy())


def test_learning_rate_the_dtype_cannot_hold_is_refused(X):
    with pytest.raises(ValueError, match=r"Expected learning_rate to be at most 3.4e\+38 \(the largest float32\), "
                                         r"got 1e\+308"):
        RBM(n_components=2, learning_rate=1e308).fit(X)
    with pytest.raises(ValueError, match=r"'learning_rate' parameter of RBM must be a finite float"):
        RBM(n_components=2, learning_rate=np.inf).fit(X)
    with pytest.raises(TypeError, match=r"'batch_size' parameter of RBM must be an int"):
        RBM(n_components=2, batch_size=True).fit(X)


@pytest.mark.parametrize("cls,rate", [(BetaRBM, 1e6), (BetaRBM, 2**31), (GaussianRBM, 1e38)])
def test_a_diverged_fit_names_learning_rate(X, cls, rate):
    with pytest.raises(ValueError, match=rf"{cls.__name__} training diverged in epoch 1: the parameters became "
                                         rf"non-finite or degenerate; lower learning_rate \(got {re.escape(repr(rate))}\)"):
        cls(n_components=3, n_iter=2, batch_size=4, learning_rate=rate, random_state=0).fit(X)
    model = cls(n_components=3, learning_rate=rate, random_state=0)
    with pytest.raises(ValueError, match=r"training diverged in partial_fit.*lower learning_rate"):
        for _ in range(5):
            model.partial_fit(X)
    hints = {GaussianRBM: ", or standardise X (each feature at mean 0 and variance 1).", BetaRBM: "."}
    with pytest.raises(ValueError) as caught:
        cls(n_components=3, n_iter=2, batch_size=4, learning_rate=rate, random_state=0).fit(X)
    assert str(caught.value).endswith(f"(got {rate!r}){hints[cls]}")


@pytest.mark.parametrize("cls,dtype,limit,why", [
    (GaussianRBM, "float32", 1.84e19, "their squares must stay finite; standardise X"),
    (GaussianRBM, "float64", 1.34e154, "their squares must stay finite; standardise X"),
    (RBM, "float32", 3.4e38, "the largest finite value"), (RRBM, "float32", 3.4e38, "the largest finite value")])
def test_machines_refuse_values_their_dtype_cannot_hold_naming_X(X, cls, dtype, limit, why):
    big = X.copy()
    big[3, 2] = -1.01 * limit
    message = re.escape(f"Expected X's values within +-{limit:.3g} for {cls.__name__} in {dtype} ({why}), got values "
                        f"up to {1.01 * limit:.3g}.")
    with pytest.raises(ValueError, match=message):
        cls(n_components=3, n_iter=1, batch_size=4, dtype=dtype).fit(big)
    fitted = cls(n_components=3, n_iter=1, batch_size=4, dtype=dtype, random_state=0).fit(X)
    with pytest.raises(ValueError, match=message):
        fitted.transform(big)
    near = X.copy()
    near[3, 2] = 0.99 * limit  # held: accepted (even if a fit would diverge on it)
    assert fitted.transform(near).shape == (len(X), 3)


def test_corrupt_files_are_named(fitted, tmp_path):
    path = tmp_path / "m.npz"
    fitted.save(path)
    data = path.read_bytes()
    for i, bad in enumerate([data[:4], data[:len(data) // 2], data[:54] + bytes(8) + data[62:]]):
        p = tmp_path / f"bad{i}.npz"
        p.write_bytes(bad)
        with pytest.raises(ValueError, match=rf"Expected path '{p}' to be a fastseq Boltzmann machine \(RBM\) file, "
                                             r"got an unreadable file: \w+"):
            load_rbm(p)


def test_save_is_atomic_and_keeps_the_usual_file_mode(fitted, tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    fitted.save(path)
    old = path.read_bytes()
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~umask  # not mkstemp's 0600

    def half_then_fail(tensors, filename, metadata=None):
        with open(filename, "wb") as fh:
            fh.write(b"\x90\x00\x00\x00\x00\x00\x00\x00{ half a safetensors file")
        raise KeyboardInterrupt

    monkeypatch.setattr(safetensors.torch, "save_file", half_then_fail)
    with pytest.raises(KeyboardInterrupt):
        fitted.save(path)
    assert path.read_bytes() == old and os.listdir(tmp_path) == ["m.npz"]


def test_loaded_model_keeps_its_chain_count(X, tmp_path):
    m = RBM(n_components=3, n_iter=1, batch_size=HUGE, random_state=0).fit(X)
    m.save(tmp_path / "m.npz")
    assert load_rbm(tmp_path / "m.npz").h_samples_.shape == (len(X), 3)


@pytest.mark.parametrize("cls", [RBM, GaussianRBM, BetaRBM, RRBM], ids=lambda c: c.__name__)
def test_every_machine_refuses_sampling_chains_that_cannot_fit(X, cls):
    """Each machine draws its own random starts, and each checks their memory first: a
    2**40-chain sample is refused by name instead of reaching the allocator."""
    m = cls(n_components=3, n_iter=1, batch_size=4, random_state=0).fit(np.clip(X, 0.1, 0.9))
    with pytest.raises(ValueError, match=rf"^{cls.__name__}\.sample\(n_samples={HUGE}\) of 6 features would need"):
        m.sample(HUGE, n_steps=1)
