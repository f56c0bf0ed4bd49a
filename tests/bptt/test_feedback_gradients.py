"""FeedbackGRU / FeedbackLSTM's fused window where only some of its inputs need gradients (frozen
weights, learnable seeds, a state still attached to them), on wide windows and on targets of
another width; and the small helpers that decide how a window runs."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from fastseq.bptt import FeedbackGRU, FeedbackLSTM, SlotSwapLoader, _feedback_nb, _feedback_py, feedback, trainer

F, C, H = 3, 2, 5
CELLS = {"gru": FeedbackGRU, "lstm": FeedbackLSTM}
TOL = dict(rtol=1e-10, atol=1e-12)
PARAMS = ["rnn.weight_ih_l0", "rnn.weight_hh_l0", "rnn.bias_ih_l0", "rnn.bias_hh_l0", "readout.weight",
          "readout.bias"]


def _window(width=3, bptt=4, context=C, target_features=F, seed=1):
    """A second loader window: slots that go on from the state carried in (no reset at step 0)
    and sequences that end mid-window (resets at steps > 0)."""
    g = torch.Generator().manual_seed(seed)
    lengths = [2, 5, 3, 7, 1, 6, 4, 2] * (1 + width // 4)
    ctx = [torch.randn(n, context, generator=g, dtype=torch.float64) for n in lengths]
    tgt = [torch.randn(n, target_features, generator=g, dtype=torch.float64) for n in lengths]
    w = list(SlotSwapLoader(ctx, tgt, width, bptt, tail="none"))[1]
    assert w.reset[1:].any() and not w.reset[0].all()
    return w


def _leaves(cell, requires, seed=3):
    """Visible and hidden parts as leaf tensors; those named in ``requires`` need gradients."""
    rng = np.random.default_rng(seed)
    names = ["visible", "hidden"] + (["cell"] if cell == "lstm" else [])
    shapes = {"visible": (F,), "hidden": (1, H), "cell": (1, H)}
    return {n: torch.from_numpy(rng.standard_normal(shapes[n])).requires_grad_(n in requires) for n in names}


def _seeds(cell, leaves):
    """The trainer's seeds (it detaches a user's seeds; built here as views of the leaves, so the
    window's gradients with respect to its seeds and start state are seen)."""
    hidden = tuple(leaves[n].unsqueeze(1) for n in ("hidden", "cell") if n in leaves)
    return trainer._Seeds(leaves["visible"].view(1, 1, F), hidden, cell == "lstm")


def _grads(cell, fused, w, *, frozen=(), requires=(), state="detached", teacher_forcing=0.0, cost_fn=None,
           context=C):
    """One window through ``trainer._window_cost``; the cost, the state it ends in and every
    gradient (None where none is needed). ``state``: where the carried state starts, "detached"
    (as the trainer carries it), "seeds" (the seeds expanded, still in their graph) or "own"
    (leaves of its own that need gradients, seeds as ``requires`` says)."""
    torch.manual_seed(0)
    dec = CELLS[cell](F, context, H).double()
    dec.fused = fused
    for name, p in dec.named_parameters():
        p.requires_grad_(name not in frozen)
    leaves = _leaves(cell, requires)
    seeds = _seeds(cell, leaves)
    width = w.reset.shape[1]
    own = _leaves(cell, ("visible", "hidden", "cell"), seed=4) if state == "own" else {}
    carried = (_seeds(cell, own) if own else seeds).expanded(width)
    if state == "detached":
        carried = carried.carried(w.schedule.slot_map)
    gen = torch.Generator().manual_seed(7)
    step = trainer._Step(cost_fn or nn.PairwiseDistance(), None, teacher_forcing, gen)
    total, end = trainer._window_cost(dec, w, carried, seeds, step, torch.float64)
    total.backward()
    grads = [p.grad for p in dec.parameters()] + [t.grad for t in leaves.values()] + [t.grad for t in own.values()]
    return total.detach(), [s.detach() for s in (end.visible,) + end.hidden], grads


def _assert_same(fused, stepped):
    (lf, sf, gf), (ls, ss, gs) = fused, stepped
    torch.testing.assert_close(lf, ls, **TOL)
    for a, b in zip(sf, ss):
        torch.testing.assert_close(a, b, **TOL)
    assert [g is None for g in gf] == [g is None for g in gs]
    for a, b in zip(gf, gs):
        if a is not None:
            torch.testing.assert_close(a, b, **TOL)


PATHS = {"folded": (0.0, True), "general": (0.0, False), "teacher": (0.5, True)}


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("path", sorted(PATHS))
@pytest.mark.parametrize("frozen", PARAMS)
def test_one_frozen_weight_leaves_the_others_gradients_as_stepped(cell, path, frozen, monkeypatch):
    teacher_forcing, fold = PATHS[path]
    monkeypatch.setattr(feedback, "FOLD", fold)
    w = _window()
    kw = dict(frozen=(frozen,), teacher_forcing=teacher_forcing)
    _assert_same(_grads(cell, True, w, **kw), _grads(cell, False, w, **kw))


