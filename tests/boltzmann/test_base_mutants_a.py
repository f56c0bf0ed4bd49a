"""What the shared machinery of ``fastseq.boltzmann._base`` does, checked exactly: rebuilding a
machine from a file's header and tensors (argument names in errors, the chain-count fallback,
the memory check's size, the parameters' dtype), the validation of hidden values, the memory
check and seeding of ``sample``'s random chain starts, ``sample``'s defaults, step count,
progress bar and returned means, and the PyTorch samplers (the CUDA path) run on the CPU by
telling a machine it is not on the CPU.

Every test builds its own machines (no shared fixtures).
"""
from __future__ import annotations

import re

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from fastseq._util import files, memory
from fastseq.boltzmann import _base
from fastseq.boltzmann import _sampling_nb as nbs
from fastseq.boltzmann import RBM, RRBM, BetaRBM

D, H = 5, 3


def _binary(n=20, d=D, seed=0):
    return (np.random.default_rng(seed).random((n, d)) < 0.5).astype(np.float64)


def _rbm(dtype="float64", seed=0, **kw):
    return RBM(n_components=H, n_iter=1, random_state=seed, dtype=dtype, **kw).fit(_binary())


def _beta(dtype="float64", seed=0):
    X = np.random.default_rng(0).beta(2.0, 3.0, (20, D))
    return BetaRBM(n_components=H, n_iter=0, random_state=seed, dtype=dtype).fit(X)


def _header_params(model):
    header = model._file_header()
    header["config"] = dict(header["config"])
    return header, {k: v.detach().clone() for k, v in model.params_.items()}


def _limit_memory(monkeypatch, nbytes):
    monkeypatch.setattr(memory, "machine_memory", lambda: int(nbytes))


# ---------------------------------------------------------------- _machine_from


def test_loader_errors_name_the_file_kind_path_and_the_bad_count():
    """A bad count in the header becomes a FileError naming the path, the rbm file kind and the setting."""
    header, params = _header_params(_rbm())
    header["n_features_in"] = 0
    expected = f"Expected path 'm.safetensors' to be {files._what('rbm')} whose contents fit together"
    with pytest.raises(files.FileError) as info:
        _base._machine_from(header, params, "m.safetensors")
    assert str(info.value).startswith(expected)
    assert re.search(r"\bn_features_in\b", str(info.value))


@pytest.mark.parametrize("where, key", [("header", "n_chains"), ("config", "n_components")])
def test_loader_errors_name_a_non_positive_setting(where, key):
    header, params = _header_params(_rbm())
    (header if where == "header" else header["config"])[key] = 0
    with pytest.raises(files.FileError) as info:
        _base._machine_from(header, params, "m.safetensors")
    assert re.search(rf"got ValueError: Expected \b{key}\b", str(info.value))


@pytest.mark.parametrize("n_chains, batch_size, expected", [(None, 7, 7), (4, 7, 4)])
def test_loader_without_a_chain_count_uses_n_chains_else_batch_size(n_chains, batch_size, expected):
    """Files of earlier versions have no n_chains entry: the config's n_chains, else batch_size, chains."""
    header, params = _header_params(_rbm())
    del header["n_chains"]
    header["config"].update(n_chains=n_chains, batch_size=batch_size)
    model = _base._machine_from(header, params, "m.safetensors")
    assert model.h_samples_.shape == (expected, H)


def test_loader_refuses_chains_that_do_not_fit_in_memory_at_eight_bytes_per_state(monkeypatch):
    """The chains' states take n_chains * H * 8 bytes: exactly that fits, one byte less does not."""
    header, params = _header_params(_rbm())
    header["n_chains"] = 4
    need = 4 * H * 8
    _limit_memory(monkeypatch, need)
    assert _base._machine_from(header, params, "m.safetensors").h_samples_.shape == (4, H)
    _limit_memory(monkeypatch, need - 1)
    with pytest.raises(ValueError, match=f"RBM with 4 chains of {H} hidden units would need"):
        _base._machine_from(header, params, "m.safetensors")


def test_loader_converts_the_tensors_to_the_configured_dtype():
    header, params = _header_params(_rbm(dtype="float32"))
    params = {k: v.double() for k, v in params.items()}
    model = _base._machine_from(header, params, "m.safetensors")
    assert {str(p.dtype) for p in model.params_.values()} == {"torch.float32"}
    assert all(p.requires_grad for p in model.params_.values())
    np.testing.assert_allclose(model.params_["W"].detach().numpy(), params["W"].numpy(), rtol=1e-6)


# ---------------------------------------------------------------- _validate_hidden


@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_visible_mean_takes_sparse_hidden_values(fmt):
    m = _rbm()
    h = np.array([[0.0, 1.0, 0.0], [0.5, 0.0, 0.25], [0.0, 0.0, 0.0]])
    dense = m.visible_mean(h)
    np.testing.assert_array_equal(m.visible_mean(sp.csr_matrix(h).asformat(fmt)), dense)


