"""The Lightning pieces' rules, one at a time, without a Trainer: what a checkpoint holds and
restores, where a resume starts, what is logged, and that run_window passes every setting on."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("pytorch_lightning")

from fastseq.bptt import SlotSwapLoader, run_window
from fastseq.bptt import lightning as fl
from fastseq.bptt.lightning import SlotSwapDataModule, SlotSwapMixin

LENGTHS = (9, 2, 14, 5, 11, 1, 7)


def loader(batch_size: int = 3, bptt: int = 4, lengths=LENGTHS) -> SlotSwapLoader:
    rng = np.random.default_rng(3)
    xs = [rng.standard_normal((n, 2)).astype(np.float32) for n in lengths]
    return SlotSwapLoader(xs, [x[:, :1] for x in xs], batch_size=batch_size, bptt=bptt, shuffle=True, seed=2)


class Carrier(SlotSwapMixin, nn.Module):
    """The mixin on a plain module, with Lightning's ``log`` recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.logged: list[tuple[str, float]] = []

    def log(self, name: str, value: float) -> None:
        self.logged.append((name, value))


# --- the data module: where a checkpoint resumes


def test_a_fresh_or_just_restored_module_saves_the_loaders_own_position():
    data = SlotSwapDataModule(loader())
    assert data.state_dict() == data.loader.state_dict()
    other = loader()
    for _ in zip(range(2), other):
        pass
    saved = other.state_dict()
    data.load_state_dict(saved)
    assert data.state_dict() == saved == data.loader.state_dict()


def test_after_an_epoch_a_checkpoint_resumes_at_the_next_epochs_start_though_lightning_drew_ahead():
    data = SlotSwapDataModule(loader())
    windows = data.train_dataloader()
    drawn = list(windows)  # the whole epoch drawn
    end = data.loader.state_dict()
    for _ in drawn:
        windows.trained()
    nxt = iter(windows)
    next(nxt)  # Lightning draws the next epoch's first window before the checkpoint is taken
    assert data.state_dict() == end != data.loader.state_dict()
    assert (end["epoch"], end["window"]) == (1, 0)


def test_an_epoch_with_nothing_left_still_resumes_at_the_next_epochs_start():
    source = loader()
    for _ in source:
        at_last = source.state_dict()  # after the last window drawn, before the epoch ends
    data = SlotSwapDataModule(loader())
    data.load_state_dict(at_last)
    windows = data.train_dataloader()
    assert list(windows) == []
    after = data.loader.state_dict()
    nxt = iter(windows)
    next(nxt)
    assert data.state_dict() == after != data.loader.state_dict()


def test_batches_other_than_windows_are_moved_as_lightning_moves_them():
    data = SlotSwapDataModule(loader())
    moved = data.transfer_batch_to_device({"x": torch.ones(2)}, torch.device("meta"), 0)
    assert set(moved) == {"x"} and moved["x"].device.type == "meta" and moved["x"].shape == (2,)


# --- the mixin: checkpoints of the carried state


def test_checkpoints_hold_the_carried_states_as_copies_and_restore_an_lstms_as_a_tuple():
    carrier = Carrier()
    checkpoint: dict = {}
    carrier.on_save_checkpoint(checkpoint)  # before any window
    assert checkpoint == {"slot_swap_states": {}}
    h, c, g = torch.randn(1, 3, 4), torch.randn(1, 3, 4), torch.randn(1, 3, 5)
    carrier._slot_states = {"lstm": (h, c), "gru": g}
    carrier.on_save_checkpoint(checkpoint)
    saved = checkpoint["slot_swap_states"]
    assert isinstance(saved["lstm"], list) and [t.data_ptr() for t in saved["lstm"]] != [h.data_ptr(), c.data_ptr()]
    assert torch.equal(saved["lstm"][0], h) and torch.equal(saved["lstm"][1], c) and torch.equal(saved["gru"], g)
    assert saved["gru"].data_ptr() != g.data_ptr()
    restored = Carrier()
    restored.on_load_checkpoint(checkpoint)
    lstm = restored._slot_states["lstm"]
    assert isinstance(lstm, tuple) and torch.equal(lstm[0], h) and torch.equal(lstm[1], c)
    assert torch.equal(restored._slot_states["gru"], g)


# --- the mixin: what it logs


def test_logs_each_windows_padding_and_the_rate_between_windows_of_one_epoch(monkeypatch):
    data = loader(batch_size=1, bptt=1, lengths=(1, 2))  # one slot, one step: windows of one (step, slot)
    clock = iter([100.0 + 0.25 * i for i in range(100)])
    monkeypatch.setattr(fl.time, "perf_counter", lambda: next(clock))
    carrier = Carrier()
    seen = []
    for _ in range(2):  # two epochs: the second's first window follows the first's last
        for i, w in enumerate(data):
            carrier.on_train_batch_end(None, w, i)
            seen.append(w)
    padding = [v for k, v in carrier.logged if k == "slot_swap/padding_share"]
    rates = [v for k, v in carrier.logged if k == "slot_swap/real_steps_per_s"]
    assert padding == [1.0 - w.real_steps / w.valid.numel() for w in seen] == [0.0] * len(seen)
    assert rates == [w.real_steps / 0.25 for w in seen if w.index > 0] and len(rates) == len(seen) - 2


# --- the mixin: run_window passes every setting on


@pytest.mark.parametrize("engine", [None, "steps"])
@pytest.mark.parametrize("cell", [nn.RNN, nn.LSTM])
def test_run_window_is_fastseqs_run_window_with_the_windows_settings(cell, engine):
    torch.manual_seed(0)
    rnn = cell(2, 3)
    reset_state = (torch.full((1, 3), 0.5), torch.full((1, 3), -0.5)) if cell is nn.LSTM else torch.full((1, 3), 0.5)
    carrier, state, idle = Carrier(), None, 0
    for w in loader(batch_size=3, bptt=4, lengths=(10, 3, 6, 9, 2)):  # idle slots while the epoch drains
        chosen = {} if engine is None else {"engine": engine}  # None: the default, "auto"
        got = carrier.run_window(rnn, w.inputs, w, reset_state=reset_state, **chosen)
        expected, state = run_window(rnn, w.inputs, w.reset, state if w.index else None, valid=w.valid,
                                     slot_map=w.slot_map, plan=w.plan, engine=engine or "auto",
                                     reset_state=reset_state)
        assert torch.equal(got, expected)
        idle += int((~w.valid).sum())
        carried = carrier._slot_states["rnn"]
        assert all(torch.equal(a, b) for a, b in zip(carried if isinstance(carried, tuple) else (carried,),
                                                     state if isinstance(state, tuple) else (state,)))
    assert idle > 0  # windows with idle (step, slot) pairs, whose outputs valid makes zero
