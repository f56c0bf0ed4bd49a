"""
A Lightning LSTM on a Parquet corpus
====================================

Sequences often arrive as a Parquet file with one sequence per row. Here the file is
written first, from paragraphs of Python's own standard library (one ``list<uint8>`` cell per
paragraph: the input bytes, and beside it the same bytes shifted by one, the targets). Then
:meth:`~fastseq.bptt.SequenceStore.from_parquet` streams each column into a memory-mapped
store, :class:`~fastseq.bptt.SlotSwapLoader` cuts an epoch into slot-swap windows, and an
ordinary PyTorch Lightning ``Trainer`` fits a byte-level LSTM on them:
:class:`~fastseq.bptt.lightning.SlotSwapDataModule` hands the windows to the trainer and
:class:`~fastseq.bptt.lightning.SlotSwapMixin` carries each slot's state from one window to
the next. Needs the ``lightning`` and ``arrow`` extras (and matplotlib for the picture).
"""
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytorch_lightning as pl
import torch
from torch import nn

from fastseq.bptt import SequenceStore, SlotSwapLoader, masked_mean
from fastseq.bptt.lightning import SlotSwapDataModule, SlotSwapMixin
from fastseq.datasets import stdlib_paragraphs

torch.manual_seed(0)
torch.set_num_threads(1)
workdir = tempfile.TemporaryDirectory()
folder = Path(workdir.name)

# %%
# The Parquet file: 400 paragraphs of at most 400 bytes, two list columns.
paragraphs = stdlib_paragraphs(max_sequences=400, min_length=3, max_length=400)
table = pa.table({"inputs": pa.array([p[:-1] for p in paragraphs], type=pa.list_(pa.uint8())),
                  "targets": pa.array([p[1:] for p in paragraphs], type=pa.list_(pa.uint8()))})
pq.write_table(table, folder / "paragraphs.parquet", row_group_size=100)

# %%
# The stores: each column streamed from the file 100 rows at a time into a store on disk,
# returned memory-mapped. A ``list<uint8>`` column gives ``T x 1`` rows of bytes.
inputs = SequenceStore.from_parquet(folder / "paragraphs.parquet", "inputs", path=folder / "inputs", batch_size=100)
targets = SequenceStore.from_parquet(folder / "paragraphs.parquet", "targets", path=folder / "targets", batch_size=100)
print(f"{len(inputs)} sequences, {int(inputs.lengths.sum()):,} steps, rows {inputs.feature_shape} of {inputs.dtype}")


# %%
# The model: ``training_step`` gets one window (``K x W`` steps and slots) and only computes
# the loss; ``run_window`` starts new paragraphs from a fresh state and carries the others.
class ByteLSTM(SlotSwapMixin, pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.embed, self.lstm, self.head = nn.Embedding(256, 32), nn.LSTM(32, 96), nn.Linear(96, 256)
        self.bits: list[float] = []
        self.epochs: list[int] = []

    def training_step(self, window, batch_idx):
        out = self.run_window(self.lstm, self.embed(window.inputs.squeeze(-1).long()), window)
        scores = self.head(out)
        ce = nn.functional.cross_entropy(scores.flatten(0, 1), window.targets.flatten().long(), reduction="none")
        loss = masked_mean(ce.view(window.valid.shape), window.valid)
        self.bits.append(loss.item() / np.log(2))  # nats -> bits per byte
        self.epochs.append(self.current_epoch)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=3e-3)


# %%
# The fit: two epochs of windows of 32 steps over 32 slots, shuffled per epoch.
model = ByteLSTM()
data = SlotSwapDataModule(SlotSwapLoader(inputs, targets, batch_size=32, bptt=32, shuffle=True, seed=0))
trainer = pl.Trainer(max_epochs=2, accelerator="cpu", devices=1, gradient_clip_val=1.0, logger=False,
                     enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
trainer.fit(model, datamodule=data)

# %%
# The loss curve: each window's loss in bits per byte and its running mean over 20 windows.
bits = np.array(model.bits)
smooth = np.convolve(bits, np.ones(20) / 20, mode="valid")
fig, ax = plt.subplots(figsize=(7, 3.5))
ax.plot(bits, color="#a6bff2", lw=1, label="window")
ax.plot(np.arange(19, len(bits)), smooth, color="#0d3399", lw=2, label="mean of 20 windows")
ax.axvline(model.epochs.index(1), color="grey", ls=":", lw=1)  # the second epoch starts
ax.set(xlabel="window", ylabel="bits per byte", ylim=(0, 8.5), title="Lightning LSTM on a Parquet corpus")
ax.legend()
fig.tight_layout()
fig.savefig("lightning_parquet_loss.png", dpi=100)
print(f"{len(bits)} windows in 2 epochs: {bits[:20].mean():.2f} -> {bits[-20:].mean():.2f} bits per byte")
workdir.cleanup()
