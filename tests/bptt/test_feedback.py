"""FeedbackGRU / FeedbackLSTM: the fused window equals the same module stepped by train_bptt's
normal path, the Numba kernels equal their twins, and train_bptt trains the same either way."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from fastseq.bptt import (
    FeedbackGRU,
    FeedbackLSTM,
    SlotSwapLoader,
    _feedback_nb,
    _feedback_py,
    _slot_threads,
    feedback,
    train_bptt,
    trainer,
)
from fastseq.bptt._fused_nb import n_blocks

F, C, H = 3, 2, 5
CELLS = {"gru": FeedbackGRU, "lstm": FeedbackLSTM}
TOL = {torch.float64: dict(rtol=1e-10, atol=1e-10), torch.float32: dict(rtol=2e-4, atol=2e-5)}


def _decoder(cell, dtype=torch.float64, context=C, seed=0):
    torch.manual_seed(seed)
    return CELLS[cell](F, context, H).to(dtype)


def _hidden_seed(cell, dtype, rng):
    parts = tuple(torch.from_numpy(rng.standard_normal((1, H))).to(dtype) for _ in range(1 + (cell == "lstm")))
    return parts if cell == "lstm" else parts[0]


def _data(lengths, dtype, context=C, seed=1):
    g = torch.Generator().manual_seed(seed)
    ctx = [torch.randn(n, context, generator=g, dtype=dtype) for n in lengths]
    tgt = [torch.randn(n, F, generator=g, dtype=dtype) for n in lengths]
    return ctx, tgt


def _windows(lengths, batch, bptt, dtype, context=C):
    """Loader windows with resets mid-window (several sequences per slot)."""
    ctx, tgt = _data(lengths, dtype, context)
    return list(SlotSwapLoader(ctx, tgt, batch, bptt, tail="none"))


def _run_windows(dec, windows, seeds, teacher_forcing, cost_fn, fused):
    """Every window through trainer._window_cost (one backward each); losses, grads and final states."""
    dec.fused = fused
    gen = torch.Generator().manual_seed(7) if teacher_forcing > 0 else None
    step = trainer._Step(cost_fn, None, teacher_forcing, gen)
    carried = seeds.expanded(windows[0].reset.shape[1])
    out = []
    for w in windows:
        carried = carried.carried(w.schedule.slot_map)
        dec.zero_grad(set_to_none=True)
        total, carried = trainer._window_cost(dec, w, carried, seeds, step, seeds.visible.dtype)
        total.backward()
        out.append((total.detach(), [p.grad.clone() for p in dec.parameters()],
                    [carried.visible.detach().clone()] + [h.detach().clone() for h in carried.hidden]))
    return out


def _seeds(cell, dtype, rng=None):
    rng = rng or np.random.default_rng(3)
    vseed = torch.from_numpy(rng.standard_normal(F)).to(dtype)
    return trainer._seeds(vseed, _hidden_seed(cell, dtype, rng), F, torch.device("cpu"), dtype)


def _mse(pred, target):
    return ((pred - target) ** 2).mean(-1)


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("teacher_forcing, fold", [(0.0, True), (0.0, False), (0.5, True), (1.0, True)])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_fused_windows_equal_the_stepped_path(cell, teacher_forcing, fold, dtype, monkeypatch):
    """Without teacher forcing the folded kernels run (fold) or the general ones (not fold)."""
    monkeypatch.setattr(feedback, "FOLD", fold)
    windows = _windows([7, 3, 11, 1, 5, 9, 2, 6], batch=3, bptt=4, dtype=dtype)
    assert any(w.reset[1:].any() for w in windows)  # resets mid-window are exercised
    seeds = _seeds(cell, dtype)
    dec = _decoder(cell, dtype)
    cost = nn.PairwiseDistance()
    fused = _run_windows(dec, windows, seeds, teacher_forcing, cost, True)
    stepped = _run_windows(dec, windows, seeds, teacher_forcing, cost, False)
    for (lf, gf, sf), (ls, gs, ss) in zip(fused, stepped):
        torch.testing.assert_close(lf, ls, **TOL[dtype])
        for a, b in zip(gf, gs):
            torch.testing.assert_close(a, b, **TOL[dtype])
        for a, b in zip(sf, ss):
            torch.testing.assert_close(a, b, **TOL[dtype])


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_any_cost_fn_and_no_context(cell):
    windows = _windows([5, 8, 3, 4], batch=2, bptt=3, dtype=torch.float64, context=0)
    seeds = _seeds(cell, torch.float64)
    dec = _decoder(cell, context=0)
    fused = _run_windows(dec, windows, seeds, 0.5, _mse, True)
    stepped = _run_windows(dec, windows, seeds, 0.5, _mse, False)
    for (lf, gf, _), (ls, gs, _) in zip(fused, stepped):
        torch.testing.assert_close(lf, ls, **TOL[torch.float64])
        for a, b in zip(gf, gs):
            torch.testing.assert_close(a, b, **TOL[torch.float64])


def _random_window(cell, dtype, rng, k_steps=6, width=4, context=True):
    """Kernel arguments in the kernels' layout: hidden side units first, visible side slots first."""
    g = 3 if cell == "gru" else 4
    arr = lambda *shape: rng.standard_normal(shape).astype(dtype)  # noqa: E731
    gc, target = arr(k_steps if context else 0, g * H, width), arr(k_steps, width, F)
    teacher, reset = rng.random((k_steps, width)) < 0.4, rng.random((k_steps, width)) < 0.3
    weights = [0.5 * arr(g * H, F), 0.5 * arr(g * H, H), arr(g * H), arr(g * H), 0.5 * arr(H, F), arr(F)]
    n_states = 2 if cell == "gru" else 3
    states, seeds = [arr(width, F)] + [arr(H, width) for _ in range(n_states - 1)], \
        [arr(F)] + [arr(H) for _ in range(n_states - 1)]
    return gc, target, teacher, reset, weights, states, seeds


