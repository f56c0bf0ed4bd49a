"""Slot-swap windows in a real Lightning Trainer: the same losses as the plain loop, resume bit for bit."""
from __future__ import annotations

import inspect
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

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


def test_setup_gives_an_auto_loader_the_trainer_shard_and_refuses_another():
    xs, ys = sequences()
    data = SlotSwapDataModule(SlotSwapLoader(xs, ys, batch_size=3, bptt=6, world_size="auto"))
    data.trainer = SimpleNamespace(global_rank=1, world_size=2)
    data.setup("fit")
    assert (data.loader.rank, data.loader.world_size) == (1, 2)
    assert len(data.loader) == len(SlotSwapLoader(xs, ys, batch_size=3, bptt=6, rank=1, world_size=2))

    fixed = SlotSwapDataModule(loader())
    fixed.trainer = SimpleNamespace(global_rank=1, world_size=2)
    with pytest.raises(ValueError, match="rank 1 of 2 processes, got rank 0 of 1; build the SlotSwapLoader with "
                                         "world_size='auto'"):
        fixed.setup("fit")


DDP_SCRIPT = Path(__file__).with_name("_lightning_ddp.py")


def run_ddp_script(folder: Path) -> None:
    """Run the two-process script with a hard timeout; a rank that fails or hangs fails the test with its output."""
    # fastseq comes from wherever this test imports it (the installed package in CI, whose
    # source tree holds no compiled extensions; PYTHONPATH where a checkout is tested in place)
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "MASTER_ADDR": "127.0.0.1"}
    for key in ("LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "MASTER_PORT"):  # a fresh launch, not a relaunched rank
        env.pop(key, None)
    proc = subprocess.Popen([sys.executable, str(DDP_SCRIPT), str(folder)], cwd=folder, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # rank 1 is the script's child: the whole session goes
        out, _ = proc.communicate()
        pytest.fail(f"Lightning DDP did not finish in 240 s (a rank hung):\n{out[-4000:]}")
    assert proc.returncode == 0, f"Lightning DDP failed (exit {proc.returncode}):\n{out[-4000:]}"


@pytest.mark.slow  # two processes each import Lightning and start gloo: 10-20 s
def test_lightning_ddp_ranks_draw_equal_windows_and_end_equal(tmp_path):
    sys.path.insert(0, str(DDP_SCRIPT.parent))
    try:
        import _lightning_ddp as script
    finally:
        sys.path.pop(0)
    run_ddp_script(tmp_path)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [r["loader_shard"] for r in ranks] == [[0, 2], [1, 2]]  # setup sharded the world_size="auto" loader

    xs, ys = script.sequences()
    expected = [SlotSwapLoader(xs, ys, batch_size=2, bptt=5, shuffle=True, seed=3, rank=r, world_size=2)
                for r in range(2)]
    windows = [[lo.epoch_shards(e).windows for e in range(script.EPOCHS)] for lo in expected]
    assert windows[0] == windows[1]  # every rank yields the same number of windows, idle ones at its end
    assert [r["windows"] for r in ranks] == windows
    total = sum(script.LENGTHS)
    assert [a + b for a, b in zip(ranks[0]["real_steps"], ranks[1]["real_steps"])] == [total] * script.EPOCHS
    assert ranks[0]["real_steps"] != ranks[1]["real_steps"]  # the shards are uneven; the window counts are not
    assert ranks[0]["total_real_steps"] == ranks[1]["total_real_steps"]
    # DDP averaged the gradients: both ranks took the same steps from different data
    np.testing.assert_array_equal(ranks[0]["params"], ranks[1]["params"])
    initial = torch.cat([p.detach().reshape(-1) for p in script.Model().parameters()]).numpy()
    assert not np.allclose(ranks[0]["params"], initial)  # and training moved them
