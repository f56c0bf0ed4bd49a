"""Deep belief nets: a stack of Boltzmann machines trained greedily, layer by layer.

A :class:`DeepBeliefNet` holds its layers as a list of unfitted machines (``layers``), the
way a scikit-learn ``Pipeline`` holds its steps: any machine at the bottom (``RBM``,
``GaussianRBM``, ``BetaRBM``, ``RRBM``, ``R3BM``), Bernoulli ``RBM`` s above it.
:meth:`DeepBeliefNet.from_sizes` builds such a list from layer sizes. ``fit`` clones the
machines (the caller's are never touched) and trains each on the hidden means of the one
below; the top machine with the layers under it is the generative model of Hinton, Osindero
& Teh (2006): an RBM prior at the top, directed sigmoid (or Gaussian, or Beta) conditionals
down to the data.
"""
from __future__ import annotations

import json
import os
from numbers import Integral
from typing import Any, Sequence

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin, _fit_context, clone
from sklearn.utils import check_random_state, get_tags
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from fastseq._util import files
from fastseq._util.memory import check_fits
from fastseq._util.validate import bounded_int, one_of, positive_int, seed_arg, torch_device
from fastseq.boltzmann import _deep_tempering, _tempering
from fastseq.boltzmann._base import BoltzmannMachine, _array_like, _bar, _machine_from
from fastseq.boltzmann._beta import BetaRBM
from fastseq.boltzmann._rbm import RBM, GaussianRBM
from fastseq.boltzmann.likelihood import AISResult, _log_z_value, ais_log_partition

__all__ = ["DeepBeliefNet", "load_dbn"]

_BOTTOMS: dict[str, type[BoltzmannMachine]] = {"bernoulli": RBM, "gaussian": GaussianRBM, "beta": BetaRBM}
_MACHINES = "a fastseq Boltzmann machine (RBM, GaussianRBM, BetaRBM, RRBM or R3BM)"