def _kernel_run(mod, cell, dtype, window, grads):
    gc, target, teacher, reset, weights, states, seeds = window
    k_steps, width = reset.shape
    g = 3 if cell == "gru" else 4
    new = lambda *shape: np.zeros(shape, dtype)  # noqa: E731
    ys, vprev = new(k_steps, width, F), new(k_steps, width, F)
    hs, hprev = new(k_steps, H, width), new(k_steps, H, width)
    dys, dhs = grads
    dy, dgi, dv0, dh0, dsv, dsh = new(k_steps, width, F), new(k_steps, g * H, width), new(width, F), new(H, width), \
        new(F), new(H)
    w_iv, w_hh, _, _, w_out_t, _ = weights
    w_back = (w_iv, np.ascontiguousarray(w_hh.T), w_out_t)
    if cell == "gru":
        gates = tuple(new(k_steps, H, width) for _ in range(4))
        mod.gru_forward(gc, target, teacher, reset, *weights, *states, *seeds, ys, hs, vprev, hprev, gates)
        dgh = new(k_steps, g * H, width)
        mod.gru_backward(dys, dhs, teacher, reset, *w_back, hprev, gates, dy, dgi, dgh, dv0, dh0, dsv, dsh)
        return [ys, hs, vprev, hprev, *gates, dy, dgi, dgh, dv0, dh0, dsv, dsh]
    cs, cprev = new(k_steps, H, width), new(k_steps, H, width)
    gates = tuple(new(k_steps, H, width) for _ in range(5))
    mod.lstm_forward(gc, target, teacher, reset, *weights, *states, *seeds, ys, hs, cs, vprev, hprev, cprev, gates)
    dc_last, dc0, dsc = grads[1][0].copy(), new(H, width), new(H)
    mod.lstm_backward(dys, dhs, dc_last, teacher, reset, *w_back, cprev, gates, dy, dgi, dv0, dh0, dc0, dsv, dsh, dsc)
    return [ys, hs, cs, vprev, hprev, cprev, *gates, dy, dgi, dv0, dh0, dc0, dsv, dsh, dsc]


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("width, context", [(1, True), (4, True), (37, True), (5, False)])
def test_numba_kernels_equal_their_twins(cell, dtype, width, context):
    rng = np.random.default_rng(5)
    window = _random_window(cell, dtype, rng, width=width, context=context)
    k_steps = window[3].shape[0]
    grads = tuple(rng.standard_normal(shape).astype(dtype) for shape in ((k_steps, width, F), (k_steps, H, width)))
    got = _kernel_run(_feedback_nb, cell, dtype, window, grads)
    want = _kernel_run(_feedback_py, cell, dtype, window, grads)
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-5)
    for i, (a, b) in enumerate(zip(got, want)):
        np.testing.assert_allclose(a, b, err_msg=f"array {i}", **tol)


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_fused_window_gradcheck(cell):
    """Every input's gradient (weights, carried state, seeds, context part) against finite differences."""
    rng = np.random.default_rng(11)
    g = 3 if cell == "gru" else 4
    k_steps, width = 4, 3
    t = lambda *shape: torch.from_numpy(0.5 * rng.standard_normal(shape)).requires_grad_()  # noqa: E731
    reset = torch.from_numpy(rng.random((k_steps, width)) < 0.3)
    teacher = torch.from_numpy(rng.random((k_steps, width)) < 0.4)
    target = torch.from_numpy(rng.standard_normal((k_steps, width, F)))
    lstm = cell == "lstm"
    inputs = (reset, teacher, target, t(k_steps, g * H, width), t(g * H, F), t(g * H, H), t(g * H), t(g * H), t(F, H),
              t(F), t(width, F), t(H, width), t(H, width) if lstm else None, t(F), t(H), t(H) if lstm else None)
    assert torch.autograd.gradcheck(feedback._FeedbackWindow.apply, inputs)


