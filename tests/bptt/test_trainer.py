"""train_bptt: exactness of the slot-swap schedule, the drop-in contract, and bad input."""
import copy

import numpy as np
import pytest
import torch
from torch import nn

import fastseq
from _trainer_reference import reference_losses
from fastseq.bptt.schedule import SlotSchedule
from fastseq.bptt.store import SequenceStore

F, C, H = 2, 3, 5


class GRUDecoder(nn.Module):
    def __init__(self, layers=1):
        super().__init__()
        self.rnn = nn.GRU(F + C, H, layers)
        self.out = nn.Linear(H, F)

    def forward(self, visible, context, hidden):
        h, hidden = self.rnn(torch.cat([visible, context.unsqueeze(0)], -1), hidden)
        return self.out(h), hidden


class LSTMDecoder(GRUDecoder):
    def __init__(self, layers=2):
        super().__init__()
        self.rnn = nn.LSTM(F + C, H, layers)


def mse_per_slot(pred, target):
    return ((pred - target) ** 2).mean(-1)


def make_data(lengths, seed=0):
    g = torch.Generator().manual_seed(seed)
    ctx = [torch.randn(n, C, generator=g) for n in lengths]
    tgt = [torch.randn(n, F, generator=g) for n in lengths]
    return ctx, tgt


def seeds(model, layers):
    hseed = torch.randn(layers, H) * 0.1
    if isinstance(model, LSTMDecoder):
        hseed = (hseed, torch.randn(layers, H) * 0.1)
    return torch.randn(F) * 0.1, hseed


def detach(h):
    return tuple(x.detach() for x in h) if isinstance(h, tuple) else h.detach()


class GradSum(torch.optim.SGD):
    """lr=0 SGD that records each window's gradients (their sum is checked)."""

    def __init__(self, params):
        self.plist = list(params)
        super().__init__(self.plist, lr=0.0)
        self.total = [torch.zeros_like(p) for p in self.plist]

    def step(self, closure=None):
        for acc, p in zip(self.total, self.plist):
            if p.grad is not None:
                acc += p.grad


