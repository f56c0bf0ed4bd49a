"""A float16 decoder on a window of more than 65,504 real steps: the window's costs are summed in
float32, so the loss is the mean cost (a float16 sum overflowed to inf, and training stopped with a
message blaming the data)."""

import numpy as np
import torch
from torch import nn

from fastseq import train_bptt


class _HalfDecoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.cell, self.out = nn.GRUCell(2, 4), nn.Linear(4, 2)

    def forward(self, visible, context, hidden):
        h = self.cell(context, hidden[0])
        return self.out(h).unsqueeze(0) + 0 * visible, h.unsqueeze(0)


def _cost(outputs, target):
    return ((outputs - target) ** 2).mean(-1)


def test_a_float16_window_of_65536_real_steps_has_a_finite_mean_loss():
    torch.manual_seed(0)
    decoder = _HalfDecoder().half()
    rng = np.random.default_rng(0)
    contexts = [rng.normal(size=(64, 2)).astype(np.float16) for _ in range(1024)]
    targets = [np.full((64, 2), 30, np.float16) for _ in range(1024)]
    with torch.no_grad():  # the same steps by hand, before training moves the weights
        hidden, costs = torch.zeros(1, 1024, 4, dtype=torch.float16), []
        x, y = torch.from_numpy(np.stack(contexts, 1)), torch.from_numpy(np.stack(targets, 1))
        visible = torch.zeros(1, 1024, 2, dtype=torch.float16)
        for k in range(64):
            visible, hidden = decoder(visible, x[k], hidden)
            costs.append(_cost(visible[0], y[k]).float())
        want = torch.stack(costs).mean().item()
    optimizer = torch.optim.SGD(decoder.parameters(), lr=1e-4)
    (loss,) = train_bptt(decoder, contexts, targets, torch.zeros(2), torch.zeros(1, 4), optimizer, 1024, 64,
                         cost_fn=_cost)
    assert want > 500  # each cost near 900: their float16 sum over 65,536 steps is inf
    assert np.isfinite(loss) and abs(loss - want) <= 1e-3 * want, (loss, want)
    assert all(torch.isfinite(p).all() for p in decoder.parameters())
