"""What the shared machinery of ``fastseq.boltzmann._base`` does, checked exactly: the
constructor's documented defaults, the parameter constraints, seeding, chunked row access,
column moments, the memory estimate, the epoch loop's order, progress bar and report, the
reconstruction error against NumPy, and loading with a device.
"""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from fastseq.boltzmann import _base
from fastseq.boltzmann import GaussianRBM, RBM
from fastseq.boltzmann._base import BoltzmannMachine, load_rbm


def _data(n=10, d=3, seed=0):
    return np.random.default_rng(seed).random((n, d))


def test_base_constructor_defaults_are_the_documented_ones():
    assert BoltzmannMachine().get_params() == dict(
        n_components=256, learning_rate=0.1, learning_rate_schedule="constant", batch_size=10, n_iter=10, k=1,
        persistent=True, n_chains=None, optimizer="sgd", momentum=0.0, weight_decay=0.0, init_scale=0.01,
        shuffle=True, n_streams=8, device="cpu", dtype="float32", torch_threads=1, verbose=0, progress=False,
        random_state=None)


def test_store_sets_arguments_but_never_self_or_class():
    m = BoltzmannMachine()
    _base._store(m, {"self": 1, "__class__": int, "k": 3})
    assert type(m) is BoltzmannMachine and m.k == 3 and not hasattr(m, "self")


def test_count_constraint_is_integers_from_low_without_bools():
    c = _base._count()
    assert c.is_satisfied_by(1) and c.is_satisfied_by(10**9)
    assert not c.is_satisfied_by(0) and not c.is_satisfied_by(True) and not c.is_satisfied_by(1.5)
    z = _base._count(0)
    assert z.is_satisfied_by(0) and not z.is_satisfied_by(-1)
    assert c.closed == "left" and c.right is None and c.type is not None


def test_positive_constraint_is_finite_reals_above_zero():
    p = _base._positive()
    assert p.is_satisfied_by(0.5) and p.is_satisfied_by(1e-9)
    assert not p.is_satisfied_by(0.0) and not p.is_satisfied_by(float("inf")) and not p.is_satisfied_by(-1.0)
    assert p.closed == "neither"
    q = _base._positive("left")
    assert q.is_satisfied_by(0.0) and q.is_satisfied_by(0.25) and not q.is_satisfied_by(-0.1)


def test_subclasses_register_by_name_unless_private():
    class PublicMachineForTest(BoltzmannMachine):
        pass

    class _PrivateMachineForTest(BoltzmannMachine):
        pass

    try:
        assert BoltzmannMachine._registry["PublicMachineForTest"] is PublicMachineForTest
        assert "_PrivateMachineForTest" not in BoltzmannMachine._registry
    finally:
        BoltzmannMachine._registry.pop("PublicMachineForTest", None)
        BoltzmannMachine._registry.pop("_PrivateMachineForTest", None)


def test_bar_is_transient_with_the_given_total(monkeypatch):
    seen = []
    monkeypatch.setattr(_base, "progress_bar", lambda show, **kw: seen.append((show, kw)) or "bar")
    assert _base._bar(7, True, "x") == "bar"
    assert seen == [(True, {"total": 7, "desc": "x", "leave": False})]
    assert seen[0][1]["leave"] is False


def _seed_children(seed):
    return np.random.SeedSequence(seed).spawn(3)


def _same_streams(streams, seed, n):
    """The model's CPU streams are the n generators spawned from ``seed`` (compared by their draws)."""
    want = [np.random.default_rng(s) for s in seed.spawn(n)]
    assert len(streams) == n
    for a, b in zip(streams, want):
        np.testing.assert_array_equal(a.random(3), b.random(3))


def test_setup_random_takes_a_random_state_as_its_first_draw():
    rs_seed = int(np.random.RandomState(5).randint(np.iinfo(np.int32).max))
    m = GaussianRBM(n_components=2, n_streams=3, random_state=np.random.RandomState(5))
    m._setup_random()
    _, np_seed, stream_seed = _seed_children(rs_seed)
    assert m._rng.integers(1 << 40) == np.random.default_rng(np_seed).integers(1 << 40)
    _same_streams(m._streams, stream_seed, 3)


