"""Exact resume: loader state, train_bptt checkpoints, a killed run resumed bit for bit, bad checkpoints."""
import random
import signal
import sys
import time

import numpy as np
import pytest
import torch
from torch import nn

from _children import killed_at_end, signal_and_wait
from fastseq.bptt import SlotSwapLoader, train_bptt

F, C, H = 3, 2, 8


class Decoder(nn.Module):
    def __init__(self, hidden=H):
        super().__init__()
        self.rnn = nn.GRU(F + C, hidden)
        self.drop = nn.Dropout(0.2)  # draws from torch's global generator: resumed too
        self.out = nn.Linear(hidden, F)

    def forward(self, visible, context, hidden):
        h, hidden = self.rnn(torch.cat([visible, context.unsqueeze(0)], -1), hidden)
        return self.out(self.drop(h)), hidden


class SlowDistance(nn.PairwiseDistance):
    """The default cost, slowed down in the child so a kill lands mid-epoch."""

    delay = 0.0

    def forward(self, a, b):
        time.sleep(self.delay)
        return super().forward(a, b)


def _data(n=24, seed=0):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 30, n)
    return ([rng.standard_normal((t, C)).astype(np.float32) for t in lengths],
            [rng.standard_normal((t, F)).astype(np.float32) for t in lengths])


def _train(path=None, delay=0.0, every=3, hidden=H, batch=4, bptt=5, data_seed=0):
    torch.manual_seed(0)
    np.random.seed(0)
    model = Decoder(hidden)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    cost = SlowDistance()
    cost.delay = delay
    ctx, tgt = _data(seed=data_seed)
    losses = train_bptt(model, ctx, tgt, torch.zeros(F), torch.zeros(1, hidden), opt, batch_size=batch, bptt=bptt,
                        cost_fn=cost, teacher_forcing=0.5, shuffle=True, seed=3, checkpoint=path,
                        checkpoint_every=every)
    return losses, model


def _killed_child(path):
    torch.set_num_threads(1)
    _train(path, delay=0.02)  # slow enough that the kill lands mid-epoch on an idle machine too


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_run_killed_at_a_random_window_resumes_bit_for_bit(tmp_path):
    torch.set_num_threads(1)
    reference, ref_model = _train()
    path = tmp_path / "run.ckpt"
    with killed_at_end(_killed_child, (str(path),), method="spawn") as child:
        deadline = time.time() + 120
        while not path.exists() and time.time() < deadline and child.is_alive():
            time.sleep(0.01)
        time.sleep(random.Random(2).uniform(0.0, 0.3))
        assert signal_and_wait(child, signal.SIGKILL) == -signal.SIGKILL
    from fastseq.bptt.checkpoint import load_checkpoint

    meta, _ = load_checkpoint(path)
    done = meta["loader"]["window"]
    assert meta["loader"]["epoch"] == 0 and 0 < done < len(reference)  # killed mid-epoch
    losses, model = _train(path)
    assert losses == reference  # every window's loss, bit for bit
    for a, b in zip(model.parameters(), ref_model.parameters()):
        # bit for bit: tensors read from a checkpoint get torch's aligned memory (MKL rounds
        # products of unaligned inputs differently; see fastseq/_util/files.py)
        assert torch.equal(a, b)
    again, _ = _train(path)  # the final checkpoint: the epoch is done
    assert again == reference


def test_loader_state_resumes_mid_epoch_and_refuses_other_settings():
    ctx, tgt = _data()
    loader = SlotSwapLoader(ctx, tgt, batch_size=3, bptt=4, shuffle=True, seed=5)
    full = [w.inputs.clone() for w in loader]  # epoch 0
    first = SlotSwapLoader(ctx, tgt, batch_size=3, bptt=4, shuffle=True, seed=5)
    it = iter(first)
    for _ in range(7):
        next(it)
    state = first.state_dict()
    assert (state["epoch"], state["window"]) == (0, 7)
    second = SlotSwapLoader(ctx, tgt, batch_size=3, bptt=4, shuffle=True, seed=5)
    second.load_state_dict(state)
    rest = [w.inputs.clone() for w in second]  # windows share a ring of buffers: keep copies
    assert len(rest) == len(full) - 7 and all(torch.equal(a, b) for a, b in zip(rest, full[7:]))
    assert second.state_dict()["epoch"] == 1
    other = SlotSwapLoader(ctx, tgt, batch_size=2, bptt=4, shuffle=True, seed=6)
    with pytest.raises(ValueError, match=r"batch_size \(saved 3, here 2\), seed \(saved 5, here 6\)"):
        other.load_state_dict(state)


def test_bad_checkpoints_are_refused_before_any_step(tmp_path):
    path = tmp_path / "run.ckpt"
    _train(path, every=2)
    saved = path.read_bytes()
    cases = [({"bptt": 6}, "bptt"), ({"batch": 5}, "batch_size"), ({"data_seed": 1}, "data.contexts.crc32"),
             ({"hidden": 9}, "model.tensors.rnn.weight_hh_l0")]
    for kwargs, name in cases:
        with pytest.raises(ValueError, match=rf"Expected checkpoint .* to come from this training run, but .*{name}"):
            _train(path, **kwargs)
        assert path.read_bytes() == saved  # left intact
    path.write_bytes(saved[: len(saved) // 2])
    with pytest.raises(ValueError, match="unreadable file"):
        _train(path)
    assert path.read_bytes() == saved[: len(saved) // 2]


class _Interrupt(Exception):
    pass


class PairwiseDistance(nn.PairwiseDistance):
    """The default cost under its own name (a run's settings record the cost's class name),
    able to stop a run after a number of calls, as a crash would."""

    left: int | None = None

    def forward(self, a, b):
        if PairwiseDistance.left is not None:
            PairwiseDistance.left -= 1
            if PairwiseDistance.left < 0:
                raise _Interrupt
        return super().forward(a, b)


def _run_with_lr(path, lr, epoch=0, stop_after=None):
    torch.manual_seed(0)
    np.random.seed(0)
    model = Decoder()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    ctx, tgt = _data()
    PairwiseDistance.left = stop_after
    try:
        train_bptt(model, ctx, tgt, torch.zeros(F), torch.zeros(1, H), opt, batch_size=4, bptt=5,
                   cost_fn=PairwiseDistance(), shuffle=True, seed=3, checkpoint=path, checkpoint_every=2, epoch=epoch)
    finally:
        PairwiseDistance.left = None
    return opt


def test_a_changed_learning_rate_is_refused_mid_epoch_and_applied_at_a_new_epoch(tmp_path, caplog):
    import logging

    path = tmp_path / "run.ckpt"
    with pytest.raises(_Interrupt):
        _run_with_lr(path, 0.01, stop_after=4 * 5 + 2)  # killed in window 5: the file holds window 4
    saved = path.read_bytes()
    with pytest.raises(ValueError, match=r"optimizer group 0 lr \(checkpoint 0\.01, now 0\.5\)"):
        _run_with_lr(path, 0.5)
    assert path.read_bytes() == saved  # refused before any step, the file left as it was
    assert _run_with_lr(path, 0.01).param_groups[0]["lr"] == 0.01  # the same settings resume
    # the next epoch starts from the finished one with the caller's (scheduled) rate, named in a line
    with caplog.at_level(logging.INFO, logger="fastseq.bptt"):
        opt = _run_with_lr(path, 0.005, epoch=1)
    assert opt.param_groups[0]["lr"] == 0.005
    assert any("lr (checkpoint 0.01, now 0.005)" in r.getMessage() for r in caplog.records)
