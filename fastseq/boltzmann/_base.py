"""Shared machinery of fastseq's Boltzmann machines: parameters, CD/PCD training, sampling,
scikit-learn style API, and pickle-free save/load.

A model subclass defines its parameters and four pieces of math (``_init_params``,
``_free_energy_pre``, ``_sample_hidden``, ``_sample_visible``); everything else (mini-batch
contrastive divergence or persistent CD, optimizers, Gibbs sampling, generation,
reconstruction, saving) lives here. Training minimises ``mean F(v_data) - mean F(v_model)``
with autograd, whose gradient is exactly the CD / PCD statistic, so every model shares one
loop. On the CPU the random draws go through the Numba kernels of
``fastseq.boltzmann._sampling_nb``; on CUDA through PyTorch ops.
"""
from __future__ import annotations

import contextlib
import inspect
import json
import os
import tempfile
from typing import Any, Iterator

import numpy as np
import torch

from fastseq.boltzmann import _sampling_nb as nbs
from fastseq._util.validate import positive_int

__all__ = ["BoltzmannMachine", "load_rbm"]

_FORMAT = "fastseq-rbm-1"


def _check_float(name: str, value, low: float = 0.0, inclusive: bool = True) -> float:
    try:
        val = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"Expected {name} to be a number, got {type(value).__name__} {value!r}.") from None
    ok = val >= low if inclusive else val > low
    if not ok or not np.isfinite(val):
        op = ">=" if inclusive else ">"
        raise ValueError(f"Expected {name} to be a finite number {op} {low}, got {value!r}.")
    return val


