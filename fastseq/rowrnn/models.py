"""Recurrent autoencoders of image rows: read a digit row by row, predict the next row.

The main model is the tied-weight RNN

    h_t = sigmoid(x_t Wxh + h_{t-1} Whh + b),    y_t = sigmoid(h_t Wxh^T + c),

where ``y_t`` predicts row ``t+1``. Untied RNN, GRU and LSTM variants share its
interface: ``step`` for one row, ``forward`` for a whole sequence, ``as_decoder`` for
:func:`fastseq.train_bptt`, and ``advance``, which also returns each unit's response
(the pre-sigmoid activation for the RNNs; what :mod:`fastseq.rowrnn.units` weighs windows by). :func:`complete` continues half-seen digits by feeding predictions back.
Models are saved in fastseq's file format (safetensors with a JSON header: no code runs on
load), atomically.
"""
from __future__ import annotations

import math
import os

import numpy as np
import torch
from torch import nn

from fastseq._util import files
from fastseq._util.memory import check_fits
from fastseq._util.validate import flag, float32_array, instance_of, positive_int, torch_device

__all__ = [
    "RowRNN", "RowDecoder", "TiedRNN", "UntiedRNN", "GRURows", "LSTMRows", "MODEL_KINDS", "make_model",
    "complete", "completion_mse", "baseline_errors", "save_model", "load_model", "as_sequences",
]

State = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


