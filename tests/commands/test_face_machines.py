"""fastseq faces' code models (fastseq/commands/_face_machines.py): which machine each name
builds with which settings, and that every CodeModel method reaches the right part of the
machine or deep net, checked with recording stand-ins and with small real machines."""
from __future__ import annotations

import numpy as np
import pytest

from fastseq.boltzmann import R3BM, RRBM, BetaRBM, DeepBeliefNet, GaussianRBM, RBM
from fastseq.commands import _face_machines as fm


class Recorder:
    """A stand-in machine: each method records its call and returns a marked array."""

    def __init__(self, tag: float, random_state=5, progress=False):
        self.tag, self.calls = tag, []
        self.random_state, self.progress = random_state, progress

    def _note(self, name, *args, **kwargs):
        if args and args[0] is None:
            raise TypeError(f"{name} got None")
        self.calls.append((name, args, kwargs))
        return np.full((2, 3), self.tag) if not args or not isinstance(args[0], np.ndarray) else args[0] + self.tag

    def fit(self, X):
        self.calls.append(("fit", (X,), {}))
        return "not self"

    def transform(self, X):
        return self._note("transform", X)

    def gibbs(self, v):
        return self._note("gibbs", v)

    def visible_mean(self, h):
        return self._note("visible_mean", h)

    def sample_visible(self, h):
        return self._note("sample_visible", h)

    def sample(self, n_samples, n_steps=1000, start=None, return_means=True):
        self.calls.append(("sample", (n_samples,), dict(n_steps=n_steps, start=start, return_means=return_means)))
        return np.full((n_samples, 3), self.tag)


@pytest.mark.parametrize("name, cls, sigma", [("RRBM", RRBM, 0.1), ("R3BM", R3BM, 0.1), ("BetaRBM", BetaRBM, None),
                                              ("GaussianRBM", GaussianRBM, 1.0)])
def test_each_name_builds_its_machine_with_the_commands_settings(name, cls, sigma):
    codes = fm.make_machine(name, 7, 3, seed=11, batch_size=5, learning_rate=0.2, progress=True, ais_betas=40,
                            ais_runs=6, cd_steps=2)
    m = codes.machine
    assert type(m) is cls and codes.name == name
    assert (m.n_components, m.n_iter, m.batch_size, m.optimizer, m.learning_rate, m.persistent, m.k, m.device,
            m.random_state, m.progress) == (7, 3, 5, "adam", 0.2, False, 2, "cpu", 11, True)
    if sigma is not None:
        assert m.sigma == sigma
    assert (codes.n_betas, codes.n_runs) == (40, 6)
    assert codes.scaling == ("standard" if cls is GaussianRBM else "unit")
    assert codes.has_energy == (cls in (BetaRBM, GaussianRBM)) and codes.draws == (cls is BetaRBM)


def test_the_device_reaches_every_machine():
    assert fm.make_machine("BetaRBM", 4, 1, seed=0, device="cuda:1").machine.device == "cuda:1"
    assert {m.device for m in fm.make_machine("dbn", 4, 1, seed=0, device="cuda:1").net.layers} == {"cuda:1"}


def test_defaults_are_rate_0_01_cd_1_and_3000_by_64_annealing():
    codes = fm.make_machine("GaussianRBM", 4, 2, seed=0)
    m = codes.machine
    assert (m.learning_rate, m.k, m.batch_size, m.progress, m.device) == (0.01, 1, 16, False, "cpu")
    assert (codes.n_betas, codes.n_runs) == (3000, 64)
    assert fm.make_machine("RRBM", 4, 2, seed=0, learning_rate=None).machine.learning_rate == 0.01


