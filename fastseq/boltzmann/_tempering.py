"""Parallel tempering (replica exchange) for the Boltzmann machines with a true energy.

A ladder of inverse temperatures ``1 = beta_0 > beta_1 > ... > beta_{M-1} > 0`` runs M
copies (rungs) of every chain. Rung m samples the tempered joint distribution

    p_beta(v, h) ~ exp(-beta E(v, h)),

by Gibbs steps at its own beta, and after each hidden draw neighbouring rungs exchange
their states with the Metropolis probability ``min(1, exp((beta_m - beta_{m+1})(E_m - E_{m+1})))``
on the *joint* energy of the states they hold (the free energy would not do: the tempered
marginal is ``-log sum_h exp(-beta E)``, not ``beta F``). Even and odd pairs take turns
(deterministic even-odd swaps, the non-reversible scheme of Syed et al. 2019), so a state
can travel the whole ladder in M sweeps. Rung 0 samples the model itself.

Every machine here has an energy linear in h, ``E(v, h) = U(v) - h.pre(v)`` with ``pre``
the hidden pre-activation, so tempering scales the hidden input, ``p_beta(h_j = 1 | v) =
sigmoid(beta pre_j(v))``, and each machine tempers its visible conditional:

* ``RBM``: ``U = -b.v``, ``p_beta(v_i = 1 | h) = sigmoid(beta (b + W h)_i)`` (weights and
  biases times beta).
* ``GaussianRBM``: ``U = sum_i (v_i - b_i)^2 / (2 s_i^2)``. ``beta E`` is quadratic in v_i
  with precision ``beta / s_i^2`` and linear term ``beta v_i (W h)_i / s_i``; completing the
  square, ``p_beta(v_i | h) = N(b_i + s_i (W h)_i, s_i^2 / beta)``: the mean is unchanged
  and the variance grows as 1 / beta (valid for every beta > 0; beta = 0 has no density,
  which is why every ladder stays above 0).
* ``BetaRBM``: ``U = -sum_i (A_i - 1) log v_i + (B_i - 1) log(1 - v_i)``, so
  ``p_beta(v_i | h) = Beta(1 + beta (alpha_i(h) - 1), 1 + beta (beta_i(h) - 1))``: both
  shapes stay positive for beta in (0, 1] (they lie between 1 and the model's own).

``RRBM`` and ``R3BM`` have no energy with their conditionals, so there is nothing to temper
and no swap probability: they are refused.

The ladder
----------
Without an explicit one, M rungs start geometric in beta from 1 down to ``beta_min``. During
a burn-in the ladder is re-placed from the measured swap rates: for energies that are
roughly Gaussian, a pair whose beta differ by d swaps at rate ``erfc(sigma_E d / 2)``, so
``erfcinv(rate)`` measures each gap in units that add up along the ladder. The rungs are
moved to equal steps of that length (equal swap rates), keeping 1 and ``beta_min``; when the
number of rungs is not given it becomes ``1 + ceil(length / erfcinv(target_rate))``, so that
every pair swaps near ``target_rate`` (0.3), within ``max_rungs``. A given number of rungs too
few to span 1 to ``beta_min`` at that rate would leave every pair swapping at rate 0 (a
4-rung ladder on a 784-unit machine does): such a ladder ends where its ``M - 1`` steps of
``erfcinv(target_rate)`` run out, above ``beta_min``, so that its rungs swap and the hottest
one is as hot as that rate allows.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral

import numpy as np
import torch
from scipy.special import erfcinv

from fastseq.boltzmann import _sampling_nb as nbs

__all__ = ["TemperingStats", "check_ladder", "geometric_ladder", "respace", "Replicas"]

BETA_MIN = 0.2      # the hottest rung of an automatic ladder
START_RUNGS = 8     # rungs of an automatic ladder before its first re-placement
TARGET_RATE = 0.3   # swap rate an automatic ladder aims at
MAX_RUNGS = 64


@dataclass(frozen=True)
class TemperingStats:
    """What parallel tempering did: the ladder and how often neighbours swapped.

    Attributes:
        betas: the M inverse temperatures used after the burn-in, ``betas[0] == 1``, falling.
        swap_rates: ``(M - 1,)`` accepted / attempted swaps of each neighbour pair
            ``(betas[m], betas[m + 1])`` after the burn-in (NaN where none was attempted).
        n_sweeps: Gibbs sweeps (each followed by one round of swaps) counted in the rates.

    Example:
        >>> import numpy as np
        >>> from fastseq.boltzmann import RBM
        >>> X = (np.random.default_rng(0).random((64, 12)) < 0.3).astype(float)
        >>> rbm = RBM(n_components=8, n_iter=2, random_state=0).fit(X)
        >>> rbm.sample(4, n_steps=40, sampler="pt", betas=[1.0, 0.6, 0.3]).shape
        (4, 12)
        >>> rbm.last_tempering_.betas.tolist(), rbm.last_tempering_.swap_rates.shape
        ([1.0, 0.6, 0.3], (2,))
    """

    betas: np.ndarray
    swap_rates: np.ndarray
    n_sweeps: int


def geometric_ladder(n_rungs: int, beta_min: float = BETA_MIN) -> np.ndarray:
    """``n_rungs`` inverse temperatures from 1 down to ``beta_min``, evenly spaced in log beta.

    >>> geometric_ladder(3, 0.25).tolist()
    [1.0, 0.5, 0.25]
    """
    if n_rungs == 1:
        return np.ones(1)
    return beta_min ** (np.arange(n_rungs) / (n_rungs - 1))


def check_ladder(name: str, betas) -> np.ndarray:
    """An explicit ladder as a float64 array: 1-D, ``betas[0] == 1``, strictly falling, all > 0."""
    try:
        arr = np.array(betas, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"Expected {name} to be a 1-D array of inverse temperatures, got {betas!r}.") from None
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"Expected {name} to be a non-empty 1-D array of inverse temperatures, got shape {arr.shape}.")
    if not np.isfinite(arr).all() or arr[0] != 1.0 or (arr <= 0).any() or (np.diff(arr) >= 0).any():
        raise ValueError(f"Expected {name} to start at 1 and fall strictly, staying above 0 "
                         f"(1 = beta_0 > beta_1 > ... > 0), got {arr.tolist()}.")
    return arr


def respace(betas: np.ndarray, rates: np.ndarray, n_rungs: int | None = None, target: float = TARGET_RATE,
            max_rungs: int = MAX_RUNGS) -> np.ndarray:
    """A new ladder from 1, rungs at equal ``erfcinv(rate)`` steps (see the module).

    ``n_rungs`` None chooses the count so that each pair swaps near ``target``, keeping the
    lowest beta. A given ``n_rungs`` keeps the lowest beta when its steps are no longer than
    the target's; otherwise the ladder ends after ``n_rungs - 1`` target steps, above it.

    >>> respace(np.array([1.0, 0.5, 0.25]), np.array([0.9, 0.2]), 3).round(3).tolist()
    [1.0, 0.366, 0.25]
    >>> respace(np.array([1.0, 0.5, 0.25]), np.array([0.9, 0.01]), 3).round(3).tolist()
    [1.0, 0.391, 0.296]
    """
    if len(betas) < 2:
        return betas
    seen = np.where(np.isnan(rates), target, rates)
    step = erfcinv(np.clip(seen, 0.005, 0.995))
    length = np.concatenate([[0.0], np.cumsum(step)])
    span = length[-1]
    if n_rungs is None:
        n_rungs = int(min(max_rungs, max(2, 1 + math.ceil(span / erfcinv(target)))))
    else:
        span = min(span, (n_rungs - 1) * erfcinv(target))
    at = np.linspace(0.0, span, n_rungs)
    # interpolate log beta along the length: a geometric ladder stays geometric at equal rates
    new = np.exp(np.interp(at, length, np.log(betas)))
    new[0] = 1.0
    if span == length[-1]:
        new[-1] = betas[-1]
    return new


class _Path:
    """A machine's energy ``E(v, h) = U(v) - h.pre(v)`` and its tempered visible draws."""

    def __init__(self, model) -> None:
        self.m = model

    def pre(self, v: torch.Tensor) -> torch.Tensor:
        return self.m._free_energy_pre(v)[1]

    def visible_term(self, v: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def visible(self, h: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        """A draw of v from ``p_beta(v | h)``, ``beta`` a column (one per row)."""
        raise NotImplementedError


class _RBMPath(_Path):
    def __init__(self, model) -> None:
        super().__init__(model)
        p = model.params_
        self.W, self.b, self.c = p["W"].detach(), p["b"].detach(), p["c"].detach()

    def pre(self, v):
        return torch.addmm(self.c, v, self.W)

    def visible_term(self, v):
        return -(v @ self.b)

    def visible(self, h, beta):
        return self.m._bernoulli(beta * torch.addmm(self.b, h, self.W.T))


class _GaussPath(_RBMPath):
    def __init__(self, model) -> None:
        super().__init__(model)
        self.s = torch.exp(model.params_["log_sigma"].detach())

    def pre(self, v):
        return torch.addmm(self.c, v / self.s, self.W)

    def visible_term(self, v):
        return (((v - self.b) / self.s) ** 2).sum(1) / 2

    def visible(self, h, beta):
        noise = torch.randn(h.shape[0], self.b.numel(), generator=self.m._tgen, device=h.device, dtype=h.dtype)
        return self.b + self.s * (h @ self.W.T) + self.s * noise / torch.sqrt(beta)


class _BetaPath(_Path):
    def __init__(self, model) -> None:
        super().__init__(model)
        s = model.shapes()
        self.A, self.B, self.Wa, self.Wb = s["A"], s["B"], s["Wa"], s["Wb"]
        self.c = model.params_["c"].detach()

    def pre(self, v):
        return self.c + torch.log(v) @ self.Wa + torch.log1p(-v) @ self.Wb

    def visible_term(self, v):
        return -(torch.log(v) @ (self.A - 1) + torch.log1p(-v) @ (self.B - 1))

    def visible(self, h, beta):
        a = 1 + beta * (self.A + h @ self.Wa.T - 1)
        b = 1 + beta * (self.B + h @ self.Wb.T - 1)
        return self.m._prepare_sample(self.m._beta_ab(a, b))


def path_for(model) -> _Path:
    """The tempering path of ``model``; a machine without an energy is refused."""
    if not model._normalisable_energy:
        raise TypeError(f"Expected a machine with an energy for parallel tempering (RBM, GaussianRBM, BetaRBM), got "
                        f"{type(model).__name__}: no energy has its Beta sampler's conditionals, so there is no "
                        f"tempered distribution exp(-beta E) to sample and no swap probability.")
    # by the names along the class's MRO (subclasses included): the machines' modules import
    # this one, so it does not import them back
    names = {klass.__name__ for klass in type(model).__mro__}
    for name, path in (("GaussianRBM", _GaussPath), ("BetaRBM", _BetaPath), ("RBM", _RBMPath)):
        if name in names:
            return path(model)
    raise TypeError(f"Expected an RBM, GaussianRBM or BetaRBM for parallel tempering, got {type(model).__name__}.")


class Replicas:
    """M rungs x N chains of tempered states, stacked rung-major: row ``m * N + n``.

    The state between sweeps is the visible rows ``v`` (``M N x D``) and the hidden rows ``h``
    drawn before the last visible draw. :meth:`sweep` draws h at each rung's beta, offers the
    swaps of one parity, then draws v; the parity alternates sweep by sweep.
    """

    def __init__(self, model, betas: np.ndarray, v: torch.Tensor, swap_rng: np.random.Generator) -> None:
        self.m, self.path = model, path_for(model)
        self.n_chains = v.shape[0] // len(betas)
        self.v = v
        self.h = torch.zeros(v.shape[0], int(model.n_components), dtype=v.dtype, device=v.device)
        self.rng = swap_rng
        self.parity = 0
        self.set_betas(betas)

    def set_betas(self, betas: np.ndarray) -> None:
        """Move to a new ladder; each new rung takes the states of the old rung nearest in beta."""
        old = getattr(self, "betas", None)
        self.betas = np.asarray(betas, dtype=np.float64)
        if old is not None and (len(old) != len(self.betas) or (old != self.betas).any()):
            near = np.abs(old[None, :] - self.betas[:, None]).argmin(1)
            rows = torch.as_tensor((near[:, None] * self.n_chains + np.arange(self.n_chains)).ravel(),
                                   device=self.v.device)
            self.v, self.h = self.v.index_select(0, rows), self.h.index_select(0, rows)
        col = np.repeat(self.betas, self.n_chains)[:, None]
        self.beta_col = torch.as_tensor(col, dtype=self.v.dtype, device=self.v.device)
        self.reset_counts()

    def reset_counts(self) -> None:
        self.accepted = np.zeros(max(0, len(self.betas) - 1), np.int64)
        self.attempted = np.zeros_like(self.accepted)
        self.n_sweeps = 0

    def rates(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.accepted / (self.attempted * self.n_chains)

    def stats(self) -> TemperingStats:
        return TemperingStats(self.betas.copy(), self.rates(), int(self.n_sweeps))

    def hidden(self) -> torch.Tensor:
        """Draw h at every rung's beta from the current v; returns the unscaled pre-activations."""
        pre = self.path.pre(self.v)
        self.h = self.m._bernoulli(self.beta_col * pre)
        return pre

    def swap(self, pre: torch.Tensor) -> None:
        """One round of swaps of the pairs of this sweep's parity, on the joint energies."""
        n_rungs, n = len(self.betas), self.n_chains
        if n_rungs < 2:
            return
        energy = (self.path.visible_term(self.v).double() - (self.h.double() * pre.double()).sum(1))
        energy = np.ascontiguousarray(energy.cpu().numpy().reshape(n_rungs, n))
        order = np.repeat(np.arange(n_rungs, dtype=np.intp)[:, None], n, axis=1)
        nbs.swap_replicas(energy, self.betas, self.parity, self.rng, order, self.accepted)
        self.attempted[self.parity::2] += 1
        self.parity = 1 - self.parity
        rows = (order * n + np.arange(n)).ravel()
        if (rows != np.arange(rows.size)).any():
            idx = torch.as_tensor(rows, device=self.v.device)
            self.v, self.h = self.v.index_select(0, idx), self.h.index_select(0, idx)

    def sweep(self) -> None:
        """h at each beta, swaps, v at each beta."""
        self.swap(self.hidden())
        self.visible()

    def visible(self) -> None:
        self.v = self.m._prepare_sample(self.path.visible(self.h, self.beta_col))
        self.n_sweeps += 1

    def top(self, what: torch.Tensor) -> torch.Tensor:
        """Rung 0's rows (beta = 1) of a stacked tensor."""
        return what[:self.n_chains]


def ladder_settings(n_temperatures, betas) -> tuple[np.ndarray, int | None, bool]:
    """``(first ladder, rungs to keep or None, adapt)`` from the user's ``n_temperatures`` / ``betas``."""
    if betas is not None:
        arr = check_ladder("betas", betas)
        if n_temperatures is not None and int(n_temperatures) != arr.size:
            raise ValueError(f"Expected n_temperatures to match the {arr.size} betas given, got {n_temperatures!r}.")
        return arr, arr.size, False
    if n_temperatures is None:
        return geometric_ladder(START_RUNGS), None, True
    if isinstance(n_temperatures, (bool, np.bool_)) or not isinstance(n_temperatures, Integral) or n_temperatures < 1:
        raise ValueError(f"Expected n_temperatures to be a positive integer or None, got {n_temperatures!r}.")
    return geometric_ladder(int(n_temperatures)), int(n_temperatures), int(n_temperatures) > 1


def run_sampler(model, v0: torch.Tensor, n_steps: int, n_temperatures, betas, bar) -> tuple[torch.Tensor, TemperingStats]:
    """Tempered chains from ``v0`` (``N x D``, at every rung) for ``n_steps`` sweeps; the
    last sweep stops after its swaps. Returns rung 0's hidden states and the stats.

    The first quarter of the sweeps is the burn-in where an adaptive ladder is re-placed
    (in rounds of at least 10 sweeps); the rates reported count the sweeps after it.
    """
    ladder, keep, adapt = ladder_settings(n_temperatures, betas)
    rep = Replicas(model, ladder, v0.repeat(len(ladder), 1), np.random.default_rng(model._rng.integers(1 << 63)))
    burn = n_steps // 4 if adapt else 0
    rounds = max(1, min(8, burn // 10)) if burn else 0
    done = 0
    for r in range(rounds):
        for _ in range(burn * (r + 1) // rounds - burn * r // rounds):
            rep.sweep()
            done += 1
            bar.update(1)
        rep.set_betas(respace(rep.betas, rep.rates(), keep))
    rep.reset_counts()
    for step in range(done, n_steps):
        pre = rep.hidden()
        rep.swap(pre)
        if step + 1 < n_steps:
            rep.visible()
        bar.update(1)
    rep.n_sweeps += 1
    return rep.top(rep.h), rep.stats()


ADAPT_EVERY = 50  # training updates between two re-placements of an adaptive ladder


def training_ladder(tempering) -> tuple[np.ndarray, int | None, bool]:
    """The estimator's ``tempering`` parameter as ``(first ladder, rungs to keep or None, adapt)``."""
    if isinstance(tempering, str):  # "auto"; _parameter_constraints let nothing else through
        return ladder_settings(None, None)
    if isinstance(tempering, Integral):
        return ladder_settings(int(tempering), None)
    return ladder_settings(None, check_ladder("tempering", tempering))


def start_training(model, n_chains: int) -> None:
    """Fresh tempered persistent chains for ``model`` (visible rows drawn from h = 0 at each beta)."""
    if not model.persistent:
        raise ValueError(f"Expected persistent=True with tempering={model.tempering!r} (tempering runs persistent "
                         f"chains), got persistent={model.persistent!r}.")
    ladder, keep, adapt = training_ladder(model.tempering)
    rows = n_chains * len(ladder)
    v = torch.zeros(rows, model.n_features_in_, dtype=model._tdtype, device=model.device)
    rep = Replicas(model, ladder, v, np.random.default_rng(model._rng.integers(1 << 63)))
    rep.visible()
    rep.v = rep.m._prepare_visible(rep.v)
    rep.reset_counts()
    model._replicas, model._ladder_rule, model._pt_updates = rep, (keep, adapt), 0
    model._pt_last = rep.stats()


def negatives(model, k: int) -> torch.Tensor:
    """k tempered sweeps of the persistent chains; rung 0's visible rows (beta = 1) are returned."""
    rep = model._replicas
    rep.path = path_for(model)  # the parameters moved (BetaRBM's shapes are computed from them)
    for _ in range(k):
        rep.sweep()
    count_updates(model, 1)
    return rep.top(rep.v)


def updates_before_adapting(model) -> int:
    """Training updates left before the ladder is next re-placed (a fused epoch stops there)."""
    return ADAPT_EVERY - model._pt_updates % ADAPT_EVERY


def count_updates(model, n: int) -> None:
    """Count ``n`` updates (at most :func:`updates_before_adapting`); every ``ADAPT_EVERY`` of
    them the rates are kept as ``tempering_`` and an adaptive ladder is re-placed."""
    rep = model._replicas
    keep, adapt = model._ladder_rule
    model._pt_updates += n
    if model._pt_updates % ADAPT_EVERY == 0:
        model._pt_last = rep.stats()
        if adapt:
            rep.set_betas(respace(rep.betas, rep.rates(), keep))
        rep.reset_counts()


def training_stats(model) -> TemperingStats:
    """The ladder and the swap rates of the last completed window of updates (the current one if none)."""
    rep = model._replicas
    return model._pt_last if model._pt_last.n_sweeps else rep.stats()
