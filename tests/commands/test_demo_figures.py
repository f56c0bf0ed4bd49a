"""What `fastseq demo` prints and what it trains with, figure by figure: each number on its
lines is recomputed here from the corpus, the schedule and the losses train_bptt returned."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from fastseq.bptt import trainer
from fastseq.bptt.epoch import EpochSpec
from fastseq.bptt.loader import tail_order
from fastseq.bptt.schedule import SlotSchedule, epoch_order
from fastseq.cli import main
from fastseq.commands import _common
from fastseq.commands.demo import padded_steps
from fastseq.datasets.stdlib import stdlib_paragraphs


@pytest.fixture
def recorded(monkeypatch):
    """Run the real train_bptt, recording its arguments and losses, and every memory check."""
    calls, checks = [], []
    real_train, real_fits = trainer.train_bptt, _common.fits

    def train_bptt(model, contexts, targets, visible_seed, hidden_seed, opt, slots, bptt, **kwargs):
        losses = real_train(model, contexts, targets, visible_seed, hidden_seed, opt, slots, bptt, **kwargs)
        calls.append(dict(model=model, contexts=contexts, targets=targets, visible_seed=visible_seed,
                          hidden_seed=hidden_seed, opt=opt, slots=slots, bptt=bptt, losses=losses,
                          threads=torch.get_num_threads(), **kwargs))
        return losses

    def fits(nbytes, what):
        checks.append((nbytes, what))
        real_fits(nbytes, what)

    monkeypatch.setattr(trainer, "train_bptt", train_bptt)
    monkeypatch.setattr(_common, "fits", fits)
    before = torch.get_num_threads()
    yield calls, checks
    torch.set_num_threads(before)


def _demo(capsys, *options):
    assert main(["demo", "--quiet", *options]) == 0
    return capsys.readouterr().out.splitlines()


def test_every_figure_printed_is_recomputed_from_the_corpus_schedule_and_losses(capsys, recorded):
    calls, _ = recorded
    n, batch, bptt, seed = 60, 7, 5, 3
    # --max-length at a paragraph's exact length, with one a byte longer among the first paragraphs too
    early = {len(p) for p in stdlib_paragraphs(max_sequences=40)}
    longest = min(size for size in early if size + 1 in early and size > 20) - 1
    out = _demo(capsys, "--sequences", str(n), "--max-length", str(longest), "--batch", str(batch), "--bptt",
                str(bptt), "--hidden", "6", "--epochs", "2", "--random-seed", str(seed))
    paragraphs = stdlib_paragraphs(max_sequences=n, max_length=longest + 1)
    lengths = np.array([len(p) - 1 for p in paragraphs])
    real = int(lengths.sum())
    assert lengths.max() == longest  # the longest paragraphs allowed are kept, and no longer one
    assert re.fullmatch(rf"corpus: {n} paragraphs of Python \d+\.\d+'s standard library, {real} byte steps, "
                        rf"lengths {lengths.min()}\.\.{lengths.max()} \(median {int(np.median(lengths))}\)", out[0])
    assert len(out) == 5 and len(calls) == 2
    for epoch, call in enumerate(calls):
        order = tail_order(epoch_order(n, shuffle=True, seed=seed + epoch), lengths, batch, EpochSpec().tail)
        steps = sum(w.steps * w.width for w in SlotSchedule(lengths, batch, bptt, order, compact=True))
        padded = padded_steps(lengths, batch, seed + epoch)
        losses = call["losses"]
        tenth = max(1, len(losses) // 10)
        head, tail = np.mean(losses[:tenth]) / np.log(2), np.mean(losses[-tenth:]) / np.log(2)
        epoch_line, steps_line = out[1 + 2 * epoch], out[2 + 2 * epoch]
        assert re.fullmatch(rf"epoch {epoch + 1}: [\d,]+ real steps/s \([\d.]+ s, {len(losses)} windows\); "
                            rf"bits per byte {head:.2f} -> {tail:.2f} \(first -> last tenth of the windows\)",
                            epoch_line), epoch_line
        assert steps_line == (
            f"  slot-swap computed {steps:,} slot-steps for {real:,} real ones "
            f"({100 * (steps - real) / steps:.1f}% idle while draining); padded random batches of {batch} would "
            f"compute {padded:,} ({100 * (padded - real) / padded:.1f}% padding, {padded / steps:.1f}x the work)")
        assert call["seed"] == seed + epoch and call["shuffle"] is True
        assert steps != padded and head != tail


def test_train_bptt_gets_the_corpus_model_and_settings_asked_for(capsys, recorded):
    calls, _ = recorded
    _demo(capsys, "--sequences", "30", "--hidden", "5", "--batch", "4", "--bptt", "6", "--learning-rate", "0.02",
          "--threads", "1")
    (call,) = calls
    paragraphs = stdlib_paragraphs(max_sequences=30, max_length=2001)
    assert len(call["contexts"]) == len(call["targets"]) == 30
    for p, c, t in zip(paragraphs, call["contexts"], call["targets"]):
        assert c.dtype == t.dtype == np.float32 and c.shape == t.shape == (len(p) - 1, 1)
        np.testing.assert_array_equal(c[:, 0], p[:-1])  # the current byte
        np.testing.assert_array_equal(t[:, 0], p[1:])  # predicts the next one
    assert call["slots"] == 4 and call["bptt"] == 6 and call["device"] == torch.device("cpu")
    assert torch.equal(call["visible_seed"], torch.zeros(256))
    assert torch.equal(call["hidden_seed"], torch.zeros(1, 5))
    assert call["opt"].param_groups[0]["lr"] == 0.02 and isinstance(call["opt"], torch.optim.Adam)
    assert {p for g in call["opt"].param_groups for p in g["params"]} == set(call["model"].parameters())
    model = call["model"]
    assert model.embed.num_embeddings == 256 and model.rnn.hidden_size == 5 and model.head.out_features == 256
    assert call["threads"] == 1
    # the cost: cross entropy per step of the byte after, in nats
    logits = torch.randn(3, 256)
    target = torch.tensor([[1.0], [200.0], [7.0]])
    expected = torch.nn.functional.cross_entropy(logits, target[:, 0].long(), reduction="none")
    assert torch.allclose(call["cost_fn"](logits, target), expected) and call["cost_fn"](logits, target).shape == (3,)
    # the model reads one byte per slot and step, and carries the state it is given
    byte = torch.tensor([[65.0], [10.0]])
    with torch.no_grad():
        out, hidden = model(None, byte, torch.zeros(1, 2, 5))
        carried, _ = model(None, byte, hidden)
        again, _ = model(None, byte, torch.zeros(1, 2, 5))
    assert out.shape == (1, 2, 256) and hidden.shape == (1, 2, 5)
    assert torch.equal(out, again) and not torch.allclose(out, carried)
    with torch.no_grad():
        assert torch.equal(hidden, model.rnn(model.embed(byte[:, 0].long()).unsqueeze(0), torch.zeros(1, 2, 5))[1])


def test_the_model_goes_to_the_device_asked_for(capsys, monkeypatch):
    """On a device other than the CPU (here PyTorch's meta device, standing in for a GPU) the
    model is moved there and train_bptt is told the same device."""
    seen = {}

    def train_bptt(model, *args, device=None, **kwargs):
        seen.update(device=device, parameters={p.device for p in model.parameters()})
        return [1.0, 0.5]

    monkeypatch.setattr(_common, "torch_device", lambda text: torch.device("meta"))
    monkeypatch.setattr(trainer, "train_bptt", train_bptt)
    _demo(capsys, "--sequences", "10", "--hidden", "4", "--batch", "2", "--device", "meta")
    assert seen == {"device": torch.device("meta"), "parameters": {torch.device("meta")}}


def test_the_seed_sets_the_weights_and_the_order(capsys, recorded):
    calls, _ = recorded
    for seed in (0, 0, 1):
        _demo(capsys, "--sequences", "20", "--hidden", "4", "--batch", "3", "--bptt", "5", "--random-seed", str(seed))
    first, again, other = (c["losses"] for c in calls)
    assert first == again and first != other


def test_more_slots_than_paragraphs_use_one_slot_each(capsys, recorded):
    calls, checks = recorded
    out = _demo(capsys, "--sequences", "5", "--hidden", "4", "--batch", "9", "--bptt", "4")
    assert calls[0]["slots"] == 5
    assert "padded random batches of 9 would" in out[2]
    window = checks[1][0]
    assert window == 4 * 5 * (24.0 + 4 * (5 * 4 + 3 * 256 + 32))  # the checked window is that of 5 slots


def test_the_memory_checks_count_the_model_and_one_window(capsys, recorded):
    calls, checks = recorded
    _demo(capsys, "--sequences", "12", "--hidden", "7", "--batch", "3", "--bptt", "5")
    model = calls[0]["model"]
    weights = sum(p.numel() for p in model.parameters())
    assert checks[0] == (16.0 * weights, "--hidden 7")  # weights, gradients and Adam's two moments, float32
    # per step and slot: three int64 schedule entries, and the float32 activations kept for backward
    # (the GRU's three gates, its new and old state: 5h; the embedding, logits and their gradients)
    assert checks[1] == (5 * 3 * (24.0 + 4 * (5 * 7 + 3 * 256 + 32)), "--batch 3 with --bptt 5 and --hidden 7")
    assert len(checks) == 2


def test_sizes_beyond_memory_are_refused_before_training(capsys, recorded, monkeypatch):
    from fastseq._util import memory

    calls, checks = recorded
    monkeypatch.setattr(memory, "machine_memory", lambda: 10**6)
    assert main(["demo", "--quiet", "--hidden", "300"]) == 2  # 300 units: about 6 MB of weights and moments
    assert "--hidden 300 would need" in capsys.readouterr().err and not calls


def test_the_speed_is_the_real_steps_over_the_seconds_trained(capsys, recorded):
    import time

    start = time.perf_counter()
    out = _demo(capsys, "--sequences", "40", "--hidden", "6", "--batch", "4", "--bptt", "6")
    wall = time.perf_counter() - start
    real = sum(len(p) - 1 for p in stdlib_paragraphs(max_sequences=40, max_length=2001))
    rate, seconds = re.search(r"epoch 1: ([\d,]+) real steps/s \(([\d.]+) s,", out[1]).groups()
    rate, seconds = float(rate.replace(",", "")), float(seconds)
    assert 0 < seconds <= wall + 0.05
    assert abs(rate * seconds - real) <= 0.05 * rate + 1  # seconds are printed to 0.1 s


def test_a_short_epoch_averages_one_window_at_each_end_and_counts_its_idle_slots(capsys, recorded):
    """Under 20 windows a tenth is one window; a drain that leaves many slots idle shows its share."""
    calls, _ = recorded
    out = _demo(capsys, "--sequences", "9", "--hidden", "4", "--batch", "6", "--bptt", "40")
    losses = calls[0]["losses"]
    assert 2 <= len(losses) < 20
    head, tail = losses[0] / np.log(2), losses[-1] / np.log(2)
    assert f"bits per byte {head:.2f} -> {tail:.2f} " in out[1]
    lengths = np.array([len(p) - 1 for p in stdlib_paragraphs(max_sequences=9, max_length=2001)])
    order = tail_order(epoch_order(9, shuffle=True, seed=0), lengths, 6, EpochSpec().tail)
    steps = sum(w.steps * w.width for w in SlotSchedule(lengths, 6, 40, order, compact=True))
    idle = 100 * (steps - lengths.sum()) / steps
    assert idle >= 5 and f"({idle:.1f}% idle while draining)" in out[2]  # a share whose 1% error shows


def test_the_bar_counts_windows_under_the_demos_name(capsys, monkeypatch):
    from fastseq._util import progress

    bars = []
    real_bar = progress.progress_bar

    def progress_bar(enabled, **kwargs):
        bars.append((enabled, kwargs))
        return real_bar(enabled, **kwargs)

    monkeypatch.setattr(progress, "progress_bar", progress_bar)
    before = torch.get_num_threads()
    try:
        for quiet in ((), ("--quiet",)):
            assert main(["demo", "--sequences", "10", "--hidden", "4", "--batch", "3", "--bptt", "8", *quiet]) == 0
    finally:
        torch.set_num_threads(before)
    (shown, kwargs), (hidden, _) = bars
    assert shown is True and hidden is False
    assert kwargs["unit"] == "window" and kwargs["desc"] == "demo" and kwargs["total"] >= 1
    err = capsys.readouterr().err
    assert "demo: 100%" in err and f"{kwargs['total']}/{kwargs['total']} [" in err and "window/s" in err
