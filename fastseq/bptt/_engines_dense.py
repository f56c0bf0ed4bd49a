"""The ``"dense"`` sequence-mode engine: pieces in a few dense groups, fused module calls.

On the CPU, PyTorch runs a plain (unpacked) ``nn.GRU`` / ``nn.RNN`` as one C++ loop
whose backward is cheap, while a ``PackedSequence`` backward zero-fills the whole
packed input once per step (quadratic in the window). This engine keeps the fast
path: the window's pieces (see :mod:`fastseq.bptt.engines`) are sorted by length
and laid out left-aligned in a few dense ``L_g x P_g`` groups, a group being cut
where the length drops below ``shrink`` times the group's longest piece, so the
padding stays small. Each layer is one fused call per group; each slot's state
after the window is read from its last piece's output at that piece's last step,
which is why only modules whose state is their output (GRU, RNN) use this engine.
"""
from __future__ import annotations

import torch
from torch import Tensor

from fastseq.bptt.plans import DensePlan

__all__ = ["run_dense"]


_CALLS = {"GRU": torch._VF.gru, "RNN_TANH": torch._VF.rnn_tanh, "RNN_RELU": torch._VF.rnn_relu}


def run_dense(rnn, x: Tensor, plan: DensePlan, carried: Tensor, seeds: Tensor, mode: str):
    """Run GRU/RNN ``rnn`` over window ``x`` (``K x W x F``) laid out by ``plan``.

    ``carried`` is ``L x W x H``, ``seeds`` ``L x 1 x H``. Returns ``(K x W x H, L x W x H)``.
    """
    call = _CALLS[mode]
    k_steps, width = x.shape[:2]
    flat = torch.cat([x.reshape(k_steps * width, -1), x.new_zeros(1, x[0, 0].numel())])
    inputs = [flat.index_select(0, src).view(s, c, -1) for src, (s, c) in zip(plan.sources, plan.shapes)]
    start = plan.piece_reset.view(-1, 1)
    finals = []
    for layer in range(rnn.num_layers):
        sfx = f"_l{layer}"
        params = [getattr(rnn, "weight_ih" + sfx), getattr(rnn, "weight_hh" + sfx)]
        if rnn.bias:
            params += [getattr(rnn, "bias_ih" + sfx), getattr(rnn, "bias_hh" + sfx)]
        h0 = torch.where(start, seeds[layer], carried[layer].index_select(0, plan.piece_slot))
        outs, col = [], 0
        for inp, (_, c) in zip(inputs, plan.shapes):
            if layer and rnn.dropout and rnn.training:
                inp = torch.nn.functional.dropout(inp, rnn.dropout, True)
            out, _ = call(inp, h0[col:col + c].unsqueeze(0), params, rnn.bias, 1, 0.0, rnn.training, False, False)
            outs.append(out)
            col += c
        inputs = outs
        rows = torch.cat([o.reshape(-1, o.shape[-1]) for o in outs])
        finals.append(torch.cat([rows, carried[layer]]).index_select(0, plan.final))
    rows = torch.cat([rows, rows.new_zeros(1, rows.shape[1])])
    return rows.index_select(0, plan.target).view(k_steps, width, -1), torch.stack(finals)
