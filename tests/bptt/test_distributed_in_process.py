"""all_reduce_gradients and the deprecated shard_plan, in this process (fast, no spawned ranks).

all_reduce_gradients runs over a real gloo group of one process (a HashStore, left in a
function-scoped fixture): the sum over one process is the gradient itself, so every
parameter, of every size and shape, must get back exactly its own gradient (a missing one
as zeros), in a tensor of its own. shard_plan must build the plan the EpochSpec it stands
for builds: ``tail_first`` is ``tail="longest_first"`` (else ``"none"``), and
``wrap_around`` is passed on.
"""
import numpy as np
import pytest
import torch
import torch.distributed as dist
from torch import nn

from fastseq.bptt.distributed import _tensors, all_reduce_gradients, shard_plan
from fastseq.bptt.epoch import EpochSpec
from fastseq.bptt.shards import plan_epoch

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not built in")

LENGTHS = np.array([9, 3, 1, 12, 4, 2, 6, 7, 5, 1, 8])


@pytest.fixture
def one_process_group(monkeypatch):
    """A gloo group of world size 1 in this process, destroyed after the test."""
    monkeypatch.setenv("GLOO_SOCKET_IFNAME", "lo")
    assert not dist.is_initialized()
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


def _params():
    """Parameters of four sizes and shapes; the third has no gradient."""
    shapes = [(2, 3), (4,), (1,), (3, 1, 2), (5,)]
    params = [torch.zeros(s, requires_grad=True) for s in shapes]
    grads = {}
    start = 1.0
    for i, p in enumerate(params):
        if i == 2:
            continue
        grads[i] = torch.arange(start, start + p.numel()).reshape(p.shape) * (-1) ** i
        p.grad = grads[i].clone()
        start += p.numel()
    return params, grads


def test_one_process_gets_each_gradient_back_in_place(one_process_group):
    params, grads = _params()
    all_reduce_gradients(params)
    for i, p in enumerate(params):
        assert p.grad is not None and p.grad.shape == p.shape and p.grad.dtype == p.dtype, i
        want = grads.get(i, torch.zeros_like(p))
        assert torch.equal(p.grad, want), (i, p.grad, want)
    # every gradient is a tensor of its own, not a view into one shared buffer
    params[0].grad.fill_(100.0)
    assert torch.equal(params[1].grad, grads[1]) and torch.equal(params[3].grad, grads[3])


def test_one_process_accepts_a_generator_of_parameters(one_process_group):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 4, bias=False))
    model(torch.randn(5, 3)).square().sum().backward()
    before = [p.grad.clone() for p in model.parameters()]
    all_reduce_gradients(model.parameters())
    for p, g in zip(model.parameters(), before):
        assert torch.equal(p.grad, g)


def test_one_process_without_parameters_is_a_no_op(one_process_group):
    all_reduce_gradients([])
    all_reduce_gradients(iter(()))


def test_tensors_lists_an_iterable_of_tensors():
    a, b = torch.zeros(2), torch.ones(3)
    got = _tensors("params", (t for t in (a, b)))
    assert isinstance(got, list) and len(got) == 2 and got[0] is a and got[1] is b
    assert _tensors("params", iter(())) == []
    with pytest.raises(TypeError, match=r"^Expected params to hold tensors, got int at params\[1\]\.$"):
        _tensors("params", iter([a, 3]))


def _plan(order, *, rank, world_size, **kw):
    with pytest.deprecated_call(match="plan_epoch"):
        return shard_plan(LENGTHS, order, 2, 3, rank=rank, world_size=world_size, **kw)


def _by_spec(order, rank, world_size, **kw):
    epoch = plan_epoch(LENGTHS, order, spec=EpochSpec(2, 3, rank=rank, world_size=world_size, **kw))
    return epoch.shards[rank].order.tolist(), epoch.real_steps.tolist()


@pytest.mark.parametrize("world_size", [1, 2])
def test_tail_first_false_is_tail_none(world_size):
    order = np.arange(LENGTHS.size)
    for rank in range(world_size):
        plan = _plan(order, rank=rank, world_size=world_size, tail_first=False)
        got = (plan.order.tolist(), plan.real_steps.tolist())
        assert got == _by_spec(order, rank, world_size, tail="none")
        assert got != _by_spec(order, rank, world_size, tail="longest_first")
        first = _plan(order, rank=rank, world_size=world_size, tail_first=True)
        assert (first.order.tolist(), first.real_steps.tolist()) == _by_spec(order, rank, world_size,
                                                                              tail="longest_first")
    # one process keeps the order as given when the tail is left alone
    if world_size == 1:
        assert got[0] == order.tolist()


@pytest.mark.parametrize("tail_first", [False, True])
def test_wrap_around_is_passed_on(tail_first):
    order = np.random.default_rng(1).permutation(LENGTHS.size)
    tail = "longest_first" if tail_first else "none"
    for rank in range(2):
        plan = _plan(order, rank=rank, world_size=2, wrap_around=True, tail_first=tail_first)
        got = (plan.order.tolist(), plan.real_steps.tolist())
        assert got == _by_spec(order, rank, 2, tail=tail, wrap_around=True)
        assert got != _by_spec(order, rank, 2, tail=tail, wrap_around=False)
        assert (plan.rank, plan.world_size) == (rank, 2)


def test_tail_first_must_be_a_bool():
    with pytest.raises(TypeError, match=r"^Expected tail_first to be True or False, got str 'yes'\.$"):
        _plan(np.arange(LENGTHS.size), rank=0, world_size=1, tail_first="yes")
