"""The original algorithm's decoder as a module: a recurrent cell whose outputs feed back.

:class:`FeedbackGRU` and :class:`FeedbackLSTM` read ``concat(visible, context)`` into a
GRU or LSTM and read the hidden state out linearly to ``F`` outputs. Stepped, they are
ordinary decoders for :func:`~fastseq.bptt.train_bptt`. ``train_bptt`` recognises them
(one layer, ``fused`` left True) and runs each ``K``-step window as one autograd node
(:func:`fused_window`): the readout and the feedback (or the teacher-forced target) run
inside the recurrence, resets fold in as each slot's choice of seed or carried state, and
the backward runs through time in one compiled call (:mod:`fastseq.bptt._feedback_nb`;
on CUDA its torch twin :mod:`fastseq.bptt._feedback_py`). The window's weight gradients
are whole-window matrix products. Without teacher forcing (the original's setting) the
readout folds into the hidden product, ``W_iv (W_out h + b_out) = (W_iv W_out) h + W_iv b_out``,
so a step is one product ``(W_hh + W_iv W_out) h`` and the outputs one product after the
recurrence; step 0 (the carried visible) and resets (the visible seed) are corrected by
``W_iv (v - W_out h - b_out)``. Both ways are exact: they equal the module stepped by
``train_bptt`` up to rounding (tests/bptt/test_feedback.py).

Set ``module.fused = False`` to have ``train_bptt`` step the module like any decoder.

Shapes: ``K`` steps, ``W`` slots, ``F`` visible features, ``C`` context features, ``H``
hidden units, ``G`` gates per unit (GRU 3, LSTM 4).
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fastseq._util.blas import serial_blas
from fastseq._util.memory import check_fits
from fastseq._util.validate import nonnegative_int, positive_int
from fastseq.bptt import _feedback_py

__all__ = ["FeedbackGRU", "FeedbackLSTM", "fused_window"]

FOLD = True  # windows without teacher forcing fold the readout into the hidden product (tests switch it)


class _FeedbackDecoder(nn.Module):
    """Shared body of :class:`FeedbackGRU` and :class:`FeedbackLSTM`."""

    _cell: type[nn.RNNBase]

    def __init__(self, features: int, context_features: int, hidden_size: int, num_layers: int = 1) -> None:
        super().__init__()
        self.features = positive_int("features", features)
        self.context_features = nonnegative_int("context_features", context_features)
        self.hidden_size = positive_int("hidden_size", hidden_size)
        self.num_layers = positive_int("num_layers", num_layers)
        gates = 4 if self._cell is nn.LSTM else 3
        inputs = self.features + self.context_features
        # the first layer reads the inputs, the others the layer below (H); then the readout
        weights = gates * self.hidden_size * (inputs + self.hidden_size + 2) \
            + gates * self.hidden_size * (2 * self.hidden_size + 2) * (self.num_layers - 1) \
            + self.features * (self.hidden_size + 1)
        check_fits(f"a {type(self).__name__} with features={self.features}, context_features="
                   f"{self.context_features}, hidden_size={self.hidden_size} and num_layers={self.num_layers}",
                   4.0 * weights)
        self.rnn = self._cell(self.features + self.context_features, self.hidden_size, self.num_layers)
        self.readout = nn.Linear(self.hidden_size, self.features)
        self.fused = True  # train_bptt runs whole windows fused when True (and num_layers == 1)

    def forward(self, visible: Tensor, context: Tensor, hidden):
        """One step: visible ``1 x B x F``, context ``B x C``, hidden ``L x B x H`` (LSTM: a
        tuple ``(h, c)``); returns ``(outputs 1 x B x F, hidden)``."""
        out, hidden = self.rnn(torch.cat([visible, context.unsqueeze(0)], dim=2), hidden)
        return self.readout(out), hidden

    def extra_repr(self) -> str:
        return f"features={self.features}, context_features={self.context_features}, fused={self.fused}"


class FeedbackGRU(_FeedbackDecoder):
    """GRU decoder whose outputs are its next visible input, for :func:`~fastseq.bptt.train_bptt`.

    ``forward(visible, context, hidden)`` with visible ``1 x B x F``, context ``B x C``
    and hidden ``L x B x H`` runs ``nn.GRU`` on ``concat(visible, context)`` and returns
    ``(readout(h), hidden)``, outputs ``1 x B x F``. ``train_bptt`` runs one-layer
    modules a whole window at a time in a fused kernel (set ``fused = False`` to step it).

    Args:
        features: ``F``, the visible inputs and outputs.
        context_features: ``C`` (0: no context).
        hidden_size: ``H``.
        num_layers: ``L`` (only ``L = 1`` runs fused).

    Example:
        >>> import torch
        >>> from fastseq.bptt import FeedbackGRU, train_bptt
        >>> _ = torch.manual_seed(0)
        >>> dec = FeedbackGRU(2, 3, 8)
        >>> out, h = dec(torch.zeros(1, 4, 2), torch.zeros(4, 3), torch.zeros(1, 4, 8))
        >>> tuple(out.shape), tuple(h.shape)
        ((1, 4, 2), (1, 4, 8))
        >>> ctx = [torch.randn(n, 3) for n in (5, 2, 7)]
        >>> tgt = [torch.randn(n, 2) for n in (5, 2, 7)]
        >>> opt = torch.optim.SGD(dec.parameters(), lr=0.1)
        >>> len(train_bptt(dec, ctx, tgt, torch.zeros(2), torch.zeros(1, 8), opt, batch_size=2, bptt=3))
        3
    """

    _cell = nn.GRU


class FeedbackLSTM(_FeedbackDecoder):
    """LSTM decoder whose outputs are its next visible input; as :class:`FeedbackGRU` with
    hidden a tuple ``(h, c)`` of ``L x B x H`` (so ``hidden_seed`` is a tuple of two ``L x H``).

    Example:
        >>> import torch
        >>> from fastseq.bptt import FeedbackLSTM
        >>> dec = FeedbackLSTM(2, 0, 8)
        >>> out, (h, c) = dec(torch.zeros(1, 4, 2), torch.zeros(4, 0), (torch.zeros(1, 4, 8),) * 2)
        >>> tuple(out.shape), tuple(c.shape)
        ((1, 4, 2), (1, 4, 8))
    """

    _cell = nn.LSTM


def _kernels(device: torch.device):
    if device.type == "cpu":
        from fastseq.bptt import _feedback_nb

        return _feedback_nb, lambda t: t.detach().numpy()
    return _feedback_py, lambda t: t


def _sum_products(a: Tensor, b: Tensor) -> Tensor:
    """``sum_k a[k] @ b[k]`` for a ``K x P x W`` and b ``K x W x Q``: a weight gradient over a window.
    Narrow windows gain from one product over ``K * W`` rows (one copy of ``a``), wide ones from
    the batched product (measured, 1 thread: W=64 0.8x the time, W=1024 1.35x)."""
    if a.shape[2] >= 256:
        return torch.bmm(a, b).sum(0)
    return a.permute(1, 0, 2).reshape(a.shape[1], -1).mm(b.reshape(-1, b.shape[2]))


class _FeedbackWindow(torch.autograd.Function):
    """One feedback decoder over one window, in the kernels' layout (see :mod:`fastseq.bptt._feedback_nb`):
    gc ``K x G*H x W`` (``0 x G*H x W`` without context), target ``K x W x F``, v0 ``W x F``,
    h0 and c0 ``H x W``, seeds flat (``F``, ``H``); returns ys ``K x W x F`` and hs
    ``K x H x W`` (LSTM: and the last cell state ``H x W``)."""

    @staticmethod
    def forward(ctx, reset: Tensor, teacher: Tensor, target: Tensor, gc: Tensor, w_iv: Tensor, w_hh: Tensor,
                b_ih: Tensor, b_hh: Tensor, w_out: Tensor, b_out: Tensor, v0: Tensor, h0: Tensor, c0: Tensor | None,
                seed_v: Tensor, seed_h: Tensor, seed_c: Tensor | None):
        kernels, arr = _kernels(target.device)
        k_steps, width, feat = target.shape
        hid = w_hh.shape[1]
        new = lambda *shape: target.new_empty(shape)  # noqa: E731
        w_iv, w_hh, w_out = (t.detach().contiguous() for t in (w_iv, w_hh, w_out))
        ys, vprev = new(k_steps, width, feat), new(k_steps, width, feat)
        hs, hprev = new(k_steps, hid, width), new(k_steps, hid, width)
        plain = lambda t: arr(t.detach().contiguous())  # noqa: E731
        args = [plain(t) for t in (gc, target, teacher, reset)] + [
            arr(w_iv), arr(w_hh), plain(b_ih), plain(b_hh), arr(w_out.t().contiguous()), plain(b_out)]
        lstm = ctx.lstm = c0 is not None
        states = [plain(t) for t in ((v0, h0, c0, seed_v, seed_h, seed_c) if lstm else (v0, h0, seed_v, seed_h))]
        with serial_blas():
            if not lstm:
                gates = new(4, k_steps, hid, width)
                kernels.gru_forward(*args, *states, arr(ys), arr(hs), arr(vprev), arr(hprev),
                                    tuple(arr(g) for g in gates))
                ctx.save_for_backward(reset, teacher, w_iv, w_hh, w_out, hs, vprev, hprev, gates)
                return ys, hs
            cs, cprev, gates = new(k_steps, hid, width), new(k_steps, hid, width), new(5, k_steps, hid, width)
            kernels.lstm_forward(*args, *states, arr(ys), arr(hs), arr(cs), arr(vprev), arr(hprev), arr(cprev),
                                 tuple(arr(g) for g in gates))
            ctx.save_for_backward(reset, teacher, w_iv, w_hh, w_out, hs, vprev, hprev, gates, cprev)
            return ys, hs, cs[-1]

    @staticmethod
    def backward(ctx, dys: Tensor, dhs: Tensor, dc_last: Tensor | None = None):
        if torch.is_grad_enabled():
            raise RuntimeError("The fused feedback window does not support double backward "
                               "(backward with create_graph=True); set the module's fused = False.")
        kernels, arr = _kernels(dys.device)
        reset, teacher, w_iv, w_hh, w_out, hs, vprev, hprev, gates, *rest = ctx.saved_tensors
        k_steps, hid, width = hs.shape
        feat, g = w_out.shape[0], w_hh.shape[0]
        dys, dhs = dys.contiguous(), dhs.contiguous()
        new = lambda *shape: dys.new_empty(shape)  # noqa: E731
        dy, dgi, dv0, dh0 = new(k_steps, width, feat), new(k_steps, g, width), new(width, feat), new(hid, width)
        dseed_v, dseed_h = dys.new_zeros(feat), dys.new_zeros(hid)
        dc0 = dseed_c = None
        head = [arr(dys), arr(dhs)]
        weights = [arr(w_iv), arr(w_hh.t().contiguous()), arr(w_out.t().contiguous())]
        with serial_blas():
            if not ctx.lstm:
                dgh = new(k_steps, g, width)
                kernels.gru_backward(*head, arr(teacher), arr(reset), *weights, arr(hprev),
                                     tuple(arr(q) for q in gates), arr(dy), arr(dgi), arr(dgh), arr(dv0), arr(dh0),
                                     arr(dseed_v), arr(dseed_h))
            else:
                dgh = dgi
                dc0, dseed_c = new(hid, width), dys.new_zeros(hid)
                kernels.lstm_backward(*head, arr(dc_last.contiguous()), arr(teacher), arr(reset), *weights,
                                      arr(rest[0]), tuple(arr(q) for q in gates), arr(dy), arr(dgi), arr(dv0),
                                      arr(dh0), arr(dc0), arr(dseed_v), arr(dseed_h), arr(dseed_c))
        need = ctx.needs_input_grad
        d_w_iv = _sum_products(dgi, vprev) if need[4] else None
        d_w_hh = _sum_products(dgh, hprev.transpose(1, 2)) if need[5] else None
        d_w_out = _sum_products(hs, dy).t() if need[8] else None
        return (None, None, None, dgi if need[3] else None, d_w_iv, d_w_hh,
                dgi.sum((0, 2)) if need[6] else None, dgh.sum((0, 2)) if need[7] else None,
                d_w_out, dy.sum((0, 1)) if need[9] else None,
                dv0 if need[10] else None, dh0 if need[11] else None, dc0 if ctx.lstm and need[12] else None,
                dseed_v if need[13] else None, dseed_h if need[14] else None,
                dseed_c if ctx.lstm and need[15] else None)


class _FoldedWindow(torch.autograd.Function):
    """One feedback decoder over one window without teacher forcing, the readout folded into the
    hidden product (see :mod:`fastseq.bptt._feedback_nb`): gc ``K x R x W`` (``0 x R x W``
    without context; R = 3H for the GRU, 4H for the LSTM), wcat ``4H x H``, bcat ``4H``, corr0
    ``R x W``, corr_reset ``R``, h0 and c0 ``H x W``, seeds ``H``; returns hs ``K x H x W`` (LSTM:
    and the last cell state ``H x W``)."""

    @staticmethod
    def forward(ctx, reset: Tensor, gc: Tensor, wcat: Tensor, bcat: Tensor, corr0: Tensor, corr_reset: Tensor,
                h0: Tensor, c0: Tensor | None, seed_h: Tensor, seed_c: Tensor | None):
        kernels, arr = _kernels(wcat.device)
        k_steps, width = reset.shape
        hid = wcat.shape[1]
        new = lambda *shape: wcat.new_empty(shape)  # noqa: E731
        plain = lambda t: arr(t.detach().contiguous())  # noqa: E731
        wcat = wcat.detach().contiguous()
        hs, hprev = new(k_steps, hid, width), new(k_steps, hid, width)
        args = [plain(gc), plain(reset), arr(wcat), plain(bcat), plain(corr0), plain(corr_reset)]
        lstm = ctx.lstm = c0 is not None
        with serial_blas():
            if not lstm:
                gates = new(4, k_steps, hid, width)
                kernels.gru_folded_forward(*args, plain(h0), plain(seed_h), arr(hs), arr(hprev),
                                           tuple(arr(g) for g in gates))
                ctx.save_for_backward(reset, wcat, hprev, gates)
                return hs
            cs, cprev, gates = new(k_steps, hid, width), new(k_steps, hid, width), new(5, k_steps, hid, width)
            kernels.lstm_folded_forward(*args, plain(h0), plain(c0), plain(seed_h), plain(seed_c), arr(hs), arr(cs),
                                        arr(hprev), arr(cprev), tuple(arr(g) for g in gates))
            ctx.save_for_backward(reset, wcat, hprev, gates, cprev)
            return hs, cs[-1]

    @staticmethod
    def backward(ctx, dhs: Tensor, dc_last: Tensor | None = None):
        if torch.is_grad_enabled():
            raise RuntimeError("The fused feedback window does not support double backward "
                               "(backward with create_graph=True); set the module's fused = False.")
        kernels, arr = _kernels(dhs.device)
        reset, wcat, hprev, gates, *rest = ctx.saved_tensors
        k_steps, hid, width = hprev.shape
        rows = 4 * hid if ctx.lstm else 3 * hid
        dhs = dhs.contiguous()
        new = lambda *shape: dhs.new_empty(shape)  # noqa: E731
        dpre, dh0, dcorr0 = new(k_steps, 4 * hid, width), new(hid, width), new(rows, width)
        dseed_h, dcorr_reset = dhs.new_zeros(hid), dhs.new_zeros(rows)
        dc0 = dseed_c = None
        wcat_t = arr(wcat.t().contiguous())
        with serial_blas():
            if not ctx.lstm:
                kernels.gru_folded_backward(arr(dhs), arr(reset), wcat_t, arr(hprev), tuple(arr(q) for q in gates),
                                            arr(dpre), arr(dh0), arr(dseed_h), arr(dcorr0), arr(dcorr_reset))
            else:
                dc0, dseed_c = new(hid, width), dhs.new_zeros(hid)
                kernels.lstm_folded_backward(arr(dhs), arr(dc_last.contiguous()), arr(reset), wcat_t, arr(rest[0]),
                                             tuple(arr(q) for q in gates), arr(dpre), arr(dh0), arr(dc0),
                                             arr(dseed_h), arr(dseed_c), arr(dcorr0), arr(dcorr_reset))
        need = ctx.needs_input_grad
        return (None, dpre[:, :rows] if need[1] else None,
                _sum_products(dpre, hprev.transpose(1, 2)) if need[2] else None,
                dpre.sum((0, 2)) if need[3] else None, dcorr0 if need[4] else None,
                dcorr_reset if need[5] else None, dh0 if need[6] else None,
                dc0 if ctx.lstm and need[7] else None, dseed_h if need[8] else None,
                dseed_c if ctx.lstm and need[9] else None)


def _fusable(decoder, context: Tensor, seeds) -> bool:
    """Whether ``decoder`` runs fused with these seeds: anything else steps (and any mistake in
    the seeds then fails there, with the stepped path's message)."""
    if not (isinstance(decoder, _FeedbackDecoder) and decoder.fused and decoder.num_layers == 1
            and type(decoder).forward is _FeedbackDecoder.forward
            and not (decoder._forward_hooks or decoder._forward_pre_hooks or nn.modules.module._global_forward_hooks
                     or nn.modules.module._global_forward_pre_hooks)):
        return False
    lstm = isinstance(decoder.rnn, nn.LSTM)
    hid = decoder.hidden_size
    weight = decoder.rnn.weight_ih_l0
    return (seeds.hidden_is_tuple == lstm and len(seeds.hidden) == 1 + lstm and decoder.rnn.bias
            and all(tuple(h.shape) == (1, 1, hid) for h in seeds.hidden)
            and seeds.visible.shape[2] == decoder.features and context.shape[2] == decoder.context_features
            and context.dtype == weight.dtype and context.device == weight.device)


def stacked_cost(cost_fn: Callable, outputs: Tensor, target: Tensor) -> Tensor:
    """The costs of a window's ``K x W x F`` outputs, stacked over steps (``K x W`` or ``K x W x ...``):
    the default ``PairwiseDistance`` in one call over the window, any other ``cost_fn`` per step.
    The steps come from one ``unbind``, whose backward stacks their gradients once; indexing
    ``outputs[k]`` K times would make K window-sized gradients and sum them (O(K^2) traffic:
    a quarter of a fused H=32 B=1024 window)."""
    if type(cost_fn) is nn.PairwiseDistance:
        return cost_fn(outputs, target)
    return torch.stack([cost_fn(o, t) for o, t in zip(outputs.unbind(0), target.unbind(0), strict=True)])


def fused_window(decoder, context: Tensor, target: Tensor, reset: Tensor, teacher: Tensor | None, carried, seeds,
                 cost_fn: Callable) -> tuple[Tensor, tuple[Tensor, ...]] | None:
    """Run a window of a one-layer feedback decoder fused; None if ``decoder`` does not run fused.

    Args:
        decoder: a :class:`FeedbackGRU` or :class:`FeedbackLSTM` (anything else: None).
        context: ``K x W x C``; target: ``K x W x F'`` (``F' = F`` where teacher forcing).
        reset: ``K x W`` bool, slots that start from the seeds at step k.
        teacher: ``K x W`` bool, where the target replaces the output as the next visible
            input (None: nowhere).
        carried, seeds: the trainer's state and seeds (``visible`` ``1 x W x F`` / ``1 x 1 x F``,
            ``hidden`` a tuple of ``1 x W x H`` / ``1 x 1 x H``).
        cost_fn: as :func:`train_bptt`'s.

    Returns:
        ``(costs, final)``: the costs stacked over steps, as the stepped path stacks them,
        and the final ``(visible, *hidden)`` state parts.
    """
    if not _fusable(decoder, context, seeds):
        return None
    if teacher is None and FOLD and _folding_pays(decoder):
        ys, final = _folded_window(decoder, context, reset, carried, seeds)
    else:
        ys, final = _general_window(decoder, context, target, reset, teacher, carried, seeds)
    return stacked_cost(cost_fn, ys, target), final


def _folding_pays(decoder) -> bool:
    """Whether the folded step's product is smaller. Per slot and step the general kernels
    multiply ``G*H x F`` (visible), ``G*H x H`` (hidden) and ``F x H`` (readout); the folded ones
    ``4H x H``: always fewer for the LSTM; for the GRU (whose n gate keeps the input and hidden
    parts apart) only while ``H < 4F`` (measured: H=32, F=32 1.3x faster folded; H=128, F=32 on
    a par, slightly slower)."""
    return isinstance(decoder.rnn, nn.LSTM) or decoder.hidden_size < 4 * decoder.features


def _context_part(decoder, context: Tensor) -> Tensor:
    """``W_ic ctx`` for the window, ``K x G*H x W`` (units first); ``0 x G*H x W`` without context."""
    w_ih, width = decoder.rnn.weight_ih_l0, context.shape[1]
    if decoder.context_features:  # batched, so each step's product lands units first (no transposing copy)
        w_ic = w_ih[:, decoder.features:]
        return torch.bmm(w_ic.expand(context.shape[0], *w_ic.shape), context.transpose(1, 2))
    return context.new_empty(0, w_ih.shape[0], width)


def _general_window(decoder, context, target, reset, teacher, carried, seeds):
    """Any window: the readout and the (teacher-forced) feedback inside the kernels."""
    rnn, readout, feat = decoder.rnn, decoder.readout, decoder.features
    k_steps, width = reset.shape
    lstm = isinstance(rnn, nn.LSTM)
    # the kernels run the hidden side units first, slots last (see _feedback_nb)
    w_ih, gc = rnn.weight_ih_l0, _context_part(decoder, context)
    fed_target = target if target.shape[2] == feat else target.new_zeros(k_steps, width, feat)
    mask = teacher if teacher is not None else torch.zeros_like(reset)
    flat = lambda t: t.reshape(t.shape[-1])  # noqa: E731
    out = _FeedbackWindow.apply(
        reset.contiguous(), mask.contiguous(), fed_target, gc, w_ih[:, :feat], rnn.weight_hh_l0, rnn.bias_ih_l0,
        rnn.bias_hh_l0, readout.weight, readout.bias, carried.visible[0], carried.hidden[0][0].t(),
        carried.hidden[1][0].t() if lstm else None, flat(seeds.visible), flat(seeds.hidden[0]),
        flat(seeds.hidden[1]) if lstm else None)
    ys, last_h = out[0], out[1][-1].t().unsqueeze(0)
    last = ys[-1:] if teacher is None else torch.where(teacher[-1].view(1, width, 1), target[-1:], ys[-1:])
    final = (last, last_h) + ((out[2].t().unsqueeze(0),) if lstm else ())
    return ys, final


def _folded_window(decoder, context, reset, carried, seeds):
    """A window without teacher forcing: the readout folded into the hidden product, the outputs
    one product after the recurrence (see :mod:`fastseq.bptt._feedback_nb`)."""
    rnn, readout, feat, hid = decoder.rnn, decoder.readout, decoder.features, decoder.hidden_size
    lstm = isinstance(rnn, nn.LSTM)
    w_hh, b_ih, b_hh = rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0
    w_iv, w_out, b_out = rnn.weight_ih_l0[:, :feat], readout.weight, readout.bias
    m, u = w_iv @ w_out, w_iv @ b_out
    if lstm:
        wcat, bcat = w_hh + m, b_ih + b_hh + u
    else:  # rows r, z (input and hidden parts summed), n's input part, n's hidden part
        two = 2 * hid
        wcat = torch.cat([w_hh[:two] + m[:two], m[two:], w_hh[two:]])
        bcat = torch.cat([b_ih[:two] + b_hh[:two] + u[:two], b_ih[two:] + u[two:], b_hh[two:]])
    seed_v, seed_h = seeds.visible.reshape(feat), seeds.hidden[0].reshape(hid)
    v0, h0 = carried.visible[0], carried.hidden[0][0]
    # where the visible input is not the folded previous output: W_iv (visible - readout(hidden))
    corr_reset = w_iv @ (seed_v - F.linear(seed_h, w_out, b_out))
    corr0 = w_iv @ (v0 - F.linear(h0, w_out, b_out)).t()
    out = _FoldedWindow.apply(reset.contiguous(), _context_part(decoder, context), wcat, bcat, corr0, corr_reset,
                              h0.t(), carried.hidden[1][0].t() if lstm else None, seed_h,
                              seeds.hidden[1].reshape(hid) if lstm else None)
    hs = out[0] if lstm else out
    k_steps = hs.shape[0]
    ys = torch.bmm(hs.transpose(1, 2), w_out.t().expand(k_steps, hid, feat)) + b_out
    final = (ys[-1:], hs[-1].t().unsqueeze(0)) + ((out[1].t().unsqueeze(0),) if lstm else ())
    return ys, final