def _folded_run(mod, cell, dtype, rng, width, context, k_steps=6, costed=True, fed_back=False):
    """``costed=False``: the hidden states' gradients are zero (outputs not costed); ``fed_back``:
    the carried visible input is the readout of the carried state (no correction, corr0 = 0)."""
    g = 3 if cell == "gru" else 4
    rows = g * H
    arr = lambda *shape: rng.standard_normal(shape).astype(dtype)  # noqa: E731
    new = lambda *shape: np.zeros(shape, dtype)  # noqa: E731
    gc, reset = arr(k_steps if context else 0, rows, width), rng.random((k_steps, width)) < 0.3
    wcat, bcat, corr0, corr_reset = 0.5 * arr(4 * H, H), arr(4 * H), arr(rows, width) * (not fed_back), arr(rows)
    states, seeds = [arr(H, width) for _ in range(g - 2)], [arr(H) for _ in range(g - 2)]
    hs, hprev, dhs = new(k_steps, H, width), new(k_steps, H, width), arr(k_steps, H, width) * costed
    gates = tuple(new(k_steps, H, width) for _ in range(g + 1))
    dpre, dh0, dseed_h, dcorr0, dcorr_reset = new(k_steps, 4 * H, width), new(H, width), new(H), new(rows, width), \
        new(rows)
    wcat_t = np.ascontiguousarray(wcat.T)
    if cell == "gru":
        mod.gru_folded_forward(gc, reset, wcat, bcat, corr0, corr_reset, *states, *seeds, hs, hprev, gates)
        mod.gru_folded_backward(dhs, reset, wcat_t, hprev, gates, dpre, dh0, dseed_h, dcorr0, dcorr_reset)
        return [hs, hprev, *gates, dpre, dh0, dseed_h, dcorr0, dcorr_reset]
    cs, cprev, dc0, dseed_c = new(k_steps, H, width), new(k_steps, H, width), new(H, width), new(H)
    mod.lstm_folded_forward(gc, reset, wcat, bcat, corr0, corr_reset, *states, *seeds, hs, cs, hprev, cprev, gates)
    mod.lstm_folded_backward(dhs, arr(H, width), reset, wcat_t, cprev, gates, dpre, dh0, dc0, dseed_h, dseed_c,
                             dcorr0, dcorr_reset)
    return [hs, cs, hprev, cprev, *gates, dpre, dh0, dc0, dseed_h, dseed_c, dcorr0, dcorr_reset]


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("width, context", [(1, True), (37, True), (5, False), (130, True), (1100, False)])
def test_numba_folded_kernels_equal_their_twins(cell, dtype, width, context):
    """One block (1, 5, 37 slots) and several: 130 slots make two blocks, 1100 three, the last narrower."""
    got = _folded_run(_feedback_nb, cell, dtype, np.random.default_rng(8), width, context)
    want = _folded_run(_feedback_py, cell, dtype, np.random.default_rng(8), width, context)
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-5)
    for i, (a, b) in enumerate(zip(got, want)):
        np.testing.assert_allclose(a, b, err_msg=f"array {i}", **tol)


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("k_steps", [1, 4])
@pytest.mark.parametrize("zero", ["outputs", "hidden", "both"])
def test_twins_equal_the_kernels_on_one_step_windows_and_zero_gradients(cell, k_steps, zero):
    """A window of one step, gradients that are exactly zero (train_bptt costs the outputs only,
    so the hidden states' gradients are zero) and a carried input that needs no correction (it
    is the carried state's readout): the twins give what the kernels give."""
    rng = np.random.default_rng(6)
    window = _random_window(cell, np.float64, rng, k_steps=k_steps, width=5)
    dys, dhs = rng.standard_normal((k_steps, 5, F)), rng.standard_normal((k_steps, H, 5))
    grads = (dys * (zero == "hidden"), dhs * (zero == "outputs"))
    got = _kernel_run(_feedback_nb, cell, np.float64, window, grads)
    want = _kernel_run(_feedback_py, cell, np.float64, window, grads)
    for i, (a, b) in enumerate(zip(got, want)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12, err_msg=f"array {i}")
    folded = [_folded_run(mod, cell, np.float64, np.random.default_rng(8), 5, True, k_steps=k_steps,
                          costed=zero == "outputs", fed_back=True) for mod in (_feedback_nb, _feedback_py)]
    for i, (a, b) in enumerate(zip(*folded)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12, err_msg=f"folded array {i}")


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_folded_kernels_give_the_same_bits_on_1_2_and_more_threads_than_blocks_on_either_runner(cell, dtype,
                                                                                                  monkeypatch):
    width = 1100
    assert n_blocks(width, _feedback_nb.feedback_block(width)) == 3
    saved = torch.get_num_threads()
    try:
        results = {}
        for threads in (1, 2, 8):
            torch.set_num_threads(threads)
            results[threads] = _folded_run(_feedback_nb, cell, dtype, np.random.default_rng(8), width, True)
        monkeypatch.setattr(_slot_threads, "_OPENMP", [None])  # fastseq's own pool instead of PyTorch's threads
        torch.set_num_threads(2)
        results["pool"] = _folded_run(_feedback_nb, cell, dtype, np.random.default_rng(8), width, True)
    finally:
        torch.set_num_threads(saved)
    for threads in (2, 8, "pool"):
        for i, (got, want) in enumerate(zip(results[threads], results[1])):
            assert np.array_equal(got, want), (threads, i)


