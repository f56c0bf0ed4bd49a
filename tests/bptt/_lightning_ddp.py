"""Two CPU processes of Lightning's DDP (gloo) over a SlotSwapDataModule; run by test_lightning_ddp.py.

``python _lightning_ddp.py FOLDER``: Lightning's "ddp" strategy starts rank 1 by running this
script again; each rank writes ``FOLDER/rank<r>.json`` with its shard, its windows and real
steps per epoch, and its parameters after training."""
from __future__ import annotations

import json
import sys
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.strategies import DDPStrategy
from torch import nn

from fastseq.bptt import SlotSwapLoader, masked_mean
from fastseq.bptt.lightning import SlotSwapDataModule, SlotSwapMixin

# 7 sequences of uneven lengths: no split into 2 shards of equal steps or equal counts
LENGTHS = (23, 7, 40, 12, 31, 5, 18)
EPOCHS = 2


def sequences() -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((n, 3)).astype(np.float32) for n in LENGTHS]
    return xs, [np.cumsum(x[:, :1], 0).astype(np.float32) * 0.3 for x in xs]


class Model(SlotSwapMixin, pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.rnn, self.head = nn.GRU(3, 8), nn.Linear(8, 1)
        self.windows = [0] * EPOCHS
        self.real_steps = [0] * EPOCHS
        self.total_real_steps = [0] * EPOCHS

    def training_step(self, window, batch_idx):
        out = self.run_window(self.rnn, window.inputs, window, engine="steps")
        e = self.current_epoch
        self.windows[e] += 1
        self.real_steps[e] += window.real_steps
        self.total_real_steps[e] += window.total_real_steps
        return masked_mean((self.head(out) - window.targets) ** 2, window.valid)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)


def main(folder: Path) -> None:
    torch.set_num_threads(1)
    xs, ys = sequences()
    data = SlotSwapDataModule(SlotSwapLoader(xs, ys, batch_size=2, bptt=5, shuffle=True, seed=3, world_size="auto"))
    model = Model()
    trainer = pl.Trainer(accelerator="cpu", devices=2, max_epochs=EPOCHS, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         strategy=DDPStrategy(process_group_backend="gloo", timeout=timedelta(seconds=60)))
    trainer.fit(model, datamodule=data)
    loader = data.loader
    report = {"rank": trainer.global_rank, "world_size": trainer.world_size,
              "loader_shard": [loader.rank, loader.world_size], "windows": model.windows,
              "real_steps": model.real_steps, "total_real_steps": model.total_real_steps,
              "params": torch.cat([p.detach().reshape(-1) for p in model.parameters()]).tolist()}
    (folder / f"rank{trainer.global_rank}.json").write_text(json.dumps(report))
    # leave the gloo group together, with nothing holding it (Lightning keeps it after fit): a
    # rank that exits while gloo still talks to it can abort at exit ("terminate called
    # without an active exception"), as the CI simulation saw once in this script
    del trainer, model, data, loader
    import torch.distributed as dist
    from _gloo import leave_group

    if dist.is_initialized():
        leave_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