@pytest.mark.parametrize("cls,layers", [(GRUDecoder, 1), (LSTMDecoder, 2)])
@pytest.mark.parametrize("batch,bptt,teacher", [(3, 4, 0.0), (8, 2, 0.5), (1, 5, 0.0), (2, 3, 1.0)])
def test_train_bptt_equals_a_plain_loop_over_each_sequence_alone(cls, layers, batch, bptt, teacher):
    """Independent reference: each sequence fed alone, step by step, straight into the decoder,
    cut at the same window boundaries, each step's cost divided by its window's real steps."""
    torch.manual_seed(0)
    lengths = [7, 3, 1, 9, 4, 2, 6]
    ctx, tgt = make_data(lengths)
    model = cls(layers) if cls is LSTMDecoder else cls()
    vseed, hseed = seeds(model, layers)
    batched = copy.deepcopy(model)
    opt = GradSum(batched.parameters())
    losses = fastseq.train_bptt(batched, ctx, tgt, vseed, hseed, opt, batch, bptt, cost_fn=mse_per_slot,
                                clip_grad_norm=None, teacher_forcing=teacher, seed=4, tail="none")
    alone = copy.deepcopy(model)
    slots = min(batch, len(lengths))  # slots beyond the sequences are never allocated
    want = reference_losses(alone, ctx, tgt, vseed, hseed, [list(SlotSchedule(lengths, slots, bptt, compact=True))],
                            teacher, seed=4)
    np.testing.assert_allclose(losses, [float(x.detach()) for x in want], rtol=1e-5, atol=1e-7)
    sum(want).backward()
    for (name, p), acc in zip(alone.named_parameters(), opt.total):
        torch.testing.assert_close(acc, p.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_each_sequence_trained_once_and_loss_over_real_steps_only():
    lengths = [5, 1, 8, 2]
    ctx, tgt = make_data(lengths)
    model = GRUDecoder()
    vseed, hseed = seeds(model, 1)
    seen = []

    class Spy(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, v, c, h):
            seen.append(c.detach().clone())
            return self.inner(v, c, h)

    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    losses = fastseq.train_bptt(Spy(model), ctx, tgt, vseed, hseed, opt, batch_size=3, bptt=4)
    rows = torch.cat(seen)
    real = rows[rows.abs().sum(-1) > 0]
    assert real.shape[0] == sum(lengths)  # every step once; idle slots only read zeros
    want = torch.cat(ctx)
    assert sorted(map(tuple, real.tolist())) == sorted(map(tuple, want.tolist()))
    assert len(losses) == 2 and all(np.isfinite(losses))  # 8 steps of 3 slots, K=4


def test_training_reduces_loss_and_wrap_option_retrains():
    torch.manual_seed(0)
    lengths = list(np.random.default_rng(0).integers(1, 20, 40))
    ctx, _ = make_data(lengths)
    tgt = [c[:, :F] * 0.5 for c in ctx]  # learnable: a function of the context
    model = GRUDecoder()
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    first = np.mean(fastseq.train_bptt(model, ctx, tgt, torch.zeros(F), torch.zeros(1, H), opt, 8, 5,
                                       cost_fn=mse_per_slot, teacher_forcing=1.0, shuffle=True, seed=0))
    for epoch in range(8):
        last = np.mean(fastseq.train_bptt(model, ctx, tgt, torch.zeros(F), torch.zeros(1, H), opt, 8, 5,
                                          cost_fn=mse_per_slot, teacher_forcing=1.0, shuffle=True, seed=epoch))
    assert last < 0.5 * first
    wrapped = fastseq.train_bptt(model, ctx, tgt, torch.zeros(F), torch.zeros(1, H), opt, 8, 5,
                                 wrap_around=True)
    assert len(wrapped) == len(list(SlotSchedule(lengths, 8, 5, wrap_around=True))) > 0
    plain = fastseq.train_bptt(model, ctx, tgt, torch.zeros(F), torch.zeros(1, H), opt, 8, 5,
                               tail="none")
    assert len(plain) == len(list(SlotSchedule(lengths, 8, 5)))


def test_inputs_not_mutated():
    ctx, tgt = make_data([4, 2, 6])
    before = [c.clone() for c in ctx], [t.clone() for t in tgt]
    vseed, hseed = torch.zeros(F), torch.zeros(1, H)
    v0, h0 = vseed.clone(), hseed.clone()
    model = GRUDecoder()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    fastseq.train_bptt(model, ctx, tgt, vseed, hseed, opt, 2, 3, teacher_forcing=0.5, seed=1)
    for a, b in zip(ctx + tgt, before[0] + before[1]):
        assert torch.equal(a, b)
    assert torch.equal(vseed, v0) and torch.equal(hseed, h0)


def test_non_finite_loss_stops_and_keeps_last_finite_parameters():
    ctx, tgt = make_data([6, 6, 6, 6])
    tgt[2][1, 0] = float("nan")  # sequence 2 runs in steps 6-11: window 2 with K=3, B=2
    model = GRUDecoder()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    snapshots = []

    class Watch(torch.optim.SGD):
        def step(self, closure=None):
            super().step(closure)
            snapshots.append([p.detach().clone() for p in model.parameters()])

    opt = Watch(model.parameters(), lr=0.1)
    with pytest.raises(fastseq.bptt.NonFiniteLossError, match="Loss of window 2 is nan") as info:
        fastseq.train_bptt(model, ctx, tgt, torch.zeros(F), torch.zeros(1, H), opt, 2, 3)
    assert info.value.window == 2
    for p, q in zip(model.parameters(), snapshots[-1]):
        assert torch.equal(p, q)


def test_non_finite_loss_in_the_first_window_keeps_the_initial_parameters():
    ctx, tgt = make_data([6, 6])
    tgt[0][0, 0] = float("inf")
    model = GRUDecoder()
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(fastseq.bptt.NonFiniteLossError,
                       match=r"^Loss of window 0 is inf; .* parameters are as they were before training\. NaN or "
                             r"infinity in contexts or targets") as info:
        fastseq.train_bptt(model, ctx, tgt, torch.zeros(F), torch.zeros(1, H), opt, 2, 3)
    assert info.value.window == 0
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before))


