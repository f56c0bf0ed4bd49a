"""Slot-swap windows in a real Lightning Trainer: the same losses as the plain loop, resume bit for bit."""
from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
from torch import nn

pl = pytest.importorskip("pytorch_lightning")

from fastseq.bptt import SlotSwapLoader, masked_mean, run_window
from fastseq.bptt.lightning import SlotSwapDataModule, SlotSwapMixin

LENGTHS = (23, 7, 40, 12, 31, 5, 18, 26)


def sequences() -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((n, 3)).astype(np.float32) for n in LENGTHS]
    ys = [np.cumsum(x[:, :1], 0).astype(np.float32) * 0.3 for x in xs]  # needs the carried state
    return xs, ys


def loader() -> SlotSwapLoader:
    xs, ys = sequences()
    return SlotSwapLoader(xs, ys, batch_size=3, bptt=6, shuffle=True, seed=1)


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.rnn, self.head = nn.GRU(3, 8), nn.Linear(8, 1)


class Model(SlotSwapMixin, pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = Net()
        self.losses: list[float] = []

    def training_step(self, window, batch_idx):
        out = self.run_window(self.net.rnn, window.inputs, window, engine="steps")
        loss = masked_mean((self.net.head(out) - window.targets) ** 2, window.valid)
        self.losses.append(loss.item())
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


def trainer(**kw) -> pl.Trainer:
    kw = {"enable_checkpointing": False, **kw}
    return pl.Trainer(accelerator="cpu", devices=1, enable_progress_bar=False, logger=False,
                      enable_model_summary=False, **kw)


def plain_losses(epochs: int) -> list[float]:
    net, data = Net(), loader()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(epochs):
        state = None
        for w in data:
            out, state = run_window(net.rnn, w.inputs, w.reset, state, valid=w.valid, slot_map=w.slot_map,
                                    plan=w.plan, engine="steps")
            loss = masked_mean((net.head(out) - w.targets) ** 2, w.valid)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    return losses


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_window_losses_equal_the_plain_loop():
    model = Model()
    trainer(max_epochs=2).fit(model, datamodule=SlotSwapDataModule(loader()))
    expected = plain_losses(2)
    fresh = loader()
    assert len(model.losses) == sum(1 for _ in range(2) for _ in fresh)  # every window of both epochs, once
    assert model.losses == expected


def test_fit_lowers_the_loss_and_logs_throughput():
    model = Model()
    t = trainer(max_epochs=12)
    t.fit(model, datamodule=SlotSwapDataModule(loader()))
    per_epoch = len(model.losses) // 12
    assert np.mean(model.losses[-per_epoch:]) < 0.7 * np.mean(model.losses[:per_epoch])
    metrics = t.callback_metrics
    assert 0.0 <= float(metrics["slot_swap/padding_share"]) < 1.0
    assert float(metrics["slot_swap/real_steps_per_s"]) > 0


class SaveAt(pl.Callback):
    """Saves a checkpoint after the window of global step ``step``, as a preempted run's last save."""

    def __init__(self, step: int, path) -> None:
        self.step, self.path = step, path

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            trainer.save_checkpoint(self.path)


@pytest.mark.parametrize("extra", [3, 0])  # mid-way through the second epoch; right after the first one's last window
def test_resume_mid_epoch_is_bit_for_bit(tmp_path, extra):
    k = len(loader()) + extra
    path = tmp_path / "mid.ckpt"
    straight = Model()
    trainer(max_epochs=2, callbacks=[SaveAt(k, path)]).fit(straight, datamodule=SlotSwapDataModule(loader()))
    saved = torch.load(path, weights_only=True)
    assert (saved["SlotSwapDataModule"]["epoch"], saved["SlotSwapDataModule"]["window"]) == (1, extra)
    assert saved["slot_swap_states"]["rnn"].shape[0] == 1  # L x W x H

    resumed = Model()
    # Lightning >= 2.5 can load it as torch.load(weights_only=True) does: tensors and plain values only
    safe = {"weights_only": True} if "weights_only" in inspect.signature(pl.Trainer.fit).parameters else {}
    trainer(max_epochs=2).fit(resumed, datamodule=SlotSwapDataModule(loader()), ckpt_path=path, **safe)
    assert len(resumed.losses) == len(straight.losses) - k > 0
    assert resumed.losses == straight.losses[k:]


def test_resume_without_the_carried_state_differs(tmp_path):
    """The check above could fail: dropping the carried state changes the next window's loss."""
    k = len(loader()) + 3
    path = tmp_path / "mid.ckpt"
    straight = Model()
    trainer(max_epochs=2, callbacks=[SaveAt(k, path)]).fit(straight, datamodule=SlotSwapDataModule(loader()))
    checkpoint = torch.load(path, weights_only=True)
    del checkpoint["slot_swap_states"]
    torch.save(checkpoint, path)
    resumed = Model()
    trainer(max_epochs=2).fit(resumed, datamodule=SlotSwapDataModule(loader()), ckpt_path=path)
    assert resumed.losses[0] != straight.losses[k]


def test_data_module_state_round_trips():
    data = SlotSwapDataModule(loader())
    batches = data.train_dataloader()
    it = iter(batches)
    for _ in range(3):
        data.on_before_batch_transfer(next(it), 0)
    next(it)  # drawn ahead, as Lightning does, but not trained
    state = data.state_dict()
    assert (state["epoch"], state["window"]) == (0, 3)
    rest = [w.index for w in it]

    again = SlotSwapDataModule(loader())
    again.load_state_dict(state)
    assert [w.index for w in again.train_dataloader()] == [3] + rest


def test_rejects_what_it_cannot_use():
    with pytest.raises(TypeError, match="loader to be a SlotSwapLoader"):
        SlotSwapDataModule([1, 2])
    with pytest.raises(TypeError, match="window to be a LoaderWindow"):
        Model().run_window(nn.GRU(3, 8), torch.zeros(2, 1, 3), object())
    window = next(iter(loader()))
    with pytest.raises(ValueError, match="device='meta'"):
        SlotSwapDataModule(loader()).transfer_batch_to_device(window, torch.device("meta"), 0)