def test_visible_mean_of_integer_hidden_states_is_float64():
    m = _rbm(dtype="float32")
    h = np.array([[0, 1, 0], [1, 1, 1]])
    out = m.visible_mean(h)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, m.visible_mean(h.astype(np.float64)))


def test_hidden_nan_error_names_h():
    with pytest.raises(ValueError, match=r"^Input h contains NaN\."):
        _rbm().visible_mean(np.array([[np.nan, 0.0, 0.0]]))


def test_sparse_hidden_out_of_range_reports_the_stored_values():
    """The range message shows the stored entries' range, not the implicit zeros'."""
    h = sp.csr_matrix(np.array([[0.0, 2.0, 0.0], [0.0, 0.0, 3.0]]))
    with pytest.raises(ValueError, match=r"got values in \[2\.0, 3\.0\]"):
        _rbm().visible_mean(h)


# ---------------------------------------------------------------- _random_visible


@pytest.mark.parametrize("dtype, itemsize", [("float64", 8), ("float32", 4)])
def test_sample_refuses_chains_that_do_not_fit_in_memory(monkeypatch, dtype, itemsize):
    """Sampling n chains from uniform starts needs 4 n (D + H) items of the model's dtype: exactly that fits."""
    m = _beta(dtype=dtype)
    need = 4 * 10 * (D + H) * itemsize
    _limit_memory(monkeypatch, need)
    assert m.sample(10, n_steps=1).shape == (10, D)
    _limit_memory(monkeypatch, need - 1)
    with pytest.raises(ValueError, match=r"^BetaRBM\.sample\(n_samples=10\) of 5 features would need"):
        m.sample(10, n_steps=1)


def test_sample_chain_starts_come_from_the_models_seed_not_torchs_global_one():
    m1, m2 = _beta(seed=3), _beta(seed=3)
    torch.manual_seed(1)
    s1 = m1.sample(50, n_steps=1, return_means=False)
    torch.manual_seed(2)
    s2 = m2.sample(50, n_steps=1, return_means=False)
    np.testing.assert_array_equal(s1, s2)


# ---------------------------------------------------------------- sample


class _Bars:
    """Stands in for the progress bar factory: records each bar's settings and updates."""

    def __init__(self):
        self.bars = []

    def __call__(self, enabled, total=None, desc=None, **kwargs):
        bar = {"enabled": enabled, "total": total, "desc": desc, "updates": []}
        self.bars.append(bar)

        class Bar:
            def update(self, n=1):
                bar["updates"].append(n)

            def close(self):
                pass

            def set_postfix(self, *a, **k):
                pass

            def refresh(self):
                pass

            n = 0

        return Bar()


@pytest.fixture
def bars(monkeypatch):
    recorder = _Bars()
    monkeypatch.setattr(_base, "progress_bar", recorder)
    return recorder


def test_sample_defaults_to_16_chains_of_1000_steps(bars):
    """The bar counts the Gibbs steps after the first hidden draw: n_steps - 1 of them."""
    out = _rbm().sample()
    assert out.shape == (16, D)
    assert bars.bars[-1]["total"] == 999
    assert sum(bars.bars[-1]["updates"]) == 999


@pytest.mark.parametrize("n_steps, updates", [(2, [1]), (3, [2]), (52, [50, 1]), (101, [50, 50])])
def test_sample_runs_n_steps_in_blocks_of_50(bars, n_steps, updates):
    m = _rbm()
    calls = []
    chain = m._chain
    m._chain = lambda h, k: (calls.append(k), chain(h, k))[1]
    m.sample(2, n_steps=n_steps, progress=True)
    assert calls == updates
    assert bars.bars[-1] == {"enabled": True, "total": n_steps - 1, "desc": "gibbs", "updates": updates}


@pytest.mark.parametrize("own, argument, shown", [(False, None, False), (True, None, True),
                                                  (False, True, True), (True, False, False)])
@pytest.mark.parametrize("sampler", ["gibbs", "pt"])
def test_sample_progress_argument_overrides_the_models_setting(bars, own, argument, shown, sampler):
    m = _rbm()
    m.progress = own
    betas = [1.0, 0.5] if sampler == "pt" else None
    m.sample(2, n_steps=4, progress=argument, sampler=sampler, betas=betas)
    assert bars.bars[-1]["enabled"] is shown


def test_sample_pt_bar_counts_all_steps_as_tempering(bars):
    _rbm().sample(2, n_steps=6, progress=True, sampler="pt", betas=[1.0, 0.5])
    assert (bars.bars[-1]["total"], bars.bars[-1]["desc"]) == (6, "tempering")


@pytest.mark.parametrize("sampler", ["gibbs", "pt"])
def test_sample_returns_means_or_binary_states(sampler):
    m = _rbm()
    betas = [1.0, 0.5] if sampler == "pt" else None
    means = m.sample(20, n_steps=3, sampler=sampler, betas=betas)
    states = m.sample(20, n_steps=3, sampler=sampler, betas=betas, return_means=False)
    assert not np.isin(means, [0.0, 1.0]).all()
    assert (means > 0).all() and (means < 1).all()
    assert np.isin(states, [0.0, 1.0]).all()


