"""Boltzmann machines with bounded continuous units in [0, 1] drawn from Beta distributions.

* ``RRBM``: visible units ``v_i ~ Beta`` with mean ``m = sigmoid(b_i + (W h)_i)`` and
  standard deviation ``sigma``; binary hidden units.
* ``R3BM``: as ``RRBM`` with the hidden units Beta-sampled the same way.
* ``BetaRBM``: an exponential-family harmonium with a true energy (see its docstring).

``RRBM`` and ``R3BM`` are sampling heuristics: no energy has exactly these conditionals,
so they train with the Bernoulli RBM's statistics (``<v h>_data - <v h>_model``) and have
no partition function; use ``BetaRBM`` where a likelihood is needed.
"""
from __future__ import annotations

from numbers import Real

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from sklearn.utils._param_validation import Interval

from fastseq.boltzmann import _sampling_nb as nbs
from fastseq.boltzmann._anneal import AnnealBeta
from fastseq.boltzmann._rbm import _SigmoidRBM
from fastseq.boltzmann._base import BoltzmannMachine, _positive, _store

__all__ = ["RRBM", "R3BM", "BetaRBM"]


class RRBM(_SigmoidRBM):
    """RBM with real-valued visible units in [0, 1] drawn from Beta(mean m, sd sigma).

    The concentration is ``nu = m(1 - m) / var - 1`` with ``var = min(sigma^2, m(1 - m))``
    and ``nu >= 1e-3``: where sigma is too wide for the mean (near 0 or 1) a unit tends to
    a Bernoulli(m) draw instead of failing. Data are ``N x D`` in [0, 1].

    :attr:`components_` is ``W.T`` and :attr:`intercept_visible_` is ``b`` (visible means
    ``sigmoid(b + W h)``). No energy has these conditionals, so ``score_samples`` is
    ``-F(v)`` of the Bernoulli RBM's free energy, the one training lowers on the data: it
    ranks the rows for one model and is no log-likelihood.

    Example:
        >>> import numpy as np
        >>> X = np.random.default_rng(0).random((40, 10))
        >>> RRBM(n_components=6, sigma=0.1, n_iter=2, random_state=0).fit(X).sample(2, n_steps=5).shape
        (2, 10)
    """

    _vis_kind = nbs.BETA
    _normalisable_energy = False  # a sampling heuristic: no energy has these conditionals

    _parameter_constraints: dict = {**BoltzmannMachine._parameter_constraints, "sigma": [_positive()]}

    def __init__(self, n_components: int = 256, *, sigma: float = 0.1, learning_rate: float = 0.1, batch_size: int = 10, n_iter: int = 10, k: int = 1,
                 persistent: bool = True, n_chains: int | None = None, optimizer: str = "sgd",
                 momentum: float = 0.0, weight_decay: float = 0.0, init_scale: float = 0.01, shuffle: bool = True,
                 n_streams: int = 8, device: str | torch.device = "cpu", dtype="float32",
                 torch_threads: int | None = 1, verbose: int = 0, progress: bool = False, random_state=None) -> None:
        _store(self, locals())

    def _sigmas(self):
        return float(self.sigma), 1.0

    def _sample_visible(self, h):
        return self._beta_from_logits(self._visible_pre(h), float(self.sigma))

    def _random_visible(self, n):
        return torch.rand(n, self.n_features_in_, generator=self._tgen, device=self.device, dtype=self._tdtype)


class R3BM(RRBM):
    """``RRBM`` whose hidden units are Beta-sampled too (mean sigmoid, sd ``sigma_hidden``).

    ``components_``, ``intercept_visible_`` and ``score_samples`` are those of ``RRBM``;
    ``sample_hidden`` draws Beta values in [0, 1] with mean :meth:`hidden_mean`.

    Example:
        >>> import numpy as np
        >>> X = np.random.default_rng(0).random((40, 10))
        >>> R3BM(n_components=6, n_iter=2, random_state=0).fit(X).transform(X).shape
        (40, 6)
    """

    _hid_kind = nbs.BETA

    _parameter_constraints: dict = {**RRBM._parameter_constraints, "sigma_hidden": [_positive()]}

    def __init__(self, n_components: int = 256, *, sigma: float = 0.1, sigma_hidden: float = 0.1, learning_rate: float = 0.1, batch_size: int = 10, n_iter: int = 10, k: int = 1,
                 persistent: bool = True, n_chains: int | None = None, optimizer: str = "sgd",
                 momentum: float = 0.0, weight_decay: float = 0.0, init_scale: float = 0.01, shuffle: bool = True,
                 n_streams: int = 8, device: str | torch.device = "cpu", dtype="float32",
                 torch_threads: int | None = 1, verbose: int = 0, progress: bool = False, random_state=None) -> None:
        _store(self, locals())

    def _sigmas(self):
        return float(self.sigma), float(self.sigma_hidden)

    def _sample_hidden(self, pre):
        return self._beta_from_logits(pre, float(self.sigma_hidden))


