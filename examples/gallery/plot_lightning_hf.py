"""
A Lightning LSTM on a Hugging Face dataset
==========================================

The same slot-swap training from a ``datasets.Dataset``, built here in memory with
``Dataset.from_dict`` (nothing is downloaded). Each row is one handwritten digit read as a
sequence of pixel rows, from its first inked row to its last, so the digits differ in
length (12 to 20 rows here); the input is a row of 28 pixels and the target the row below it.
:meth:`~fastseq.bptt.SequenceStore.from_hf` reads the dataset's Arrow table into a store
(a ``list<list<float>>`` column whose inner lists all hold 28 values gives ``T x 28``
rows), and a PyTorch Lightning ``Trainer`` fits an LSTM on the slot-swap windows through
:class:`~fastseq.bptt.lightning.SlotSwapDataModule` and
:class:`~fastseq.bptt.lightning.SlotSwapMixin`. Needs the ``lightning`` and ``hf`` extras
(and matplotlib for the picture).
"""
import datasets
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn

from fastseq.bptt import SequenceStore, SlotSwapLoader, masked_mean
from fastseq.bptt.lightning import SlotSwapDataModule, SlotSwapMixin
from fastseq.datasets import embedded_digits

torch.manual_seed(0)
torch.set_num_threads(1)

# %%
# The dataset: 1,000 of the embedded digits (100 per class), each cut to its inked rows,
# pixels in [0, 1]; one row of the dataset per digit, its rows as lists of 28 floats.
images, labels = embedded_digits()
picked = np.concatenate([np.flatnonzero(labels == d)[:100] for d in range(10)])
digits = []
for image in images[picked] / 255.0:
    inked = np.flatnonzero(image.max(axis=1) > 0)
    digits.append(image[inked[0]:inked[-1] + 1])
ds = datasets.Dataset.from_dict({"inputs": [d[:-1].tolist() for d in digits],
                                 "targets": [d[1:].tolist() for d in digits],
                                 "label": labels[picked].tolist()})
print(ds)

# %%
# The stores, read from the dataset's Arrow table (``shuffle``/``select`` would apply).
inputs = SequenceStore.from_hf(ds, "inputs", dtype=np.float32)
targets = SequenceStore.from_hf(ds, "targets", dtype=np.float32)
print(f"{len(inputs)} sequences of {inputs.lengths.min()}-{inputs.lengths.max()} steps, rows {inputs.feature_shape}")


# %%
# The model: an LSTM over the rows and a layer back to 28 pixels; the loss is each row's
# cross-entropy summed over its pixels, averaged over the window's real steps.
class RowLSTM(SlotSwapMixin, pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.lstm, self.head = nn.LSTM(28, 64), nn.Linear(64, 28)
        self.losses: list[float] = []
        self.epochs: list[int] = []

    def training_step(self, window, batch_idx):
        out = self.run_window(self.lstm, window.inputs, window)
        bce = nn.functional.binary_cross_entropy_with_logits(self.head(out), window.targets, reduction="none")
        loss = masked_mean(bce.sum(-1), window.valid)
        self.losses.append(loss.item())
        self.epochs.append(self.current_epoch)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


# %%
# The fit: four epochs of windows of 8 steps over 64 slots; a digit that ends frees its
# slot for the next one at the very next step.
model = RowLSTM()
data = SlotSwapDataModule(SlotSwapLoader(inputs, targets, batch_size=64, bptt=8, shuffle=True, seed=0))
trainer = pl.Trainer(max_epochs=4, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False)
trainer.fit(model, datamodule=data)

# %%
# The loss curve, with dotted lines where each epoch starts.
losses = np.array(model.losses)
fig, ax = plt.subplots(figsize=(7, 3.5))
ax.plot(losses, color="#0d3399", lw=1.5)
for epoch in range(1, 4):
    ax.axvline(model.epochs.index(epoch), color="grey", ls=":", lw=1)
ax.set(xlabel="window", ylabel="cross-entropy per row", ylim=(0, None), title="Lightning LSTM on a Hugging Face dataset")
fig.tight_layout()
fig.savefig("lightning_hf_loss.png", dpi=100)
print(f"{len(losses)} windows in 4 epochs: {losses[:10].mean():.1f} -> {losses[-10:].mean():.1f} per row")