SEED_PARTS = [("gru", ("visible",)), ("gru", ("hidden",)), ("gru", ("visible", "hidden")), ("lstm", ("visible",)),
              ("lstm", ("hidden",)), ("lstm", ("cell",)), ("lstm", ("visible", "hidden", "cell"))]


@pytest.mark.parametrize("cell, requires", SEED_PARTS)
@pytest.mark.parametrize("path", sorted(PATHS))
@pytest.mark.parametrize("state", ["detached", "seeds"])
def test_seeds_that_need_gradients_get_the_stepped_ones(cell, requires, path, state, monkeypatch):
    """Seeds that need gradients get them from every reset in the window and, where the state
    starts attached to them, from the carried state too; each part alone."""
    teacher_forcing, fold = PATHS[path]
    monkeypatch.setattr(feedback, "FOLD", fold)
    w = _window()
    kw = dict(requires=requires, state=state, teacher_forcing=teacher_forcing,
              frozen=PARAMS if state == "seeds" else ())
    fused, stepped = _grads(cell, True, w, **kw), _grads(cell, False, w, **kw)
    assert any(g is not None and bool(g.abs().sum() > 0) for g in fused[2])
    _assert_same(fused, stepped)


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("path", sorted(PATHS))
@pytest.mark.parametrize("trainable", PARAMS + ["state"])
def test_only_one_input_that_needs_a_gradient(cell, path, trainable, monkeypatch):
    """One weight alone, or the carried state alone (frozen weights, seeds that need none), needs
    a gradient: it gets the stepped one and every other input none."""
    teacher_forcing, fold = PATHS[path]
    monkeypatch.setattr(feedback, "FOLD", fold)
    w = _window()
    kw = dict(frozen=[p for p in PARAMS if p != trainable], teacher_forcing=teacher_forcing,
              state="own" if trainable == "state" else "detached")
    fused, stepped = _grads(cell, True, w, **kw), _grads(cell, False, w, **kw)
    assert sum(g is not None for g in fused[2]) == (1 if trainable in PARAMS else 2 + (cell == "lstm"))
    _assert_same(fused, stepped)


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_a_window_of_300_slots_equals_the_stepped_path(cell):
    """Wide windows sum the weight gradients as a batched product (256 slots or more)."""
    w = _window(width=300, bptt=3)
    kw = dict(teacher_forcing=0.5)
    _assert_same(_grads(cell, True, w, **kw), _grads(cell, False, w, **kw))


def _sum_costs(pred, target):
    """Outputs and targets of different widths: compared through their sums."""
    return (pred.sum(-1) - target.sum(-1)) ** 2


@pytest.mark.parametrize("fold", [False, True])
def test_targets_of_another_width_than_the_outputs(fold, monkeypatch):
    """Without teacher forcing the targets need not have the outputs' width; the general kernels
    then feed back outputs only (a GRU with H >= 4F always runs them)."""
    monkeypatch.setattr(feedback, "FOLD", fold)
    w = _window(target_features=F + 2)
    kw = dict(cost_fn=_sum_costs)
    _assert_same(_grads("gru", True, w, **kw), _grads("gru", False, w, **kw))
    _assert_same(_grads("lstm", True, w, **kw), _grads("lstm", False, w, **kw))


def test_folding_pays_for_every_lstm_and_for_a_gru_narrower_than_4_features():
    """The measured rule (the folded product is smaller while H < 4F for the GRU)."""
    assert feedback._folding_pays(FeedbackLSTM(3, 0, 40))
    assert feedback._folding_pays(FeedbackGRU(3, 0, 11))
    assert not feedback._folding_pays(FeedbackGRU(3, 0, 12))
    assert not feedback._folding_pays(FeedbackGRU(3, 0, 40))


@pytest.mark.parametrize("cell, folded", [("lstm", True), ("gru", False)])
def test_train_bptt_window_runs_the_folded_kernels_only_where_folding_pays(cell, folded, monkeypatch):
    calls = []
    for name in ("_folded_window", "_general_window"):
        real = getattr(feedback, name)
        monkeypatch.setattr(feedback, name, lambda *a, _n=name, _r=real: calls.append(_n) or _r(*a))
    w = _window()
    _grads(cell, True, w)  # F = 3, H = 5: both cells fold
    assert calls == ["_folded_window"]
    calls.clear()
    torch.manual_seed(0)
    dec = CELLS[cell](1, C, 8).double()  # F = 1, H = 8: a GRU with H >= 4F runs the general kernels
    seeds = trainer._seeds(torch.zeros(1), (torch.zeros(1, 8),) * 2 if cell == "lstm" else torch.zeros(1, 8), None,
                           torch.device("cpu"), torch.float64)
    feedback.fused_window(dec, w.inputs.double(), w.targets.double()[..., :1], w.reset, None,
                          seeds.expanded(w.reset.shape[1]), seeds, nn.PairwiseDistance())
    assert calls == ["_folded_window" if folded else "_general_window"]


