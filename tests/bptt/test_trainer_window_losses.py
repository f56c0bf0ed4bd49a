"""Each window's loss recomputed from the outputs and targets train_bptt actually used.

A recording cost function keeps every step's prediction and target; the loss of each
window must be the mean cost over its real (step, slot) pairs only, although idle slots
produce outputs with a non-zero cost. The window layout comes from the schedule.
"""
import numpy as np
import torch
from torch import nn

import fastseq
from fastseq.bptt.schedule import SlotSchedule

F, C, H = 2, 3, 4


class Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn, self.out = nn.GRU(F + C, H), nn.Linear(H, F)
        nn.init.constant_(self.out.bias, 0.5)  # idle slots output something: their cost is not 0

    def forward(self, visible, context, hidden):
        h, hidden = self.rnn(torch.cat([visible, context.unsqueeze(0)], -1), hidden)
        return self.out(h), hidden


def test_each_window_loss_is_the_mean_cost_over_real_steps():
    torch.manual_seed(0)
    lengths, batch, bptt = [6, 1, 9, 2, 3], 3, 4
    g = torch.Generator().manual_seed(1)
    ctx = [torch.randn(n, C, generator=g) for n in lengths]
    tgt = [torch.randn(n, F, generator=g) for n in lengths]
    recorded = []

    def cost(pred, target):
        c = ((pred - target) ** 2).mean(-1)
        recorded.append((pred.detach().clone(), target.clone(), c.detach().clone()))
        return c

    model = Decoder()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    losses = fastseq.train_bptt(model, ctx, tgt, torch.zeros(F), torch.zeros(1, H), opt, batch, bptt,
                                cost_fn=cost, clip_grad_norm=None, tail="none")
    windows = list(SlotSchedule(lengths, batch, bptt, compact=True))
    assert len(losses) == len(windows)
    assert len(recorded) == sum(w.steps for w in windows)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    idle_cost = 0.0
    at = 0
    for w, loss in zip(windows, losses):
        total = 0.0
        for k in range(w.steps):
            pred, target, c = recorded[at]
            at += 1
            assert pred.shape == (w.width, F) and c.shape == (w.width,)
            for j in range(w.width):
                s = int(w.sequence[k, j])
                if w.valid[k, j]:
                    # the target the trainer used is the sequence's own row at that position
                    torch.testing.assert_close(target[j], tgt[s][int(w.rows[k, j] - offsets[s])])
                    torch.testing.assert_close(c[j], ((pred[j] - target[j]) ** 2).mean())
                    total += float(c[j])
                else:
                    idle_cost += float(c[j])
        np.testing.assert_allclose(loss, total / w.real_steps, rtol=1e-6)
    assert idle_cost > 0.1  # idle slots did cost something, and it was left out
    assert any(not w.valid.all() for w in windows)
