"""Restricted Boltzmann machines with Bernoulli hidden units: ``RBM`` (Bernoulli visible
units, a drop-in for scikit-learn's ``BernoulliRBM``) and ``GaussianRBM``.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

import scipy.sparse as sp
from sklearn.utils.validation import check_is_fitted

from fastseq.boltzmann import _sampling_nb as nbs
from fastseq._util.blas import serial_blas
from fastseq.boltzmann import _tempering
from fastseq.boltzmann._cd_nb import cd_epoch, pt_epoch
from fastseq.boltzmann._anneal import AnnealGauss, AnnealRBM
from fastseq.boltzmann._base import TEMPERING, BoltzmannMachine, _bar, _positive, _store

__all__ = ["RBM", "GaussianRBM"]


class _SigmoidRBM(BoltzmannMachine):
    """Parameters ``W`` (D x H), ``b`` (D,) and ``c`` (H,), hidden pre-activation ``v W + c``.

    Visible means are ``sigmoid(b + W h)``: :attr:`components_` is ``W.T`` (hidden unit j
    adds ``W_ij`` to visible unit i's logit) and :attr:`intercept_visible_` is ``b``.
    """

    def _param_template(self) -> dict[str, bool]:
        return {"W": True, "b": True, "c": True}

    def _init_params(self, mean, var):
        d, h = mean.shape[0], int(self.n_components)
        w = torch.randn(d, h, generator=self._tgen, device=self.device, dtype=self._tdtype) * float(self.init_scale)
        # Hinton's guide: visible biases at the data's log-odds, so the model starts at the base rates
        p = mean.clamp(1e-3, 1 - 1e-3)
        b = torch.log(p / (1 - p))
        c = torch.zeros(h, device=self.device, dtype=self._tdtype)
        return {"W": w.requires_grad_(), "b": b.requires_grad_(), "c": c.requires_grad_()}

    def _free_energy_pre(self, v):
        p = self.params_
        pre = torch.addmm(p["c"], v, p["W"])
        return -(v @ p["b"]) - F.softplus(pre).sum(1), pre.detach()

    _vis_kind = nbs.BERNOULLI
    _hid_kind = nbs.BERNOULLI

    def _log_sum_visible(self, p, h):
        return h @ p["c"] + F.softplus(h @ p["W"].T + p["b"]).sum(1)

    def _log_sum_hidden(self, p, v):
        """``-F(v)`` in float64 from ``_params64``: what enumerating binary visible states sums."""
        return v @ p["b"] + F.softplus(v @ p["W"] + p["c"]).sum(1)

    def _anneal_path(self, data):
        return AnnealRBM(self, data)

    def _sigmas(self) -> tuple[float, float]:
        return 1.0, 1.0

    def _chain(self, h, k):
        # On the CPU the whole chain runs in one Numba call: matrix products and fused
        # sampling without a round trip through Python or PyTorch's thread pool per step.
        if not self._on_cpu():
            return super()._chain(h, k)
        p = self.params_
        sv, sh = self._sigmas()
        v, h = nbs.gibbs_chain(h.detach().numpy(), p["W"].detach().numpy(), p["b"].detach().numpy(),
                               p["c"].detach().numpy(), k, self._streams, self._vis_kind, self._hid_kind, sv, sh)
        return torch.from_numpy(v), torch.from_numpy(h)

    # ---------------------------------------------------------------- fused CPU training
    def _fused(self) -> bool:
        """SGD on the CPU trains through the fused Numba epoch (same update as the autograd loop),
        tempered persistent chains included (``pt_epoch``)."""
        return self._on_cpu() and self.optimizer == "sgd"

    def _start_training(self, n_chains):
        super()._start_training(n_chains)
        self._velocity = {k: torch.zeros_like(v.detach()) for k, v in self.params_.items()}

    def _cd(self, X: np.ndarray, order: np.ndarray, batch_size: int) -> None:
        if self.tempering is not None:
            return self._pt_cd(X, order, batch_size)
        p, m = self.params_, self._velocity
        w = p["W"].detach().numpy()
        sv, sh = self._sigmas()
        with serial_blas():
            cd_epoch(X, order, int(batch_size), w, p["b"].detach().numpy(), p["c"].detach().numpy(),
                     m["W"].numpy(), m["b"].numpy(), m["c"].numpy(), self._h_chain.numpy(), int(self.k),
                     bool(self.persistent), float(self._rate), float(self.momentum), float(self.weight_decay),
                     self._vis_kind, self._hid_kind, nbs._sigma_row(sv, w.shape[0], w.dtype),
                     nbs._sigma_row(sh, w.shape[1], w.dtype), self._streams)

    def _pt_cd(self, X: np.ndarray, order: np.ndarray, batch_size: int) -> None:
        """Tempered PCD through ``pt_epoch``, in runs of updates that end where the ladder is
        re-placed (``_tempering.count_updates``), so the ladder moves as in the autograd loop."""
        if getattr(self, "_replicas", None) is None:  # a loaded machine trains on
            _tempering.start_training(self, int(self._h_chain.shape[0]))
        p, m = self.params_, self._velocity
        w = p["W"].detach().numpy()
        n_batches, done = -(-len(order) // batch_size), 0
        while done < n_batches:
            rep = self._replicas
            todo = min(n_batches - done, _tempering.updates_before_adapting(self))
            n_rungs, k = len(rep.betas), int(self.k)
            # the swap uniforms, one (M - 1) x N draw per sweep as the autograd loop draws them
            u = (rep.rng.random((todo * k, n_rungs - 1, rep.n_chains)) if n_rungs > 1
                 else np.zeros((todo * k, 0, rep.n_chains)))
            state = np.array([rep.parity], np.int64)
            with serial_blas():
                pt_epoch(X, order[done * batch_size:(done + todo) * batch_size], int(batch_size), w,
                         p["b"].detach().numpy(), p["c"].detach().numpy(), m["W"].numpy(), m["b"].numpy(),
                         m["c"].numpy(), rep.v.numpy(), rep.h.numpy(), rep.betas, k, float(self._rate),
                         float(self.momentum), float(self.weight_decay), u, state, rep.accepted, rep.attempted,
                         self._streams)
            rep.parity, rep.n_sweeps = int(state[0]), rep.n_sweeps + todo * k
            _tempering.count_updates(self, todo)
            done += todo

    def _epoch(self, data, epoch):
        if not self._fused():
            return super()._epoch(data, epoch)
        n = data.shape[0]
        size = min(int(self.batch_size), n)  # a larger batch is all the rows (and no huge buffers)
        order = self._rng.permutation(n) if self.shuffle else np.arange(n)
        if sp.issparse(data) or self.progress:
            bar = _bar(-(-n // size), self.progress, f"epoch {epoch + 1}")
            for s in range(0, n, size):
                self._update_rows(data, order[s:s + size])
                bar.update(1)
            bar.close()
        else:
            self._cd(data.numpy(), order, size)
        self._report(data, epoch)

    def _update_rows(self, data, rows):
        if not self._fused():
            return super()._update_rows(data, rows)
        self._cd(self._batch(data, rows).numpy(), np.arange(len(rows)), len(rows))

    def _visible_pre(self, h):
        p = self.params_
        return torch.addmm(p["b"], h, p["W"].T).detach()

    def _visible_mean(self, h):
        return torch.sigmoid(self._visible_pre(h))

    def _sample_visible(self, h):
        return self._bernoulli(self._visible_pre(h))

    def _weights(self):
        return self.params_["W"]

    def _visible_intercept(self):
        return self.params_["b"]


class RBM(_SigmoidRBM):
    """Bernoulli-Bernoulli restricted Boltzmann machine, a drop-in for scikit-learn's ``BernoulliRBM``.

    Energy ``E(v, h) = -b.v - c.h - v W h`` with ``W`` D x H. Data are N x D in [0, 1]
    (values between 0 and 1 are treated as probabilities, as scikit-learn does). Defaults
    match ``BernoulliRBM`` (256 hidden units, rate 0.1, batch 10, 10 epochs, PCD-1 with one
    chain per batch row); see :class:`~fastseq.boltzmann._base.BoltzmannMachine` for all options,
    ``tempering`` (parallel tempering of the persistent chains) among them.
    ``score_samples`` is the exact, deterministic pseudo-log-likelihood (sum over all D
    units) of binarised rows, where scikit-learn flips one random unit and scales by D.
    :attr:`components_` is ``W.T`` and :attr:`intercept_visible_` is ``b``, as in ``BernoulliRBM``.

    Example:
        >>> import numpy as np
        >>> X = (np.random.default_rng(0).random((64, 12)) < 0.3).astype(float)
        >>> rbm = RBM(n_components=8, n_iter=2, random_state=0).fit(X)
        >>> rbm.transform(X).shape
        (64, 8)
        >>> rbm.sample(2, n_steps=10).shape
        (2, 12)
        >>> rbm.visible_mean(rbm.hidden_mean(X[:2])).shape, rbm.sample_hidden(X[:2]).shape
        ((2, 12), (2, 8))
    """

    _binary_visible = True

    _parameter_constraints: dict = {**BoltzmannMachine._parameter_constraints, "tempering": TEMPERING}

    def __init__(self, n_components: int = 256, *, learning_rate: float = 0.1,
                 learning_rate_schedule: str = "constant", batch_size: int = 10,
                 n_iter: int = 10, k: int = 1, persistent: bool = True, n_chains: int | None = None,
                 optimizer: str = "sgd", momentum: float = 0.0, weight_decay: float = 0.0,
                 init_scale: float = 0.01, shuffle: bool = True, n_streams: int = 8,
                 device: str | torch.device = "cpu", dtype="float32", torch_threads: int | None = 1,
                 verbose: int = 0, progress: bool = False, random_state=None, tempering=None) -> None:
        _store(self, locals())

    def _likelihood_visible(self, v):
        return (v > 0.5).to(v.dtype)

    def score_samples(self, X, chunk_elements: int = 1 << 22) -> np.ndarray:
        """Exact pseudo-log-likelihood ``sum_i log p(v_i | v_-i)`` of each binarised row, ``(N,)``.

        Each of the D conditionals is ``log sigmoid(F(v with unit i flipped) - F(v))``,
        computed for all i at once from the hidden pre-activations, ``chunk_elements``
        entries of the ``N x D x H`` flip tensor at a time.
        """
        check_is_fitted(self)  # NotFittedError before the parameters are read, as every other method
        p = self.params_
        w, b, c = p["W"].detach(), p["b"].detach(), p["c"].detach()
        d, h = w.shape
        step = max(1, int(chunk_elements) // (d * h))

        def pl(v):
            out = []
            for vb in torch.split((v > 0.5).to(v.dtype), step):
                pre = torch.addmm(c, vb, w)
                flip = 1 - 2 * vb
                sp_flip = F.softplus(pre[:, None, :] + flip[:, :, None] * w[None]).sum(-1)
                diff = -flip * b - (sp_flip - F.softplus(pre).sum(-1, keepdim=True))
                out.append(F.logsigmoid(diff.double()).sum(1))
            return torch.cat(out)

        return self._map_rows(X, pl)

    def _monitor(self, X):
        return f"pseudo-likelihood = {float(np.mean(self.score_samples(X))):.2f}"

    def _random_visible(self, n):
        u = torch.rand(n, self.n_features_in_, generator=self._tgen, device=self.device, dtype=self._tdtype)
        return (u < 0.5).to(self._tdtype)


class GaussianRBM(BoltzmannMachine):
    """Gaussian-Bernoulli RBM for real-valued data (standardise the data first).

    Energy ``E(v, h) = sum_i (v_i - b_i)^2 / (2 s_i^2) - c.h - sum_ij (v_i / s_i) W_ij h_j``,
    so ``p(v_i | h) = N(b_i + s_i (W h)_i, s_i^2)``. The standard deviations ``s`` are
    learned when ``learn_sigma`` (stored as log s), else fixed at ``sigma``.

    :attr:`components_` is ``W.T`` (hidden unit j moves visible mean i by ``s_i W_ij``),
    :attr:`intercept_visible_` is ``b`` (the visible means with every hidden unit off).
    ``score_samples`` is ``-F(v) = log p(v) + log Z``, the log-density up to the log
    partition function (the pseudo-likelihood of continuous units has no closed form).

    Example:
        >>> import numpy as np
        >>> X = np.random.default_rng(0).normal(size=(64, 6))
        >>> g = GaussianRBM(n_components=4, n_iter=2, learning_rate=0.01, random_state=0).fit(X)
        >>> g.sample(3, n_steps=5).shape
        (3, 6)
    """

    scaling = "standard"  # as a code model (fastseq.conv): fed standardised codes, not [0, 1] ones

    _parameter_constraints: dict = {**BoltzmannMachine._parameter_constraints,
                                    "sigma": [_positive()], "learn_sigma": ["boolean"], "tempering": TEMPERING}

    def __init__(self, n_components: int = 256, *, sigma: float = 1.0, learn_sigma: bool = False,
                 learning_rate: float = 0.1, learning_rate_schedule: str = "constant", batch_size: int = 10,
                 n_iter: int = 10, k: int = 1,
                 persistent: bool = True, n_chains: int | None = None, optimizer: str = "sgd",
                 momentum: float = 0.0, weight_decay: float = 0.0, init_scale: float = 0.01, shuffle: bool = True,
                 n_streams: int = 8, device: str | torch.device = "cpu", dtype="float32",
                 torch_threads: int | None = 1, verbose: int = 0, progress: bool = False, random_state=None,
                 tempering=None) -> None:
        _store(self, locals())

    _divergence_hint = ", or standardise X (each feature at mean 0 and variance 1)"

    def _largest_value(self) -> tuple[float, str]:
        # the energy squares the visible values: past this their squares overflow
        return math.sqrt(torch.finfo(self._tdtype).max), "their squares must stay finite; standardise X"

    def _param_template(self) -> dict[str, bool]:
        return {"W": True, "b": True, "c": True, "log_sigma": bool(self.learn_sigma)}

    def _params64(self):
        p = super()._params64()
        p["sigma"] = torch.exp(p["log_sigma"])
        return p

    def _log_sum_visible(self, p, h):
        s = h @ p["W"].T
        const = torch.log(math.sqrt(2 * math.pi) * p["sigma"]).sum()
        return h @ p["c"] + (p["b"] * s / p["sigma"] + s * s / 2).sum(1) + const

    def _anneal_path(self, data):
        return AnnealGauss(self, data)

    def _init_params(self, mean, var):
        d, h = mean.shape[0], int(self.n_components)
        w = torch.randn(d, h, generator=self._tgen, device=self.device, dtype=self._tdtype) * float(self.init_scale)
        log_s = torch.full((d,), math.log(float(self.sigma)), device=self.device, dtype=self._tdtype)
        return {"W": w.requires_grad_(), "b": mean.clone().requires_grad_(),
                "c": torch.zeros(h, device=self.device, dtype=self._tdtype).requires_grad_(),
                "log_sigma": log_s.requires_grad_(bool(self.learn_sigma))}

    def _free_energy_pre(self, v):
        p = self.params_
        s = torch.exp(p["log_sigma"])
        pre = torch.addmm(p["c"], v / s, p["W"])
        return (((v - p["b"]) / s) ** 2).sum(1) / 2 - F.softplus(pre).sum(1), pre.detach()

    def _visible_mean(self, h):
        p = self.params_
        return (p["b"] + torch.exp(p["log_sigma"]) * (h @ p["W"].T)).detach()

    def _weights(self):
        return self.params_["W"]

    def _visible_intercept(self):
        return self.params_["b"]

    def _sample_visible(self, h):
        noise = torch.randn(h.shape[0], self.n_features_in_, generator=self._tgen, device=self.device, dtype=self._tdtype)
        return self._visible_mean(h) + torch.exp(self.params_["log_sigma"]).detach() * noise

    def _random_visible(self, n):
        return torch.randn(n, self.n_features_in_, generator=self._tgen, device=self.device, dtype=self._tdtype)
