"""The ways of batching variable-length sequences that bench/bptt/compare_batching.py races.

Every method trains the same model (``nn.GRU`` or ``nn.LSTM`` + a linear head, MSE loss, SGD,
gradient clipping 1.0) with truncated BPTT of ``K`` steps, for one epoch, and
returns ``(real_steps, computed_steps)``: real steps are (sequence, position)
pairs of the data, computed steps are the slot-steps the recurrent layer ran
(padding included). The baselines' padded batches are built before the clock
starts (``prepare``), which favours them; fastseq's loading is timed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_sequence

from fastseq.bptt.loader import SlotSwapLoader
from fastseq.bptt.engines import carry_state, masked_mean, run_window

from _original_algorithm import original_train_bptt


class Decoder(nn.Module):
    """The step interface the original algorithm calls: ``(visible, context, hidden) -> (out, hidden)``.

    It ignores ``visible`` so that every method trains exactly the same network.
    """

    def __init__(self, rnn: nn.GRU, head: nn.Linear) -> None:
        super().__init__()
        self.rnn, self.head = rnn, head

    def forward(self, visible, context, hidden):
        out, hidden = self.rnn(context.unsqueeze(0), hidden)
        return self.head(out), hidden


class Model(nn.Module):
    """GRU (or LSTM, or tanh RNN) + linear head, with its step-interface ``decoder`` sharing the same
    weights (GRU and RNN: the original algorithm's state is one tensor)."""

    def __init__(self, features: int, hidden: int, seed: int = 0, cell: str = "gru") -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.rnn = {"gru": nn.GRU, "lstm": nn.LSTM, "rnn": nn.RNN}[cell](features, hidden)
        self.head = nn.Linear(hidden, features)
        self.decoder = Decoder(self.rnn, self.head)
        self.opt = torch.optim.SGD(self.parameters(), lr=0.05)

    def update(self, loss: torch.Tensor) -> None:
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.parameters(), 1.0)
        self.opt.step()


class FeedbackModel(nn.Module):
    """A :class:`~fastseq.bptt.FeedbackGRU` decoder (``concat(visible, context)`` into a GRU, a
    linear readout fed back as the next visible), for the original loop and ``train_bptt``
    to train the same decoder that really feeds its output back (``train_bptt`` fuses its
    windows)."""

    def __init__(self, features: int, hidden: int, seed: int = 0) -> None:
        super().__init__()
        from fastseq.bptt import FeedbackGRU

        torch.manual_seed(seed)
        self.decoder = FeedbackGRU(features, features, hidden)
        self.rnn = self.decoder.rnn
        self.opt = torch.optim.SGD(self.parameters(), lr=0.05)


@dataclass
class Data:
    """N sequences ``T_i x F`` of inputs and targets (float32), as arrays and tensors."""

    name: str
    xs: list
    ys: list
    lengths: np.ndarray = field(init=False)
    tx: list = field(init=False)
    ty: list = field(init=False)

    def __post_init__(self) -> None:
        self.lengths = np.array([len(x) for x in self.xs], dtype=np.int64)
        self.tx = [torch.from_numpy(x) for x in self.xs]
        self.ty = [torch.from_numpy(y) for y in self.ys]

    @property
    def features(self) -> int:
        return self.xs[0].shape[1]


def lognormal_data(n: int, features: int, mean: float = 40.0, sigma: float = 1.0, seed: int = 0,
                   max_length: int = 2000) -> Data:
    rng = np.random.default_rng(seed)
    lengths = np.clip(rng.lognormal(math.log(mean), sigma, size=n).round().astype(int), 1, max_length)
    return _random_rows("lognormal", lengths, features, rng)


def fixed_data(n: int, features: int, length: int = 28, seed: int = 0) -> Data:
    rng = np.random.default_rng(seed)
    return _random_rows(f"fixed{length}", np.full(n, length), features, rng)


def _random_rows(name, lengths, features, rng) -> Data:
    xs = [rng.standard_normal((int(t), features)).astype(np.float32) for t in lengths]
    ys = [rng.standard_normal((int(t), features)).astype(np.float32) for t in lengths]
    return Data(name, xs, ys)


