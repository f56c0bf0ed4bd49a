"""The slot-swap algorithm as first published, re-implemented plainly; kept only for comparison.

Its Python loop over slots runs at every step: it stacks ``contexts[i][p]`` and
``targets[i][p]`` slot by slot, calls the decoder, then, for each slot whose
sequence ended, admits the next sequence (wrapping around to the start of the
data) and resets that slot's visible and hidden state in place. The epoch ends
once the last sequence has been admitted. Modern PyTorch names are used
(``clip_grad_norm_``, ``loss.item()``); the logic is unchanged.
"""
from __future__ import annotations

import torch


def original_train_bptt(decoder, contexts, targets, visible_seed, hidden_seed, optimizer,
                        batch_size, bptt, cost_fn=torch.nn.PairwiseDistance(), clip_grad_norm=1.0,
                        max_windows=None):
    """One epoch of the published slot loop. Returns (window losses, slot-steps trained).

    ``max_windows`` (not in the original) stops early, so a benchmark can time a
    sample of windows: the loop's speed does not change along the epoch.
    """
    indices = list(range(batch_size))
    positions = [0] * batch_size
    visible = torch.stack([visible_seed] * batch_size).unsqueeze(0)
    hiddens = torch.stack([hidden_seed] * batch_size, 1)
    losses, steps = [], 0
    marker = batch_size
    while marker < len(targets) and (max_windows is None or len(losses) < max_windows):
        optimizer.zero_grad()
        predicted, actual = [], []
        for _ in range(bptt):
            inputs = torch.stack([contexts[i][p] for i, p in zip(indices, positions)])
            outputs, hiddens = decoder(visible, inputs, hiddens)
            predicted.append(outputs[0])
            visible = outputs.clone()
            actual.append(torch.stack([targets[i][p] for i, p in zip(indices, positions)]))
            for b in range(batch_size):
                if len(targets[indices[b]]) > positions[b] + 1:
                    positions[b] += 1
                else:
                    marker += 1
                    indices[b] = marker % len(targets)
                    positions[b] = 0
                    visible[0, b] = visible_seed
                    hiddens[:, b] = hidden_seed
            steps += batch_size
        loss = torch.mean(cost_fn(torch.cat(predicted), torch.cat(actual)))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(decoder.parameters(), clip_grad_norm)
        optimizer.step()
        losses.append(loss.item())
        visible = visible.detach()
        hiddens = hiddens.detach()
    return losses, steps