class RowRNN(nn.Module):
    """Base of the row models. Shapes: ``B`` batch, ``F`` pixels per row, ``H`` hidden units.

    Subclasses define :meth:`advance` (and :meth:`initial_state` if the state is not one tensor); states
    are ``B x H`` tensors (a tuple ``(h, c)`` for the LSTM).
    """

    kind = ""

    def __init__(self, n_visible: int, n_hidden: int) -> None:
        super().__init__()
        self.n_visible = positive_int("n_visible", n_visible)
        self.n_hidden = positive_int("n_hidden", n_hidden)
        # the largest kind (LSTM) holds 4 gates of H x (F + H) weights, float32
        check_fits(f"a row model with n_visible={self.n_visible} and n_hidden={self.n_hidden}",
                   16.0 * self.n_hidden * (self.n_visible + self.n_hidden + 2))

    def initial_state(self, batch: int) -> State:
        """The state before the first row: zeros, ``B x H``."""
        p = next(self.parameters())
        return p.new_zeros(batch, self.n_hidden)

    def advance(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State, torch.Tensor]:
        """Read one row ``x`` (``B x F``); return the predicted next row (``B x F``, in (0, 1)),
        the new state, and the ``B x H`` response of each unit (before any squashing)."""
        raise NotImplementedError

    def step(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """Read one row ``x`` (``B x F``); return the predicted next row and the new state."""
        y, state, _ = self.advance(x, state)
        return y, state

    def forward(self, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """Read ``T x B x F`` rows; return ``T x B x F`` next-row predictions and the final state."""
        if x.dim() != 3 or x.shape[-1] != self.n_visible:
            raise ValueError(f"Expected x of shape T x B x {self.n_visible}, got {tuple(x.shape)}.")
        if state is None:
            state = self.initial_state(x.shape[1])
        outputs = []
        for row in x:
            y, state = self.step(row, state)
            outputs.append(y)
        return torch.stack(outputs), state

    _file_kind = "rowrnn"

    def save(self, path: str | os.PathLike) -> None:
        """Write the parameters and architecture in fastseq's file format (safetensors with a
        JSON header, atomically; see :func:`fastseq.save`)."""
        header = {"model": self.kind, "n_visible": self.n_visible, "n_hidden": self.n_hidden}
        files.write(path, "rowrnn", header, self.state_dict())

    def hidden_seed(self) -> State:
        """The trainer's seed state, ``1 x H`` (a tuple for the LSTM)."""
        s = self.initial_state(1)
        return tuple(t.detach() for t in s) if isinstance(s, tuple) else s.detach()

    def as_decoder(self, feedback: bool = False) -> "RowDecoder":
        """This model behind the :func:`fastseq.train_bptt` decoder interface (shares its parameters)."""
        return RowDecoder(self, feedback)


class RowDecoder(nn.Module):
    """A row model as :func:`fastseq.train_bptt`'s ``decoder(visible, context, hidden)``.

    ``hidden`` is ``1 x B x H`` (a tuple for the LSTM); returns ``1 x B x F`` predictions
    of the next row and the new ``1 x B x H`` state.

    Args:
        model: the row model; its parameters are shared, not copied.
        feedback: False: read ``context`` (``B x F``, the true current row) and ignore
            ``visible``. True: read ``visible[0]``, the trainer's previous output fed back,
            or (with probability ``teacher_forcing``) the previous target, i.e. the true
            current row; training on its own predictions teaches the network to continue
            from them, as :func:`complete` asks. After a reset ``visible`` is the
            trainer's ``visible_seed``, which stands for the first row (all zero in MNIST).
    """

    def __init__(self, model: RowRNN, feedback: bool = False) -> None:
        super().__init__()
        self.model = instance_of("model", model, RowRNN, "a row model (RowRNN)")
        self.feedback = flag("feedback", feedback)

    def forward(self, visible: torch.Tensor, context: torch.Tensor, hidden: State) -> tuple[torch.Tensor, State]:
        x = visible[0] if self.feedback else context
        state = tuple(t[0] for t in hidden) if isinstance(hidden, tuple) else hidden[0]
        y, state = self.model.step(x, state)
        out_state = tuple(t.unsqueeze(0) for t in state) if isinstance(state, tuple) else state.unsqueeze(0)
        return y.unsqueeze(0), out_state


class TiedRNN(RowRNN):
    """RNN whose output weights are the transpose of its input weights (one parameter ``Wxh``).

    Args:
        n_visible: pixels per row ``F`` (28 for MNIST).
        n_hidden: hidden units ``H``.

    Example:
        >>> import torch
        >>> m = TiedRNN(28, 16)
        >>> y, h = m(torch.rand(5, 3, 28))
        >>> tuple(y.shape), tuple(h.shape)
        ((5, 3, 28), (3, 16))
    """

    kind = "rnn"

    def __init__(self, n_visible: int = 28, n_hidden: int = 169) -> None:
        super().__init__(n_visible, n_hidden)
        bound = 1.0 / math.sqrt(n_visible)
        self.Wxh = nn.Parameter(torch.empty(n_visible, n_hidden).uniform_(-bound, bound))
        self.Whh = nn.Parameter(torch.randn(n_hidden, n_hidden) / math.sqrt(n_hidden))
        self.b = nn.Parameter(torch.zeros(n_hidden))
        self.c = nn.Parameter(torch.zeros(n_visible))

    def _out_weight(self) -> torch.Tensor:
        return self.Wxh.t()

    def advance(self, x: torch.Tensor, state: torch.Tensor):
        pre = torch.addmm(self.b, x, self.Wxh) + state @ self.Whh
        h = torch.sigmoid(pre)
        return torch.sigmoid(torch.addmm(self.c, h, self._out_weight())), h, pre


class UntiedRNN(TiedRNN):
    """:class:`TiedRNN` with its own output weights ``Why`` (``H x F``)."""

    kind = "rnn_untied"

    def __init__(self, n_visible: int = 28, n_hidden: int = 169) -> None:
        super().__init__(n_visible, n_hidden)
        self.Why = nn.Parameter(self.Wxh.detach().t().clone())

    def _out_weight(self) -> torch.Tensor:
        return self.Why


class GRURows(RowRNN):
    """GRU cell with a sigmoid read-out; ``response`` is the hidden state itself (in (-1, 1))."""

    kind = "gru"

    def __init__(self, n_visible: int = 28, n_hidden: int = 169) -> None:
        super().__init__(n_visible, n_hidden)
        self.cell = nn.GRUCell(n_visible, n_hidden)
        self.out = nn.Linear(n_hidden, n_visible)

    def advance(self, x: torch.Tensor, state: torch.Tensor):
        h = self.cell(x, state)
        return torch.sigmoid(self.out(h)), h, h


class LSTMRows(RowRNN):
    """LSTM cell with a sigmoid read-out; state ``(h, c)``; ``response`` is the new ``h``."""

    kind = "lstm"

    def __init__(self, n_visible: int = 28, n_hidden: int = 169) -> None:
        super().__init__(n_visible, n_hidden)
        self.cell = nn.LSTMCell(n_visible, n_hidden)
        self.out = nn.Linear(n_hidden, n_visible)

    def initial_state(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        z = super().initial_state(batch)
        return z, z.clone()

    def advance(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]):
        h, c = self.cell(x, state)
        return torch.sigmoid(self.out(h)), (h, c), h


MODEL_KINDS: dict[str, type[RowRNN]] = {m.kind: m for m in (TiedRNN, UntiedRNN, GRURows, LSTMRows)}


def make_model(kind: str = "rnn", n_hidden: int = 169, n_visible: int = 28) -> RowRNN:
    """Build a row model by name (any case): ``rnn`` (tied), ``rnn_untied``, ``gru``, ``lstm``.

    Example:
        >>> make_model("GRU", n_hidden=8).kind
        'gru'
    """
    cls = MODEL_KINDS.get(kind.lower()) if isinstance(kind, str) else None
    if cls is None:
        raise ValueError(f"Expected kind to be one of {', '.join(MODEL_KINDS)} (any case), got {kind!r}.")
    return cls(n_visible, n_hidden)


def as_sequences(images: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Cut ``N x T x F`` images into the trainer's contexts (rows ``0..T-2``) and targets (rows ``1..T-1``).

    Example:
        >>> contexts, targets = as_sequences(np.zeros((5, 28, 28)))
        >>> len(contexts), contexts[0].shape, targets[0].shape
        (5, (27, 28), (27, 28))
    """
    images = float32_array("images", images)
    if images.ndim != 3 or images.shape[1] < 2:
        raise ValueError(f"Expected images of shape N x T x F with T >= 2, got {images.shape}.")
    return [im[:-1] for im in images], [im[1:] for im in images]


def _rows_tensor(rows, model: RowRNN) -> torch.Tensor:
    instance_of("model", model, RowRNN, "a row model (RowRNN)")
    rows = float32_array("rows", rows, allow_empty=True)
    x = torch.as_tensor(rows)
    if x.dim() != 3 or x.shape[-1] != model.n_visible:
        raise ValueError(f"Expected rows of shape N x T x {model.n_visible}, got {tuple(x.shape)}.")
    p = next(model.parameters())
    return x.to(device=p.device, dtype=p.dtype)


@torch.no_grad()
def complete(model: RowRNN, rows, k: int = 14, batch_size: int = 1000) -> np.ndarray:
    """Complete sequences from their first ``k`` rows, feeding each prediction back as input.

    Args:
        model: a row model.
        rows: ``N x T x F`` array or tensor; only rows ``0..k-1`` are read.
        k: rows seen, ``1 <= k <= T``.
        batch_size: sequences run together.

    Returns:
        ``N x T x F`` float32 array: rows ``0..k-1`` copied, rows ``k..T-1`` predicted.

    Example:
        >>> import numpy as np
        >>> out = complete(TiedRNN(28, 8), np.zeros((2, 28, 28)), k=14)
        >>> out.shape, float(out[:, :14].max())
        ((2, 28, 28), 0.0)
    """
    x = _rows_tensor(rows, model)
    n, t, _ = x.shape
    k = _seen_rows(k, t)
    batch_size = positive_int("batch_size", batch_size)
    out = x.clone()
    for lo in range(0, n, batch_size):
        chunk = x[lo:lo + batch_size].transpose(0, 1)
        y, state = model(chunk[:k])
        pred = y[-1]
        for j in range(k, t):
            out[lo:lo + batch_size, j] = pred
            if j + 1 < t:
                pred, state = model.step(pred, state)
    return out.cpu().numpy()


def completion_mse(completed: np.ndarray, truth: np.ndarray, k: int = 14) -> float:
    """Mean squared error per pixel of rows ``k..T-1`` (the completed part) of ``N x T x F`` arrays.

    Example:
        >>> completion_mse(np.zeros((1, 4, 2)), np.ones((1, 4, 2)), k=2)
        1.0
    """
    completed, truth = _sequences("completed", completed), _sequences("truth", truth)
    if completed.shape != truth.shape:
        raise ValueError(f"Expected completed and truth of the same shape, got {completed.shape} and {truth.shape}.")
    k = _seen_rows(k, truth.shape[1])
    return float(np.mean((completed[:, k:] - truth[:, k:]) ** 2, dtype=np.float64))


def _sequences(name: str, value) -> np.ndarray:
    """An ``N x T x F`` float32 array with N, T, F >= 1."""
    arr = float32_array(name, value)
    if arr.ndim != 3:
        raise ValueError(f"Expected {name} of shape N x T x F, got {arr.shape}.")
    return arr


def _seen_rows(k, t: int) -> int:
    """``k`` rows seen out of ``t``: an integer in [1, t]."""
    k = positive_int("k", k)
    if k > t:
        raise ValueError(f"Expected k <= {t} (rows per sequence), got {k}.")
    return k


def baseline_errors(train: np.ndarray, test: np.ndarray, k: int = 14) -> dict[str, float]:
    """Completion MSE of two baselines on ``test`` (``N x T x F``).

    ``repeat_last``: every unseen row is a copy of row ``k-1``. ``mean_bottom``: the
    unseen rows are the mean of rows ``k..T-1`` over ``train``.

    Example:
        >>> b = baseline_errors(np.ones((3, 4, 2)), np.ones((2, 4, 2)), k=2)
        >>> b["repeat_last"], b["mean_bottom"]
        (0.0, 0.0)
    """
    train, test = _sequences("train", train), _sequences("test", test)
    if train.shape[1:] != test.shape[1:]:
        raise ValueError(f"Expected train and test sequences of the same T x F, got {train.shape} and {test.shape}.")
    k = _seen_rows(k, test.shape[1])
    repeat = test.copy()
    repeat[:, k:] = test[:, k - 1:k]
    mean = test.copy()
    mean[:, k:] = train[:, k:].mean(axis=0)
    return {"repeat_last": completion_mse(repeat, test, k), "mean_bottom": completion_mse(mean, test, k)}


def save_model(model: RowRNN, path: str | os.PathLike) -> None:
    """Save a row model in fastseq's file format: ``model.save(path)`` (see :func:`fastseq.save`).

    Example:
        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "rnn.safetensors")
        >>> save_model(TiedRNN(28, 8), path)
        >>> m = load_model(path)
        >>> m.kind, m.n_hidden
        ('rnn', 8)
    """
    instance_of("model", model, RowRNN, "a row model (RowRNN)")
    model.save(path)


def load_model(path: str | os.PathLike, device: str | torch.device | None = None) -> RowRNN:
    """Load a row model saved by :meth:`RowRNN.save` or :func:`save_model`: :func:`fastseq.load`
    for row-model files only. No code in the file is run.

    Also reads the safetensors files of earlier fastseq versions.

    Args:
        path: the file.
        device: where the parameters go; None: the CPU.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a fastseq row-model file (unreadable, truncated, another kind, or
            written by a newer fastseq), its tensors do not fit its architecture, or a
            parameter is NaN or infinite.
    """
    device = None if device is None else torch_device("device", device)
    header, tensors = files.read(path, "rowrnn")
    path = os.fspath(path)
    for key, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise files.FileError(f"Expected finite parameters in {path}, got NaN or infinity in {key!r}.")
    with files.building(path, "rowrnn"):
        model = make_model(header["model"], int(header["n_hidden"]), int(header["n_visible"]))
        model.load_state_dict(tensors, strict=True)
    return model if device is None else model.to(device)
