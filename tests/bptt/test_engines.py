"""Sequence mode: per-sequence exactness against feeding each sequence alone, both engines."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from fastseq.bptt.loader import SlotSwapLoader
from fastseq.bptt.engines import masked_mean, run_window
from fastseq.bptt.state import carry_state
from fastseq.bptt.plans import segment_plan

ENGINES = ["packed", "dense", "steps", "segments"]


def _modules():
    torch.manual_seed(0)
    return {
        "rnn_relu": nn.RNN(3, 5, nonlinearity="relu"),
        "gru2": nn.GRU(3, 6, num_layers=2),
        "lstm2_proj": nn.LSTM(3, 6, num_layers=2, proj_size=4),
        "gru_nobias": nn.GRU(3, 4, bias=False),
    }


def _data(n=14, seed=0, hidden=6):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 13, size=n)
    lengths[3] = 30  # one long sequence spanning many windows
    xs = [rng.standard_normal((int(t), 3)) for t in lengths]
    ws = [rng.standard_normal((int(t), hidden)) for t in lengths]
    return xs, ws


def _seed_for(rnn, kind):
    if kind is None:
        return None
    g = torch.Generator().manual_seed(1)
    sizes = [rnn.proj_size or rnn.hidden_size, rnn.hidden_size] if isinstance(rnn, nn.LSTM) else [rnn.hidden_size]
    parts = tuple(torch.randn(rnn.num_layers, h, generator=g, dtype=torch.float64) for h in sizes)
    return parts if len(parts) > 1 else parts[0]


def _batched(rnn, xs, ws, engine, compact, seed, batch=4, bptt=5):
    out_size = rnn.proj_size or rnn.hidden_size
    loader = SlotSwapLoader(xs, [w[:, :out_size] for w in ws], batch_size=batch, bptt=bptt,
                            compact=compact, tail="none")
    rnn.zero_grad()
    per_seq = {i: [] for i in range(len(xs))}
    boundaries = {i: [] for i in range(len(xs))}
    state = None
    for w in loader:
        out, state = run_window(rnn, w.inputs, w.reset, state, valid=w.valid, reset_state=seed,
                                slot_map=w.slot_map, plan=w.plan, engine=engine)
        loss = (out * w.targets * w.valid.unsqueeze(-1)).sum()
        loss.backward()
        seq = w.schedule.sequence
        for b in range(seq.shape[1]):
            for k in range(seq.shape[0]):
                if seq[k, b] >= 0:
                    per_seq[int(seq[k, b])].append(out[k, b].detach())
        ids = np.unique(seq[seq >= 0])
        for i in ids:
            boundaries[int(i)].append(int((seq == i).sum()))
    grads = [p.grad.clone() for p in rnn.parameters()]
    return {i: torch.stack(v) for i, v in per_seq.items()}, boundaries, grads


def _alone(rnn, xs, ws, boundaries, seed):
    """Feed each sequence alone through the plain module, cut at the same window boundaries."""
    out_size = rnn.proj_size or rnn.hidden_size
    rnn.zero_grad()
    outs = {}
    for i, x in enumerate(xs):
        x = torch.from_numpy(x).unsqueeze(1)
        w = torch.from_numpy(ws[i][:, :out_size]).unsqueeze(1)
        state = None
        if seed is not None:
            state = tuple(s.unsqueeze(1) for s in seed) if isinstance(seed, tuple) else seed.unsqueeze(1)
        pieces, start = [], 0
        for n in boundaries[i]:
            out, state = rnn(x[start:start + n], state)
            (out * w[start:start + n]).sum().backward()
            state = carry_state(state)
            pieces.append(out.detach()[:, 0])
            start += n
        outs[i] = torch.cat(pieces)
    return outs, [p.grad.clone() for p in rnn.parameters()]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name", ["rnn_relu", "gru2", "lstm2_proj", "gru_nobias"])
@pytest.mark.parametrize("compact,seeded", [(True, True), (False, False)])
def test_each_sequence_matches_feeding_it_alone(engine, name, compact, seeded):
    rnn = _modules()[name].double()
    xs, ws = _data()
    seed = _seed_for(rnn, "random" if seeded else None)
    if engine == "dense" and isinstance(rnn, nn.LSTM):
        with pytest.raises(ValueError, match="nn.GRU or nn.RNN for engine='dense'"):
            _batched(rnn, xs, ws, engine, compact, seed)
        return
    got, boundaries, grads = _batched(rnn, xs, ws, engine, compact, seed)
    want, want_grads = _alone(rnn, xs, ws, boundaries, seed)
    assert sum(len(b) for b in boundaries.values()) > len(xs)  # some sequences span windows
    for i in range(len(xs)):
        torch.testing.assert_close(got[i], want[i], rtol=1e-9, atol=1e-10)
    for g, w in zip(grads, want_grads):
        torch.testing.assert_close(g, w, rtol=1e-8, atol=1e-10)


def test_engines_agree_in_float32_with_dropout_off():
    torch.manual_seed(0)
    rnn = nn.LSTM(3, 8, num_layers=3)
    xs, ws = _data(n=20, seed=3, hidden=8)
    xs = [x.astype(np.float32) for x in xs]
    ws = [w.astype(np.float32) for w in ws]
    a, _, ga = _batched(rnn, xs, ws, "packed", True, None, batch=5, bptt=4)
    b, _, gb = _batched(rnn, xs, ws, "steps", True, None, batch=5, bptt=4)
    for i in a:
        torch.testing.assert_close(a[i], b[i], rtol=1e-4, atol=1e-5)
    for x, y in zip(ga, gb):
        torch.testing.assert_close(x, y, rtol=1e-3, atol=1e-4)


def _plan_reference(reset, valid):
    """Plain loops: the pieces of each slot, in slot order, with their window positions."""
    k_steps, width = reset.shape
    pieces = []
    for b in range(width):
        current = None
        for k in range(k_steps):
            if not valid[k, b]:
                current = None
                continue
            if current is None or reset[k, b]:
                current = [b, bool(reset[k, b]), []]
                pieces.append(current)
            current[2].append(k * width + b)
    return pieces


@st.composite
def _masks(draw):
    k = draw(st.integers(1, 7))
    w = draw(st.integers(1, 6))
    reset = np.array(draw(st.lists(st.booleans(), min_size=k * w, max_size=k * w))).reshape(k, w)
    ends = np.array(draw(st.lists(st.integers(0, k), min_size=w, max_size=w)))
    valid = np.arange(k)[:, None] < ends[None, :]  # idle slots stay idle, as the scheduler makes them
    return reset, valid


@settings(max_examples=80, deadline=None)
@given(_masks())
def test_segment_plan_matches_plain_reference(masks):
    reset, valid = masks
    plan = segment_plan(reset, valid)
    pieces = _plan_reference(reset, valid)
    assert plan.pieces == len(pieces)
    assert int(plan.batch_sizes.sum()) == int(valid.sum()) == plan.source.shape[0]
    bs = plan.batch_sizes.numpy()
    assert np.all(np.diff(bs) <= 0) and (bs.size == 0 or bs[-1] >= 1)
    offsets = np.concatenate([[0], np.cumsum(bs)])
    lengths = sorted((len(p[2]) for p in pieces), reverse=True)
    assert [int((bs > r).sum()) for r in range(len(pieces))] == lengths
    source, target = plan.source.numpy(), plan.target.numpy()
    for rank in range(len(pieces)):
        rows = [source[offsets[t] + rank] for t in range(lengths[rank])]
        match = [p for p in pieces if p[2] == rows]
        assert len(match) == 1
        assert plan.piece_slot[rank].item() == match[0][0]
        assert plan.piece_reset[rank].item() == match[0][1]
    flat_valid = valid.reshape(-1)
    assert np.all(target[~flat_valid] == source.shape[0])
    assert np.array_equal(source[target[flat_valid]], np.nonzero(flat_valid)[0])


def test_segment_plan_rejects_resuming_without_reset():
    valid = np.array([[True], [False], [True]])
    with pytest.raises(ValueError, match="resume with a reset"):
        segment_plan(np.zeros((3, 1), bool), valid)


def test_inputs_and_state_are_not_mutated():
    torch.manual_seed(0)
    rnn = nn.GRU(2, 3)
    x = torch.randn(4, 2, 2)
    reset = torch.tensor([[True, True], [False, True], [True, False], [False, False]])
    state = torch.randn(1, 2, 3)
    copies = x.clone(), reset.clone(), state.clone()
    for engine in ENGINES:
        run_window(rnn, x, reset, state, engine=engine)
    for a, b in zip((x, reset, state), copies):
        assert torch.equal(a, b)


def test_bad_arguments_name_what_was_expected():
    rnn = nn.GRU(2, 3)
    x = torch.randn(4, 2, 2)
    reset = torch.zeros(4, 2, dtype=torch.bool)
    with pytest.raises(TypeError, match="nn.RNN, nn.GRU or nn.LSTM"):
        run_window(nn.Linear(2, 3), x, reset)
    with pytest.raises(ValueError, match="batch_first=False"):
        run_window(nn.GRU(2, 3, batch_first=True), x, reset)
    with pytest.raises(ValueError, match="unidirectional"):
        run_window(nn.GRU(2, 3, bidirectional=True), x, reset)
    with pytest.raises(ValueError, match=r"state of shape \(1, 2, 3\)"):
        run_window(rnn, x, reset, torch.zeros(1, 5, 3))
    with pytest.raises(ValueError, match=r"reset_state of shape \(1, 3\)"):
        run_window(rnn, x, reset, reset_state=torch.zeros(3))
    with pytest.raises(ValueError, match="engine"):
        run_window(rnn, x, reset, engine="fast")
    with pytest.raises(ValueError, match=r"reset of shape \(4, 2\)"):
        run_window(rnn, x, torch.zeros(3, 2, dtype=torch.bool), engine="steps")


def test_masked_mean_counts_real_steps_only():
    values = torch.tensor([[1.0, 100.0], [3.0, 100.0]])
    valid = torch.tensor([[True, False], [True, False]])
    assert masked_mean(values, valid).item() == 2.0
    assert masked_mean(values.unsqueeze(-1).expand(2, 2, 3), valid).item() == 2.0


def test_plain_training_loop_learns_a_next_byte_task():
    """The README loop: loader + run_window + masked loss + manual optimizer step, two epochs."""
    from fastseq.bptt import SlotSwapLoader, masked_mean, run_window
    from fastseq.datasets.stdlib import stdlib_paragraphs

    torch.manual_seed(0)
    seqs = stdlib_paragraphs(max_sequences=60, min_length=3, max_length=200)
    xs, ys = [s[:-1] for s in seqs], [s[1:] for s in seqs]
    emb, rnn, head = nn.Embedding(256, 16), nn.GRU(16, 32), nn.Linear(32, 256)
    params = [*emb.parameters(), *rnn.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, lr=1e-2)
    loader = SlotSwapLoader(xs, ys, batch_size=8, bptt=16, shuffle=True, seed=0)
    epoch_loss = []
    for _ in range(3):
        state, total, steps = None, 0.0, 0
        for w in loader:
            out, state = run_window(rnn, emb(w.inputs.long()), w.reset, state,
                                    valid=w.valid, slot_map=w.slot_map, plan=w.plan)
            ce = nn.functional.cross_entropy(head(out).flatten(0, 1), w.targets.flatten().long(), reduction="none")
            loss = masked_mean(ce.view(w.targets.shape), w.valid)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            total += loss.item() * w.real_steps
            steps += w.real_steps
        assert steps == loader.total_steps
        epoch_loss.append(total / steps)
    assert epoch_loss[-1] < 0.8 * epoch_loss[0]


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_cuda_loader_and_auto_engine_match_cpu(kind):
    """Pinned ring, prefetch thread and the packed (cuDNN) engine against the CPU path."""
    import copy

    torch.manual_seed(0)
    rnn = nn.GRU(3, 8, num_layers=2) if kind == "gru" else nn.LSTM(3, 8, num_layers=2)
    xs, ws = _data(n=40, seed=3, hidden=8)
    xs = [x.astype(np.float32) for x in xs]
    ws = [w.astype(np.float32) for w in ws]

    def epoch(module, device):
        loader = SlotSwapLoader(xs, ws, batch_size=5, bptt=4, device=device, tail="none")
        state, outs = None, []
        for w in loader:
            out, state = run_window(module, w.inputs, w.reset, state, valid=w.valid,
                                    slot_map=w.slot_map, plan=w.plan)
            (out * w.targets * w.valid.unsqueeze(-1)).sum().backward()
            outs.append(out.detach().cpu())
        return outs, [p.grad.cpu() for p in module.parameters()]

    gpu = copy.deepcopy(rnn).cuda()  # copied before the CPU epoch fills .grad
    cpu_out, cpu_grads = epoch(rnn, "cpu")
    gpu_out, gpu_grads = epoch(gpu, "cuda")
    assert len(cpu_out) == len(gpu_out)
    for a, b in zip(cpu_out, gpu_out):
        torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-4)
    for a, b in zip(cpu_grads, gpu_grads):
        torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-3)


def test_run_window_seed_keyword_is_the_deprecated_name_of_reset_state():
    torch.manual_seed(0)
    rnn = nn.GRU(3, 4)
    x, start = torch.randn(5, 2, 3), torch.randn(1, 4)
    reset = torch.tensor([[True, True], [False, False], [True, False], [False, True], [False, False]])
    want, _ = run_window(rnn, x, reset, reset_state=start, engine="steps")
    with pytest.deprecated_call(match="reset_state"):
        got, _ = run_window(rnn, x, reset, seed=start, engine="steps")
    torch.testing.assert_close(got, want)
    with pytest.raises(TypeError, match="reset_state or its former name seed"):
        run_window(rnn, x, reset, reset_state=start, seed=start)