class BoltzmannMachine:
    """Base class; use :class:`~fastseq.RBM`, ``RRBM``, ``R3BM``, ``BetaRBM`` or ``GaussianRBM``.

    Args:
        n_components: number of hidden units H.
        learning_rate: step size; with ``optimizer="sgd"`` and no momentum the update equals
            scikit-learn's ``BernoulliRBM`` (mean statistic times the rate).
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
        torch_threads: PyTorch intra-op threads while this model trains or samples on the
            CPU (restored afterwards). The Gibbs chain runs in Numba with its own pools, and
            letting PyTorch's OpenMP pool spin beside them was measured 10-30x slower on
            2 cores, so the default is 1. None leaves PyTorch's setting alone.
        dtype: parameter dtype, ``torch.float32`` or ``torch.float64``.
        verbose: print the pseudo-likelihood or reconstruction error after each epoch.
        progress: show a tqdm progress bar over mini-batches.
        random_state: seed (int) or None.
    """

    _registry: dict[str, type["BoltzmannMachine"]] = {}  # public subclasses by name, for load_rbm

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__name__.startswith("_"):
            BoltzmannMachine._registry[cls.__name__] = cls

    _param_names: tuple[str, ...] = ()
    _extra_args: tuple[str, ...] = ()

    def __init__(self, n_components: int = 256, *, learning_rate: float = 0.1, batch_size: int = 10,
                 n_iter: int = 10, k: int = 1, persistent: bool = True, n_chains: int | None = None,
                 optimizer: str = "sgd", momentum: float = 0.0, weight_decay: float = 0.0,
                 init_scale: float = 0.01, shuffle: bool = True, n_streams: int = 8,
                 device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                 torch_threads: int | None = 1, verbose: int = 0, progress: bool = False, random_state: int | None = None) -> None:
        self.n_components = n_components
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.n_iter = n_iter
        self.k = k
        self.persistent = persistent
        self.n_chains = n_chains
        self.optimizer = optimizer
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.init_scale = init_scale
        self.shuffle = shuffle
        self.n_streams = n_streams
        self.device = device
        self.dtype = dtype
        self.torch_threads = torch_threads
        self.verbose = verbose
        self.progress = progress
        self.random_state = random_state

    # ------------------------------------------------------------------ sklearn plumbing
    @classmethod
    def _get_param_names(cls) -> list[str]:
        names = []
        for klass in cls.__mro__:
            init = klass.__dict__.get("__init__")
            if init is None:
                continue
            for p in inspect.signature(init).parameters.values():
                if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name not in names:
                    names.append(p.name)
        return names

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Constructor arguments, as scikit-learn's ``clone`` expects."""
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params) -> "BoltzmannMachine":
        valid = self._get_param_names()
        for key, value in params.items():
            if key not in valid:
                raise ValueError(f"Expected a parameter of {type(self).__name__} ({', '.join(valid)}), got {key!r}.")
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_components={self.n_components})"

    # ------------------------------------------------------------------ validation
    def _check_settings(self) -> None:
        positive_int("n_components", self.n_components)
        positive_int("batch_size", self.batch_size)
        if isinstance(self.n_iter, bool) or not isinstance(self.n_iter, (int, np.integer)) or self.n_iter < 0:
            raise ValueError(f"Expected n_iter to be an integer >= 0, got {self.n_iter!r}.")
        positive_int("k", self.k)
        positive_int("n_streams", self.n_streams)
        if self.n_chains is not None:
            positive_int("n_chains", self.n_chains)
        if self.torch_threads is not None:
            positive_int("torch_threads", self.torch_threads)
        _check_float("learning_rate", self.learning_rate, 0.0, inclusive=False)
        _check_float("momentum", self.momentum)
        _check_float("weight_decay", self.weight_decay)
        _check_float("init_scale", self.init_scale)
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"Expected optimizer to be 'sgd' or 'adam', got {self.optimizer!r}.")
        if self.dtype not in (torch.float32, torch.float64):
            raise ValueError(f"Expected dtype to be torch.float32 or torch.float64, got {self.dtype!r}.")

    def _check_X(self, X, name: str = "X", fitted: bool = True) -> torch.Tensor:
        """Validate X and return a fresh tensor on the model's device (the caller's array is never shared)."""
        if isinstance(X, torch.Tensor):
            arr = X.detach().to("cpu", dtype=torch.float64).numpy()
        else:
            arr = np.asarray(X)
        if arr.ndim != 2:
            raise ValueError(f"Expected {name} to be 2-D (n_samples x n_features), got shape {arr.shape}.")
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise TypeError(f"Expected {name} to hold numbers, got dtype {arr.dtype}.")
        if arr.shape[1] == 0:
            raise ValueError(f"Expected {name} to have at least one feature, got shape {arr.shape}.")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"Expected {name} to hold finite values, got NaN or inf.")
        if fitted:
            self._check_fitted()
            if arr.shape[1] != self.n_features_in_:
                raise ValueError(f"Expected {name} to have {self.n_features_in_} features, got {arr.shape[1]}.")
        self._check_range(name, arr)
        return torch.tensor(arr, dtype=self.dtype, device=self.device)

    def _check_range(self, name: str, arr: np.ndarray) -> None:
        if arr.size and (arr.min() < 0 or arr.max() > 1):
            raise ValueError(f"Expected {name} to hold values in [0, 1], got values in [{arr.min()}, {arr.max()}].")

    def _check_fitted(self) -> None:
        if not getattr(self, "params_", None):
            raise RuntimeError(f"This {type(self).__name__} is not fitted yet; call fit or partial_fit first.")

    # ------------------------------------------------------------------ randomness
    def _setup_random(self) -> None:
        ss = np.random.SeedSequence(self.random_state)
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
        # As in the CPU kernel: log-space gammas with the boost Gamma(a) = Gamma(a + 1) U^(1/a),
        # so tiny shapes land on 0 or 1 in the right proportions (torch's own Beta gives
        # NaN or biased values there). torch's Gamma sampler takes no generator: it uses
        # the global CUDA stream (seed it with torch.manual_seed).
        return torch.sigmoid(self._log_gamma(a) - self._log_gamma(b))

    def _log_gamma(self, a: torch.Tensor) -> torch.Tensor:
        u = torch.rand(a.shape, generator=self._tgen, device=a.device, dtype=a.dtype).clamp_min(torch.finfo(a.dtype).tiny)
        return torch.log(torch._standard_gamma(a + 1)) + torch.log(u) / a

    # ------------------------------------------------------------------ model hooks
    def _init_params(self, X: torch.Tensor) -> dict[str, torch.Tensor]:
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

    def _prepare_visible(self, v: torch.Tensor) -> torch.Tensor:
        """Map visible values into the model's support (BetaRBM clamps away from 0 and 1)."""
        return v

    def _random_visible(self, n: int) -> torch.Tensor:
        return torch.rand(n, self.n_features_in_, generator=self._tgen, device=self.device, dtype=self.dtype)

    def _chain(self, h: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """k Gibbs steps from hidden state h; returns ``(v_k, h_{k-1})``."""
        v = h
        for step in range(k):
            v = self._sample_visible(h)
            if step + 1 < k:
                h = self._sample_hidden(self._free_energy_pre(v)[1])
        return v, h

    # ------------------------------------------------------------------ public API
    @property
    def parameters(self) -> dict[str, torch.Tensor]:
        """The model's torch parameters by name (live tensors; a copy is ``{k: v.clone()}``)."""
        self._check_fitted()
        return self.params_

    def free_energy(self, X) -> np.ndarray:
        """Free energy ``F(v) = -log sum_h exp(-E(v, h))`` of each row of X (``N x D``) -> ``(N,)``."""
        v = self._prepare_visible(self._check_X(X))
        with torch.no_grad():
            return self._free_energy_pre(v)[0].double().cpu().numpy()

    def transform(self, X) -> np.ndarray:
        """Hidden unit means ``E[h | v]`` of each row, ``N x H`` (scikit-learn's transform)."""
        v = self._prepare_visible(self._check_X(X))
        with torch.no_grad():
            return self._hidden_mean(self._free_energy_pre(v)[1]).cpu().numpy()

    def gibbs(self, v) -> np.ndarray:
        """One Gibbs step v -> h -> v', returning the visible sample ``N x D``."""
        vt = self._prepare_visible(self._check_X(v, "v"))
        with torch.no_grad():
            h = self._sample_hidden(self._free_energy_pre(vt)[1])
            return self._sample_visible(h).cpu().numpy()

    def reconstruct(self, X) -> np.ndarray:
        """Mean-field reconstruction ``E[v | E[h | v]]`` of each row, ``N x D``."""
        v = self._prepare_visible(self._check_X(X))
        with torch.no_grad():
            return self._visible_mean(self._hidden_mean(self._free_energy_pre(v)[1])).cpu().numpy()

    def reconstruction_error(self, X) -> float:
        """Mean squared difference between X and :meth:`reconstruct` (X)."""
        arr = np.asarray(X, dtype=np.float64)
        return float(np.mean((self.reconstruct(X) - arr) ** 2))

    def sample(self, n_samples: int = 16, n_steps: int = 1000, start=None, return_means: bool = True,
               progress: bool | None = None) -> np.ndarray:
        """Generate ``n_samples x D`` visible vectors by ``n_steps`` of Gibbs sampling.

        Chains start from uniform random visible vectors (or from ``start``, ``N x D``).
        With ``return_means`` the last step returns ``E[v | h]`` (smooth pictures) instead
        of a sample.
        """
        self._check_fitted()
        n_steps = positive_int("n_steps", n_steps)
        if start is None:
            v = self._random_visible(positive_int("n_samples", n_samples))
        else:
            v = self._check_X(start, "start")
        v = self._prepare_visible(v)
        show = self.progress if progress is None else progress
        with torch.no_grad(), self._threads():
            h = self._sample_hidden(self._free_energy_pre(v)[1])
            block = 50
            done = 0
            bar = _bar(n_steps - 1, show, "gibbs")
            while done < n_steps - 1:
                step = min(block, n_steps - 1 - done)
                v, h = self._chain(h, step)
                v = self._prepare_visible(v)
                h = self._sample_hidden(self._free_energy_pre(v)[1])
                done += step
                bar.update(step)
            bar.close()
            out = self._visible_mean(h) if return_means else self._sample_visible(h)
        return out.cpu().numpy()

    def _initialise(self, X) -> torch.Tensor:
        """Check settings and data, seed the random streams, make fresh parameters."""
        self._check_settings()
        v = self._check_X(X, fitted=False)
        self._setup_random()
        self.n_features_in_ = int(v.shape[1])
        self.params_ = self._init_params(v)
        self._start_training()
        return v

    def fit(self, X, y=None) -> "BoltzmannMachine":
        """Train from scratch for ``n_iter`` epochs over X (``N x D``); returns self."""
        v = self._initialise(X)
        with self._threads():
            for epoch in range(int(self.n_iter)):
                self._epoch(v, epoch)
        return self

    def partial_fit(self, X, y=None) -> "BoltzmannMachine":
        """One update on the mini-batch X (initialises the model on the first call)."""
        if not getattr(self, "params_", None):
            v = self._initialise(X)
        else:
            v = self._check_X(X)
        with self._threads():
            self._update(self._prepare_visible(v))
        return self

    # ------------------------------------------------------------------ training internals
    def _start_training(self) -> None:
        weights = [p for name, p in self.params_.items() if name in self._decayed and p.requires_grad]
        others = [p for name, p in self.params_.items() if name not in self._decayed and p.requires_grad]
        groups = [{"params": weights, "weight_decay": float(self.weight_decay)},
                  {"params": others, "weight_decay": 0.0}]
        if self.optimizer == "adam":
            self._opt = torch.optim.Adam(groups, lr=float(self.learning_rate))
        else:
            self._opt = torch.optim.SGD(groups, lr=float(self.learning_rate), momentum=float(self.momentum))
        n_chains = self.n_chains or self.batch_size
        self.h_samples_ = torch.zeros(n_chains, self.n_components, dtype=self.dtype, device=self.device)

    _decayed: tuple[str, ...] = ("W",)

    def _epoch(self, v: torch.Tensor, epoch: int) -> None:
        n = v.shape[0]
        order = self._rng.permutation(n) if self.shuffle else np.arange(n)
        starts = range(0, n, int(self.batch_size))
        bar = _bar(len(starts), self.progress, f"epoch {epoch + 1}")
        for s in starts:
            idx = torch.as_tensor(order[s:s + int(self.batch_size)], device=v.device)
            self._update(self._prepare_visible(v.index_select(0, idx)))
            bar.update(1)
        bar.close()
        if self.verbose:
            print(f"[{type(self).__name__}] Iteration {epoch + 1}, {self._monitor(v)}")

    def _monitor(self, v: torch.Tensor) -> str:
        return f"reconstruction error = {self.reconstruction_error(v.cpu().numpy()):.5f}"

    def _update(self, v0: torch.Tensor) -> None:
        f_pos, pre0 = self._free_energy_pre(v0)
        with torch.no_grad():
            h_start = self.h_samples_ if self.persistent else self._sample_hidden(pre0)
            v_neg, _ = self._chain(h_start, int(self.k))
            v_neg = self._prepare_visible(v_neg)
        f_neg, pre_neg = self._free_energy_pre(v_neg)
        loss = f_pos.mean() - f_neg.mean()
        self._opt.zero_grad(set_to_none=True)
        loss.backward()
        self._opt.step()
        if self.persistent:
            with torch.no_grad():
                self.h_samples_ = self._sample_hidden(pre_neg.detach())

    # ------------------------------------------------------------------ save / load
    def _config(self) -> dict[str, Any]:
        cfg = {name: getattr(self, name) for name in self._get_param_names()}
        cfg["dtype"] = str(self.dtype).replace("torch.", "")
        cfg["device"] = str(self.device)
        return cfg

    def save(self, path: str | os.PathLike) -> None:
        """Write the parameters and settings to an ``.npz`` file (atomic; no pickle)."""
        self._check_fitted()
        path = os.fspath(path)
        arrays = {f"param/{k}": v.detach().cpu().numpy() for k, v in self.params_.items()}
        meta = {"format": _FORMAT, "class": type(self).__name__, "config": self._config(),
                "n_features_in": self.n_features_in_}
        arrays["meta"] = np.array(json.dumps(meta))
        folder = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".npz.tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, **arrays)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device | None = None) -> "BoltzmannMachine":
        """Read a model written by :meth:`save` (``allow_pickle=False``)."""
        model = load_rbm(path, device=device)
        if not isinstance(model, cls):
            raise TypeError(f"Expected a saved {cls.__name__}, got a saved {type(model).__name__} in {os.fspath(path)!r}.")
        return model


def load_rbm(path: str | os.PathLike, device: str | torch.device | None = None) -> BoltzmannMachine:
    """Load any fastseq Boltzmann machine saved with ``save`` (no code is executed)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"Expected a saved model at {path!r}, got no such file.")
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            params = {k[len("param/"):]: data[k] for k in data.files if k.startswith("param/")}
    except (ValueError, KeyError, OSError) as exc:
        raise ValueError(f"Expected a fastseq model file at {path!r}, got an unreadable file ({exc}).") from None
    if meta.get("format") != _FORMAT:
        raise ValueError(f"Expected format {_FORMAT!r} in {path!r}, got {meta.get('format')!r}.")
    classes = BoltzmannMachine._registry
    klass = classes.get(meta.get("class"))
    if klass is None:
        raise ValueError(f"Expected one of {sorted(classes)} in {path!r}, got class {meta.get('class')!r}.")
    cfg = dict(meta["config"])
    cfg["dtype"] = getattr(torch, cfg["dtype"])
    if device is not None:
        cfg["device"] = device
    model = klass(**cfg)
    model._setup_random()
    model.n_features_in_ = int(meta["n_features_in"])
    template = model._param_template()
    model.params_ = {}
    for name, requires_grad in template.items():
        if name not in params:
            raise ValueError(f"Expected parameter {name!r} in {path!r}, got only {sorted(params)}.")
        t = torch.tensor(params[name], dtype=model.dtype, device=model.device)
        model.params_[name] = t.requires_grad_(requires_grad)
    model._start_training()
    return model


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _bar(total: int, show: bool, desc: str):
    if not show:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, leave=False)
