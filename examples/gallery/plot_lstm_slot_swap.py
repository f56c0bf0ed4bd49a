"""
Train an LSTM with slot-swap windows
====================================

A byte-level language model: an ordinary ``nn.LSTM`` learns to predict the next byte of
paragraphs of Python's own standard library, a corpus of real sequences from a few bytes to
thousands long. :class:`~fastseq.bptt.SlotSwapLoader` cuts an epoch into windows of ``K``
steps over ``B`` slots; when a paragraph ends, the next one takes its slot at the very next
step, so there is no padding. :func:`~fastseq.bptt.run_window` runs the LSTM over a window,
starting each new paragraph from a fresh state and carrying the others into the next
window. The rest is a plain PyTorch loop; the picture is its loss curve.
"""
import time

import numpy as np
import torch
from torch import nn

from fastseq.bptt import SlotSwapLoader, masked_mean, run_window
from fastseq.datasets import stdlib_paragraphs
from fastseq.mosaic import save_png

torch.manual_seed(0)
torch.set_num_threads(1)

# %%
# The data: 600 paragraphs of at most 600 bytes, each a ``uint8`` array. The input at each
# step is a byte, the target the byte after it.
paragraphs = stdlib_paragraphs(max_sequences=600, min_length=3, max_length=600)
inputs = [p[:-1] for p in paragraphs]
targets = [p[1:] for p in paragraphs]
lengths = np.array([len(x) for x in inputs])

# %%
# The model: an embedding of the 256 byte values, an LSTM of 128 units and a linear layer
# back to 256 scores. Nothing in it knows about slots.
embed, lstm, head = nn.Embedding(256, 32), nn.LSTM(32, 128), nn.Linear(128, 256)
params = [*embed.parameters(), *lstm.parameters(), *head.parameters()]
optimizer = torch.optim.Adam(params, lr=3e-3)

# %%
# The loop. Each window ``w`` holds ``inputs`` and ``targets`` (``K x W``), ``reset``
# (``K x W``, True where a new paragraph starts in a slot), ``valid`` (False on the idle
# steps of slots that ran out of paragraphs while the epoch drains) and ``slot_map`` (the
# windows narrow to the live slots at the end). The loss averages only the real steps.
loader = SlotSwapLoader(inputs, targets, batch_size=32, bptt=32, shuffle=True, seed=0)
losses = []
started = time.perf_counter()
for epoch in range(2):
    state = None  # every slot starts with a reset
    for w in loader:
        out, state = run_window(lstm, embed(w.inputs.long()), w.reset, state, valid=w.valid,
                                slot_map=w.slot_map, plan=w.plan)
        scores = head(out)
        ce = nn.functional.cross_entropy(scores.flatten(0, 1), w.targets.flatten().long(), reduction="none")
        loss = masked_mean(ce.view(w.targets.shape), w.valid)
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        losses.append(loss.item() / np.log(2))  # nats -> bits per byte
    if epoch == 0:
        windows_per_epoch = len(losses)
seconds = time.perf_counter() - started  # the training alone

# %%
# The loss curve, drawn into an array: 3 pixels per window, 24 pixels per bit per byte.
# Grey grid lines mark whole bits (0 on the bottom axis; 8 bits, a uniform guess over 256
# bytes, at the top) and a dotted line the start of the second epoch. The light curve is
# each window's loss, the dark one its running mean over 20 windows.
bits = np.array(losses)
smooth = np.convolve(bits, np.ones(20) / 20, mode="valid")
step, per_bit, margin = 3, 24, 8
height, width = 8 * per_bit, step * (len(bits) - 1)
canvas = np.ones((height + 2 * margin, width + 2 * margin, 3))
for b in range(1, 9):
    canvas[margin + height - b * per_bit, margin:margin + width + 1] = 0.85  # whole bits
canvas[margin:margin + height:4, margin + step * windows_per_epoch] = 0.5  # second epoch starts
canvas[margin:margin + height + 1, margin - 1] = 0.0  # the y axis
canvas[margin + height, margin - 1:margin + width + 1] = 0.0  # the x axis


def draw(curve: np.ndarray, first: int, colour: tuple[float, float, float]) -> None:
    """A line 2 pixels thick through the points of ``curve`` (bits per byte), window ``first`` on."""
    x = margin + step * (first + np.arange(len(curve)))
    y = margin + height - curve * per_bit
    xs = np.linspace(x[0], x[-1], 8 * len(x))  # many points along the line, rounded to pixels
    rows = np.clip(np.round(np.interp(xs, x, y)).astype(int), margin, margin + height)
    cols = np.round(xs).astype(int)
    for dr in (0, 1):
        canvas[np.minimum(rows + dr, margin + height), cols] = colour


draw(bits, 0, (0.65, 0.75, 0.95))
draw(smooth, 19, (0.05, 0.2, 0.6))
save_png(canvas, "lstm_loss.png")
print(f"{len(paragraphs)} paragraphs, {int(lengths.sum()):,} real steps per epoch, {len(losses)} windows in 2 epochs: "
      f"{bits[:20].mean():.2f} -> {bits[-20:].mean():.2f} bits per byte (first and last 20 windows); "
      f"{2 * lengths.sum() / seconds:,.0f} real steps/s")
