"""train_bptt with ``distributed=True`` on a real gloo group of one process, in this process (fast,
no spawned ranks; the two-process runs are in test_exact_resume_two_processes.py and
test_distributed.py): a shard of one is the whole epoch, its checkpoints gather the carried
state and random streams through the group, and a resume from them is exact."""
from __future__ import annotations

import pytest
import torch
import torch.distributed as dist

from fastseq.bptt import EpochSpec, trainer
from test_distributed_in_process import one_process_group  # noqa: F401 (the fixture)
from test_exact_resume import K, _epoch, _fresh, _state, assert_identical

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not built in")


def _run(distributed: bool, path=None, stop_at=None):
    model, opt = _fresh()
    losses = _epoch(model, opt, 0, path, stop_at, distributed=distributed)
    return losses, _state(model, opt)


def test_one_process_shard_trains_the_whole_epoch_as_without_distributed(one_process_group):
    plain, plain_state = _run(False)
    shard, shard_state = _run(True)
    assert len(plain) > 10 and shard == plain
    assert_identical(shard_state, plain_state)


@pytest.mark.parametrize("cut", [1, 4])
def test_resume_from_a_distributed_checkpoint_is_exact(one_process_group, tmp_path, cut):
    """The checkpoint is written through the group (carried state and random streams gathered)."""
    reference, end = _run(True)
    path = tmp_path / "c.ckpt"
    assert _run(True, path, stop_at=cut * K)[0] is None
    losses, state = _run(True, path)
    assert losses == reference
    assert_identical(state, end)


def test_gather_carried_gives_this_process_s_parts_unpadded(one_process_group):
    g = torch.Generator().manual_seed(0)
    parts = (torch.randn(1, 3, 2, generator=g, requires_grad=True), torch.randn(2, 3, 4, generator=g))
    gathered = trainer._gather_carried(parts)
    assert len(gathered) == 1 and len(gathered[0]) == 2
    for got, want in zip(gathered[0], parts):
        assert got.shape == want.shape and torch.equal(got, want.detach()) and not got.requires_grad
    assert [t.tolist() for t in trainer._gather(torch.tensor([5, 7]))] == [[5, 7]]


def test_distributed_spec_is_this_process_s_shard(one_process_group):
    spec = EpochSpec(batch_size=4, bptt=3, shuffle=True, seed=9, tail="none")
    got = trainer._distributed(spec)
    assert (got.rank, got.world_size) == (0, 1)
    assert got.replace(rank=spec.rank, world_size=spec.world_size) == spec
    with pytest.raises(ValueError, match="explicit seed with shuffle=True and distributed=True, got None"):
        trainer._distributed(EpochSpec(batch_size=4, bptt=3, shuffle=True, seed=None))
    assert trainer._distributed(EpochSpec(batch_size=4, bptt=3, shuffle=False, seed=None)).world_size == 1
    other = trainer._distributed(EpochSpec(batch_size=4, bptt=3, rank=1, world_size=2))  # the group decides
    assert (other.rank, other.world_size) == (0, 1)


def test_distributed_without_a_group_is_refused():
    assert not dist.is_initialized()
    with pytest.raises(ValueError, match="torch.distributed to be initialized for distributed=True"):
        trainer._distributed(EpochSpec(batch_size=4, bptt=3))