class DeepBeliefNet(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """A deep belief net: Boltzmann machines stacked and trained greedily, a scikit-learn transformer.

    **Layers.** ``layers`` is a list of unfitted machines, bottom first: any fastseq machine
    at the bottom (``RBM`` for binary data, ``GaussianRBM`` for standardised real data,
    ``BetaRBM``, ``RRBM`` or ``R3BM`` for data in [0, 1]) and Bernoulli ``RBM`` s above.
    Each machine keeps its own training settings (``n_components``, ``learning_rate``,
    ``n_iter``, ...). ``fit`` trains clones; the list you pass is stored as it is and never
    changed. ``None`` means ``[RBM(), RBM()]``. For one setting shared by every layer,
    :meth:`from_sizes` builds the list from sizes.

    **Training.** Greedy and layer-wise: the bottom machine fits X, and each machine above
    fits the hidden means ``E[h | v]`` of the one below on the training rows (means, not
    binary samples: the same information with no sampling noise, the choice of Hinton's
    guide to training RBMs). Fitting the layers by hand in that order with the same seeds
    gives the same parameters, bit for bit.

    **Using it.** :meth:`transform` is the top layer's hidden means (features for a
    classifier); :meth:`reconstruct` goes up with means and back down with visible means;
    :meth:`sample` runs Gibbs chains in the top machine and passes their visible values
    down; :meth:`interpolate` decodes a straight line between two inputs' top-layer codes;
    :meth:`log_likelihood_bound` estimates a variational lower bound of ``log p(v)``.
    ``save`` / ``load`` (or :func:`fastseq.save` / :func:`fastseq.load`) write and read the
    whole stack in fastseq's one file format.

    Args:
        layers: unfitted machines, bottom first (see above), or None.
        random_state: None keeps each layer's own ``random_state``; an int or a
            ``RandomState`` gives layer i the i-th integer drawn by
            ``check_random_state(random_state).randint(2**31 - 1)`` instead (as scikit-learn's
            ensembles seed their members), so one seed makes the whole stack reproducible.

    Attributes:
        layers_: the fitted machines, bottom first.
        n_features_in_: number of input features.

    Example:
        >>> import numpy as np
        >>> from fastseq.boltzmann import RBM, DeepBeliefNet
        >>> X = (np.random.default_rng(0).random((60, 12)) < 0.3).astype(np.float32)
        >>> dbn = DeepBeliefNet([RBM(8, n_iter=2), RBM(4, n_iter=2)], random_state=0).fit(X)
        >>> dbn.transform(X).shape, dbn.reconstruct(X[:2]).shape
        ((60, 4), (2, 12))
        >>> dbn.sample(3, n_steps=5).shape, dbn.interpolate(X[0], X[1], n_steps=5).shape
        ((3, 12), (5, 12))
    """

    _parameter_constraints: dict = {"layers": [list, tuple, None], "random_state": ["random_state"]}
    _file_kind = "dbn"

    def __init__(self, layers: Sequence[BoltzmannMachine] | None = None, *, random_state=None) -> None:
        self.layers = layers
        self.random_state = random_state

    @classmethod
    def from_sizes(cls, hidden_layer_sizes: Sequence[int] = (256, 64), *, bottom: str = "bernoulli",
                   bottom_params: dict[str, Any] | None = None, random_state=None,
                   **params: Any) -> "DeepBeliefNet":
        """A net of ``len(hidden_layer_sizes)`` layers with the given hidden sizes, bottom first.

        Args:
            hidden_layer_sizes: hidden units of each layer, bottom first.
            bottom: the bottom machine, ``"bernoulli"`` (``RBM``), ``"gaussian"``
                (``GaussianRBM``) or ``"beta"`` (``BetaRBM``); the layers above are ``RBM`` s.
            bottom_params: settings of the bottom machine alone (``sigma=``, ``eps=``, ...).
            random_state: the net's seed (see the class).
            **params: settings every layer shares (``learning_rate``, ``n_iter``, ``batch_size``, ...).

        Example:
            >>> dbn = DeepBeliefNet.from_sizes((50, 20), bottom="gaussian", n_iter=3, random_state=0)
            >>> [type(m).__name__ for m in dbn.layers], [m.n_components for m in dbn.layers]
            (['GaussianRBM', 'RBM'], [50, 20])
        """
        if isinstance(hidden_layer_sizes, (str, bytes)) or not isinstance(hidden_layer_sizes, Sequence) \
                or not hidden_layer_sizes:
            raise ValueError(f"Expected hidden_layer_sizes to be a non-empty sequence of integers >= 1, "
                             f"got {hidden_layer_sizes!r}.")
        sizes = [positive_int(f"hidden_layer_sizes[{i}]", s) for i, s in enumerate(hidden_layer_sizes)]
        klass = _BOTTOMS[one_of("bottom", bottom, tuple(_BOTTOMS))]
        shared = set(BoltzmannMachine._parameter_constraints) - {"n_components", "random_state"}
        unknown = sorted(set(params) - shared)
        if unknown:
            raise TypeError(f"Expected settings that every machine takes ({', '.join(sorted(shared))}), "
                            f"got {', '.join(unknown)}.")
        if bottom_params is not None and not isinstance(bottom_params, dict):
            raise TypeError(f"Expected bottom_params to be a dict of {klass.__name__} settings or None, "
                            f"got {type(bottom_params).__name__}.")
        layers = [klass(n_components=sizes[0], **{**params, **(bottom_params or {})})]
        layers += [RBM(n_components=s, **params) for s in sizes[1:]]
        return cls(layers, random_state=random_state)

    # ------------------------------------------------------------------ scikit-learn plumbing
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        layers = self.layers if isinstance(self.layers, (list, tuple)) else None
        if layers and isinstance(layers[0], BoltzmannMachine):
            tags.input_tags.positive_only = get_tags(layers[0]).input_tags.positive_only
        return tags

    def __sklearn_is_fitted__(self) -> bool:
        return bool(getattr(self, "layers_", None))

    @property
    def _n_features_out(self) -> int:
        return int(self.layers_[-1].n_components)

    def _checked_layers(self) -> list[BoltzmannMachine]:
        """``layers`` (or the default pair) after checking what each may be."""
        layers = [RBM(), RBM()] if self.layers is None else list(self.layers)
        if not layers:
            raise ValueError(f"Expected layers to be a non-empty list of Boltzmann machines ({_MACHINES} at the "
                             f"bottom, RBMs above), got an empty {type(self.layers).__name__}.")
        for i, layer in enumerate(layers):
            if not isinstance(layer, BoltzmannMachine):
                raise TypeError(f"Expected layers[{i}] to be {_MACHINES}, got {type(layer).__name__} {layer!r}.")
            if i and not isinstance(layer, RBM):
                raise TypeError(f"Expected layers[{i}] to be an RBM (Bernoulli units: it learns from the hidden "
                                f"means of layers[{i - 1}], values in [0, 1]), got {type(layer).__name__}.")
        return layers

    def _fresh_layers(self) -> list[BoltzmannMachine]:
        """Unfitted clones of the layers, seeded from ``random_state`` when it is set."""
        layers = [clone(layer) for layer in self._checked_layers()]
        if self.random_state is not None:
            rng = check_random_state(self.random_state)
            for layer in layers:
                layer.set_params(random_state=int(rng.randint(np.iinfo(np.int32).max)))
        return layers

    def _validate(self, X, *, reset: bool = False):
        """X checked the scikit-learn way (dense float32/float64 or CSR); a fitted net unless ``reset``."""
        if not reset:
            check_is_fitted(self)
        X = validate_data(self, _array_like("X", X, "N x D"), reset=reset, accept_sparse=("csr", "csc"),
                          dtype=(np.float64, np.float32))
        return X.tocsr() if sp.issparse(X) and X.format != "csr" else X

    # ------------------------------------------------------------------ training
    @_fit_context(prefer_skip_nested_validation=False)  # each machine checks its own settings
    def fit(self, X, y=None) -> "DeepBeliefNet":
        """Train the layers greedily on X (``N x D``, dense or sparse), bottom first; returns self."""
        self._fit(X, top=False)
        return self

    @_fit_context(prefer_skip_nested_validation=False)
    def fit_transform(self, X, y=None) -> np.ndarray:
        """``fit(X).transform(X)``, from the means that training computed anyway: ``N x H_top``."""
        return self._fit(X, top=True)

    def _fit(self, X, top: bool):
        layers = self._fresh_layers()
        data = self._validate(X, reset=True)
        for i, layer in enumerate(layers):
            layer.fit(data)
            if top or i + 1 < len(layers):
                data = layer.transform(data)
        self.layers_ = layers
        return data

    # ------------------------------------------------------------------ up and down
    def _up(self, X, n_layers: int | None = None):
        """Hidden means of the first ``n_layers`` layers (all by default) for validated rows of X."""
        data = self._validate(X)
        for layer in self.layers_[:n_layers]:
            data = layer.transform(data)
        return data

    def _down(self, h, layers: Sequence[BoltzmannMachine], means: bool = True) -> np.ndarray:
        """From the hidden values of the last of ``layers`` down to the visible units of the first."""
        for layer in reversed(layers):
            h = layer.visible_mean(h) if means else layer.sample_visible(h)
        return h

    def transform(self, X) -> np.ndarray:
        """Top-layer hidden means ``N x H_top`` of X (``N x D``), in X's float dtype: the features."""
        return self._up(X)

    def reconstruct(self, X) -> np.ndarray:
        """Up with hidden means to the top, down with visible means: ``N x D`` in X's float dtype."""
        check_is_fitted(self)
        return self._down(self._up(X), self.layers_)

    def sample(self, n_samples: int = 16, n_steps: int = 1000, start=None, return_means: bool = True,
               progress: bool | None = None) -> np.ndarray:
        """Generate ``n_samples x D`` inputs: ``n_steps`` of Gibbs sampling in the top machine, then down.

        The top machine's chains start from its random visible vectors, or from the up-pass
        (hidden means) of ``start`` (``N x D`` inputs; then ``n_samples`` is ``N``); see
        :meth:`fastseq.boltzmann.RBM.sample`. Their last visible values go down through the
        layers below: with ``return_means``, the visible means of every layer (smooth
        pictures, no noise added below the top), else a draw at every layer (a sample of the
        net's generative model). The result has the top machine's dtype (or ``start``'s
        float dtype). Advances the machines' random streams.
        """
        check_is_fitted(self)
        top = self.layers_[-1]
        if start is None:  # the way down holds every layer's values for each sample
            n = positive_int("n_samples", n_samples)
            self._check_rows_fit(f"sample(n_samples={n})", n)
        else:
            start = self._up(start, len(self.layers_) - 1)
        v = top.sample(n_samples, n_steps, start=start, return_means=return_means, progress=progress)
        return self._down(v, self.layers_[:-1], means=return_means)

    def sample_bottom_machine(self, n_samples: int = 16, n_steps: int = 1000, start=None, return_means: bool = True,
                              progress: bool | None = None) -> np.ndarray:
        """Samples of the bottom machine's own distribution, its chains helped by the layers above (deep tempering).

        Where :meth:`sample` draws from the net's generative model (the top machine, then
        down), this draws from the bottom machine alone, ``p(v)`` of ``layers_[0]``, as
        ``layers_[0].sample`` does, but every layer runs chains too, and the chains of
        neighbouring layers exchange their shared-space states (layer l's hidden, layer
        l + 1's visible) by a Metropolis test that keeps each layer's distribution exact;
        see :mod:`fastseq.boltzmann._deep_tempering`. The upper layers mix more easily, and
        the exchanges carry what they find down to the bottom chains. The acceptance rates
        of each layer pair are left in ``last_deep_tempering_`` (``swap_rates``, one per pair).

        The bottom machine needs an energy (``RBM``, ``GaussianRBM`` or ``BetaRBM``; not
        ``RRBM`` or ``R3BM``) and the net at least two layers. Chains start from random
        visible vectors (or the rows of ``start``, ``N x D``); the upper chains from draws of
        the codes below. Returns ``n_samples x D`` in the bottom machine's dtype (or
        ``start``'s): ``E[v | h]`` of the last step with ``return_means``, else a draw.
        Advances the machines' random streams.
        """
        check_is_fitted(self)
        n_steps = positive_int("n_steps", n_steps)
        bottom = self.layers_[0]
        if len(self.layers_) < 2:
            raise ValueError("Expected a net of at least two layers for sample_bottom_machine (the layers above "
                             "the bottom are what helps it mix), got one layer; use layers_[0].sample instead.")
        _tempering.path_for(bottom)  # refuses a bottom machine without an energy before any work
        if start is None:
            n = positive_int("n_samples", n_samples)
            self._check_rows_fit(f"sample_bottom_machine(n_samples={n})", n)
        else:
            start = self._validate(start)
            self._check_rows_fit(f"sample_bottom_machine(start of {start.shape[0]} rows)", start.shape[0])
        v, out_dtype = bottom._chain_starts(n_samples, start)
        show = bottom.progress if progress is None else progress
        with torch.no_grad(), bottom._threads():
            bar = _bar(n_steps, show, "deep tempering")
            h, self.last_deep_tempering_ = _deep_tempering.run_deep_tempering(
                self.layers_, bottom._prepare_visible(v), n_steps, np.random.default_rng(bottom._rng.integers(1 << 63)),
                bar)
            bar.close()
            out = bottom._visible_mean(h) if return_means else bottom._sample_visible(h)
        return out.cpu().numpy().astype(out_dtype, copy=False)

    def interpolate(self, a, b, n_steps: int = 8) -> np.ndarray:
        """Decoded inputs along the straight line between the top-layer codes of rows a and b.

        Both rows go up to the top layer's hidden means ``h_a`` and ``h_b``; the codes
        ``(1 - t) h_a + t h_b`` for ``n_steps`` values of t evenly from 0 to 1 come back
        down with visible means. Returns ``n_steps x D``: the first row is
        ``reconstruct(a)``, the last ``reconstruct(b)``.

        Args:
            a, b: one input each, shape ``(D,)`` or ``(1, D)``.
            n_steps: points on the line, ends included (at least 2).
        """
        check_is_fitted(self)
        n_steps = bounded_int("n_steps", n_steps, low=2)
        self._check_rows_fit(f"interpolate(n_steps={n_steps})", n_steps)
        ends = np.concatenate([self._one_row("a", a), self._one_row("b", b)])
        codes = self._up(ends)
        t = np.linspace(0.0, 1.0, n_steps, dtype=codes.dtype)[:, None]
        line = np.clip((1 - t) * codes[0] + t * codes[1], 0, 1)  # a convex combination; clip rounding only
        return self._down(line, self.layers_)

    def _check_rows_fit(self, what: str, rows: int) -> None:
        """``rows`` rows through every layer (each layer's values on the way, in float64 and a copy)."""
        widths = sum(m.n_features_in_ + m.n_components for m in self.layers_)
        check_fits(f"DeepBeliefNet.{what} through layers of {widths} units in all", 16.0 * rows * widths)

    def _one_row(self, name: str, x) -> np.ndarray:
        d = self.n_features_in_
        x = _array_like(name, x, "(D,)")
        shape = np.shape(x) if not sp.issparse(x) else x.shape
        if shape not in ((d,), (1, d)):  # before scikit-learn's checks, whose messages do not name it
            raise ValueError(f"Expected {name} to be one input row of {d} features, shape ({d},) or (1, {d}), "
                             f"got shape {shape}.")
        row = check_array(x, ensure_2d=False, dtype=(np.float64, np.float32), input_name=name)
        return row.reshape(1, d)

    # ------------------------------------------------------------------ likelihood
    def log_likelihood_bound(self, X, *, log_z: float | AISResult | None = None, n_samples: int = 100,
                             n_betas: int = 14500, n_runs: int = 100, random_state: int | None = None) -> np.ndarray:
        """Estimated variational lower bound of ``log p(v)`` under the net's generative model, ``(N,)``.

        The model is the top machine's marginal over its visible units times the directed
        conditionals ``p(h_{l-1} | h_l)`` of the layers below (``h_0 = v``). The
        approximate posterior is the up-pass ``q(h_l | h_{l-1})``, each layer's factorial
        ``sigmoid`` posterior, which gives (Hinton, Osindero & Teh 2006; Salakhutdinov &
        Murray 2008)

        ``log p(v) >= E_q[ sum_l (log p(h_{l-1} | h_l) + H(q(h_l | h_{l-1}))) - F_top(h_{L-1}) ] - log Z_top``

        with ``F_top`` the top machine's free energy and ``log Z_top`` its log partition
        function. The expectation is estimated from ``n_samples`` binary up-passes per row
        (each entropy ``H`` exactly, given the sample below it), so the result is an
        unbiased estimate of the bound when ``log_z`` is exact; with log Z from annealed
        importance sampling it is an estimate (AIS tends to underestimate log Z, which
        errs upward). For one layer it is the log-likelihood ``-F(v) - log Z`` itself.
        Rows are binarised at 0.5 for an ``RBM`` bottom, as :func:`average_log_likelihood` does.

        Args:
            X: ``N x D`` inputs.
            log_z: the top machine's log Z (a number or an AISResult, e.g.
                ``exact_log_partition(dbn.layers_[-1])`` for a small top); None runs
                :func:`ais_log_partition` on it with ``n_betas``, ``n_runs`` and
                ``random_state`` (which advances its random streams).
            n_samples: up-passes averaged per row.
            n_betas, n_runs: the AIS schedule and runs when ``log_z`` is None.
            random_state: seed of the up-pass samples (and of AIS); None draws a fresh one.

        Raises:
            TypeError: a layer without a normalisable energy (``RRBM``, ``R3BM``).
        """
        check_is_fitted(self)
        for i, layer in enumerate(self.layers_):
            if not layer._normalisable_energy:
                raise TypeError(f"Expected every layer to have a normalisable energy (RBM, GaussianRBM, BetaRBM) "
                                f"for a likelihood bound, got layers[{i}] {type(layer).__name__}, whose Beta "
                                "sampler has no matching energy.")
        n_samples = positive_int("n_samples", n_samples)
        seed = seed_arg("random_state", random_state)
        X = self._validate(X)
        top = self.layers_[-1]
        if log_z is None:
            log_z = ais_log_partition(top, n_betas=n_betas, n_runs=n_runs, random_state=seed)
        lz = _log_z_value(log_z)
        rng = np.random.default_rng(seed)
        bottom, below = self.layers_[0], self.layers_[:-1]
        params = [layer._params64() for layer in below]
        out = []
        with torch.no_grad(), bottom._threads():
            for v in bottom._rows(X):
                f, pre = _free_energy64(bottom, v)
                if not below:
                    out.append(-f - lz)
                    continue
                # the parts of log p(v | h1) + H(q(h1 | v)) that do not depend on the sample h1
                fixed = _entropy(pre) - f - F.softplus(pre).sum(1)
                total = torch.zeros_like(f)
                for _ in range(n_samples):
                    h = _draw(pre, rng)
                    term = fixed + (h * pre).sum(1) - bottom._log_sum_visible(params[0], h)
                    for layer, p in zip(below[1:], params[1:]):
                        f_l, pre_l = _free_energy64(layer, h)
                        up = _draw(pre_l, rng)
                        term += _log_conditional(layer, p, f_l, pre_l, up) + _entropy(pre_l)
                        h = up
                    total += term - _free_energy64(top, h)[0]
                out.append(total / n_samples - lz)
        return torch.cat(out).numpy()

    # ------------------------------------------------------------------ save / load
    def _config(self) -> dict[str, Any]:
        layers = None if self.layers is None else [
            {"class": type(m).__name__, "config": m._config()} for m in self._checked_layers()]
        return {"layers": layers, "random_state": self.random_state}

    def save(self, path: str | os.PathLike) -> None:
        """Write the fitted stack to ``path`` in fastseq's file format (safetensors with a JSON
        header, written atomically, never pickle; see :func:`fastseq.save`)."""
        check_is_fitted(self)
        header = {"class": type(self).__name__, "config": self._config(), "n_features_in": int(self.n_features_in_),
                  "layers": [layer._file_header() for layer in self.layers_]}
        try:
            json.dumps(header)
        except TypeError as exc:
            raise TypeError(f"Expected the settings of the net and its layers to be JSON values (random_state an "
                            f"int or None) to save them, got {exc}.") from None
        tensors = {f"layers.{i}.{name}": t for i, layer in enumerate(self.layers_) for name, t in layer.params_.items()}
        files.write(path, "dbn", header, tensors)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device | None = None) -> "DeepBeliefNet":
        """Read a net written by :meth:`save` (as :func:`load_dbn`)."""
        return load_dbn(path, device=device)


