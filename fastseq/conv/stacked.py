"""A code model (a Boltzmann machine, or anything with the same methods) on top of a
convolutional autoencoder's codes: autoencode through both, generate, interpolate.

This module never imports a particular code model: any object with the methods of
:class:`CodeModel` works (``fastseq faces`` joins it to fastseq's Boltzmann machines).
Shapes: ``N`` images of ``S x S``; ``D`` codes per image; ``H`` hidden units of the code model.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import torch

from fastseq._util.validate import finite_float, one_of, positive_int
from fastseq.conv.model import ConvAutoencoder

__all__ = ["CodeModel", "CodeScaler", "StackedModel"]


@runtime_checkable
class CodeModel(Protocol):
    """What :class:`StackedModel` needs of the model of the codes (scikit-learn style).

    ``fit(X)`` trains on ``N x D`` rows; ``transform(X)`` gives hidden means ``N x H``;
    ``inverse_transform(H)`` gives visible means ``N x D`` from hidden values;
    ``gibbs(X)`` one Gibbs step; ``sample(n_samples, n_steps=..., start=...)`` runs
    ``n_samples`` chains from ``start`` (``N x D``) and returns visible means ``N x D``.
    """

    def fit(self, X, y=None): ...

    def transform(self, X) -> np.ndarray: ...

    def inverse_transform(self, H) -> np.ndarray: ...

    def gibbs(self, v) -> np.ndarray: ...

    def sample(self, n_samples: int = ..., n_steps: int = ..., start=None) -> np.ndarray: ...


class CodeScaler:
    """The affine map of codes into the code model's space, kept with the model.

    ``kind="unit"``: each code unit's training range (widened by ``margin`` of it on each
    side) maps onto [0, 1], values outside clipped (for Beta and Bernoulli units).
    ``kind="standard"``: each unit to mean 0 and standard deviation 1 (Gaussian units).

    Example:
        >>> s = CodeScaler("unit", margin=0.0).fit(np.array([[0.0, -1.0], [2.0, 1.0]]))
        >>> s.transform(np.array([[1.0, 0.0]])).tolist(), s.inverse_transform(np.array([[1.0, 1.0]])).tolist()
        ([[0.5, 0.5]], [[2.0, 1.0]])
    """

    def __init__(self, kind: str = "unit", margin: float = 0.05) -> None:
        one_of("kind", kind, ("unit", "standard"))
        if not finite_float("margin", margin, 0.0, 1.0) < 1.0:
            raise ValueError(f"Expected margin to be in [0, 1), got {margin!r}.")
        self.kind, self.margin = kind, float(margin)

    def fit(self, codes) -> "CodeScaler":
        c = np.asarray(codes, dtype=np.float64)
        if c.ndim != 2 or c.shape[0] < 2:
            raise ValueError(f"Expected codes to be N x D with N >= 2, got shape {c.shape}.")
        if self.kind == "unit":
            lo, hi = c.min(0), c.max(0)
            pad = self.margin * (hi - lo)
            self.offset_ = lo - pad
            self.scale_ = np.maximum(hi - lo + 2 * pad, 1e-6)
        else:
            self.offset_ = c.mean(0)
            self.scale_ = np.maximum(c.std(0), 1e-6)
        return self

    def transform(self, codes) -> np.ndarray:
        """Codes ``N x D`` -> the model's space (float64)."""
        out = (np.asarray(codes, dtype=np.float64) - self.offset_) / self.scale_
        return np.clip(out, 0.0, 1.0) if self.kind == "unit" else out

    def inverse_transform(self, values) -> np.ndarray:
        """The model's space -> codes ``N x D`` (float32)."""
        return (np.asarray(values, dtype=np.float64) * self.scale_ + self.offset_).astype(np.float32)

    @property
    def log_det(self) -> float:
        """``sum log(1 / scale)``: add it to a density in the model's space to get the density of the codes."""
        return float(-np.log(self.scale_).sum())

    def random_start(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Chain starts in the model's space: uniform in [0, 1], or standard normal."""
        d = self.offset_.size
        return rng.random((n, d)) if self.kind == "unit" else rng.standard_normal((n, d))


class StackedModel:
    """A code model on the top-layer codes of a convolutional autoencoder.

    Args:
        autoencoder: a trained :class:`~fastseq.conv.model.ConvAutoencoder`.
        machine: a :class:`CodeModel` (e.g. a fastseq Boltzmann machine behind an adapter
            that adds ``inverse_transform``), trained by :meth:`fit`.
        scaling: ``"unit"`` (codes mapped into [0, 1]) or ``"standard"`` (standardised,
            for Gaussian units).
        batch_size: images per batch through the network.

    Example:
        >>> from fastseq.conv.model import ConvConfig
        >>> class Mean:   # the smallest code model: a single "hidden unit", the data mean
        ...     def fit(self, X, y=None): self.m = X.mean(0); return self
        ...     def transform(self, X): return np.zeros((len(X), 1))
        ...     def inverse_transform(self, H): return np.repeat(self.m[None], len(H), 0)
        ...     def gibbs(self, v): return self.inverse_transform(v)
        ...     def sample(self, n_samples=1, n_steps=1, start=None): return self.inverse_transform(np.zeros((n_samples, 1)))
        >>> s = StackedModel(ConvAutoencoder(ConvConfig(8, (2,), (2,))), Mean())
        >>> x = np.random.default_rng(0).uniform(-0.5, 0.5, (6, 8, 8)).astype(np.float32)
        >>> s.fit(x).autoencode(x).shape, s.generate(2, n_steps=3).shape, s.interpolate(x[:2], x[2:4], steps=5).shape
        ((6, 8, 8), (2, 8, 8), (5, 2, 8, 8))
    """

    def __init__(self, autoencoder: ConvAutoencoder, machine: CodeModel, scaling: str = "unit",
                 batch_size: int = 256) -> None:
        if not isinstance(autoencoder, ConvAutoencoder):
            raise TypeError(f"Expected autoencoder to be a ConvAutoencoder, got {type(autoencoder).__name__}.")
        missing = [m for m in ("fit", "transform", "inverse_transform", "gibbs", "sample")
                   if not callable(getattr(machine, m, None))]
        if missing:
            raise TypeError(f"Expected machine to have the methods of CodeModel, got {type(machine).__name__} "
                            f"without {', '.join(missing)}.")
        self.autoencoder, self.machine = autoencoder, machine
        self.scaler = CodeScaler(scaling)
        self.batch_size = positive_int("batch_size", batch_size)

    # ---------------------------------------------------------------- codes
    def codes(self, images) -> np.ndarray:
        """Top-layer codes ``N x D`` of ``N x S x S`` images."""
        return self.autoencoder.encode(images, self.batch_size)

    def visible(self, images) -> np.ndarray:
        """The code model's visible values ``N x D`` for the images (codes mapped by the scaler)."""
        return self.scaler.transform(self.codes(images))

    def fit(self, images=None, codes=None) -> "StackedModel":
        """Fit the scaler and the code model on the codes of ``images`` (or on ``codes``)."""
        if (images is None) == (codes is None):
            raise ValueError("Expected exactly one of images or codes, got "
                             f"{'both' if images is not None else 'neither'}.")
        c = self.codes(images) if images is not None else np.asarray(codes, dtype=np.float32)
        self.scaler.fit(c)
        self.machine.fit(self.scaler.transform(c))
        return self

    def through_machine(self, codes) -> np.ndarray:
        """Codes ``N x D`` up to the machine's hidden means and back down (mean field), ``N x D``."""
        v = self.scaler.transform(codes)
        return self.scaler.inverse_transform(self.machine.inverse_transform(self.machine.transform(v)))

    # ---------------------------------------------------------------- pictures
    @torch.no_grad()
    def autoencode(self, images, mix: float = 1.0, mix_layer: int | None = None) -> np.ndarray:
        """Images up through the network and the code model and back down, ``N x S x S``.

        Args:
            images: ``N x S x S``.
            mix: at ``mix_layer`` the down-pass value is ``mix * down + (1 - mix) * up``:
                1 shows the code model's reconstruction (faces pulled toward a typical face),
                0 the network's own reconstruction below that layer.
            mix_layer: 1-based layer where the two passes mix (default the top layer).
        """
        ae = self.autoencoder
        depth = ae.config.depth
        layer = depth if mix_layer is None else int(mix_layer)
        if not 1 <= layer <= depth:
            raise ValueError(f"Expected mix_layer in 1..{depth}, got {mix_layer!r}.")
        if not 0.0 <= float(mix) <= 1.0:
            raise ValueError(f"Expected mix in [0, 1], got {mix!r}.")
        arr = ae._images(images)
        out = np.empty_like(arr)
        for lo in range(0, arr.shape[0], self.batch_size):
            x = torch.as_tensor(arr[lo:lo + self.batch_size], device=ae.device)[:, None]
            ups = ae.up(x)
            top = ups[-1]
            down = self.through_machine(top.flatten(1).cpu().numpy())
            z = torch.as_tensor(down, device=ae.device).view(top.shape)
            z = ae.down(z, depth, layer)
            z = float(mix) * z + (1.0 - float(mix)) * ups[layer - 1]
            out[lo:lo + x.shape[0]] = ae.down(z, layer)[:, 0].cpu().numpy()
        return out

    def generate_codes(self, n: int = 64, n_steps: int = 1000, seed: int | None = 0) -> np.ndarray:
        """``n`` codes ``N x D`` from ``n`` Gibbs chains of ``n_steps`` steps, run side by side.

        The chains start from ``seed``'s random visible vectors; the Gibbs draws come from
        the code model's own seeded random streams, so a model trained with one seed gives
        the same codes on every run (later calls continue the model's stream).
        """
        n, n_steps = positive_int("n", n), positive_int("n_steps", n_steps)
        start = self.scaler.random_start(n, np.random.default_rng(seed))
        return self.scaler.inverse_transform(self.machine.sample(n, n_steps=n_steps, start=start))

    def generate(self, n: int = 64, n_steps: int = 1000, seed: int | None = 0) -> np.ndarray:
        """``n`` faces ``N x S x S`` generated from scratch (see :meth:`generate_codes`)."""
        return self.autoencoder.decode(self.generate_codes(n, n_steps, seed), self.batch_size)

    def interpolate_codes(self, a, b, steps: int = 8, at: str = "cnn") -> np.ndarray:
        """Codes ``steps x N x D`` on the way from images ``a`` to images ``b`` (both ``N x S x S``).

        ``at="cnn"`` mixes the top-layer codes linearly: the first and last steps are exactly
        the codes of ``a`` and ``b``. ``at="hidden"`` mixes the code model's hidden means
        and maps each mix down to visible means (the end points are then the code model's
        reconstructions of ``a`` and ``b``).
        """
        steps = positive_int("steps", steps)
        if at not in ("cnn", "hidden"):
            raise ValueError(f"Expected at to be 'cnn' or 'hidden', got {at!r}.")
        ca, cb = self.codes(a), self.codes(b)
        if ca.shape != cb.shape:
            raise ValueError(f"Expected a and b to hold as many images, got {ca.shape[0]} and {cb.shape[0]}.")
        t = np.linspace(0.0, 1.0, steps)[:, None, None] if steps > 1 else np.zeros((1, 1, 1))
        if at == "cnn":
            return ((1 - t) * ca[None] + t * cb[None]).astype(np.float32)
        ha, hb = self.machine.transform(self.scaler.transform(ca)), self.machine.transform(self.scaler.transform(cb))
        mixed = ((1 - t) * ha[None] + t * hb[None]).reshape(-1, ha.shape[1])
        v = self.machine.inverse_transform(mixed)
        return self.scaler.inverse_transform(v).reshape(steps, ca.shape[0], -1)

    def interpolate(self, a, b, steps: int = 8, at: str = "cnn") -> np.ndarray:
        """Faces ``steps x N x S x S`` from ``a`` (step 0) to ``b`` (last step), all decoded in one batch."""
        codes = self.interpolate_codes(a, b, steps, at)
        faces = self.autoencoder.decode(codes.reshape(-1, codes.shape[2]), self.batch_size)
        return faces.reshape(codes.shape[0], codes.shape[1], *faces.shape[1:])
