"""What each hidden unit of a row model responds to, and what it expects next.

For every unit: many ``L``-row windows are read by the network (one batch), each
weighted by that unit's response after the last row (the pre-sigmoid activation for the
RNNs), floored at 0. The weighted average of the windows is what the unit likes to
see; the network then runs on for ``L`` rows from each window's state, feeding back its
own predictions, and the same weighted average of those rows is what it expects next.
"""
from __future__ import annotations

import numpy as np
import torch

from fastseq._util.progress import progress_bar
from fastseq._util.memory import check_fits
from fastseq._util.validate import float32_array, instance_of, positive_int, real_array, seed_arg
from fastseq.rowrnn.models import RowRNN

__all__ = ["sample_windows", "unit_responses", "hidden_unit_pictures"]


def sample_windows(images: np.ndarray, window: int = 10, count: int = 5000, seed: int | None = 0) -> np.ndarray:
    """Draw ``count`` windows of ``window`` consecutive rows from random images.

    Args:
        images: ``N x T x F``.
        window: rows per window ``L``, ``1 <= L <= T``.
        count: windows drawn (with replacement).
        seed: seed of the draw.

    Returns:
        ``count x L x F`` float32 array (a new array; ``images`` is not changed).

    Example:
        >>> sample_windows(np.zeros((3, 28, 28)), window=10, count=4).shape
        (4, 10, 28)
    """
    images = float32_array("images", images)
    if images.ndim != 3 or images.shape[0] == 0:
        raise ValueError(f"Expected images of shape N x T x F with N >= 1, got {images.shape}.")
    window, count = positive_int("window", window), positive_int("count", count)
    seed = seed_arg("seed", seed)
    check_fits(f"count={count} windows of {window} rows", 4.0 * count * (window * images.shape[2] + 2))
    n, t, _ = images.shape
    if window > t:
        raise ValueError(f"Expected window <= {t} (the rows per image of images), got {window}.")
    rng = np.random.default_rng(seed)
    which = rng.integers(0, n, size=count)
    start = rng.integers(0, t - window + 1, size=count)
    return images[which[:, None], start[:, None] + np.arange(window)]


@torch.no_grad()
def unit_responses(model: RowRNN, windows: np.ndarray, batch_size: int = 4096,
                   progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Weighted averages of windows and of the network's continuations, per hidden unit.

    Args:
        model: a row model (see :mod:`fastseq.rowrnn.models`).
        windows: ``S x L x F`` windows (from :func:`sample_windows`).
        batch_size: windows run through the network together.
        progress: show a progress bar over batches.

    Returns:
        ``(seen, expected)``, each ``H x L x F`` float32: per unit, the average of the
        windows and of the ``L`` rows the network predicts after them, both weighted
        by ``max(response, 0)`` after the window's last row. A unit that never responds
        above 0 gets zeros.

    Example:
        >>> from fastseq.rowrnn.models import TiedRNN
        >>> seen, expected = unit_responses(TiedRNN(28, 5), np.random.rand(50, 10, 28))
        >>> seen.shape, expected.shape
        ((5, 10, 28), (5, 10, 28))
    """
    instance_of("model", model, RowRNN, "a row model (RowRNN)")
    w_all = float32_array("windows", windows)
    if w_all.ndim != 3 or w_all.shape[-1] != model.n_visible or w_all.shape[1] == 0:
        raise ValueError(f"Expected windows of shape S x L x {model.n_visible} with L >= 1, got {w_all.shape}.")
    s, length, f = w_all.shape
    p = next(model.parameters())
    h = model.n_hidden
    seen = torch.zeros(h, length * f, dtype=torch.float64)
    expected = torch.zeros(h, length * f, dtype=torch.float64)
    total = torch.zeros(h, dtype=torch.float64)
    starts = range(0, s, positive_int("batch_size", batch_size))
    bar = progress_bar(progress, total=len(starts), desc="hidden units", unit="batch")
    for lo in starts:
        bar.update()
        x = torch.as_tensor(w_all[lo:lo + batch_size]).to(device=p.device, dtype=p.dtype)
        state = model.initial_state(x.shape[0])
        for j in range(length):
            y, state, response = model.advance(x[:, j], state)
        weight = response.clamp(min=0).double()          # b x H
        rolled = []
        for _ in range(length):
            rolled.append(y)
            y, state = model.step(y, state)
        rolled_t = torch.stack(rolled, 1)
        seen += (weight.t() @ x.reshape(x.shape[0], -1).double()).cpu()
        expected += (weight.t() @ rolled_t.reshape(x.shape[0], -1).double()).cpu()
        total += weight.sum(0).cpu()
    bar.close()
    scale = torch.where(total > 0, 1.0 / total.clamp(min=1e-300), torch.zeros_like(total))[:, None]
    shape = (h, length, f)
    return (seen * scale).reshape(shape).float().numpy(), (expected * scale).reshape(shape).float().numpy()


def hidden_unit_pictures(model: RowRNN, images: np.ndarray, window: int = 10, count: int = 5000,
                         seed: int | None = 0, progress: bool = False) -> np.ndarray:
    """One picture per hidden unit: what it responds to above what the network expects next.

    Args:
        model: a row model.
        images: ``N x T x F`` images to draw windows from.
        window: rows ``L`` per window.
        count: windows drawn.
        seed: seed of the draw.
        progress: show a progress bar.

    Returns:
        ``H x 2L x F`` float32: rows ``0..L-1`` the weighted average window, rows
        ``L..2L-1`` the weighted average continuation.

    Example:
        >>> from fastseq.rowrnn.models import TiedRNN
        >>> hidden_unit_pictures(TiedRNN(28, 4), np.random.rand(20, 28, 28), count=30).shape
        (4, 20, 28)
    """
    instance_of("model", model, RowRNN, "a row model (RowRNN)")
    images = real_array("images", images)
    if images.ndim == 3 and images.shape[-1] != model.n_visible:  # sample_windows checks the rest
        raise ValueError(f"Expected images of shape N x T x {model.n_visible} (the model's features per row), "
                         f"got {images.shape}.")
    windows = sample_windows(images, window, count, seed)
    seen, expected = unit_responses(model, windows, progress=progress)
    return np.concatenate([seen, expected], axis=1)