def test_feedback_blocks_depend_on_the_width_alone():
    blocks = {w: (_feedback_nb.feedback_block(w), n_blocks(w, _feedback_nb.feedback_block(w)))
              for w in (1, 64, 127, 128, 1024, 1025)}
    assert blocks == {1: (16, 1), 64: (64, 1), 127: (128, 1), 128: (64, 2), 1024: (512, 2), 1025: (352, 3)}


@pytest.mark.parametrize("bad", ["strided", "dtype"])
def test_folded_kernels_refuse_strided_or_mixed_arrays(bad):
    k, w = 2, 4
    z = lambda *shape: np.zeros(shape, np.float32)  # noqa: E731
    h0 = z(H, 2 * w)[:, ::2] if bad == "strided" else np.zeros((H, w), np.float64)
    gates = tuple(z(k, H, w) for _ in range(4))
    with pytest.raises(ValueError, match="C-contiguous" if bad == "strided" else "float32 arrays"):
        _feedback_nb.gru_folded_forward(z(0, 3 * H, w), np.zeros((k, w), bool), z(4 * H, H), z(4 * H), z(3 * H, w),
                                        z(3 * H), h0, z(H), z(k, H, w), z(k, H, w), gates)


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_folded_window_gradcheck(cell):
    rng = np.random.default_rng(12)
    rows = 3 * H if cell == "gru" else 4 * H
    k_steps, width = 4, 3
    t = lambda *shape: torch.from_numpy(0.5 * rng.standard_normal(shape)).requires_grad_()  # noqa: E731
    reset = torch.from_numpy(rng.random((k_steps, width)) < 0.3)
    lstm = cell == "lstm"
    inputs = (reset, t(k_steps, rows, width), t(4 * H, H), t(4 * H), t(rows, width), t(rows), t(H, width),
              t(H, width) if lstm else None, t(H), t(H) if lstm else None)
    assert torch.autograd.gradcheck(feedback._FoldedWindow.apply, inputs)