@pytest.mark.parametrize("which", ["visible_seed", "hidden_seed"])
def test_non_finite_seeds_are_refused_by_name_before_training(which):
    ctx, tgt = make_data([3, 2])
    model = GRUDecoder()
    before = [p.detach().clone() for p in model.parameters()]
    seeds = {"visible_seed": torch.zeros(F), "hidden_seed": torch.zeros(1, H)}
    seeds[which] = seeds[which].clone()
    seeds[which].view(-1)[1] = float("nan")
    with pytest.raises(ValueError, match=rf"^Expected {which} to hold finite numbers, got nan at index"):
        fastseq.train_bptt(model, ctx, tgt, seeds["visible_seed"], seeds["hidden_seed"],
                           torch.optim.SGD(model.parameters(), lr=0.1), 2, 3)
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before))


def test_bad_inputs_name_the_argument():
    ctx, tgt = make_data([3, 2])
    model = GRUDecoder()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    v, h = torch.zeros(F), torch.zeros(1, H)
    call = fastseq.train_bptt
    with pytest.raises(ValueError, match="same number of sequences, got 2 and 1"):
        call(model, ctx, tgt[:1], v, h, opt, 2, 2)
    with pytest.raises(ValueError, match="same length, got 3 and 2 at i=0"):
        call(model, ctx, [tgt[1], tgt[1]], v, h, opt, 2, 2)
    with pytest.raises(ValueError, match="non-empty"):
        call(model, [ctx[0], ctx[0][:0]], tgt, v, h, opt, 2, 2)
    with pytest.raises(ValueError, match="batch_size"):
        call(model, ctx, tgt, v, h, opt, 0, 2)
    with pytest.raises(ValueError, match="bptt"):
        call(model, ctx, tgt, v, h, opt, 2, 0)
    with pytest.raises(ValueError, match=r"visible_seed to have shape \[F\], got shape \(1, 2\)"):
        call(model, ctx, tgt, v[None], h, opt, 2, 2)
    with pytest.raises(ValueError, match="hidden_seed"):
        call(model, ctx, tgt, v, torch.zeros(H), opt, 2, 2)
    with pytest.raises(ValueError, match="at least one sequence"):
        call(model, [], [], v, h, opt, 2, 2)
    with pytest.raises(TypeError, match="decoder"):
        call(lambda *a: a, ctx, tgt, v, h, opt, 2, 2)
    with pytest.raises(ValueError, match="teacher_forcing"):
        call(model, ctx, tgt, v, h, opt, 2, 2, teacher_forcing=2)
    with pytest.raises(ValueError, match="cost_fn"):
        call(model, ctx, tgt, v, h, opt, 2, 2, cost_fn=nn.MSELoss())

    class Wrong(GRUDecoder):
        def forward(self, visible, context, hidden):
            out, hidden = super().forward(visible, context, hidden)
            return out[0], hidden

    with pytest.raises(ValueError, match=r"decoder to return outputs of shape \[1, 2, F\]"):
        call(Wrong(), ctx, tgt, v, h, opt, 2, 2)


