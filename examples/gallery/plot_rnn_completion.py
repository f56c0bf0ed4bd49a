"""
A row RNN completes half-seen digits
====================================

A recurrent network reads a digit one row of 28 pixels at a time and predicts the next row
(what ``fastseq train`` does, here for a few epochs). Shown only the top half of a digit it
has never seen, it writes the bottom half by feeding each predicted row back in. Then a
picture per hidden unit: the rows that make the unit respond, above the rows the network
expects to follow them.
"""
import time

import numpy as np
import torch

from fastseq.bptt import train_bptt
from fastseq.datasets import load_mnist
from fastseq.mosaic import corrsort, save_png, tile
from fastseq.rowrnn import as_sequences, baseline_errors, complete, completion_mse, hidden_unit_pictures, make_model

started = time.perf_counter()
torch.manual_seed(0)
torch.set_num_threads(1)  # batch x hidden products are small: more threads only add waiting
digits = load_mnist()  # the 5,000 embedded digits, 500 of them held out, pixels in [0, 1]

# %%
# The model: a plain RNN of 169 units whose output weights are its input weights
# transposed (``"rnn"``, the tied autoencoder; ``"gru"`` and ``"lstm"`` work the same way).
# Each digit is a sequence of 27 steps: the context is rows 0..26, the target rows 1..27.
model = make_model("rnn", n_hidden=169, n_visible=28)
contexts, targets = as_sequences(digits.train_images)
optimizer = torch.optim.Adam(model.parameters(), lr=0.01)


def cost(predicted, target):
    """Cross-entropy of each predicted row, summed over its 28 pixels (one value per slot)."""
    return torch.nn.functional.binary_cross_entropy(predicted, target, reduction="none").sum(-1)


# %%
# Four epochs of slot-swap truncated BPTT with ``train_bptt``: 20 digits side by side, one
# optimizer step per 27 rows. Half of the steps read the true row, half the network's own
# prediction of it (``teacher_forcing=0.5``), so that it learns to continue from its own output.
for epoch in range(4):
    model.train()
    losses = train_bptt(model.as_decoder(feedback=True), contexts, targets, torch.zeros(28), model.hidden_seed(),
                        optimizer, 20, 27, cost, teacher_forcing=0.5, shuffle=True, seed=0, epoch=epoch)

# %%
# Complete the held-out digits from their top 14 rows, and compare with two baselines:
# repeating the last seen row, and the mean bottom half of the training digits.
model.eval()
k = 14
test = digits.test_images
completed = complete(model, test, k=k)
error = completion_mse(completed, test, k)
baselines = baseline_errors(digits.train_images, test, k)

# %%
# Two held-out digits of each class: what the network saw (the unseen half grey), what it
# wrote, and the truth, in three rows per group.
chosen = [np.flatnonzero(digits.test_labels == c)[:2] for c in range(10)]
groups = []
for i in range(2):
    idx = np.array([c[i] for c in chosen])
    seen = test[idx].copy()
    seen[:, k:] = 0.5
    groups += [seen, completed[idx], test[idx]]
save_png(tile(np.concatenate(groups), width=10, spacing=2, scale=None, background=1.0),
         "rnn_completion.png", zoom=3)

# %%
# What the hidden units respond to: 5,000 windows of 10 rows are read by the network; each
# unit's picture is the average window weighted by how strongly the unit responds after
# it (top), and the average of the 10 rows the network then predicts (bottom), each scaled
# to its own range. A unit that never responds above 0 gets an empty picture and is left
# out. Units with alike pictures are put side by side with ``corrsort``.
window = 10
pictures = hidden_unit_pictures(model, digits.train_images, window=window, count=5000, seed=0)
flat = pictures.reshape(len(pictures), -1)
pictures = pictures[flat.max(axis=1) > flat.min(axis=1)]
low = pictures.min(axis=(1, 2), keepdims=True)
scaled = (pictures - low) / (pictures.max(axis=(1, 2), keepdims=True) - low)
gap = np.full((len(scaled), 1, scaled.shape[2]), 0.5)
cells = np.concatenate([scaled[:, :window], gap, scaled[:, window:]], axis=1)
order = corrsort(pictures.reshape(len(pictures), -1))
save_png(tile(cells, spacing=2, scale=None, order=order, background=1.0), "rnn_hidden_units.png", zoom=2)
print(f"completion error of the bottom half on {len(test)} held-out digits: {error:.4f} "
      f"(repeat the last seen row {baselines['repeat_last']:.4f}, mean bottom half {baselines['mean_bottom']:.4f}); "
      f"last epoch's loss {np.mean(losses):.2f} per row; {len(pictures)} of {model.n_hidden} units respond; "
      f"{time.perf_counter() - started:.1f} s")
