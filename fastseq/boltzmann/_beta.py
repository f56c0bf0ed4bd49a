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

import warnings
from numbers import Real

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from sklearn.utils._param_validation import Interval

from fastseq.boltzmann import _sampling_nb as nbs
from fastseq.boltzmann._anneal import AnnealBeta
from fastseq.boltzmann._rbm import _SigmoidRBM
from fastseq.boltzmann._base import TEMPERING, BoltzmannMachine, _positive, _store

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

    def __init__(self, n_components: int = 256, *, sigma: float = 0.1, learning_rate: float = 0.1, learning_rate_schedule: str = "constant", batch_size: int = 10, n_iter: int = 10, k: int = 1,
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

    def __init__(self, n_components: int = 256, *, sigma: float = 0.1, sigma_hidden: float = 0.1, learning_rate: float = 0.1, learning_rate_schedule: str = "constant", batch_size: int = 10, n_iter: int = 10, k: int = 1,
                 persistent: bool = True, n_chains: int | None = None, optimizer: str = "sgd",
                 momentum: float = 0.0, weight_decay: float = 0.0, init_scale: float = 0.01, shuffle: bool = True,
                 n_streams: int = 8, device: str | torch.device = "cpu", dtype="float32",
                 torch_threads: int | None = 1, verbose: int = 0, progress: bool = False, random_state=None) -> None:
        _store(self, locals())

    def _sigmas(self):
        return float(self.sigma), float(self.sigma_hidden)

    def _sample_hidden(self, pre):
        return self._beta_from_logits(pre, float(self.sigma_hidden))


_TINY = {torch.float32: 1e-7, torch.float64: 1e-15}  # a sample's distance from 0 and 1 at least
_CLAMPED_WARN = 0.01          # warn when more of the data than this sit on the clamp (0 or 1)
_FEATURE_ROWS = 1000          # training rows whose hidden means are checked after fit
_FEATURE_SPREAD_WARN = 1e-3   # warn when no hidden mean varies more than this across them


def _softplus_inv_t(x: torch.Tensor) -> torch.Tensor:
    """The inverse of softplus for x > 0, stable for small and large x."""
    return x + torch.log(-torch.expm1(-x))


class _CentredStep:
    """BetaRBM's optimizer, stepping in centred coordinates.

    The hidden input ``c + log(v).Wa + log(1 - v).Wb`` equals ``c' + (log v - mu_a).Wa +
    (log(1 - v) - mu_b).Wb`` with ``c' = c + mu_a.Wa + mu_b.Wb`` and ``mu`` the data means of
    the sufficient statistics: the same energy with its hidden biases written differently.
    Gradient steps on ``(c', Wa, Wb)`` are well conditioned where steps on ``(c, Wa, Wb)`` are
    not (a step on ``Wa`` moves every unit's input by ``mu_a.dWa``, hundreds of times its
    spread over the data with many inputs), so each step is taken on ``c'``: the weight
    gradients are centred, the wrapped optimizer steps, and ``c`` is moved back to keep
    ``c'`` where that step put it. The model keeps storing ``c``, the energy's own bias.

    ``weight_decay`` is an L2 penalty on ``Wa`` and ``Wb`` themselves, so its gradient goes
    through the softplus too; the optimizer's own decay would pull the stored ``Wa_raw``
    toward 0, that is ``Wa`` toward ``log 2``, growing every weight below it.
    """

    def __init__(self, model: "BetaRBM", optimizer: torch.optim.Optimizer) -> None:
        self.model, self.optimizer = model, optimizer

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    @property
    def param_groups(self) -> list[dict]:
        """The wrapped optimizer's groups (a learning-rate schedule sets their ``lr``)."""
        return self.optimizer.param_groups

    def _offset(self) -> torch.Tensor:
        p, (mu_a, mu_b) = self.model.params_, self.model._centres
        return mu_a @ F.softplus(p["Wa_raw"]) + mu_b @ F.softplus(p["Wb_raw"])

    @torch.no_grad()
    def step(self) -> None:
        p, (mu_a, mu_b) = self.model.params_, self.model._centres
        grad_c, decay = p["c"].grad, float(self.model.weight_decay)
        for name, mu in (("Wa_raw", mu_a), ("Wb_raw", mu_b)):
            raw = p[name]
            if raw.grad is None:
                continue
            # dL/dW at fixed c' = dL/dW at fixed c - mu (x) dL/dc; both terms through the softplus
            grad_w = decay * F.softplus(raw) if decay else torch.zeros_like(raw)
            if grad_c is not None:
                grad_w -= torch.outer(mu, grad_c)
            raw.grad.add_(grad_w * torch.sigmoid(raw))
        before = self._offset()
        self.optimizer.step()
        p["c"].sub_(self._offset() - before)


class BetaRBM(BoltzmannMachine):
    """Beta-Bernoulli harmonium: a Boltzmann machine with Beta visible units and a true energy.

    Hidden units see the visible sufficient statistics ``log v`` and ``log(1 - v)``:

    ``E(v, h) = -sum_i [(alpha_i(h) - 1) log v_i + (beta_i(h) - 1) log(1 - v_i)] - c.h``,
    ``alpha(h) = A + Wa h``, ``beta(h) = B + Wb h``,

    so ``p(v_i | h) = Beta(alpha_i(h), beta_i(h))`` and
    ``p(h_j = 1 | v) = sigmoid(c_j + log(v).Wa_j + log(1 - v).Wb_j)``. ``A, B > 0`` and
    ``Wa, Wb >= 0`` (stored through softplus), so every Beta parameter stays positive for
    every hidden state: a unit that turns on adds to both shapes, moving the mean up or down
    and sharpening it. Data (``N x D`` in [0, 1]) are clamped to ``[eps, 1 - eps]``; the
    model's own samples only as far as their logarithms need to stay finite, since its
    density lives on all of (0, 1). Much of X on 0 or 1 (more than 1% of the values) draws a
    warning: a Beta density has no point masses, so dequantise such data first (the warning
    says how), or use ``RBM`` for binary data.

    Training steps in centred coordinates: the hidden input is written ``c' + (log v -
    mu_a).Wa + (log(1 - v) - mu_b).Wb`` with ``mu`` the training data's means of the two
    statistics, the same energy with its hidden biases written another way. With many
    inputs the uncentred input is far below zero (``Wa, Wb >= 0``, logarithms < 0), and a
    plain gradient step on ``Wa`` moves it by far more than its spread over the rows. The
    stored ``c`` stays the energy's own bias. The model starts at each unit's marginal
    Beta (method of moments), the share ``init_weight`` of each unit's shapes carried by the
    hidden units, and ``c`` offsetting the mean input, so every unit starts near half on.
    ``weight_decay`` is an L2 penalty on ``Wa`` and ``Wb``. A fit whose hidden means end up
    the same for every training row warns (``transform`` would say nothing).

    Args:
        eps: the clamp of the data, in (0, 0.5).
        init_weight: share of each visible unit's initial Beta shapes carried by the hidden
            weights, in (0, 1).
        init_scale: log-normal spread of the initial weights is ``100 * init_scale``.
        Others: as :class:`~fastseq.boltzmann.BoltzmannMachine`; Adam with a rate near 0.01
            suits this machine (the statistics ``log v`` reach ``log eps``).

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

    _decayed = ()  # the weights are stored through softplus: _CentredStep decays Wa and Wb themselves

    _parameter_constraints: dict = {**BoltzmannMachine._parameter_constraints,
                                    "eps": [Interval(Real, 0, 0.5, closed="neither")],
                                    "init_weight": [Interval(Real, 0, 1, closed="neither")], "tempering": TEMPERING}

    def __init__(self, n_components: int = 256, *, eps: float = 1e-3, init_weight: float = 0.5, learning_rate: float = 0.1, learning_rate_schedule: str = "constant", batch_size: int = 10, n_iter: int = 10, k: int = 1,
                 persistent: bool = True, n_chains: int | None = None, optimizer: str = "sgd",
                 momentum: float = 0.0, weight_decay: float = 0.0, init_scale: float = 0.01, shuffle: bool = True,
                 n_streams: int = 8, device: str | torch.device = "cpu", dtype="float32",
                 torch_threads: int | None = 1, verbose: int = 0, progress: bool = False, random_state=None,
                 tempering=None) -> None:
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

    def _prepare_sample(self, v):
        # the model's density lives on (0, 1), not on [eps, 1 - eps]: its samples are kept
        # off 0 and 1 only as far as log v and log(1 - v) need to stay finite
        tiny = _TINY[v.dtype]
        return v.clamp(tiny, 1.0 - tiny)

    def _init_params(self, mean, var):
        d, h = mean.shape[0], int(self.n_components)
        # method of moments per unit (of the clamped data): the starting model has each unit's
        # marginal mean and variance, with hidden units on at about half the rows
        m = mean
        var = var.clamp_min(1e-6)
        nu = (m * (1 - m) / var - 1).clamp(0.05, 1e3)
        a, b = (m * nu).clamp_min(0.02), ((1 - m) * nu).clamp_min(0.02)
        # the hidden units carry the share init_weight of each unit's shapes (h / 2 of them
        # on at a time), each a random multiple of its part so that they differ: weights
        # sized to the Beta they move, not one size for every unit; a fixed size either
        # swamps the shapes of narrow units or leaves wide ones unmoved
        share, spread = float(self.init_weight), float(self.init_scale) * 100
        noise = lambda: torch.exp(spread * torch.randn(d, h, generator=self._tgen, device=self.device,  # noqa: E731
                                                       dtype=self._tdtype) - spread * spread / 2)
        wa, wb = (2 * share / h) * a[:, None] * noise(), (2 * share / h) * b[:, None] * noise()
        a, b = (1 - share) * a, (1 - share) * b
        # the hidden bias offsets the typical input, so each unit starts near sigmoid(0) on the
        # data: with Wa, Wb >= 0, log v.Wa + log(1 - v).Wb is large and negative over many inputs
        mu_a, mu_b = self._centres
        return {
            "Wa_raw": _softplus_inv_t(wa).requires_grad_(),
            "Wb_raw": _softplus_inv_t(wb).requires_grad_(),
            "A_raw": _softplus_inv_t(a).requires_grad_(),
            "B_raw": _softplus_inv_t(b).requires_grad_(),
            "c": (-(mu_a @ wa + mu_b @ wb)).requires_grad_(),
        }

    def _initialise(self, X) -> None:
        mu_a, mu_b, self._clamped = self._log_means(X)
        self._centres = (mu_a, mu_b)
        super()._initialise(X)

    def _warn_clamped(self) -> None:
        """After a fit or a first partial_fit: warn (at the caller's line) if much of X sat on the clamp."""
        clamped = self.__dict__.pop("_clamped", 0.0)
        if clamped > _CLAMPED_WARN:
            warnings.warn(
                f"{clamped:.1%} of the values passed to {type(self).__name__} lie within eps={self.eps:g} of 0 or 1 "
                f"(exactly 0 or 1, say) and are clamped to [eps, 1 - eps]. A Beta density has no point masses: "
                f"values piled on one point make the likelihood unbounded, so training chases them with sharper and "
                f"sharper Beta shapes there instead of learning the rest of the data. Spread such values into the "
                f"open interval first: for data quantised in steps of 1/k, d + (1 - 2 * d) * (k * X + U) / (k + 1) "
                f"with U uniform on [0, 1) and a margin d such as 0.02; or use RBM for (nearly) binary data.",
                UserWarning, stacklevel=3)

    def _log_means(self, X) -> tuple[torch.Tensor, torch.Tensor, float]:
        """Column means of ``log v`` and ``log(1 - v)`` of the clamped rows of X, and the share
        of its values that the clamp moved or left on its edge (chunked)."""
        la = lb = 0.0
        edge, lo, hi = 0, float(self.eps), 1.0 - float(self.eps)
        for v in self._rows(X):
            edge += int(((v <= lo) | (v >= hi)).sum())
            v = self._prepare_visible(v).double()
            la, lb = la + torch.log(v).sum(0), lb + torch.log1p(-v).sum(0)
        n = X.shape[0]
        return (la / n).to(self._tdtype), (lb / n).to(self._tdtype), edge / max(1, n * X.shape[1])

    def fit(self, X, y=None) -> "BetaRBM":
        """As :meth:`BoltzmannMachine.fit`; warns when much of X sits on 0 or 1 (clamped), and
        when the trained hidden units give the same features for every row."""
        super().fit(X, y)
        self._warn_clamped()
        if int(self.n_iter):
            self._check_features(self._validate(X))
        return self

    def partial_fit(self, X, y=None) -> "BetaRBM":
        """As :meth:`BoltzmannMachine.partial_fit`; the first call warns as :meth:`fit` does about X."""
        super().partial_fit(X, y)
        self._warn_clamped()
        return self

    def _check_features(self, X) -> None:
        """Warn when the hidden means are the same for every row of X: transform would say nothing."""
        rows = np.sort(np.random.default_rng(0).permutation(X.shape[0])[:_FEATURE_ROWS])
        h = self._map_valid(X[rows], lambda v: self._hidden_mean(self._hidden_pre(v)))
        spread = float(h.std(0).max()) if len(h) > 1 else 1.0
        if spread < _FEATURE_SPREAD_WARN:
            warnings.warn(
                f"{type(self).__name__}'s hidden units do not respond to the data: each unit's mean varies by at most "
                f"{spread:.2g} (standard deviation) across the training rows, so transform gives (nearly) the same "
                f"features for every row. Train with a lower learning_rate (got {self.learning_rate!r}) or "
                f"optimizer='adam', and check that the columns of X vary and are not piled on 0 or 1.",
                UserWarning, stacklevel=3)

    def _start_training(self, n_chains: int) -> None:
        super()._start_training(n_chains)
        self._opt = _CentredStep(self, self._opt)

    def _update(self, v0):
        if getattr(self, "_centres", None) is None:  # a loaded machine: centre on its first mini-batch
            self._centres = (torch.log(v0).mean(0).detach(), torch.log1p(-v0).mean(0).detach())
        super()._update(v0)

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
        return torch.addmm(s["A"], h, s["Wa"].T), torch.addmm(s["B"], h, s["Wb"].T)

    def _sample_visible(self, h):
        a, b = self._alpha_beta(h)
        return self._beta_ab(a, b)

    def _chain(self, h, k):
        # the base loop's steps with the softplus of the D x H weights taken once, not twice
        # a step: at a few chains that transform, not the sampling, was most of a step. Each
        # bias rides in its product (addmm): at 64 chains on 2 threads a separate add after
        # each product made the shapes' products 1.8x slower (113 vs 62 us)
        s, c = self.shapes(), self.params_["c"].detach()
        v = h
        for step in range(k):
            v = self._prepare_sample(self._beta_ab(torch.addmm(s["A"], h, s["Wa"].T), torch.addmm(s["B"], h, s["Wb"].T)))
            if step + 1 < k:
                h = self._bernoulli(torch.addmm(torch.addmm(c, torch.log(v), s["Wa"]), torch.log1p(-v), s["Wb"]))
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
