"""Resume is exact: an interrupted and resumed epoch ends with the parameters, the optimizer's
state, the losses and the random streams of the uninterrupted run, bit for bit (``torch.equal``),
wherever it was cut, however often, through train_bptt's checkpoints and through a
hand-written loop over SlotSwapLoader's state dict.

Tensors read back from a checkpoint used to sit at whatever address safetensors gave them;
MKL's products round differently for differently aligned operands, so a resume whose
carried state was used in place drifted from the uninterrupted run in the last bits (in
this module's run: cut after window 18, first gradient off by ~1e-9). They are now
copied into torch's own (64-byte aligned) memory on reading.
"""
from __future__ import annotations

import copy
import io
import json

import numpy as np
import pytest
import torch
from torch import nn

from fastseq.bptt import SlotSwapLoader, train_bptt
from fastseq.bptt.checkpoint import load_checkpoint
from fastseq.bptt.state import carry_state, step_with_resets
from test_checkpoint import _data  # 24 sequences of 1-29 steps, the killed run's data

F, C, H = 3, 2, 8
K, B = 5, 4


class Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(F + C, H)
        self.drop = nn.Dropout(0.2)  # draws from torch's global generator: part of what resumes
        self.out = nn.Linear(H, F)

    def forward(self, visible, context, hidden):
        h, hidden = self.rnn(torch.cat([visible, context.unsqueeze(0)], -1), hidden)
        return self.out(self.drop(h)), hidden


class _Stop(Exception):
    """A crash in the middle of a window, after the checkpoint of the window before."""


class Cost(nn.PairwiseDistance):
    """The default cost (its class name is part of a run's settings), able to stop the run
    at its ``stop_at``-th call (one call per step)."""

    def __init__(self, stop_at: int | None = None):
        super().__init__()
        self.calls, self.stop_at = 0, stop_at

    def forward(self, a, b):
        if self.calls == self.stop_at:
            raise _Stop
        self.calls += 1
        return super().forward(a, b)


CTX, TGT = _data()


def _fresh():
    """Model and optimizer as every run (interrupted or not) builds them: same seeds."""
    torch.manual_seed(0)
    np.random.seed(0)
    model = Decoder()
    return model, torch.optim.Adam(model.parameters(), lr=0.01)


def _epoch(model, opt, epoch=0, path=None, stop_at=None, **settings) -> list[float] | None:
    """One train_bptt epoch; None when stopped at the ``stop_at``-th step. ``settings`` replace
    train_bptt's arguments here (``cost_fn``, ``seed``, ``checkpoint_every``, ...)."""
    args = dict(batch_size=B, bptt=K, cost_fn=Cost(stop_at), teacher_forcing=0.5, shuffle=True, seed=3, epoch=epoch,
                checkpoint=path, checkpoint_every=1) | settings
    try:
        return train_bptt(model, CTX, TGT, torch.zeros(F), torch.zeros(1, H), opt, **args)
    except _Stop:
        return None


def _state(model, opt) -> dict:
    """Everything a run ends with: parameters, the optimizer's state, the global random streams."""
    return {"params": [p.detach().clone() for p in model.parameters()], "optimizer": copy.deepcopy(opt.state_dict()),
            "torch_rng": torch.get_rng_state(), "numpy_rng": np.random.get_state()}