def corpus_data(n: int, features: int, seed: int = 0, max_length: int = 4000) -> Data:
    """Paragraphs of Python's stdlib; inputs embed byte t, targets embed byte t+1."""
    from fastseq.datasets.stdlib import stdlib_paragraphs

    seqs = stdlib_paragraphs(max_sequences=n, min_length=3, max_length=max_length)
    table = np.random.default_rng(seed).standard_normal((256, features)).astype(np.float32)
    return Data("stdlib", [table[s[:-1]] for s in seqs], [table[s[1:]] for s in seqs])


def padding_fraction(real: int, computed: int) -> float | None:
    """Share of computed slot-steps that were padding; None when the method does not say."""
    if computed < 0:
        return None
    return 1.0 - real / computed if computed else 0.0


# ---------------------------------------------------------------- baselines


def _batches(order: np.ndarray, batch: int) -> list[np.ndarray]:
    return [order[i:i + batch] for i in range(0, len(order), batch)]


def random_batches(data: Data, batch: int, rng) -> list[np.ndarray]:
    return _batches(rng.permutation(len(data.xs)), batch)


def bucketed_batches(data: Data, batch: int, rng, megabatch: int = 50) -> list[np.ndarray]:
    """Sort by length within megabatches of ``megabatch`` batches, then shuffle the batches."""
    order = rng.permutation(len(data.xs))
    out = []
    for chunk in _batches(order, batch * megabatch):
        chunk = chunk[np.argsort(-data.lengths[chunk], kind="stable")]
        out.extend(_batches(chunk, batch))
    return [out[i] for i in rng.permutation(len(out))]


def collate(data: Data, batches: list[np.ndarray]) -> list[tuple]:
    """Padded ``T x b x F`` inputs/targets, longest first, and lengths, per batch."""
    out = []
    for ids in batches:
        ids = ids[np.argsort(-data.lengths[ids], kind="stable")]
        x = pad_sequence([data.tx[i] for i in ids])
        y = pad_sequence([data.ty[i] for i in ids])
        out.append((x, y, torch.from_numpy(data.lengths[ids])))
    return out


def train_padded(model: Model, batches: list[tuple], bptt: int) -> tuple[int, int]:
    real = computed = 0
    for x, y, lengths in batches:
        t_max, b = x.shape[:2]
        valid = torch.arange(t_max).unsqueeze(1) < lengths.unsqueeze(0)
        h = None
        for c in range(0, t_max, bptt):
            out, h = model.rnn(x[c:c + bptt], h)
            err = ((model.head(out) - y[c:c + bptt]) ** 2).mean(-1)
            model.update(masked_mean(err, valid[c:c + bptt]))
            h = carry_state(h)
        real += int(lengths.sum())
        computed += t_max * b
    return real, computed


def train_packed(model: Model, batches: list[tuple], bptt: int) -> tuple[int, int]:
    """pack_padded_sequence per window; the batch narrows to the sequences still running."""
    real = 0
    for x, y, lengths in batches:
        h = None
        for c in range(0, x.shape[0], bptt):
            alive = int((lengths > c).sum())
            chunk = (lengths[:alive] - c).clamp(max=bptt)
            px = pack_padded_sequence(x[c:c + bptt, :alive], chunk)
            py = pack_padded_sequence(y[c:c + bptt, :alive], chunk)
            out, h = model.rnn(px, None if h is None else h[:, :alive])
            model.update(((model.head(out.data) - py.data) ** 2).mean())
            h = h.detach()
        real += int(lengths.sum())
    return real, real


