"""
The slot-swap schedule, drawn
=============================

Each row of the picture is one of ``B`` batch slots and each column one time step. A
colour is one sequence: when it ends, the next sequence in the order takes the slot at
the very next step, so slots stay busy and nothing is padded until the epoch drains
(black: an idle slot). The white columns mark window boundaries, every ``K`` steps,
where the optimizer steps. Below it, the same sequences in padded batches of ``B``:
every batch runs as long as its longest sequence.
"""
import numpy as np

from fastseq.bptt import SlotSchedule
from fastseq.mosaic import save_png

rng = np.random.default_rng(0)
lengths = np.maximum(1, rng.lognormal(2.5, 0.8, size=30).astype(int))
B, K = 6, 12

# %%
# Walk the schedule: ``window.sequence`` says which sequence each slot works on at each
# step (-1 where the slot is idle).
palette = rng.uniform(0.25, 1.0, size=(len(lengths), 3))
columns = []
for window in SlotSchedule(lengths, batch_size=B, bptt=K):
    seq = window.sequence  # steps x B
    block = np.where(seq[..., None] >= 0, palette[np.maximum(seq, 0)], 0.0)
    columns.append(block.transpose(1, 0, 2))  # B x steps x RGB
    columns.append(np.ones((B, 1, 3)))  # the window boundary
slot_swap = np.concatenate(columns, axis=1)

# %%
# Padded batches of the same sequences, in the same order, for comparison.
padded = []
for start in range(0, len(lengths), B):
    batch = lengths[start:start + B]
    block = np.zeros((B, batch.max(), 3))
    for slot, n in enumerate(batch):
        block[slot, :n] = palette[start + slot]
    padded.append(block)
    padded.append(np.ones((B, 1, 3)))
padded = np.concatenate(padded, axis=1)

width = max(slot_swap.shape[1], padded.shape[1])
canvas = np.ones((2 * B + 3, width, 3))
canvas[:B, :slot_swap.shape[1]] = slot_swap
canvas[B + 3:, :padded.shape[1]] = padded
save_png(canvas, "slot_swap_schedule.png", zoom=6)
slot_steps = sum(c.shape[1] for c in columns[::2])
padded_steps = sum(int(lengths[i:i + B].max()) for i in range(0, len(lengths), B))
print(f"{int(lengths.sum())} real steps; each slot runs {slot_steps} steps with slot-swap, "
      f"{padded_steps} in padded batches ({padded_steps / slot_steps:.1f}x)")
