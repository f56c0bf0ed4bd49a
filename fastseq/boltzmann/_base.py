"""Shared machinery of fastseq's Boltzmann machines: parameters, CD/PCD training, sampling,
the scikit-learn estimator API, and pickle-free save/load.

A model subclass defines its parameters and four pieces of math (``_init_params``,
``_free_energy_pre``, ``_sample_hidden``, ``_sample_visible``); everything else (mini-batch
contrastive divergence or persistent CD, optimizers, Gibbs sampling, generation,
reconstruction, input validation, saving) lives here. Training minimises
``mean F(v_data) - mean F(v_model)`` with autograd, whose gradient is exactly the CD / PCD
statistic, so every model shares one loop; sigmoid-mean machines on the CPU replace it by a
fused kernel (``fastseq.boltzmann._cd_nb``). On the CPU the random draws go through the Numba
kernels of ``fastseq.boltzmann._sampling_nb``; on CUDA through PyTorch ops.

The machines are scikit-learn estimators: parameters are checked against
``_parameter_constraints`` when ``fit`` starts, data go through ``validate_data`` (dense or
sparse CSR/CSC, float32 or float64, feature names), and outputs keep the input's float dtype.
"""
from __future__ import annotations

import contextlib
import math
import os
from numbers import Integral, Real
from typing import Any, Callable, Iterator

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from fastseq.boltzmann import _sampling_nb as nbs
from fastseq.boltzmann import _tempering
from fastseq._util import files
from fastseq._util.memory import check_fits
from fastseq._util.progress import progress_bar
from fastseq._util.validate import positive_int, torch_device

__all__ = ["BoltzmannMachine", "load_rbm"]

_DTYPES = {"float32": torch.float32, "float64": torch.float64, torch.float32: torch.float32,
           torch.float64: torch.float64, np.float32: torch.float32, np.float64: torch.float64}
_CHUNK_ELEMENTS = 1 << 21  # rows of a sparse or large input are densified this many entries at a time


class _FiniteInterval(Interval):
    """An Interval that also refuses infinity (scikit-learn's lets ``inf`` through an open right end)."""

    def is_satisfied_by(self, val) -> bool:
        return super().is_satisfied_by(val) and math.isfinite(val)

    def __str__(self) -> str:
        return "a finite " + super().__str__().removeprefix("a ")


class _Count(Interval):
    """An integer Interval that refuses bools: ``batch_size=True`` is a mistake, not 1."""

    def is_satisfied_by(self, val) -> bool:
        return not isinstance(val, (bool, np.bool_)) and super().is_satisfied_by(val)


def _positive(closed: str = "neither") -> Interval:
    return _FiniteInterval(Real, 0, None, closed=closed)


def _count(low: int = 1) -> Interval:
    return _Count(Integral, low, None, closed="left")


TEMPERING = [None, StrOptions({"auto"}), _count(), "array-like"]  # the constraint of ``tempering``


