"""An independent reference for train_bptt: every sequence fed alone, straight into the decoder."""
import torch


def mse_per_slot(pred, target):
    return ((pred - target) ** 2).mean(-1)


def detach(h):
    return tuple(x.detach() for x in h) if isinstance(h, tuple) else h.detach()


def reference_losses(decoder, ctx, tgt, vseed, hseed, shards, teacher=0.0, seed=0, step=None, cost_fn=None):
    """Per-window losses of a lockstep run of the shards' windows, every sequence computed alone.

    Only the window layout (which sequence sits in which column at which step) comes from
    the schedule; the recurrence, resets, truncation, feedback and loss are spelled out here.
    ``step(loss)`` (if given) runs backward and an optimizer step after each window.
    """
    cost_fn = cost_fn or mse_per_slot
    gen = torch.Generator().manual_seed(seed)
    state, position = {}, {}
    losses = []
    for index in range(max(len(s) for s in shards)):
        total, real = 0.0, 0
        state = {s: (v.detach(), detach(h)) for s, (v, h) in state.items()}  # truncated BPTT
        for shard in shards:
            if index >= len(shard):
                continue
            w = shard[index]
            forced = torch.rand(w.sequence.shape, generator=gen) < teacher if teacher > 0 else None
            real += int(w.valid.sum())
            for col in range(w.sequence.shape[1]):
                for k in range(w.sequence.shape[0]):
                    s = int(w.sequence[k, col])
                    if s < 0:
                        continue
                    t = position.get(s, 0)
                    if t == 0:
                        state[s] = (vseed.view(1, 1, -1), tuple(x[:, None] for x in hseed)
                                    if isinstance(hseed, tuple) else hseed[:, None])
                    visible, hidden = state[s]
                    out, hidden = decoder(visible, ctx[s][t][None], hidden)
                    total = total + cost_fn(out[0], tgt[s][t][None]).sum()
                    feed = tgt[s][t].view(1, 1, -1) if forced is not None and forced[k, col] else out
                    state[s], position[s] = (feed, hidden), t + 1
        loss = total / real
        if step is not None:
            step(loss)
            loss = loss.detach()
        losses.append(loss)
    return losses