def test_accepts_numpy_lists_and_store():
    ctx, tgt = make_data([3, 5])
    model = GRUDecoder()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    a = fastseq.train_bptt(copy.deepcopy(model), [c.numpy() for c in ctx], [t.numpy() for t in tgt],
                           np.zeros(F), np.zeros((1, H)), torch.optim.SGD(model.parameters(), lr=0.0), 2, 2)
    b = fastseq.train_bptt(copy.deepcopy(model), SequenceStore.from_sequences(ctx),
                           SequenceStore.from_sequences(tgt), torch.zeros(F), torch.zeros(1, H), opt, 2, 2)
    np.testing.assert_allclose(a, b, rtol=1e-6)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    ctx, tgt = make_data([5, 3, 8, 2, 7])
    torch.manual_seed(0)
    model = GRUDecoder()
    gpu = copy.deepcopy(model).cuda()
    a = fastseq.train_bptt(model, ctx, tgt, torch.zeros(F), torch.zeros(1, H),
                           torch.optim.SGD(model.parameters(), lr=0.1), 2, 3)
    b = fastseq.train_bptt(gpu, ctx, tgt, torch.zeros(F), torch.zeros(1, H),
                           torch.optim.SGD(gpu.parameters(), lr=0.1), 2, 3)
    np.testing.assert_allclose(a, b, rtol=1e-4)


def test_decoder_outputs_checked_once_per_call(monkeypatch):
    """The shape check runs on a call's first step, not on every step."""
    import fastseq.bptt.trainer as trainer

    calls = []
    check = trainer._check_step
    monkeypatch.setattr(trainer, "_check_step", lambda *a: calls.append(1) or check(*a))
    ctx, tgt = make_data([5, 3, 7, 2, 6])
    model = GRUDecoder()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for epoch in range(2):
        losses = fastseq.train_bptt(model, ctx, tgt, torch.zeros(F), torch.zeros(1, H), opt, 2, 2, epoch=epoch)
        assert len(losses) > 3 and len(calls) == epoch + 1


def test_each_call_reads_the_lists_as_they_are_now():
    """Nothing of the caller's sequences is cached between calls: a list or an array changed in
    place is trained on as changed (the store is built afresh every call)."""
    ctx, tgt = make_data([4, 3, 5])
    arrays = [t.numpy().copy() for t in tgt]

    def run(c, t):
        model = GRUDecoder()
        torch.manual_seed(0)
        model.load_state_dict(GRUDecoder().state_dict())
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        return fastseq.train_bptt(model, c, t, torch.zeros(F), torch.zeros(1, H), opt, 2, 2)

    first = run(ctx, arrays)
    arrays[1][0] += 1.0  # in place, same list, same array objects
    changed = run(ctx, arrays)
    assert changed != first
    assert changed == run(ctx, [a.copy() for a in arrays])
    arrays.append(arrays.pop(0))  # the list reordered in place
    ctx.append(ctx.pop(0))
    assert run(ctx, arrays) == run(list(ctx), [a.copy() for a in arrays])