def test_setup_random_int_seed_spawns_three_children():
    m = GaussianRBM(n_components=2, n_streams=2, random_state=11)
    m._setup_random()
    torch_seed, np_seed, stream_seed = _seed_children(11)
    assert m._rng.integers(1 << 40) == np.random.default_rng(np_seed).integers(1 << 40)
    _same_streams(m._streams, stream_seed, 2)
    g = torch.Generator().manual_seed(int(torch_seed.generate_state(1, np.uint64)[0] >> np.uint64(1)))
    assert torch.equal(torch.rand(4, generator=m._tgen), torch.rand(4, generator=g))


def test_setup_random_names_n_streams():
    m = GaussianRBM(n_components=2, n_streams=0, random_state=0)
    with pytest.raises(ValueError, match="Expected n_streams to be"):
        m._setup_random()


def _chunks(m, X, rows=None):
    return [c.numpy() for c in m._rows(X, rows)]


def test_rows_chunks_by_the_wider_of_features_and_hidden_units(monkeypatch):
    monkeypatch.setattr(_base, "_CHUNK_ELEMENTS", 12)
    X = _data(7, 3)
    m = BoltzmannMachine(n_components=4, dtype="float64")  # step 12 // 4 = 3
    assert [len(c) for c in _chunks(m, X)] == [3, 3, 1]
    np.testing.assert_array_equal(np.concatenate(_chunks(m, X)), X)
    m = BoltzmannMachine(n_components=2, dtype="float64")  # step 12 // 3 = 4 (features wider)
    assert [len(c) for c in _chunks(m, X)] == [4, 3]
    X6 = _data(7, 6)
    assert [len(c) for c in _chunks(m, X6)] == [2, 2, 2, 1]  # 12 // 6
    m = BoltzmannMachine(n_components=1, dtype="float64")
    assert [len(c) for c in _chunks(m, _data(30, 1))] == [12, 12, 6]  # 12 // 1
    monkeypatch.setattr(_base, "_CHUNK_ELEMENTS", 3)
    m = BoltzmannMachine(n_components=4, dtype="float64")  # 3 // 4 = 0 -> one row at a time
    assert [len(c) for c in _chunks(m, X)] == [1] * 7


def test_rows_follow_the_given_row_order(monkeypatch):
    monkeypatch.setattr(_base, "_CHUNK_ELEMENTS", 8)
    X = _data(6, 3)
    m = BoltzmannMachine(n_components=4, dtype="float64")  # step 2
    rows = np.array([4, 0, 2])
    got = _chunks(m, X, rows)
    assert [len(c) for c in got] == [2, 1]
    np.testing.assert_array_equal(np.concatenate(got), X[rows])
    got = _chunks(m, sp.csr_matrix(X), rows)
    np.testing.assert_array_equal(np.concatenate(got), X[rows])


def test_column_moments_over_several_chunks_match_numpy(monkeypatch):
    monkeypatch.setattr(_base, "_CHUNK_ELEMENTS", 8)
    X = _data(9, 3, seed=2) * 3 - 1
    m = BoltzmannMachine(n_components=4, dtype="float64")
    mean, var = m._column_moments(X)
    np.testing.assert_allclose(mean.numpy(), X.mean(0), rtol=1e-12)
    np.testing.assert_allclose(var.numpy(), X.var(0), rtol=1e-10)


def test_check_sizes_estimate_and_learning_rate_limit(monkeypatch):
    seen = []
    monkeypatch.setattr(_base, "check_fits", lambda what, nbytes: seen.append((what, nbytes)))
    X = np.zeros((20, 5))
    m = GaussianRBM(n_components=7, batch_size=4, n_chains=3, dtype="float64")
    m._check_sizes(X)
    d, h, chains, rows = 5, 7, 3, 4 + 3
    assert seen[-1][1] == 8 * (3 * d * h + chains * h + 4 * rows * (d + h))
    assert "n_components=7 with n_chains=3" in seen[-1][0]
    top = float(np.finfo(np.float32).max)
    GaussianRBM(n_components=2, learning_rate=top, dtype="float32")._check_sizes(X)  # the largest is allowed
    with pytest.raises(ValueError, match="learning_rate"):
        GaussianRBM(n_components=2, learning_rate=top * 2, dtype="float32")._check_sizes(X)


def test_validate_converts_to_float_csr_and_accepts_the_largest_value():
    m = GaussianRBM(n_components=2)
    out = m._validate(np.arange(6).reshape(3, 2), reset=True)
    assert out.dtype == np.float64
    out = m._validate(sp.csc_matrix(np.eye(3)), reset=True)
    assert sp.issparse(out) and out.format == "csr"
    assert m._validate(sp.csr_matrix((3, 4)), reset=True).shape == (3, 4)  # no stored values
    big = np.full((2, 2), float(np.finfo(np.float32).max))
    assert BoltzmannMachine(dtype="float32")._validate(big, reset=True).max() == big.max()