def test_the_deep_net_stacks_a_gaussian_machine_under_rbms_with_the_shared_settings():
    codes = fm.make_machine("dbn", 8, 3, seed=4, batch_size=6, learning_rate=0.05, ais_betas=30, ais_runs=5,
                            deep_hidden=(8, 5, 2), cd_steps=3)
    assert isinstance(codes, fm.DeepCodes) and codes.name == fm.DEEP == "dbn"
    net = codes.net
    assert isinstance(net, DeepBeliefNet) and net.random_state == 4
    layers = net.layers
    assert [type(m) for m in layers] == [GaussianRBM, RBM, RBM] and [m.n_components for m in layers] == [8, 5, 2]
    for m in layers:
        assert (m.n_iter, m.batch_size, m.optimizer, m.learning_rate, m.persistent, m.k) == (3, 6, "adam", 0.05,
                                                                                              False, 3)
    assert (codes.n_betas, codes.n_runs, codes.n_samples) == (30, 5, 100)
    plain = fm.DeepCodes(net)
    assert (plain.n_betas, plain.n_runs, plain.n_samples, plain.net, plain.name) == (3000, 64, 100, net, "dbn")
    assert [m.n_components for m in fm.make_machine("dbn", 9, 1, seed=0).net.layers] == [9, 4]
    assert (fm.DeepCodes.scaling, fm.DeepCodes.has_energy) == ("standard", True)


def test_deep_sizes_default_to_the_hidden_size_and_half_of_it():
    assert fm.deep_sizes(10) == (10, 5) and fm.deep_sizes(3) == (3, 1) and fm.deep_sizes(1) == (1, 1)
    assert fm.deep_sizes(10, [4, 3]) == (4, 3) and fm.deep_sizes(10, ()) == (10, 5)


def test_an_unknown_machine_name_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"^Expected a machine in RRBM, R3BM, BetaRBM, GaussianRBM, dbn, "
                                         r"got 'RBM'\.$"):
        fm.make_machine("RBM", 4, 1, seed=0)


@pytest.mark.parametrize("draws", [False, True])
def test_machine_codes_pass_each_call_to_the_machine(draws):
    machine = Recorder(1.0)
    codes = fm.MachineCodes(machine)
    assert (codes.n_betas, codes.n_runs, codes.name) == (3000, 64, "Recorder")
    codes.draws = draws
    x = np.zeros((2, 3))
    assert codes.fit(x) is codes and machine.calls[-1][0] == "fit" and machine.calls[-1][1][0] is x
    np.testing.assert_array_equal(codes.transform(x), x + 1)
    np.testing.assert_array_equal(codes.gibbs(x), x + 1)
    np.testing.assert_array_equal(codes.inverse_transform(x), x + 1)
    assert [c[0] for c in machine.calls] == ["fit", "transform", "gibbs", "visible_mean"]
    start = np.ones((4, 3))
    assert codes.sample(4, n_steps=9, start=start).shape == (4, 3)
    assert machine.calls[-1] == ("sample", (4,), dict(n_steps=9, start=start, return_means=not draws))
    codes.sample()
    assert machine.calls[-1] == ("sample", (16,), dict(n_steps=1000, start=None, return_means=not draws))


def test_machine_codes_likelihood_is_ais_from_train_then_the_mean_over_test(monkeypatch):
    rng = np.random.default_rng(0)
    train, test = rng.normal(size=(30, 4)), rng.normal(size=(10, 4)) + 1.0
    codes = fm.make_machine("GaussianRBM", 3, 2, seed=2, ais_betas=50, ais_runs=4)
    codes.fit(train)
    seen = {}
    real_ais, real_mean = fm.ais_log_partition, fm.average_log_likelihood

    def ais(machine, data, **kwargs):
        seen["ais"] = (machine, data, kwargs)
        return real_ais(machine, data, **kwargs)

    def mean(machine, data, result):
        seen["mean"] = (machine, data, result)
        return real_mean(machine, data, result)

    monkeypatch.setattr(fm, "ais_log_partition", ais)
    monkeypatch.setattr(fm, "average_log_likelihood", mean)
    got = codes.held_out_log_likelihood(train, test)
    machine, data, kwargs = seen["ais"]
    assert machine is codes.machine and data is train
    assert kwargs == dict(n_betas=50, n_runs=4, random_state=2, progress=False)
    result = real_ais(codes.machine, train, n_betas=50, n_runs=4, random_state=2)
    assert seen["mean"][0] is codes.machine and seen["mean"][1] is test
    expected = float(real_mean(codes.machine, test, result))
    assert got == {"log_z": float(result.log_z), "log_z_std": float(result.log_z_std), "log_likelihood": expected}
    assert got["log_likelihood"] != float(real_mean(codes.machine, train, result))  # the held-out rows count
    assert fm.make_machine("RRBM", 3, 1, seed=0).held_out_log_likelihood(train, test) is None