class BoltzmannMachine(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Base class; use :class:`~fastseq.RBM`, ``RRBM``, ``R3BM``, ``BetaRBM`` or ``GaussianRBM``.

    Args:
        n_components: number of hidden units H.
        learning_rate: step size; with ``optimizer="sgd"`` and no momentum the update equals
            scikit-learn's ``BernoulliRBM`` (mean statistic times the rate).
        learning_rate_schedule: ``"constant"``, or ``"linear"``: epoch ``e`` (from 0) of
            :meth:`fit` trains at ``learning_rate * (1 - e / n_iter)``, falling towards 0 so that
            the last updates barely move the machine its persistent chains sample (as in
            Tieleman's PCD). :meth:`partial_fit` always takes ``learning_rate``.
        batch_size: rows per mini-batch.
        n_iter: passes over the data in :meth:`fit`.
        k: Gibbs steps per update (CD-k / PCD-k).
        persistent: keep ``n_chains`` persistent chains (PCD) instead of restarting at the data.
        n_chains: persistent chains; default ``batch_size`` (as scikit-learn).
        optimizer: ``"sgd"`` (with ``momentum``) or ``"adam"``.
        momentum: SGD momentum.
        weight_decay: L2 penalty on the weights (not the biases).
        init_scale: standard deviation of the initial weights.
        shuffle: visit mini-batches in a new seeded order each epoch.
        n_streams: random streams of the CPU kernels; results depend on the seed and this
            number only, not on the thread count.
        device: ``"cpu"`` or a CUDA device.
        dtype: precision of the parameters and of training, ``"float32"`` or ``"float64"``
            (NumPy and torch dtypes are accepted too). Outputs (``transform`` and the rest)
            always come back in the input's float dtype, as scikit-learn's transformers do.
        torch_threads: PyTorch intra-op threads while this model trains or samples on the
            CPU through PyTorch (restored afterwards), so that PyTorch's thread pool and the
            Numba kernels' never run at once. None leaves PyTorch's setting alone.
        verbose: print the pseudo-likelihood or reconstruction error after each epoch.
        progress: show a tqdm progress bar over mini-batches.
        random_state: seed (int), a ``numpy.random.RandomState``, or None.
        tempering (``RBM``, ``GaussianRBM``): persistent chains with parallel tempering (needs
            ``persistent``): None (off), ``"auto"`` (a ladder sized and placed from the swap
            rates, see ``fastseq.boltzmann._tempering``), an int M (M rungs, placed from the
            rates) or an explicit falling array of inverse temperatures starting at 1. Only
            the ``beta = 1`` rung gives the negative statistics; ``tempering_`` holds the ladder
            and swap rates after training.
    """

    _registry: dict[str, type["BoltzmannMachine"]] = {}  # public subclasses by name, for load_rbm

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__name__.startswith("_"):
            BoltzmannMachine._registry[cls.__name__] = cls

    _parameter_constraints: dict = {
        "n_components": [_count()],
        "learning_rate": [_positive()],
        "learning_rate_schedule": [StrOptions({"constant", "linear"})],
        "batch_size": [_count()],
        "n_iter": [_count(0)],
        "k": [_count()],
        "persistent": ["boolean"],
        "n_chains": [_count(), None],
        "optimizer": [StrOptions({"sgd", "adam"})],
        "momentum": [_positive("left")],
        "weight_decay": [_positive("left")],
        "init_scale": [_positive("left")],
        "shuffle": ["boolean"],
        "n_streams": [_count()],
        "device": [str, torch.device],
        "dtype": [Options(object, set(_DTYPES))],
        "torch_threads": [_count(), None],
        "verbose": ["verbose"],
        "progress": ["boolean"],
        "random_state": ["random_state"],
    }

    def __init__(self, n_components: int = 256, *, learning_rate: float = 0.1,
                 learning_rate_schedule: str = "constant", batch_size: int = 10, n_iter: int = 10, k: int = 1,
                 persistent: bool = True, n_chains: int | None = None,
                 optimizer: str = "sgd", momentum: float = 0.0, weight_decay: float = 0.0,
                 init_scale: float = 0.01, shuffle: bool = True, n_streams: int = 8,
                 device: str | torch.device = "cpu", dtype: Any = "float32", torch_threads: int | None = 1,
                 verbose: int = 0, progress: bool = False, random_state=None) -> None:
        _store(self, locals())

    tempering = None  # machines whose constructor does not take it train without tempering

    # ------------------------------------------------------------------ scikit-learn plumbing
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    def __sklearn_is_fitted__(self) -> bool:
        return bool(getattr(self, "params_", None))

    @property
    def _n_features_out(self) -> int:
        return int(self.n_components)

    @property
    def _tdtype(self) -> torch.dtype:
        return _DTYPES[self.dtype]

    def _validate(self, X, *, reset: bool = False):
        """Validate X the scikit-learn way; returns a float32/float64 array or a CSR matrix.

        On ``reset`` (fit, first partial_fit) the feature count and names are recorded; else
        the model must be fitted and X must match them.
        """
        if not reset:
            check_is_fitted(self)
        X = validate_data(self, _array_like("X", X, "N x D"), reset=reset, accept_sparse=("csr", "csc"),
                          dtype=(np.float64, np.float32))
        if sp.issparse(X) and X.format != "csr":
            X = X.tocsr()
        self._check_magnitude(X)
        self._check_range(X)
        return X

    def _check_magnitude(self, X) -> None:
        """Refuse values the model cannot hold: past the largest float of its dtype a value
        becomes inf when converted (a float64 3.5e38 in a float32 model), and training and
        scores turn to NaN (Gaussian units: past the square root of it, see GaussianRBM)."""
        values = X.data if sp.issparse(X) else X
        limit, why = self._largest_value()
        largest = max(float(values.max()), -float(values.min())) if values.size else 0.0  # no copy of X
        if largest > limit:
            raise ValueError(f"Expected X's values within +-{limit:.3g} for {type(self).__name__} in {self.dtype} "
                             f"({why}), got values up to {largest:.3g}.")

    def _largest_value(self) -> tuple[float, str]:
        return float(torch.finfo(self._tdtype).max), "the largest finite value"

    def _validate_hidden(self, h):
        """Validate hidden values ``N x H`` in [0, 1] (dense or sparse, float32 or float64) of a fitted model."""
        check_is_fitted(self)
        h = check_array(_array_like("h", h, "N x H"), accept_sparse=("csr", "csc"), dtype=(np.float64, np.float32),
                        input_name="h")
        n_hidden = int(self.n_components)
        if h.shape[1] != n_hidden:
            raise ValueError(f"Expected h to have {n_hidden} columns (one per hidden unit of this "
                             f"{type(self).__name__}), got shape {h.shape}.")
        if sp.issparse(h) and h.format != "csr":
            h = h.tocsr()
        values = h.data if sp.issparse(h) else h
        if values.size and (values.min() < 0 or values.max() > 1):
            raise ValueError(f"Expected h to hold hidden values in [0, 1] (states or means of the hidden units), "
                             f"got values in [{values.min()}, {values.max()}].")
        return h

    def _check_range(self, X) -> None:
        """Models whose math needs data in [0, 1] refuse other values here (BetaRBM)."""

    def _rows(self, X, rows: np.ndarray | None = None) -> Iterator[torch.Tensor]:
        """Dense tensors on the model's device, a few rows of X at a time (sparse X densified per chunk)."""
        n = X.shape[0] if rows is None else len(rows)
        step = max(1, _CHUNK_ELEMENTS // max(1, X.shape[1], int(self.n_components)))
        for lo in range(0, n, step):
            part = X[lo:lo + step] if rows is None else X[rows[lo:lo + step]]
            part = part.toarray() if sp.issparse(part) else part
            yield torch.tensor(part, dtype=self._tdtype, device=self.device)

    def _map_rows(self, X, fn: Callable[[torch.Tensor], torch.Tensor]) -> np.ndarray:
        """Apply ``fn`` to the validated visible rows of X chunk by chunk; the result has X's float dtype."""
        return self._map_valid(self._validate(X), fn)

    def _map_hidden(self, h, fn: Callable[[torch.Tensor], torch.Tensor]) -> np.ndarray:
        """Apply ``fn`` to the validated hidden rows of h chunk by chunk; the result has h's float dtype."""
        return self._map_valid(self._validate_hidden(h), fn)

    def _map_valid(self, X, fn: Callable[[torch.Tensor], torch.Tensor]) -> np.ndarray:
        with torch.no_grad(), self._threads():
            parts = [fn(v).cpu().numpy() for v in self._rows(X)]
        return np.concatenate(parts).astype(X.dtype, copy=False)

    def _column_moments(self, X) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance of each column of the model-prepared data (chunked)."""
        total = sq = None
        for v in self._rows(X):
            v = self._prepare_visible(v).double()
            s, q = v.sum(0), (v * v).sum(0)
            total, sq = (s, q) if total is None else (total + s, sq + q)
        mean = total / X.shape[0]
        var = (sq / X.shape[0] - mean * mean).clamp_min(0.0)
        return mean.to(self._tdtype), var.to(self._tdtype)

    # ------------------------------------------------------------------ randomness
    def _setup_random(self) -> None:
        seed = self.random_state
        if seed is not None and not isinstance(seed, (Integral, np.random.SeedSequence)):
            seed = int(check_random_state(seed).randint(np.iinfo(np.int32).max))  # a RandomState instance
        ss = np.random.SeedSequence(seed)
        torch_seed, np_seed, stream_seed = ss.spawn(3)
        self._streams = nbs.make_streams(stream_seed, positive_int("n_streams", self.n_streams))
        self._rng = np.random.default_rng(np_seed)
        self._tgen = torch.Generator(device=self.device)
        self._tgen.manual_seed(int(torch_seed.generate_state(1, np.uint64)[0] >> np.uint64(1)))

    def _on_cpu(self) -> bool:
        return torch.device(self.device).type == "cpu"

    @contextlib.contextmanager
    def _threads(self) -> Iterator[None]:
        """Run the block with ``torch_threads`` PyTorch threads on the CPU, then restore."""
        if self.torch_threads is None or not self._on_cpu():
            yield
            return
        old = torch.get_num_threads()
        if old == int(self.torch_threads):
            yield
            return
        torch.set_num_threads(int(self.torch_threads))
        try:
            yield
        finally:
            torch.set_num_threads(old)

    def _bernoulli(self, pre: torch.Tensor) -> torch.Tensor:
        """Binary draws with P(1) = sigmoid(pre)."""
        if self._on_cpu():
            return torch.from_numpy(nbs.bernoulli_logits(pre.detach().contiguous().numpy(), self._streams))
        return torch.bernoulli(torch.sigmoid(pre), generator=self._tgen)

    def _beta_from_logits(self, pre: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
        """Beta draws with mean sigmoid(pre) and standard deviation sigma (guarded)."""
        if self._on_cpu():
            sig = sigma.detach().numpy() if isinstance(sigma, torch.Tensor) else sigma
            return torch.from_numpy(nbs.sigmoid_beta(pre.detach().contiguous().numpy(), sig, self._streams))
        m = torch.sigmoid(pre).clamp(nbs.EPS_MEAN, 1 - nbs.EPS_MEAN)
        mv = m * (1 - m)
        var = torch.minimum(torch.as_tensor(sigma, dtype=m.dtype, device=m.device) ** 2, mv)
        nu = (mv / var - 1).clamp_min(nbs.NU_MIN)
        return self._beta_ab(m * nu, (1 - m) * nu)

    def _beta_ab(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Beta(a, b) draws, a and b > 0 of one shape."""
        if self._on_cpu():
            return torch.from_numpy(nbs.beta_ab(a.detach().contiguous().numpy(),
                                                b.detach().contiguous().numpy(), self._streams))
        # Log-space gammas with the boost Gamma(a) = Gamma(a + 1) U^(1/a) (the CPU kernel
        # uses Cheng's BB/BC instead), so tiny shapes land on 0 or 1 in the right proportions (torch's own Beta gives
        # NaN or biased values there). torch's Gamma sampler takes no generator: it uses
        # the global CUDA stream (seed it with torch.manual_seed).
        return torch.sigmoid(self._log_gamma(a) - self._log_gamma(b))

    def _log_gamma(self, a: torch.Tensor) -> torch.Tensor:
        u = torch.rand(a.shape, generator=self._tgen, device=a.device, dtype=a.dtype).clamp_min(torch.finfo(a.dtype).tiny)
        return torch.log(torch._standard_gamma(a + 1)) + torch.log(u) / a

    # ------------------------------------------------------------------ model hooks
    def _init_params(self, mean: torch.Tensor, var: torch.Tensor) -> dict[str, torch.Tensor]:
        """Fresh parameters, given each visible column's mean and variance in the data."""
        raise NotImplementedError

    def _free_energy_pre(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(F(v), hidden pre-activation)``; F keeps the autograd graph."""
        raise NotImplementedError

    def _sample_hidden(self, pre: torch.Tensor) -> torch.Tensor:
        return self._bernoulli(pre)

    def _sample_visible(self, h: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _visible_mean(self, h: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _hidden_mean(self, pre: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(pre)

    # what the likelihood functions ask a machine (fastseq.boltzmann.likelihood)
    _normalisable_energy = True   # an energy whose partition function the likelihoods may estimate
    _binary_visible = False       # visible units are {0, 1} (enumerable; pseudo-likelihood defined)

    def _params64(self) -> dict[str, torch.Tensor]:
        """The parameters as float64 CPU tensors, in the form ``_log_sum_visible`` reads."""
        return {k: v.detach().double().cpu() for k, v in self.params_.items()}

    def _log_sum_visible(self, p: dict[str, torch.Tensor], h: torch.Tensor) -> torch.Tensor:
        """``log sum_v exp(-E(v, h))`` (an integral for continuous units) for each hidden row h."""
        raise NotImplementedError

    def _likelihood_visible(self, v: torch.Tensor) -> torch.Tensor:
        """Rows as the likelihood scores them (RBM binarises)."""
        return self._prepare_visible(v)

    def _anneal_path(self, data):
        """The AIS path from this machine's base-rate model (``fastseq.boltzmann._anneal``)."""
        raise NotImplementedError

    def _prepare_visible(self, v: torch.Tensor) -> torch.Tensor:
        """Map visible values into the model's support (BetaRBM clamps away from 0 and 1)."""
        return v

    def _prepare_sample(self, v: torch.Tensor) -> torch.Tensor:
        """Map the model's own visible samples into what its energy can score (the negative phase)."""
        return self._prepare_visible(v)

    def _check_sample_fits(self, n: int) -> None:
        """Refuse ``n`` sampling chains that cannot fit in memory: the chains' visible and hidden
        states, a step's new ones and the sampler's scratch."""
        itemsize = torch.empty((), dtype=self._tdtype).element_size()
        check_fits(f"{type(self).__name__}.sample(n_samples={n}) of {self.n_features_in_} features",
                   4.0 * n * (self.n_features_in_ + self.n_components) * itemsize)

    def _random_visible(self, n: int) -> torch.Tensor:
        return torch.rand(n, self.n_features_in_, generator=self._tgen, device=self.device, dtype=self._tdtype)

    def _chain_starts(self, n_samples, start) -> tuple[torch.Tensor, np.dtype]:
        """Sampling chains' first visible rows: ``n_samples`` random ones, or the rows of the
        validated ``start``; and the dtype the samples are returned in (the model's, or start's)."""
        if start is None:
            n = positive_int("n_samples", n_samples)
            self._check_sample_fits(n)  # every machine's starts, whatever its _random_visible
            return self._random_visible(n), np.dtype(str(self._tdtype).replace("torch.", ""))
        return torch.cat(list(self._rows(start))), start.dtype

    def _chain(self, h: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """k Gibbs steps from hidden state h; returns ``(v_k, h_{k-1})``."""
        v = h
        for step in range(k):
            v = self._sample_visible(h)
            if step + 1 < k:
                h = self._sample_hidden(self._free_energy_pre(v)[1])
        return v, h

    def _hidden_pre(self, v: torch.Tensor) -> torch.Tensor:
        """Hidden pre-activations of visible rows (mapped into the model's support first)."""
        return self._free_energy_pre(self._prepare_visible(v))[1]

    def _weights(self) -> torch.Tensor:
        """The ``D x H`` matrix that :attr:`components_` shows transposed."""
        raise NotImplementedError

    def _visible_intercept(self) -> torch.Tensor:
        """The ``(D,)`` visible offsets that :attr:`intercept_visible_` shows."""
        raise NotImplementedError

    # ------------------------------------------------------------------ public API
    @property
    def parameters(self) -> dict[str, torch.Tensor]:
        """The model's torch parameters by name (live tensors; a copy is ``{k: v.clone()}``)."""
        check_is_fitted(self)
        return self.params_

    @property
    def components_(self) -> np.ndarray:
        """Weights between the hidden and the visible units, ``H x D`` (scikit-learn's layout).

        Row j is hidden unit j's pattern over the visible units; what the numbers mean for
        each kind of unit is in the machine's own docstring.
        """
        check_is_fitted(self)
        return self._weights().detach().T.cpu().numpy()

    @property
    def intercept_hidden_(self) -> np.ndarray:
        """Hidden biases ``c``, ``(H,)``: the logit of each hidden mean when every visible unit is 0."""
        check_is_fitted(self)
        return self.params_["c"].detach().cpu().numpy()

    @property
    def intercept_visible_(self) -> np.ndarray:
        """Visible offsets, ``(D,)``: where each visible mean sits with every hidden unit off
        (its logit for units in [0, 1], the mean itself for Gaussian units)."""
        check_is_fitted(self)
        return self._visible_intercept().detach().cpu().numpy()

    @property
    def h_samples_(self) -> np.ndarray:
        """Hidden states of the persistent chains, ``n_chains x H``, in the model's dtype.

        A copy: training goes on from the model's own chains, and later training leaves
        this array alone. Before any update (or with ``persistent=False``) they are zeros.
        With tempering they are the hidden rows of the ``beta = 1`` rung.
        """
        check_is_fitted(self)
        rep = getattr(self, "_replicas", None)
        chains = self._h_chain if rep is None or self.tempering is None else rep.top(rep.h)
        return chains.detach().cpu().numpy().copy()

    @property
    def tempering_(self) -> "_tempering.TemperingStats":
        """Ladder and swap rates of the tempered persistent chains (``tempering`` set), measured
        over the last 50 updates (fewer at the start)."""
        check_is_fitted(self)
        if getattr(self, "_replicas", None) is None:
            raise AttributeError(f"{type(self).__name__} has no tempering_: it trained without tempering.")
        return _tempering.training_stats(self)

    def free_energy(self, X) -> np.ndarray:
        """Free energy ``F(v) = -log sum_h exp(-E(v, h))`` of each row of X (``N x D``) -> ``(N,)``."""
        return self._map_rows(X, lambda v: self._free_energy_pre(self._prepare_visible(v))[0])

    def score_samples(self, X) -> np.ndarray:
        """``-F(v)`` of each row of X (``N x D``) -> ``(N,)``: higher is more typical of the model.

        For machines with an energy (``GaussianRBM``, ``BetaRBM``) this is ``log p(v) + log Z``,
        the log-density up to the constant log partition function (``score_samples(X) - log_z``
        is the log-likelihood of each row; see ``ais_log_partition``). Machines whose
        sampler has no energy (``RRBM``, ``R3BM``) score with the free energy that their
        training lowers on the data: it ranks the rows of one model, nothing more. ``RBM``
        overrides this with its exact pseudo-log-likelihood.
        """
        return -self.free_energy(X)

    def transform(self, X) -> np.ndarray:
        """Hidden unit means ``E[h | v]`` of each row, ``N x H`` (scikit-learn's transform; :meth:`hidden_mean`)."""
        return self.hidden_mean(X)

    def inverse_transform(self, X) -> np.ndarray:
        """Visible means ``E[v | h]``, ``N x D``, of hidden values ``X`` (``N x H``; :meth:`visible_mean`):
        back from :meth:`transform`'s space, so a machine is a code model of
        :class:`fastseq.conv.StackedModel` and :func:`fastseq.conv.evaluate_faces` as it is.
        (Named ``X``, as scikit-learn names it: another name would count as routed metadata.)"""
        return self.visible_mean(X)

    def hidden_mean(self, v) -> np.ndarray:
        """Hidden unit means ``E[h | v]``, ``N x H``, of visible rows ``N x D`` (what :meth:`transform` returns)."""
        return self._map_rows(v, lambda x: self._hidden_mean(self._hidden_pre(x)))

    def sample_hidden(self, v) -> np.ndarray:
        """A draw ``h ~ p(h | v)``, ``N x H``, for visible rows ``N x D`` (advances the model's random streams)."""
        return self._map_rows(v, lambda x: self._sample_hidden(self._hidden_pre(x)))

    def visible_mean(self, h) -> np.ndarray:
        """Visible unit means ``E[v | h]``, ``N x D``, of hidden values ``N x H`` in [0, 1].

        ``h`` may be hidden states (from :meth:`sample_hidden`) or means (from
        :meth:`hidden_mean`, or mixes of them): ``visible_mean(hidden_mean(X))`` is
        :meth:`reconstruct`.
        """
        return self._map_hidden(h, self._visible_mean)

    def sample_visible(self, h) -> np.ndarray:
        """A draw ``v ~ p(v | h)``, ``N x D``, for hidden values ``N x H`` in [0, 1] (advances the random streams)."""
        return self._map_hidden(h, self._sample_visible)

    def gibbs(self, v) -> np.ndarray:
        """One Gibbs step v -> h -> v', returning the visible sample ``N x D``."""
        return self._map_rows(v, lambda x: self._sample_visible(self._sample_hidden(self._hidden_pre(x))))

    def reconstruct(self, X) -> np.ndarray:
        """Mean-field reconstruction ``E[v | E[h | v]]`` of each row, ``N x D``."""
        return self._map_rows(X, lambda v: self._visible_mean(self._hidden_mean(self._hidden_pre(v))))

    def reconstruction_error(self, X) -> float:
        """Mean squared difference between X and :meth:`reconstruct` (X)."""
        total = 0.0
        X = self._validate(X)
        with torch.no_grad(), self._threads():
            for v in self._rows(X):
                rec = self._visible_mean(self._hidden_mean(self._hidden_pre(v)))
                total += float(((rec.double() - v.double()) ** 2).sum())
        return total / (X.shape[0] * X.shape[1])

    def sample(self, n_samples: int = 16, n_steps: int = 1000, start=None, return_means: bool = True,
               progress: bool | None = None, *, sampler: str = "gibbs", n_temperatures: int | None = None,
               betas=None) -> np.ndarray:
        """Generate ``n_samples x D`` visible vectors by ``n_steps`` of Gibbs sampling.

        Chains start from uniform random visible vectors (or from ``start``, ``N x D``).
        With ``return_means`` the last step returns ``E[v | h]`` (smooth pictures) instead
        of a sample. The result has the model's dtype (or ``start``'s float dtype).

        ``sampler="pt"`` runs parallel tempering (machines with an energy: ``RBM``,
        ``GaussianRBM``, ``BetaRBM``): every chain has a copy at each inverse temperature of a
        ladder ``1 = beta_0 > ... > beta_{M-1}``, neighbours swap states after each hidden draw,
        and the ``beta = 1`` copies are returned. ``betas`` gives the ladder explicitly (kept
        as given); otherwise ``n_temperatures`` rungs (None: as many as the swap rates ask for)
        are placed during a burn-in of the first quarter of the steps, aiming at a swap rate
        of 0.3 per pair. The ladder and the rates after the burn-in are left in
        ``last_tempering_`` (a :class:`~fastseq.boltzmann.TemperingStats`). The default
        ``"gibbs"`` is plain Gibbs sampling.
        """
        check_is_fitted(self)
        n_steps = positive_int("n_steps", n_steps)
        if sampler not in ("gibbs", "pt"):
            raise ValueError(f"Expected sampler to be 'gibbs' or 'pt', got {sampler!r}.")
        if sampler == "gibbs" and (n_temperatures is not None or betas is not None):
            raise ValueError(f"Expected n_temperatures and betas only with sampler='pt', got "
                             f"n_temperatures={n_temperatures!r}, betas={betas!r} with sampler='gibbs'.")
        if sampler == "pt":
            _tempering.path_for(self)  # refuses a machine without an energy before any work
        v, out_dtype = self._chain_starts(n_samples, None if start is None else self._validate(start))
        v = self._prepare_visible(v)
        show = self.progress if progress is None else progress
        if sampler == "pt":
            with torch.no_grad(), self._threads():
                bar = _bar(n_steps, show, "tempering")
                h, self.last_tempering_ = _tempering.run_sampler(self, v, n_steps, n_temperatures, betas, bar)
                bar.close()
                out = self._visible_mean(h) if return_means else self._sample_visible(h)
            return out.cpu().numpy().astype(out_dtype, copy=False)
        with torch.no_grad(), self._threads():
            h = self._sample_hidden(self._free_energy_pre(v)[1])
            block = 50
            done = 0
            bar = _bar(n_steps - 1, show, "gibbs")
            while done < n_steps - 1:
                step = min(block, n_steps - 1 - done)
                v, h = self._chain(h, step)
                v = self._prepare_sample(v)
                h = self._sample_hidden(self._free_energy_pre(v)[1])
                done += step
                bar.update(step)
            bar.close()
            out = self._visible_mean(h) if return_means else self._sample_visible(h)
        return out.cpu().numpy().astype(out_dtype, copy=False)

    def _initialise(self, X) -> None:
        """Seed the random streams and make fresh parameters for validated data X."""
        self._check_sizes(X)
        self._setup_random()
        mean, var = self._column_moments(X)
        self.params_ = self._init_params(mean, var)
        self._start_training(self._n_chains(X.shape[0]))
        if self.tempering is not None:
            _tempering.path_for(self)
            _tempering.start_training(self, self._n_chains(X.shape[0]))

    def _n_chains(self, n_rows: int) -> int:
        """Persistent chains: ``n_chains``, else one per row of a mini-batch (at most the data's rows)."""
        return int(self.n_chains or min(int(self.batch_size), n_rows))

    def _check_sizes(self, X) -> None:
        """Refuse, before any allocation, a learning rate the dtype cannot hold and sizes that cannot fit."""
        top, name = float(torch.finfo(self._tdtype).max), str(self._tdtype).replace("torch.", "")
        if float(self.learning_rate) > top:
            raise ValueError(f"Expected learning_rate to be at most {top:.3g} (the largest {name}), "
                             f"got {self.learning_rate!r}.")
        n, d = X.shape
        h, chains = int(self.n_components), self._n_chains(n)
        rows = min(int(self.batch_size), n) + chains
        item = torch.empty((), dtype=self._tdtype).element_size()
        # the weights with their gradient or momentum and a working copy (3 D x H), the chains'
        # hidden states, and per mini-batch a few (rows x (D + H)) statistics and activations
        nbytes = item * (3.0 * d * h + chains * h + 4.0 * rows * (d + h))
        what = f"n_components={h}" + (f" with n_chains={chains}" if self.n_chains else "")
        check_fits(f"{type(self).__name__}({what}) on {d} features", nbytes)

    def _parameters_ok(self) -> bool:
        """Whether every parameter is finite (a diverged training run makes them inf or NaN)."""
        return all(bool(torch.isfinite(p).all()) for p in self.params_.values())

    @contextlib.contextmanager
    def _divergence_check(self, where: str) -> Iterator[None]:
        """Turn a run whose parameters became non-finite into one clear error naming learning_rate.

        Checked once per epoch (or partial_fit call), not inside the kernels: a diverged
        step shows up as inf/NaN parameters afterwards, or as an arithmetic error of a
        sampler fed them (division by zero, float overflow), which is reported as this.
        """
        try:
            yield
        except (ArithmeticError, RuntimeError) as exc:
            if self._parameters_ok():
                raise
            raise self._diverged(where) from exc
        if not self._parameters_ok():
            raise self._diverged(where)

    _divergence_hint = ""  # a machine's own likely cause, after the learning rate

    def _diverged(self, where: str) -> ValueError:
        return ValueError(f"{type(self).__name__} training diverged {where}: the parameters became non-finite or degenerate; "
                          f"lower learning_rate (got {self.learning_rate!r}){self._divergence_hint}.")

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None) -> "BoltzmannMachine":
        """Train from scratch for ``n_iter`` epochs over X (``N x D``, dense or sparse); returns self.

        A ``batch_size`` above the number of rows trains on all rows at once, as
        scikit-learn's ``BernoulliRBM`` does. Raises ValueError naming ``learning_rate`` if the
        parameters become non-finite (the rate is too large for the data).
        """
        X = self._validate(X, reset=True)
        with self._threads():
            self._initialise(X)
            data = self._training_data(X)
            for epoch in range(int(self.n_iter)):
                self._use_rate(self._epoch_rate(epoch))
                with self._divergence_check(f"in epoch {epoch + 1}"):
                    self._epoch(data, epoch)
        return self

    def _epoch_rate(self, epoch: int) -> float:
        """The learning rate of epoch ``epoch`` (from 0) of :meth:`fit` under ``learning_rate_schedule``."""
        rate = float(self.learning_rate)
        if self.learning_rate_schedule == "linear":
            rate *= 1.0 - epoch / int(self.n_iter)
        return rate

    def _use_rate(self, rate: float) -> None:
        """Train at ``rate`` from now on: the fused kernels read ``_rate``, the autograd loop its optimizer."""
        self._rate = rate
        for group in self._opt.param_groups:
            group["lr"] = rate

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None) -> "BoltzmannMachine":
        """One update on the mini-batch X (initialises the model on the first call)."""
        first = not self.__sklearn_is_fitted__()
        X = self._validate(X, reset=first)
        with self._threads():
            if first:
                self._initialise(X)
            self._use_rate(float(self.learning_rate))
            data = self._training_data(X)
            with self._divergence_check("in partial_fit"):
                self._update_rows(data, np.arange(X.shape[0]))
        return self

    # ------------------------------------------------------------------ training internals
    def _training_data(self, X):
        """What the epoch loop indexes: a dense tensor on the device (sparse X stays sparse)."""
        return X if sp.issparse(X) else torch.tensor(X, dtype=self._tdtype, device=self.device)

    def _batch(self, data, rows: np.ndarray) -> torch.Tensor:
        if sp.issparse(data):
            return torch.tensor(data[rows].toarray(), dtype=self._tdtype, device=self.device)
        return data.index_select(0, torch.as_tensor(rows, device=data.device))

    def _update_rows(self, data, rows: np.ndarray) -> None:
        self._update(self._prepare_visible(self._batch(data, rows)))

    def _start_training(self, n_chains: int) -> None:
        weights = [p for name, p in self.params_.items() if name in self._decayed and p.requires_grad]
        others = [p for name, p in self.params_.items() if name not in self._decayed and p.requires_grad]
        groups = [{"params": weights, "weight_decay": float(self.weight_decay)},
                  {"params": others, "weight_decay": 0.0}]
        if self.optimizer == "adam":
            self._opt = torch.optim.Adam(groups, lr=float(self.learning_rate))
        else:
            self._opt = torch.optim.SGD(groups, lr=float(self.learning_rate), momentum=float(self.momentum))
        self._rate = float(self.learning_rate)
        self._h_chain = torch.zeros(n_chains, self.n_components, dtype=self._tdtype, device=self.device)
        self._replicas = None

    _decayed: tuple[str, ...] = ("W",)

    def _epoch(self, data, epoch: int) -> None:
        n = data.shape[0]
        size = min(int(self.batch_size), n)
        order = self._rng.permutation(n) if self.shuffle else np.arange(n)
        starts = range(0, n, size)
        bar = _bar(len(starts), self.progress, f"epoch {epoch + 1}")
        for s in starts:
            self._update_rows(data, order[s:s + size])
            bar.update(1)
        bar.close()
        self._report(data, epoch)

    def _report(self, data, epoch: int) -> None:
        if self.verbose:
            X = data if sp.issparse(data) else data.cpu().numpy()
            print(f"[{type(self).__name__}] Iteration {epoch + 1}, {self._monitor(X)}")

    def _monitor(self, X) -> str:
        return f"reconstruction error = {self.reconstruction_error(X):.5f}"

    def _update(self, v0: torch.Tensor) -> None:
        f_pos, pre0 = self._free_energy_pre(v0)
        with torch.no_grad():
            if self.tempering is not None:
                if getattr(self, "_replicas", None) is None:  # a loaded machine trains on
                    _tempering.start_training(self, int(self._h_chain.shape[0]))
                v_neg = _tempering.negatives(self, int(self.k))
            else:
                h_start = self._h_chain if self.persistent else self._sample_hidden(pre0)
                v_neg, _ = self._chain(h_start, int(self.k))
            v_neg = self._prepare_sample(v_neg)
        f_neg, pre_neg = self._free_energy_pre(v_neg)
        loss = f_pos.mean() - f_neg.mean()
        self._opt.zero_grad(set_to_none=True)
        loss.backward()
        self._opt.step()
        if self.persistent and self.tempering is None:  # tempered chains live in the replicas
            with torch.no_grad():
                self._h_chain = self._sample_hidden(pre_neg.detach())

    # ------------------------------------------------------------------ save / load
    def _config(self) -> dict[str, Any]:
        cfg = {name: getattr(self, name) for name in self._get_param_names()}
        cfg["dtype"] = str(self._tdtype).replace("torch.", "")
        cfg["device"] = str(self.device)
        if cfg.get("tempering") is not None and not isinstance(cfg["tempering"], (str, Integral)):
            cfg["tempering"] = [float(b) for b in np.asarray(cfg["tempering"]).ravel()]  # a ladder, as JSON
        return cfg

    _file_kind = "rbm"

    def save(self, path: str | os.PathLike) -> None:
        """Write the parameters and settings to ``path`` in fastseq's file format (safetensors
        with a JSON header, written atomically, never pickle; see :func:`fastseq.save`)."""
        check_is_fitted(self)
        files.write(path, "rbm", self._file_header(), self.params_)

    def _file_header(self) -> dict[str, Any]:
        """What a file needs besides the parameters to rebuild this fitted machine (see :func:`_machine_from`)."""
        return {"class": type(self).__name__, "config": self._config(), "n_features_in": self.n_features_in_,
                "n_chains": int(self._h_chain.shape[0])}

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device | None = None) -> "BoltzmannMachine":
        """Read a model written by :meth:`save` (or by an earlier fastseq); it must be a ``cls``."""
        model = load_rbm(path, device=device)
        if not isinstance(model, cls):
            raise TypeError(f"Expected a saved {cls.__name__}, got a saved {type(model).__name__} in {os.fspath(path)!r}.")
        return model


def load_rbm(path: str | os.PathLike, device: str | torch.device | None = None) -> BoltzmannMachine:
    """Load any fastseq Boltzmann machine saved with ``save``: :func:`fastseq.load` for
    Boltzmann machine files only. No code in the file is run.

    Also reads the ``.npz`` files of earlier fastseq versions (format ``fastseq-rbm-1``).

    Args:
        path: the file.
        device: where the machine trains and samples (its ``device`` parameter); None keeps
            the saved one.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not a Boltzmann machine saved by fastseq (corrupt, truncated,
            another kind, or written by a newer fastseq).

    Example:
        >>> import os, tempfile
        >>> import numpy as np
        >>> from fastseq.boltzmann import RBM
        >>> X = (np.random.default_rng(0).random((20, 5)) < 0.5).astype(float)
        >>> path = os.path.join(tempfile.mkdtemp(), "rbm.safetensors")
        >>> RBM(n_components=3, n_iter=1, random_state=0).fit(X).save(path)
        >>> load_rbm(path).components_.shape
        (3, 5)
    """
    if device is not None:
        torch_device("device", device)
    header, params = files.read(path, "rbm")
    return _machine_from(header, params, os.fspath(path), device)


def _machine_from(header: dict[str, Any], params: dict[str, torch.Tensor], path: str,
                  device: str | torch.device | None = None, kind: str = "rbm") -> BoltzmannMachine:
    """A fitted machine from what :meth:`BoltzmannMachine._file_header` wrote and its parameters;
    ``path`` and ``kind`` name the file in errors."""
    classes = BoltzmannMachine._registry
    klass = classes.get(header.get("class"))
    if klass is None:
        raise files.FileError(f"Expected path {path!r} to hold one of {sorted(classes)}, got class "
                              f"{header.get('class')!r}.")
    with files.building(path, kind):
        cfg = dict(header["config"])
        if device is not None:
            cfg["device"] = device
        model = klass(**cfg)
        model._setup_random()
        n_chains = positive_int("n_chains", header.get("n_chains", cfg.get("n_chains") or cfg.get("batch_size")))
        model.n_features_in_ = positive_int("n_features_in", header["n_features_in"])
        d, h = model.n_features_in_, positive_int("n_components", model.n_components)
        check_fits(f"{klass.__name__} with {n_chains} chains of {h} hidden units", n_chains * h * 8)
        tdtype = model._tdtype  # the header's dtype: a corrupt one is the file's error
    template = model._param_template()
    model.params_ = {}
    for name, requires_grad in template.items():
        if name not in params:
            raise files.FileError(f"Expected parameter {name!r} in {path!r}, got only {sorted(params)}.")
        shape = tuple(params[name].shape)
        if not (shape == (d, h) or shape in ((d,), (h,))):
            raise files.FileError(f"Expected parameter {name!r} in {path!r} to fit {d} visible and {h} hidden "
                                  f"units, got shape {shape}.")
        t = params[name].to(dtype=tdtype, device=model.device)
        model.params_[name] = t.requires_grad_(requires_grad)
    model._start_training(n_chains)
    return model


def _bar(total: int, show: bool, desc: str):
    """A transient progress bar over ``total`` steps (the project's tqdm helper)."""
    return progress_bar(show, total=total, desc=desc, leave=False)


def _array_like(name: str, value, shape: str):
    """A torch tensor as a NumPy array, a list as an array; anything else unchanged (validated next)."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, (list, tuple)):
        try:  # scikit-learn's own message for a ragged list does not say which argument
            return np.asarray(value)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"Expected {name} to be an {shape} array of numbers, got a ragged "
                             f"{type(value).__name__} ({exc}).") from None
    return value


def _store(model: BoltzmannMachine, arguments: dict[str, Any]) -> None:
    """Set each constructor argument as an attribute of the same name, unchanged (scikit-learn's rule)."""
    for name, value in arguments.items():
        if name not in ("self", "__class__"):
            setattr(model, name, value)