def _train(cell, fused, dtype=torch.float64, teacher_forcing=0.5, cost_fn=None, **kw):
    ctx, tgt = _data([9, 4, 13, 2, 7, 5, 11, 3, 6], dtype)
    dec = _decoder(cell, dtype)
    dec.fused = fused
    rng = np.random.default_rng(2)
    opt = torch.optim.SGD(dec.parameters(), lr=0.1)
    losses = train_bptt(dec, ctx, tgt, torch.from_numpy(rng.standard_normal(F)), _hidden_seed(cell, dtype, rng), opt,
                        batch_size=3, bptt=4, cost_fn=cost_fn, teacher_forcing=teacher_forcing, shuffle=True, seed=4,
                        **kw)
    return losses, [p.detach() for p in dec.parameters()]


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("teacher_forcing", [0.0, 0.5])
def test_train_bptt_fused_equals_stepped(cell, teacher_forcing):
    lf, pf = _train(cell, True, teacher_forcing=teacher_forcing)
    ls, ps = _train(cell, False, teacher_forcing=teacher_forcing)
    assert len(lf) == len(ls) > 3
    np.testing.assert_allclose(lf, ls, rtol=1e-10, atol=1e-12)
    for a, b in zip(pf, ps):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_train_bptt_fused_runs_the_kernel(monkeypatch):
    calls = []
    real = feedback._FeedbackWindow.apply
    monkeypatch.setattr(feedback._FeedbackWindow, "apply", lambda *a: calls.append(1) or real(*a))
    losses, _ = _train("gru", True)
    assert len(calls) == len(losses)
    calls.clear()
    _train("gru", False)
    assert not calls


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("teacher_forcing", [0.0, 0.5])
def test_twin_path_equals_kernels(cell, teacher_forcing, monkeypatch):
    """The path CUDA takes (the torch twins inside the autograd nodes) trains like the kernels."""
    lf, pf = _train(cell, True, dtype=torch.float32, teacher_forcing=teacher_forcing, wrap_around=True)
    monkeypatch.setattr(feedback, "_kernels", lambda device: (_feedback_py, lambda t: t))
    lt, pt = _train(cell, True, dtype=torch.float32, teacher_forcing=teacher_forcing, wrap_around=True)
    np.testing.assert_allclose(lf, lt, rtol=1e-4)
    for a, b in zip(pf, pt):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_float32_fused_close_to_stepped(cell):
    lf, pf = _train(cell, True, dtype=torch.float32, cost_fn=_mse)
    ls, ps = _train(cell, False, dtype=torch.float32, cost_fn=_mse)
    np.testing.assert_allclose(lf, ls, rtol=1e-4)
    for a, b in zip(pf, ps):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


class _Shifted(FeedbackGRU):
    def forward(self, visible, context, hidden):
        out, hidden = super().forward(visible, context, hidden)
        return out + 1.0, hidden


def test_what_does_not_run_fused_steps():
    windows = _windows([4, 6], batch=2, bptt=3, dtype=torch.float64)
    seeds = _seeds("gru", torch.float64)
    w = windows[0]
    carried = seeds.expanded(2)
    args = (w.inputs.double(), w.targets.double(), w.reset, None, carried, seeds, nn.PairwiseDistance())
    assert feedback.fused_window(_decoder("gru"), *args) is not None
    torch.manual_seed(0)
    for dec in (FeedbackGRU(F, C, H, num_layers=2).double(), _Shifted(F, C, H).double(), _decoder("lstm")):
        assert feedback.fused_window(dec, *args) is None  # two layers; a new forward; seeds of a GRU
    dec = _decoder("gru")
    dec.register_forward_hook(lambda *a: None)
    assert feedback.fused_window(dec, *args) is None
    dec = _decoder("gru")
    dec.fused = False
    assert feedback.fused_window(dec, *args) is None
    assert feedback.fused_window(_decoder("gru", torch.float32), *args) is None  # dtype differs


def test_two_layers_train_stepped():
    ctx, tgt = _data([5, 3, 4], torch.float64)
    torch.manual_seed(0)
    dec = FeedbackLSTM(F, C, H, num_layers=2).double()
    opt = torch.optim.SGD(dec.parameters(), lr=0.1)
    hseed = (torch.zeros(2, H, dtype=torch.float64),) * 2
    losses = train_bptt(dec, ctx, tgt, torch.zeros(F), hseed, opt, batch_size=2, bptt=3)
    assert len(losses) > 1 and np.isfinite(losses).all()


def test_inputs_unchanged_and_step_interface():
    dec = _decoder("gru")
    v, c, h = torch.randn(1, 4, F, dtype=torch.float64), torch.randn(4, C, dtype=torch.float64), \
        torch.randn(1, 4, H, dtype=torch.float64)
    copies = [t.clone() for t in (v, c, h)]
    out, h2 = dec(v, c, h)
    assert out.shape == (1, 4, F) and h2.shape == (1, 4, H)
    for a, b in zip((v, c, h), copies):
        assert torch.equal(a, b)
    ctx, tgt = _data([6, 4], torch.float64)
    before = [t.clone() for t in ctx + tgt]
    train_bptt(dec, ctx, tgt, torch.zeros(F), torch.zeros(1, H), torch.optim.SGD(dec.parameters(), lr=0.1), 2, 3)
    for a, b in zip(ctx + tgt, before):
        assert torch.equal(a, b)


@pytest.mark.parametrize("bad", [dict(features=0), dict(hidden_size=-1), dict(context_features=-1),
                                 dict(num_layers=0)])
def test_bad_sizes_are_named(bad):
    kw = dict(features=F, context_features=C, hidden_size=H) | bad
    with pytest.raises(ValueError, match=rf"\b{next(iter(bad))}\b"):  # the name itself, not inside another
        FeedbackGRU(**kw)