def test_stacked_cost_calls_any_other_cost_once_per_step():
    """Only PairwiseDistance takes the whole window at once; another cost sees one step's
    ``W x F`` rows, as the stepped path gives it (here: a sum over axis 1, the features)."""
    g = torch.Generator().manual_seed(0)
    out, tgt = torch.randn(4, 3, 2, generator=g), torch.randn(4, 3, 2, generator=g)
    by_feature = lambda p, t: (p - t).pow(2).sum(1)  # noqa: E731
    assert torch.equal(feedback.stacked_cost(by_feature, out, tgt),
                       torch.stack([by_feature(out[k], tgt[k]) for k in range(4)]))
    pairwise = nn.PairwiseDistance()
    torch.testing.assert_close(feedback.stacked_cost(pairwise, out, tgt),
                               torch.stack([pairwise(out[k], tgt[k]) for k in range(4)]))



def test_stacked_cost_backward_is_one_stack_of_the_steps_gradients():
    """The per-step costs' gradient reaches the window's outputs through one stack, equal to
    indexing each step, and without K window-sized gradients summed."""
    g = torch.Generator().manual_seed(1)
    out = torch.randn(5, 3, 2, generator=g, dtype=torch.float64, requires_grad=True)
    tgt = torch.randn(5, 3, 2, generator=g, dtype=torch.float64)
    cost = lambda p, t: (p - t).pow(3).sum(1)  # noqa: E731
    weights = torch.randn(5, 3, generator=g, dtype=torch.float64)
    (grad,) = torch.autograd.grad((feedback.stacked_cost(cost, out, tgt) * weights).sum(), out)
    (indexed,) = torch.autograd.grad((torch.stack([cost(out[k], tgt[k]) for k in range(5)]) * weights).sum(), out)
    assert torch.equal(grad, indexed)
    nodes, todo = set(), [feedback.stacked_cost(cost, out, tgt).grad_fn]
    while todo:
        node = todo.pop()
        nodes.add(type(node).__name__)
        todo += [n for n, _ in node.next_functions if n is not None]
    assert "UnbindBackward0" in nodes and "SelectBackward0" not in nodes

def test_context_part_is_units_first_and_empty_without_context():
    torch.manual_seed(0)
    ctx = torch.randn(4, 6, C, dtype=torch.float64)  # K x W x C
    dec = FeedbackLSTM(F, C, H).double()
    part = feedback._context_part(dec, ctx)
    assert part.shape == (4, 4 * H, 6)
    torch.testing.assert_close(part[2], dec.rnn.weight_ih_l0[:, F:] @ ctx[2].t())
    empty = feedback._context_part(FeedbackGRU(F, 0, H).double(), ctx[..., :0])
    assert empty.shape == (0, 3 * H, 6)


def test_kernels_are_numba_on_the_cpu_and_the_torch_twin_elsewhere():
    mod, arr = feedback._kernels(torch.device("cpu"))
    t = torch.ones(2)
    assert mod is _feedback_nb and isinstance(arr(t), np.ndarray)
    mod, arr = feedback._kernels(torch.device("meta"))
    assert mod is _feedback_py and arr(t) is t


def _first_window_args(cell):
    w = _window()
    dec = CELLS[cell](F, C, H).double()
    seeds = _seeds(cell, _leaves(cell, ()))
    return dec, (w.inputs.double(), w.targets.double(), w.reset, None, seeds.expanded(w.reset.shape[1]), seeds,
                 nn.PairwiseDistance())


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_both_cells_run_fused_with_their_own_seeds(cell):
    dec, args = _first_window_args(cell)
    assert feedback.fused_window(dec, *args) is not None


@pytest.mark.parametrize("hook", ["pre", "global", "global_pre"])
def test_any_forward_hook_makes_the_window_step(hook):
    """A hook must see every step, so a hooked decoder is stepped: its own pre-hook, or a global one."""
    dec, args = _first_window_args("gru")
    seen = []
    if hook == "pre":
        handle = dec.register_forward_pre_hook(lambda *a: seen.append(1))
    elif hook == "global":
        handle = nn.modules.module.register_module_forward_hook(lambda *a: seen.append(1))
    else:
        handle = nn.modules.module.register_module_forward_pre_hook(lambda *a: seen.append(1))
    try:
        assert feedback.fused_window(dec, *args) is None
    finally:
        handle.remove()
    assert feedback.fused_window(dec, *args) is not None


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("context", [0, C])
def test_memory_check_counts_the_module_s_float32_weights(cell, layers, context, monkeypatch):
    """The size checked before building is what the module holds: 4 bytes a parameter."""
    asked = []
    monkeypatch.setattr(feedback, "check_fits", lambda what, nbytes: asked.append((what, nbytes)))
    dec = CELLS[cell](F, context, H, num_layers=layers)
    n = sum(p.numel() for p in dec.parameters())
    assert asked[0][1] == 4.0 * n
    assert asked[0][0] == (f"a {CELLS[cell].__name__} with features={F}, context_features={context}, "
                           f"hidden_size={H} and num_layers={layers}")