def test_no_silent_shape_mistakes():
    """Broadcasting used to hide these: each now stops before any optimizer step, naming the cause."""
    ctx, tgt = make_data([3, 2, 4])
    v, h = torch.zeros(F), torch.zeros(1, H)

    class OneFeature(GRUDecoder):  # F=1 outputs against F=2 targets: PairwiseDistance broadcast it
        def forward(self, visible, context, hidden):
            out, hidden = super().forward(visible, context, hidden)
            return out[..., :1], hidden

    class FirstSlotState(GRUDecoder):  # hidden of batch 1 broadcast over the slots
        def forward(self, visible, context, hidden):
            out, hidden = super().forward(visible, context, hidden)
            return out, hidden[:, :1]

    for decoder, match in [(OneFeature(), r"outputs of shape \[1, 2, F\] with F = 2"),
                           (FirstSlotState(), r"hidden state shaped like hidden_seed expanded to 2 slots")]:
        opt = torch.optim.SGD(decoder.parameters(), lr=0.1)
        before = [p.detach().clone() for p in decoder.parameters()]
        with pytest.raises(ValueError, match=match):
            fastseq.train_bptt(decoder, ctx, tgt, v, h, opt, 2, 2)
        assert all(torch.equal(a, b) for a, b in zip(before, decoder.parameters()))
    model = GRUDecoder()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"visible_seed to have shape \[F\] with F = 2.*got shape \(3,\)"):
        fastseq.train_bptt(model, ctx, tgt, torch.zeros(3), h, opt, 2, 2)
    with pytest.raises(ValueError, match=r"hidden_seed.*first step failed"):
        fastseq.train_bptt(model, ctx, tgt, v, torch.zeros(1, H + 1), opt, 2, 2)
    # a custom cost may compare logits with class ids: only the fed-back shape is fixed then
    logits = torch.zeros(4)

    class Logits(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn, self.out = nn.GRU(C, H), nn.Linear(H, 4)

        def forward(self, visible, context, hidden):
            y, hidden = self.rnn(context.unsqueeze(0), hidden)
            return self.out(y), hidden

    ids = [torch.randint(0, 4, (len(c), 1)).float() for c in ctx]
    dec = Logits()
    losses = fastseq.train_bptt(dec, ctx, ids, logits, h, torch.optim.SGD(dec.parameters(), lr=0.1), 2, 2,
                                cost_fn=lambda o, t: nn.functional.cross_entropy(o, t[:, 0].long(), reduction="none"))
    assert len(losses) > 0 and all(np.isfinite(losses))


def test_lists_read_in_place_train_exactly_as_a_copied_store():
    """The caller's arrays are read where they are (no copy): same losses and weights as the
    store built from copies, for lists that can be read in place and lists that are copied."""
    ctx, tgt = make_data([7, 2, 9, 4, 1, 6])
    strided = [np.repeat(c.numpy(), 2, axis=0)[::2] for c in ctx]  # not contiguous: copied

    def run(c, t):
        torch.manual_seed(3)
        model = GRUDecoder()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        losses = fastseq.train_bptt(model, c, t, torch.zeros(F), torch.zeros(1, H), opt, 3, 4, shuffle=True, seed=2)
        return losses, [p.detach().clone() for p in model.parameters()]

    want = run(SequenceStore.from_sequences(ctx), SequenceStore.from_sequences(tgt))
    for c, t in [(ctx, tgt), ([x.numpy() for x in ctx], [y.numpy() for y in tgt]), (strided, tgt)]:
        got = run(c, t)
        assert got[0] == want[0]
        assert all(torch.equal(a, b) for a, b in zip(got[1], want[1]))


def test_resets_by_slot_index_equal_resets_by_mask():
    """step_with_resets' two forms of reset (index_copy of the reset slots, the trainer's on
    the CPU; torch.where of the mask) give the same states and gradients, bit for bit."""
    from fastseq.bptt.state import step_with_resets
    from fastseq.bptt.trainer import _reset_slots

    g = torch.Generator().manual_seed(0)
    steps, width = 6, 5
    reset = torch.rand(steps, width, generator=g) < 0.3
    reset[2] = False
    weight = torch.randn(4, 4, generator=g, requires_grad=True)
    seeds = (torch.randn(1, 1, 4, generator=g), torch.randn(2, 1, 4, generator=g))

    def run(**kw):
        weight.grad = None
        state = (torch.randn(1, width, 4, generator=torch.Generator().manual_seed(1)),
                 torch.randn(2, width, 4, generator=torch.Generator().manual_seed(2)))
        seen = []

        def step(k, s):
            seen.append(s)
            return tuple(torch.tanh(p @ weight) for p in s)

        final = step_with_resets(steps, reset.view(steps, 1, width, 1), state, seeds, step, **kw)
        sum(p.sum() for p in final).backward()
        return seen, final, weight.grad.clone()

    by_mask = run(reset_steps=reset.any(1).tolist())
    by_slot = run(reset_slots=_reset_slots(reset.numpy()))
    assert _reset_slots(reset.numpy())[2] is None
    for a, b in zip(by_mask[0] + [by_mask[1]], by_slot[0] + [by_slot[1]]):
        assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert torch.equal(by_mask[2], by_slot[2])