def ideal_windows(data: Data, batch: int, bptt: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The same number of real steps laid out as full ``K x B`` windows: no scheduling at all."""
    total = int(data.lengths.sum())
    n_windows = max(1, total // (batch * bptt))
    reps = -(-n_windows * batch * bptt // total)  # tiny data sets repeat to fill one window
    x = torch.from_numpy(np.tile(np.concatenate(data.xs), (reps, 1))[: n_windows * bptt * batch].copy())
    y = torch.from_numpy(np.tile(np.concatenate(data.ys), (reps, 1))[: n_windows * bptt * batch].copy())
    shape = (-1, bptt, batch, data.features)
    return x.reshape(shape), y.reshape(shape)


def train_ideal(model: Model, windows: tuple, bptt: int, engine: str = "module") -> tuple[int, int]:
    x, y = windows
    h = None
    no_reset = torch.zeros(x.shape[1:3], dtype=torch.bool)
    for i in range(x.shape[0]):
        if engine == "module":
            out, h = model.rnn(x[i], h)
        else:
            out, h = run_window(model.rnn, x[i], no_reset, h, engine=engine)
        model.update(((model.head(out) - y[i]) ** 2).mean())
        h = carry_state(h)
    n = x.shape[0] * x.shape[1] * x.shape[2]
    return n, n


def train_ideal_decoder(model: Model, windows: tuple, bptt: int) -> tuple[int, int]:
    """The drop-in's peer: the same step decoder called once per step on fixed-length windows,
    its output fed back as the next visible input (as ``train_bptt`` does), no resets at all."""
    x, y = windows
    b, f = x.shape[2], x.shape[3]
    h = torch.zeros(1, b, model.rnn.hidden_size)
    visible = torch.zeros(1, b, f)
    for i in range(x.shape[0]):
        costs = []
        for t in range(x.shape[1]):
            out, h = model.decoder(visible, x[i, t], h)
            costs.append(((out[0] - y[i, t]) ** 2).mean(-1))
            visible = out
        model.update(torch.stack(costs).mean())
        h, visible = h.detach(), visible.detach()
    n = x.shape[0] * x.shape[1] * x.shape[2]
    return n, n


def train_original(model: Model, data: Data, batch: int, bptt: int, max_windows=None) -> tuple[int, int]:
    f, h = data.features, model.rnn.hidden_size
    mse = lambda p, t: ((p - t) ** 2).mean(-1)  # noqa: E731
    _, steps = original_train_bptt(model.decoder, data.tx, data.ty, torch.zeros(f), torch.zeros(1, h),
                                   model.opt, batch, bptt, cost_fn=mse, max_windows=max_windows)
    return steps, steps


# ---------------------------------------------------------------- fastseq


def fastseq_loader(data: Data, batch: int, bptt: int, seed: int = 0, **kw) -> SlotSwapLoader:
    return SlotSwapLoader(data.xs, data.ys, batch, bptt, shuffle=True, seed=seed, **kw)


def train_fastseq(model: Model, loader: SlotSwapLoader, engine: str) -> tuple[int, int]:
    """Sequence mode: one run_window call per window on the standard nn.GRU."""
    real = computed = 0
    h = None
    for w in loader:
        out, h = run_window(model.rnn, w.inputs, w.reset, h, valid=w.valid, slot_map=w.slot_map,
                            plan=w.plan, engine=engine)
        err = ((model.head(out) - w.targets) ** 2).mean(-1)
        model.update(masked_mean(err, w.valid))
        real += w.real_steps
        if engine == "packed":
            computed += w.real_steps
        elif engine == "dense":
            computed += w.plan.computed
        else:  # fused, steps and segments (what "auto" picks on the CPU) run every slot of the window
            computed += w.schedule.rows.size
    return real, computed


def train_bptt_step_mode(model: Model, data: Data, batch: int, bptt: int) -> tuple[int, int]:
    """fastseq.train_bptt, the drop-in step mode: the decoder called once per step."""
    from fastseq import train_bptt

    mse = lambda p, t: ((p - t) ** 2).mean(-1)  # noqa: E731
    train_bptt(model.decoder, data.xs, data.ys, torch.zeros(data.features), torch.zeros(1, model.rnn.hidden_size),
               model.opt, batch, bptt, cost_fn=mse, shuffle=True, seed=0)
    return int(data.lengths.sum()), -1  # train_bptt does not report the slot-steps it ran


def train_fastseq_steps(model: Model, loader: SlotSwapLoader) -> tuple[int, int]:
    """Step mode: the decoder called once per step, resets applied with torch.where."""
    real = computed = 0
    h = None
    seed = torch.zeros(1, 1, model.rnn.hidden_size)
    for w in loader:
        if h is not None and w.slot_map.shape[0] != h.shape[1]:
            h = h.index_select(1, w.slot_map)
        h = torch.zeros(1, w.inputs.shape[1], model.rnn.hidden_size) if h is None else h
        preds = []
        restart = w.reset.unsqueeze(-1)
        for k in range(w.inputs.shape[0]):
            h = torch.where(restart[k], seed, h)
            out, h = model.decoder(None, w.inputs[k], h)
            preds.append(out[0])
        err = ((torch.stack(preds) - w.targets) ** 2).mean(-1)
        model.update(masked_mean(err, w.valid))
        h = h.detach()
        real += w.real_steps
        computed += w.schedule.rows.size
    return real, computed