def assert_identical(a, b, where="") -> None:
    """Equal bit for bit: tensors by torch.equal (dtype and shape too), arrays exactly, the rest by ==."""
    assert type(a) is type(b) or (isinstance(a, (list, tuple)) and isinstance(b, (list, tuple))), where
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b), f"{where}: differ by {(a.double() - b.double()).abs().max()}"
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_identical(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_identical(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


@pytest.fixture(scope="module")
def uninterrupted():
    """Two epochs in one process, no checkpoint: each epoch's losses and the state at its end."""
    model, opt = _fresh()
    out = []
    for epoch in range(2):
        losses = _epoch(model, opt, epoch)
        out.append((losses, _state(model, opt)))
    return out


def _windows_at(path) -> tuple[int, int]:
    meta, _ = load_checkpoint(path)
    return meta["loader"]["epoch"], meta["loader"]["window"]


def test_checkpointing_itself_changes_nothing(tmp_path, uninterrupted):
    model, opt = _fresh()
    losses = [_epoch(model, opt, e, tmp_path / "c.ckpt") for e in range(2)]
    assert losses == [u[0] for u in uninterrupted]
    assert_identical(_state(model, opt), uninterrupted[1][1])


def test_resumed_from_every_window_of_an_epoch_ends_identical(tmp_path, uninterrupted):
    """Cut after window 1 (the first window resumed), after every window in between, and
    before the last one; each resumed run equals the uninterrupted one exactly."""
    reference, end = uninterrupted[0]
    assert len(reference) > 10 and all(np.isfinite(reference))
    for cut in range(1, len(reference)):
        path = tmp_path / f"cut{cut}.ckpt"
        model, opt = _fresh()
        assert _epoch(model, opt, 0, path, stop_at=cut * K) is None
        assert _windows_at(path) == (0, cut)
        model, opt = _fresh()  # a new process: built and seeded anew, then restored
        losses = _epoch(model, opt, 0, path)
        assert losses == reference, f"cut after window {cut}"
        assert_identical(_state(model, opt), end, f"cut after window {cut}")


@pytest.mark.parametrize("cut", ["start", "first", "last"])
def test_resumed_in_a_later_epoch_ends_identical(tmp_path, uninterrupted, cut):
    """Epoch 1 resumed from epoch 0's end, after its first window, and before its last window."""
    path = tmp_path / "c.ckpt"
    model, opt = _fresh()
    assert _epoch(model, opt, 0, path) == uninterrupted[0][0]
    windows = len(uninterrupted[1][0])
    if cut != "start":
        done = 1 if cut == "first" else windows - 1
        assert _epoch(model, opt, 1, path, stop_at=done * K) is None
        assert _windows_at(path) == (1, done)
    else:
        assert _windows_at(path) == (1, 0)
    model, opt = _fresh()
    assert _epoch(model, opt, 1, path) == uninterrupted[1][0]
    assert_identical(_state(model, opt), uninterrupted[1][1])


def test_resumed_twice_in_a_row_ends_identical(tmp_path, uninterrupted):
    reference, end = uninterrupted[0]
    path = tmp_path / "c.ckpt"
    model, opt = _fresh()
    assert _epoch(model, opt, 0, path, stop_at=3 * K) is None
    model, opt = _fresh()
    saved = path.read_bytes()
    assert _epoch(model, opt, 0, path, stop_at=0) is None  # cut again before any step: the file stands
    assert path.read_bytes() == saved
    model, opt = _fresh()
    assert _epoch(model, opt, 0, path, stop_at=(len(reference) - 3 - 2) * K) is None  # and again, 2 windows short
    assert _windows_at(path) == (0, len(reference) - 2)
    model, opt = _fresh()
    assert _epoch(model, opt, 0, path) == reference
    assert_identical(_state(model, opt), end)


def test_every_tensor_of_a_loaded_checkpoint_is_aligned(tmp_path):
    """The cause of the last-bit drift: restored tensors at addresses MKL treats differently."""
    path = tmp_path / "c.ckpt"
    model, opt = _fresh()
    _epoch(model, opt, 0, path, stop_at=4 * K)
    _, tensors = load_checkpoint(path)
    carried = [t for k, t in tensors.items() if k.startswith("carried.")]
    assert len(carried) == 2 and len(tensors) > 10
    assert all(t.data_ptr() % 64 == 0 for t in tensors.values()), {k: t.data_ptr() % 64 for k, t in tensors.items()}


# ---------------------------------------------------------------- a loop of one's own over SlotSwapLoader


class _Loop:
    """A hand-written truncated-BPTT loop: SlotSwapLoader's windows, carry_state between them,
    its own checkpoint from the parts' state dicts (loader as JSON, tensors through torch.save)."""

    def __init__(self):
        self.model, self.opt = _fresh()
        self.loader = SlotSwapLoader(CTX, TGT, batch_size=B, bptt=K, shuffle=True, seed=3)
        self.hidden = None
        self.losses: list[float] = []

    def train(self, epochs: int, stop_after: int | None = None) -> bool:
        """Train until ``epochs`` are done, or stop once ``stop_after`` windows were trained (True)."""
        seeds = (torch.zeros(1, 1, F), torch.zeros(1, 1, H))
        while self.loader.epoch < epochs:
            for w in self.loader:
                if self.hidden is None:
                    self.hidden = (seeds[0].expand(1, w.inputs.shape[1], F), seeds[1].expand(1, w.inputs.shape[1], H))
                state = carry_state(self.hidden, w.slot_map.numpy())
                costs = []

                def step(k, s):
                    out, h = self.model(s[0], w.inputs[k], s[1])
                    costs.append(nn.functional.pairwise_distance(out[0], w.targets[k]))
                    return out, h

                self.hidden = step_with_resets(w.inputs.shape[0], w.reset.view(*w.reset.shape, 1), state, seeds, step)
                loss = (torch.stack(costs) * w.valid).sum() / max(w.real_steps, 1)
                self.opt.zero_grad()
                loss.backward()
                self.opt.step()
                self.losses.append(loss.item())
                if len(self.losses) == stop_after:
                    return True  # the loader stands after this window: its state says so
            self.hidden = None
        return False

    def save(self) -> tuple[str, bytes]:
        buf = io.BytesIO()
        torch.save({"model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
                    "hidden": [h.detach() for h in self.hidden] if self.hidden is not None else None,
                    "rng": torch.get_rng_state(), "losses": torch.tensor(self.losses, dtype=torch.float64)}, buf)
        return json.dumps(self.loader.state_dict()), buf.getvalue()

    def load(self, saved: tuple[str, bytes]) -> None:
        loader_state, blob = saved
        state = torch.load(io.BytesIO(blob), weights_only=True)
        self.loader.load_state_dict(json.loads(loader_state))
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.hidden = None if state["hidden"] is None else tuple(state["hidden"])
        torch.set_rng_state(state["rng"])
        self.losses = state["losses"].tolist()


WINDOWS = len(SlotSwapLoader(CTX, TGT, batch_size=B, bptt=K, shuffle=True, seed=3))  # an epoch's


@pytest.mark.parametrize("cut", [1, WINDOWS // 2, WINDOWS - 1, WINDOWS, WINDOWS + 1, 2 * WINDOWS - 2])
def test_a_loop_of_ones_own_resumed_from_the_loaders_state_dict_ends_identical(cut):
    """Cuts after the first window, mid-epoch, before the last window of epoch 0, at the epoch
    boundary, after the first window of epoch 1 and late in epoch 1."""
    whole = _Loop()
    whole.train(2)
    assert len(whole.losses) == 2 * WINDOWS
    first = _Loop()
    assert first.train(2, stop_after=cut)
    saved = first.save()
    again = _Loop()  # a new process: its model and optimizer built and seeded as before
    again.load(saved)
    assert again.loader.state_dict() == json.loads(saved[0])
    assert not again.train(2)
    assert again.losses == whole.losses
    assert_identical(_state(again.model, again.opt), _state(whole.model, whole.opt))