def _deep(layers):
    codes = fm.DeepCodes.__new__(fm.DeepCodes)
    codes.net = type("Net", (), {})()
    codes.net.layers_ = layers
    codes.net.transform = lambda X: X * 10
    return codes


def test_deep_codes_go_up_through_every_layer_but_the_top_and_down_through_all():
    layers = [Recorder(1.0), Recorder(2.0), Recorder(4.0)]
    codes = _deep(layers)
    x = np.zeros((2, 3))
    np.testing.assert_array_equal(codes.transform(x + 1), x + 10)
    np.testing.assert_array_equal(codes._below_top(x), x + 3)  # layers 1 and 2 up, not the top
    assert [len(m.calls) for m in layers] == [1, 1, 0]
    np.testing.assert_array_equal(codes.inverse_transform(x), x + 7)  # top, middle, bottom down
    assert [m.calls[-1][0] for m in layers] == ["visible_mean"] * 3
    assert layers[2].calls[-1][1][0] is x and not np.shares_memory(layers[0].calls[-1][1][0], x)
    np.testing.assert_array_equal(codes.gibbs(x), x + 3 + 4 + 2 + 1)  # up 2, Gibbs at the top, down 2
    assert [c[0] for c in layers[2].calls] == ["visible_mean", "gibbs"]
    assert [c[0] for c in layers[1].calls] == ["transform", "visible_mean", "transform", "visible_mean"]


def test_deep_codes_sample_at_the_top_draw_the_middle_and_return_bottom_means():
    layers = [Recorder(1.0), Recorder(2.0), Recorder(4.0)]
    codes = _deep(layers)
    got = codes.sample(5, n_steps=7)
    np.testing.assert_array_equal(got, np.full((5, 3), 4.0 + 2 + 1))
    assert layers[2].calls == [("sample", (5,), dict(n_steps=7, start=None, return_means=False))]
    assert [c[0] for c in layers[1].calls] == ["sample_visible"] and [c[0] for c in layers[0].calls] == ["visible_mean"]
    start = np.zeros((5, 3))
    codes.sample(5, n_steps=2, start=start)
    np.testing.assert_array_equal(layers[2].calls[-1][2]["start"], start + 3)  # the up-pass of start
    codes.sample()
    assert layers[2].calls[-1][1] == (16,) and layers[2].calls[-1][2]["n_steps"] == 1000


def test_a_one_layer_deep_net_samples_its_machine_with_means():
    layer = Recorder(3.0)
    codes = _deep([layer])
    start = np.ones((2, 3))
    np.testing.assert_array_equal(codes.sample(2, n_steps=4, start=start), np.full((2, 3), 3.0))
    assert layer.calls == [("sample", (2,), dict(n_steps=4, start=start, return_means=True))]


def test_deep_codes_likelihood_bound_uses_the_top_machines_ais_on_the_up_pass(monkeypatch):
    rng = np.random.default_rng(1)
    train, test = rng.normal(size=(24, 5)), rng.normal(size=(8, 5))
    codes = fm.make_machine("dbn", 4, 2, seed=3, ais_betas=40, ais_runs=3, deep_hidden=(4, 3, 2))
    codes.n_samples = 7
    codes.fit(train)
    top = codes.net.layers_[-1]
    seen = {}
    real_ais = fm.ais_log_partition

    def ais(machine, data, **kwargs):
        seen["ais"] = (machine, data, kwargs)
        return real_ais(machine, data, **kwargs)

    monkeypatch.setattr(fm, "ais_log_partition", ais)
    got = codes.held_out_log_likelihood(train, test)
    machine, data, kwargs = seen["ais"]
    assert machine is top and kwargs == dict(n_betas=40, n_runs=3, random_state=top.random_state, progress=False)
    np.testing.assert_array_equal(data, codes.net.layers_[1].transform(codes.net.layers_[0].transform(train)))
    result = real_ais(top, data, n_betas=40, n_runs=3, random_state=top.random_state)
    bound = codes.net.log_likelihood_bound(test, log_z=result, n_samples=7, random_state=top.random_state)
    assert got == {"log_z": float(result.log_z), "log_z_std": float(result.log_z_std),
                   "log_likelihood": float(np.mean(bound))}
    assert got["log_likelihood"] != float(np.mean(codes.net.log_likelihood_bound(
        test, log_z=result, n_samples=8, random_state=top.random_state)))  # n_samples reaches the bound