def _softplus_inv(x: float) -> float:
    return float(np.log(np.expm1(x)))


class BetaRBM(BoltzmannMachine):
    """Beta-Bernoulli harmonium: a Boltzmann machine with Beta visible units and a true energy.

    Hidden units see the visible sufficient statistics ``log v`` and ``log(1 - v)``:

    ``E(v, h) = -sum_i [(alpha_i(h) - 1) log v_i + (beta_i(h) - 1) log(1 - v_i)] - c.h``,
    ``alpha(h) = A + Wa h``, ``beta(h) = B + Wb h``,

    so ``p(v_i | h) = Beta(alpha_i(h), beta_i(h))`` and
    ``p(h_j = 1 | v) = sigmoid(c_j + log(v).Wa_j + log(1 - v).Wb_j)``. ``A, B > 0`` and
    ``Wa, Wb >= 0`` (stored through softplus), so every Beta parameter stays positive for
    every hidden state: a unit that turns on adds to both shapes, moving the mean up or down
    and sharpening it. Data (``N x D`` in [0, 1]) are clamped to ``[eps, 1 - eps]``.

    :attr:`components_` is ``(Wa - Wb).T``: a positive entry pulls visible unit i toward 1
    when hidden unit j turns on, a negative one toward 0 (``shapes()`` holds ``Wa`` and
    ``Wb`` themselves). :attr:`intercept_visible_` is ``log A - log B``, the logit of the
    visible means ``A / (A + B)`` with every hidden unit off. ``score_samples`` is
    ``-F(v) = log p(v) + log Z`` of the clamped rows, the log-density up to the log
    partition function (the pseudo-likelihood of continuous units has no closed form).

    Example:
        >>> import numpy as np
        >>> X = np.random.default_rng(0).beta(2.0, 5.0, size=(64, 8))
        >>> m = BetaRBM(n_components=4, n_iter=2, learning_rate=0.01, random_state=0).fit(X)
        >>> m.free_energy(X[:3]).shape
        (3,)
    """

    _decayed = ("Wa", "Wb")

    _parameter_constraints: dict = {**BoltzmannMachine._parameter_constraints,
                                    "eps": [Interval(Real, 0, 0.5, closed="neither")], "init_weight": [_positive()]}

    def __init__(self, n_components: int = 256, *, eps: float = 1e-3, init_weight: float = 0.05, learning_rate: float = 0.1, batch_size: int = 10, n_iter: int = 10, k: int = 1,
                 persistent: bool = True, n_chains: int | None = None, optimizer: str = "sgd",
                 momentum: float = 0.0, weight_decay: float = 0.0, init_scale: float = 0.01, shuffle: bool = True,
                 n_streams: int = 8, device: str | torch.device = "cpu", dtype="float32",
                 torch_threads: int | None = 1, verbose: int = 0, progress: bool = False, random_state=None) -> None:
        _store(self, locals())

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True
        return tags

    def _check_range(self, X) -> None:
        # the energy uses log v and log(1 - v): values are clamped to [eps, 1 - eps], and
        # values outside [0, 1] are not data this model can describe
        values = X.data if sp.issparse(X) else X
        if values.size and (values.min() < 0 or values.max() > 1):
            # "Negative values in data" is scikit-learn's wording for positive-only estimators
            what = "Negative values in data" if values.min() < 0 else "Values above 1 in data"
            raise ValueError(f"{what} passed to {type(self).__name__}: expected X in [0, 1] (Beta-distributed "
                             f"data), got values in [{values.min()}, {values.max()}].")

    def _param_template(self) -> dict[str, bool]:
        return {"Wa_raw": True, "Wb_raw": True, "A_raw": True, "B_raw": True, "c": True}

    def _parameters_ok(self) -> bool:
        # a huge step can underflow softplus(A_raw) to exactly 0: Beta(0, b) has no density
        s = self.shapes()
        return super()._parameters_ok() and bool((s["A"] > 0).all()) and bool((s["B"] > 0).all())

    def _prepare_visible(self, v):
        return v.clamp(float(self.eps), 1.0 - float(self.eps))

    def _init_params(self, mean, var):
        d, h = mean.shape[0], int(self.n_components)
        # method of moments per unit (of the clamped data), so the hidden-off model starts at the marginals
        m = mean
        var = var.clamp_min(1e-6)
        nu = (m * (1 - m) / var - 1).clamp(0.05, 1e3)
        a, b = (m * nu).clamp_min(0.02), ((1 - m) * nu).clamp_min(0.02)
        inv = _softplus_inv(float(self.init_weight))
        noise = lambda: torch.randn(d, h, generator=self._tgen, device=self.device, dtype=self._tdtype)  # noqa: E731
        return {
            "Wa_raw": (inv + float(self.init_scale) * 100 * noise()).requires_grad_(),
            "Wb_raw": (inv + float(self.init_scale) * 100 * noise()).requires_grad_(),
            "A_raw": (a + torch.log(-torch.expm1(-a))).requires_grad_(),
            "B_raw": (b + torch.log(-torch.expm1(-b))).requires_grad_(),
            "c": torch.zeros(h, device=self.device, dtype=self._tdtype).requires_grad_(),
        }

    def shapes(self) -> dict[str, torch.Tensor]:
        """The positive parameters ``A, B`` (D,) and ``Wa, Wb`` (D x H), detached."""
        p = self.params_
        return {k: F.softplus(p[k + "_raw"]).detach() for k in ("A", "B", "Wa", "Wb")}

    def _params64(self):
        p = {k: v.double().cpu() for k, v in self.shapes().items()}
        p["c"] = self.params_["c"].detach().double().cpu()
        return p

    def _log_sum_visible(self, p, h):
        a, b = p["A"] + h @ p["Wa"].T, p["B"] + h @ p["Wb"].T
        return h @ p["c"] + (torch.lgamma(a) + torch.lgamma(b) - torch.lgamma(a + b)).sum(1)

    def _anneal_path(self, data):
        return AnnealBeta(self, data)

    def _free_energy_pre(self, v):
        p = self.params_
        lv, l1v = torch.log(v), torch.log1p(-v)
        pre = p["c"] + lv @ F.softplus(p["Wa_raw"]) + l1v @ F.softplus(p["Wb_raw"])
        base = lv @ (F.softplus(p["A_raw"]) - 1) + l1v @ (F.softplus(p["B_raw"]) - 1)
        return -base - F.softplus(pre).sum(1), pre.detach()

    def _alpha_beta(self, h):
        s = self.shapes()
        return s["A"] + h @ s["Wa"].T, s["B"] + h @ s["Wb"].T

    def _sample_visible(self, h):
        a, b = self._alpha_beta(h)
        return self._beta_ab(a, b)

    def _chain(self, h, k):
        # the base loop's steps with the softplus of the D x H weights taken once, not twice
        # a step: at a few chains that transform, not the sampling, was most of a step
        s, c = self.shapes(), self.params_["c"].detach()
        v = h
        for step in range(k):
            v = self._beta_ab(s["A"] + h @ s["Wa"].T, s["B"] + h @ s["Wb"].T)
            if step + 1 < k:
                h = self._bernoulli(c + torch.log(v) @ s["Wa"] + torch.log1p(-v) @ s["Wb"])
        return v, h

    def _visible_mean(self, h):
        a, b = self._alpha_beta(h)
        return a / (a + b)

    def _weights(self):
        s = self.shapes()
        return s["Wa"] - s["Wb"]

    def _visible_intercept(self):
        s = self.shapes()
        return torch.log(s["A"]) - torch.log(s["B"])
