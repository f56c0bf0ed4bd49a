"""Greedy layer-wise training of a :class:`~fastseq.conv.model.ConvAutoencoder` (each layer
an autoencoder of the layer below: L2 cost, Adam), and optional end-to-end fine-tuning."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from fastseq._util.progress import progress_bar
from fastseq._util.validate import positive_int
from fastseq.conv.model import ConvAutoencoder

__all__ = ["LayerReport", "fine_tune", "train_layerwise"]


@dataclass
class LayerReport:
    """What training one layer (or the whole network) did.

    Attributes:
        layer: 1-based layer number (0 for end-to-end fine-tuning).
        error_before: mean squared reconstruction error of the layer's input before training.
        error_after: the same after training.
        epoch_losses: mean training loss of each epoch.
        seconds: training time.
        images_per_second: images through the layer (forward + backward) per second.
    """

    layer: int
    error_before: float
    error_after: float
    epoch_losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    images_per_second: float = 0.0


@torch.no_grad()
def _error(fn, x: torch.Tensor, batch_size: int) -> float:
    total = 0.0
    for lo in range(0, x.shape[0], batch_size):
        xb = x[lo:lo + batch_size]
        total += float(((fn(xb) - xb) ** 2).sum())
    return total / max(1, x.numel())


def _fit(params, fn, x: torch.Tensor, epochs: int, batch_size: int, learning_rate: float,
         gen: torch.Generator, bar_desc: str | None) -> tuple[list[float], float]:
    opt = torch.optim.Adam(params, lr=learning_rate)
    n = x.shape[0]
    losses = []
    bar = progress_bar(bar_desc is not None, total=epochs * ((n + batch_size - 1) // batch_size), desc=bar_desc,
                       leave=False)
    start = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen).to(x.device)
        total = 0.0
        for lo in range(0, n, batch_size):
            xb = x.index_select(0, order[lo:lo + batch_size])
            loss = ((fn(xb) - xb) ** 2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * xb.shape[0]
            bar.update(1)
        losses.append(total / n)
    seconds = time.perf_counter() - start
    bar.close()
    return losses, seconds


def _checked(model: ConvAutoencoder, images, epochs: int, batch_size: int, learning_rate: float) -> torch.Tensor:
    if not isinstance(model, ConvAutoencoder):
        raise TypeError(f"Expected model to be a ConvAutoencoder, got {type(model).__name__}.")
    positive_int("epochs", epochs)
    positive_int("batch_size", batch_size)
    if not 0.0 < float(learning_rate) < float("inf"):
        raise ValueError(f"Expected learning_rate to be a finite number > 0, got {learning_rate!r}.")
    arr = model._images(images)
    if arr.shape[0] < 1:
        raise ValueError(f"Expected images to hold at least one image, got shape {arr.shape}.")
    return torch.tensor(arr, device=model.device)[:, None]  # a copy: the caller's array is never touched


def train_layerwise(model: ConvAutoencoder, images, epochs: int = 20, batch_size: int = 32,
                    learning_rate: float = 1e-3, layers=None, seed: int = 0,
                    progress: bool = False) -> list[LayerReport]:
    """Train each layer in turn as an autoencoder of the layer below (lower layers frozen).

    Layer ``l`` learns to reconstruct the activations ``a_{l-1}`` (``a_0``: the images) from
    its own output, with mean squared error and Adam. The activations of the layer below
    are computed once, batched, before the layer trains.

    Args:
        model: the network, trained in place on its own device.
        images: ``N x S x S`` training faces.
        epochs: passes over the data per layer.
        batch_size: images per Adam step.
        learning_rate: Adam step size.
        layers: 1-based layers to train (default all, bottom up); others are left as they are.
        seed: seed of the mini-batch order.
        progress: a tqdm bar per layer.

    Returns:
        One :class:`LayerReport` per trained layer.

    Example:
        >>> import numpy as np
        >>> from fastseq.conv.model import ConvConfig
        >>> m = ConvAutoencoder(ConvConfig(8, (4, 4), (2, 1)), seed=0)
        >>> x = np.random.default_rng(0).uniform(-0.5, 0.5, (16, 8, 8))
        >>> r = train_layerwise(m, x, epochs=5, batch_size=4)
        >>> [rep.error_after < rep.error_before for rep in r]
        [True, True]
    """
    x0 = _checked(model, images, epochs, batch_size, learning_rate)
    depth = model.config.depth
    todo = list(range(1, depth + 1)) if layers is None else sorted({int(v) for v in layers})
    if any(not 1 <= v <= depth for v in todo):
        raise ValueError(f"Expected layers in 1..{depth}, got {list(layers)}.")
    gen = torch.Generator().manual_seed(int(seed))
    reports = []
    model.train()
    for layer in todo:
        with torch.no_grad():
            x = torch.cat([model.up(x0[lo:lo + 256], layer - 1)[-1] if layer > 1 else x0[lo:lo + 256]
                           for lo in range(0, x0.shape[0], 256)])
        i = layer - 1

        def fn(xb, i=i):
            return model.down_layer(i, model.up_layer(i, xb))

        before = _error(fn, x, 256)
        params = [*model.encoders[i].parameters(), *model.decoders[i].parameters()]
        losses, seconds = _fit(params, fn, x, epochs, batch_size, learning_rate, gen,
                               f"layer {layer}/{depth}" if progress else None)
        reports.append(LayerReport(layer, before, _error(fn, x, 256), losses, seconds,
                                   epochs * x.shape[0] / max(seconds, 1e-9)))
    model.eval()
    return reports


def fine_tune(model: ConvAutoencoder, images, epochs: int = 10, batch_size: int = 32,
              learning_rate: float = 3e-4, seed: int = 0, progress: bool = False) -> LayerReport:
    """Train all layers together to reconstruct the images through the top codes.

    Example:
        >>> import numpy as np
        >>> from fastseq.conv.model import ConvConfig
        >>> m = ConvAutoencoder(ConvConfig(8, (4,), (2,)), seed=0)
        >>> x = np.random.default_rng(0).uniform(-0.5, 0.5, (16, 8, 8))
        >>> r = fine_tune(m, x, epochs=3, batch_size=4)
        >>> r.error_after < r.error_before
        True
    """
    x = _checked(model, images, epochs, batch_size, learning_rate)
    gen = torch.Generator().manual_seed(int(seed))
    model.train()
    before = _error(model, x, 256)
    losses, seconds = _fit(list(model.parameters()), model, x, epochs, batch_size, learning_rate, gen,
                           "fine-tune" if progress else None)
    model.eval()
    return LayerReport(0, before, _error(model, x, 256), losses, seconds, epochs * x.shape[0] / max(seconds, 1e-9))