def _free_energy64(layer: BoltzmannMachine, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``F(v)`` and the hidden pre-activations of rows v (as the likelihood scores them), float64 on the CPU."""
    v = layer._likelihood_visible(v.to(dtype=layer._tdtype, device=layer.device))
    f, pre = layer._free_energy_pre(v)
    return f.detach().double().cpu(), pre.double().cpu()


def _entropy(pre: torch.Tensor) -> torch.Tensor:
    """Entropy of factorial Bernoulli units with P(1) = sigmoid(pre), per row."""
    q = torch.sigmoid(pre)
    return (q * F.softplus(-pre) + (1 - q) * F.softplus(pre)).sum(1)


def _draw(pre: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Binary float64 draws with P(1) = sigmoid(pre)."""
    return torch.from_numpy((rng.random(tuple(pre.shape)) < torch.sigmoid(pre).numpy()).astype(np.float64))


def _log_conditional(layer: BoltzmannMachine, p: dict[str, torch.Tensor], f: torch.Tensor, pre: torch.Tensor,
                     h: torch.Tensor) -> torch.Tensor:
    """``log p(v | h)`` of a machine whose energy is ``E(v, h) = E0(v) - h . pre(v)``, every fastseq
    machine with an energy: ``-E(v, h) = -F(v) - sum softplus(pre) + h . pre``, less
    ``log sum_v exp(-E(v, h))``; ``f`` and ``pre`` are ``F(v)`` and ``pre(v)``."""
    return -f - F.softplus(pre).sum(1) + (h * pre).sum(1) - layer._log_sum_visible(p, h)


def load_dbn(path: str | os.PathLike, device: str | torch.device | None = None) -> DeepBeliefNet:
    """Load a :class:`DeepBeliefNet` saved with ``save``: :func:`fastseq.load` for such files. No code
    in the file is run.

    Args:
        path: the file.
        device: where every layer trains and samples; None keeps the saved settings.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not a deep belief net saved by fastseq (corrupt, truncated,
            another kind, layers whose sizes do not fit together, or written by a newer fastseq).
    """
    if device is not None:
        torch_device("device", device)
    header, tensors = files.read(path, "dbn")
    path = os.fspath(path)
    with files.building(path, "dbn"):
        if header.get("class") != "DeepBeliefNet":
            raise files.FileError(f"Expected path {path!r} to hold a DeepBeliefNet, got class {header.get('class')!r}.")
        saved = header["layers"]
        if not isinstance(saved, list) or not saved:
            raise files.FileError(f"Expected path {path!r} to hold at least one layer, got {saved!r}.")
        layers = []
        for i, part in enumerate(saved):
            prefix = f"layers.{i}."
            params = {k[len(prefix):]: t for k, t in tensors.items() if k.startswith(prefix)}
            layers.append(_machine_from(part, params, path, device, kind="dbn"))
        n_in = positive_int("n_features_in", header["n_features_in"])
        sizes = [n_in] + [int(m.n_components) for m in layers]
        got = [m.n_features_in_ for m in layers]
        if got != sizes[:-1]:
            raise files.FileError(f"Expected path {path!r} to hold layers whose inputs are {sizes[:-1]} units "
                                  f"(the data, then each layer's hidden units), got {got}.")
        cfg = header["config"]
        originals = None if cfg["layers"] is None else [_unfitted(path, part, device) for part in cfg["layers"]]
        random_state = cfg["random_state"]
        if random_state is not None and (isinstance(random_state, bool) or not isinstance(random_state, Integral)):
            raise files.FileError(f"Expected random_state in {path!r} to be an int or None, got {random_state!r}.")
        model = DeepBeliefNet(originals, random_state=random_state)
        model.n_features_in_ = n_in
        model.layers_ = layers
    return model


def _unfitted(path: str, part: dict[str, Any], device) -> BoltzmannMachine:
    klass = BoltzmannMachine._registry.get(part["class"])
    if klass is None:
        raise files.FileError(f"Expected path {path!r} to hold layers of {sorted(BoltzmannMachine._registry)}, "
                              f"got class {part['class']!r}.")
    cfg = dict(part["config"])
    if device is not None:
        cfg["device"] = device
    return klass(**cfg)