def test_check_magnitude_of_no_values_is_zero():
    m = BoltzmannMachine()
    m._largest_value = lambda: (0.5, "test")
    m._check_magnitude(np.zeros((0, 3)))
    with pytest.raises(ValueError, match="got values up to 0.6"):
        m._check_magnitude(np.full((1, 3), 0.6))


def test_reconstruction_error_is_the_mean_square_over_chunks(monkeypatch):
    monkeypatch.setattr(_base, "_CHUNK_ELEMENTS", 8)
    X = _data(9, 3, seed=4)
    m = GaussianRBM(n_components=4, n_iter=1, random_state=0, dtype="float64").fit(X)
    want = float(((m.reconstruct(X) - X) ** 2).mean())
    assert m.reconstruction_error(X) == pytest.approx(want, rel=1e-12)


class _Recorder:
    def __init__(self, log):
        self.log = log

    def update(self, n):
        self.log.append(("update", n))

    def close(self):
        self.log.append(("close",))


def test_epoch_bar_order_and_report(monkeypatch, capsys):
    log, rows = [], []
    monkeypatch.setattr(_base, "_bar", lambda total, show, desc: log.append((total, show, desc)) or _Recorder(log))
    X = _data(10, 3)
    m = GaussianRBM(n_components=2, n_iter=2, batch_size=4, shuffle=False, progress=True, verbose=1,
                    random_state=0)
    orig = m._update_rows
    m._update_rows = lambda data, r: (rows.append(list(r)), orig(data, r))
    m.fit(X)
    assert log == [(3, True, "epoch 1"), ("update", 1), ("update", 1), ("update", 1), ("close",),
                   (3, True, "epoch 2"), ("update", 1), ("update", 1), ("update", 1), ("close",)]
    assert rows == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]] * 2
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("[GaussianRBM] Iteration 1, reconstruction error = ")
    assert out[1] == f"[GaussianRBM] Iteration 2, reconstruction error = {m.reconstruction_error(X):.5f}"


def test_epoch_shuffles_with_the_seeded_generator():
    rows = []
    X = _data(10, 3)
    m = GaussianRBM(n_components=2, n_iter=1, batch_size=5, shuffle=True, random_state=3)
    orig = m._update_rows
    m._update_rows = lambda data, r: (rows.append(list(r)), orig(data, r))
    m.fit(X)
    assert np.concatenate(rows).tolist() == np.random.default_rng(_seed_children(3)[1]).permutation(10).tolist()


def test_verbose_report_of_sparse_data(capsys):
    X = sp.csr_matrix(_data(6, 3))
    m = GaussianRBM(n_components=2, n_iter=1, verbose=1, random_state=0).fit(X)
    assert capsys.readouterr().out.strip() == (
        f"[GaussianRBM] Iteration 1, reconstruction error = {m.reconstruction_error(X):.5f}")


def test_sample_names_n_samples():
    m = GaussianRBM(n_components=2, n_iter=1, random_state=0).fit(_data(6, 3))
    with pytest.raises(ValueError, match="Expected n_samples to be"):
        m.sample(n_samples=0, n_steps=2)


def test_load_passes_the_device_and_names_it(tmp_path):
    path = tmp_path / "m.safetensors"
    GaussianRBM(n_components=2, n_iter=1, random_state=0).fit(_data(6, 3)).save(path)
    dev = torch.device("cpu")
    assert load_rbm(path, device=dev).device is dev
    assert GaussianRBM.load(path, device=dev).device is dev
    assert load_rbm(path).device == "cpu"
    with pytest.raises(ValueError, match="Expected device to be"):
        load_rbm(path, device="nowhere")


def test_load_error_names_the_path(tmp_path):
    from fastseq._util import files
    path = tmp_path / "odd.safetensors"
    files.write(path, "rbm", {"class": "NoSuchMachine", "config": {}}, {"W": torch.zeros(2, 2)})
    with pytest.raises(ValueError, match="odd.safetensors"):
        load_rbm(path)


def test_tempering_chains_count_rows_not_features():
    X = (_data(6, 3) < 0.5).astype(float)
    m = RBM(n_components=2, n_iter=1, batch_size=10, tempering=2, random_state=0).fit(X)
    assert m.h_samples_.shape == (6, 2)
    assert int(m._h_chain.shape[0]) == 6