def test_pt_refuses_a_machine_without_energy_before_looking_at_start():
    m = RRBM(n_components=H, n_iter=0, random_state=0).fit(np.random.default_rng(0).beta(2.0, 3.0, (20, D)))
    with pytest.raises(TypeError, match="Expected a machine with an energy"):
        m.sample(2, n_steps=2, sampler="pt", start=np.zeros((2, D + 1)))


# ---------------------------------------------------------------- the PyTorch (CUDA) samplers, on the CPU


def _torch_path(model):
    model._on_cpu = lambda: False
    return model


def test_torch_bernoulli_draws_follow_the_logits_from_the_models_generator():
    pre = torch.zeros(400, 3, dtype=torch.float64)
    pre[:, 0], pre[:, 1] = 60.0, -60.0
    m1, m2 = _torch_path(_rbm(seed=5)), _torch_path(_rbm(seed=5))
    torch.manual_seed(1)
    d1 = m1._bernoulli(pre)
    torch.manual_seed(2)
    d2 = m2._bernoulli(pre)
    torch.testing.assert_close(d1, d2)
    assert (d1[:, 0] == 1).all() and (d1[:, 1] == 0).all()
    assert 120 < float(d1[:, 2].sum()) < 280


@pytest.mark.parametrize("sigma", [0.1, 0.6, "per-unit"])
def test_torch_beta_from_logits_uses_the_moment_matched_shapes(sigma):
    """Beta(m nu, (1 - m) nu) with m = sigmoid(pre) clamped to [EPS_MEAN, 1 - EPS_MEAN],
    var = min(sigma^2, m (1 - m)) and nu = max(m (1 - m) / var - 1, NU_MIN)."""
    m = _torch_path(_rbm())
    pre = torch.tensor([[-40.0, -2.0, 0.0, 1.0, 40.0]] * 2, dtype=torch.float64)
    s = np.array([0.05, 0.1, 0.2, 0.4, 0.01]) if sigma == "per-unit" else sigma
    seen = []
    m._beta_ab = lambda a, b: (seen.append((a, b)), torch.full_like(a, 0.5))[1]
    out = m._beta_from_logits(pre, torch.tensor(s) if sigma == "per-unit" else s)
    assert out.shape == pre.shape
    mean = np.clip(1 / (1 + np.exp(-pre.numpy())), nbs.EPS_MEAN, 1 - nbs.EPS_MEAN)
    mv = mean * (1 - mean)
    nu = np.maximum(mv / np.minimum(np.square(s), mv) - 1, nbs.NU_MIN)
    a, b = seen[0]
    np.testing.assert_allclose(a.numpy(), mean * nu, rtol=1e-12)
    np.testing.assert_allclose(b.numpy(), (1 - mean) * nu, rtol=1e-12)


def test_cpu_beta_from_logits_takes_sigma_as_a_trainable_tensor_or_an_array():
    """A sigma tensor may be a parameter in the autograd graph: its values are used, detached."""
    pre = torch.tensor([[-1.0, 0.0, 0.5, 2.0, 1.0]] * 4, dtype=torch.float64)
    s = np.array([0.05, 0.1, 0.2, 0.1, 0.01])
    from_tensor = _rbm(seed=2)._beta_from_logits(pre, torch.tensor(s, requires_grad=True))
    from_array = _rbm(seed=2)._beta_from_logits(pre, s)
    torch.testing.assert_close(from_tensor, from_array)


def test_torch_beta_ab_draws_have_the_beta_mean():
    m = _torch_path(_rbm())
    a = torch.full((20000,), 2.0, dtype=torch.float64)
    b = torch.full((20000,), 5.0, dtype=torch.float64)
    torch.manual_seed(0)
    x = m._beta_ab(a, b)
    assert x.dtype == torch.float64 and x.shape == (20000,)
    assert abs(float(x.mean()) - 2 / 7) < 0.01
    assert abs(float(x.var()) - 10 / (49 * 8)) < 0.005


def test_torch_log_gamma_boosts_a_gamma_by_a_float64_uniform_of_the_models_generator():
    """log Gamma(a) draws as log Gamma(a + 1) + log(U) / a, U from the model's generator in a's
    dtype (torch's gamma sampler takes the global generator, seeded here)."""
    m = _torch_path(_rbm(seed=4))
    a = torch.tensor([0.01, 0.5, 2.0, 30.0], dtype=torch.float64)
    g = torch.Generator()
    g.set_state(m._tgen.get_state())
    torch.manual_seed(7)
    got = m._log_gamma(a)
    u = torch.rand(a.shape, generator=g, dtype=torch.float64)
    torch.manual_seed(7)
    expected = torch.log(torch._standard_gamma(a + 1)) + torch.log(u) / a
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=0)
