"""EpochSpec: the epoch's settings as one object, passed whole to the loader, the planner and a
checkpoint; the Stateful protocol; the deprecated shard_plan; train_bptt's progress bar."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from torch import nn

from fastseq.bptt import EpochSpec, SlotSwapLoader, Stateful, plan_epoch, train_bptt
from fastseq.bptt.distributed import shard_plan
from fastseq.bptt.epoch import MAX_WORLD_SIZE

LENGTHS = np.array([5, 1, 9, 3, 3, 7, 2, 4])


def _seqs(lengths=LENGTHS):
    rng = np.random.default_rng(0)
    return [rng.standard_normal((n, 2)).astype(np.float32) for n in lengths]


def _windows(loader) -> list[tuple]:
    return [(w.index, w.inputs.clone(), w.reset.clone(), w.valid.clone(), w.sequence.clone()) for w in loader]


def _same(a: list[tuple], b: list[tuple]) -> bool:
    return len(a) == len(b) and all(
        x[0] == y[0] and all(torch.equal(p, q) for p, q in zip(x[1:], y[1:])) for x, y in zip(a, b))


@pytest.mark.parametrize("field, value, error, message", [
    ("batch_size", 0, ValueError, "Expected batch_size to be an integer >= 1, got 0."),
    ("bptt", 2.5, TypeError, "Expected bptt to be an integer >= 1, got float 2.5."),
    ("shuffle", 1, TypeError, "Expected shuffle to be True or False, got int 1."),
    ("seed", -1, ValueError, "Expected seed to be an integer >= 0, got -1."),
    ("compact", "yes", TypeError, "Expected compact to be True or False, got str 'yes'."),
    ("tail", "shortest", ValueError, "Expected tail to be one of 'none', 'longest_first', 'packed', got 'shortest'."),
    ("wrap_around", None, TypeError, "Expected wrap_around to be True or False, got NoneType None."),
    ("world_size", 0, ValueError, f"Expected world_size to be an integer in [1, {MAX_WORLD_SIZE}], got 0."),
    ("rank", 1, ValueError, "Expected rank to be an integer in [0, 1), got 1."),
])
def test_each_setting_is_checked_by_name(field, value, error, message):
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        EpochSpec(**{field: value})


def test_json_round_trip_holds_plain_values():
    spec = EpochSpec(np.int64(4), np.int32(8), shuffle=np.bool_(True), seed=np.uint8(3), tail="none",
                     wrap_around=True, compact=False, rank=np.int64(1), world_size=3)
    data = spec.to_json()
    assert json.loads(json.dumps(data)) == data
    assert all(type(v) in (int, bool, str) for v in data.values())
    assert list(data) == list(EpochSpec.fields())
    assert EpochSpec.from_json(data) == spec
    assert EpochSpec.from_json({"bptt": 8}) == EpochSpec(bptt=8)  # missing settings take their defaults
    with pytest.raises(ValueError, match=r"^Expected the settings of an EpochSpec \(batch_size, .*\), got unknown "
                                         r"'window'\.$"):
        EpochSpec.from_json({"window": 8})
    with pytest.raises(TypeError, match=r"^Expected an EpochSpec as a dict of its settings, got list\.$"):
        EpochSpec.from_json([4, 8])


def test_differences_name_each_setting_with_both_values():
    a = EpochSpec(batch_size=4, bptt=8, shuffle=True, seed=1, rank=0, world_size=2)
    b = a.replace(bptt=6, seed=2, rank=1)
    assert a.differences(a) == []
    assert a.differences(b, labels=("checkpoint", "now")) == [
        "bptt (checkpoint 8, now 6)", "seed (checkpoint 1, now 2)", "rank (checkpoint 0, now 1)"]
    assert b.differences(a, ignore=EpochSpec.SHARDING) == ["bptt (this 6, other 8)", "seed (this 2, other 1)"]
    with pytest.raises(ValueError, match=r"^Expected rank to be an integer in \[0, 2\), got 2\.$"):
        a.replace(rank=2)  # a copy is checked too
    with pytest.raises(Exception):
        a.bptt = 3  # frozen


def test_loader_takes_the_spec_whole_or_its_keywords():
    spec = EpochSpec(batch_size=3, bptt=2, shuffle=True, seed=5, tail="none")
    by_spec = SlotSwapLoader(_seqs(), None, spec=spec, buffers=None)
    by_keywords = SlotSwapLoader(_seqs(), None, 3, 2, shuffle=True, seed=5, tail="none", buffers=None)
    assert by_spec.spec == by_keywords.spec == spec
    assert (by_spec.batch_size, by_spec.bptt, by_spec.seed, by_spec.rank) == (3, 2, 5, 0)
    assert _same(_windows(by_spec), _windows(by_keywords))
    # the keywords keep their meaning and defaults
    assert SlotSwapLoader(_seqs()).spec == EpochSpec()
    assert SlotSwapLoader(_seqs(), shuffle=1, compact=0).spec == EpochSpec(shuffle=True, compact=False)
    with pytest.raises(TypeError, match=r"^Expected either spec or the settings it holds, got spec and bptt, seed\.$"):
        SlotSwapLoader(_seqs(), None, bptt=4, spec=spec, seed=1)
    with pytest.raises(TypeError, match=r"^Expected spec to be an EpochSpec or None, got dict\.$"):
        SlotSwapLoader(_seqs(), spec=spec.to_json())
    with pytest.raises(AttributeError):
        by_spec.bptt = 4  # read from the spec, which is changed whole


def test_planner_takes_the_spec_whole():
    order = np.random.default_rng(1).permutation(LENGTHS.size)
    spec = EpochSpec(batch_size=2, bptt=3, tail="none", compact=False, world_size=3)
    by_spec = plan_epoch(LENGTHS, order, spec=spec)
    by_keywords = plan_epoch(LENGTHS, order, 3, 2, 3, tail_first=False, compact=False)
    assert [s.order.tolist() for s in by_spec.shards] == [s.order.tolist() for s in by_keywords.shards]
    assert by_spec.real_steps.tolist() == by_keywords.real_steps.tolist()
    assert by_spec.slots == by_keywords.slots
    first = plan_epoch(LENGTHS, order, spec=spec.replace(tail="longest_first"))
    assert [s.order.tolist() for s in first.shards] != [s.order.tolist() for s in by_spec.shards]
    with pytest.raises(TypeError, match=r"^Expected either spec or the settings it holds, got spec and world_size\.$"):
        plan_epoch(LENGTHS, order, 2, spec=spec)
    with pytest.raises(TypeError, match=r"^Expected tail_first to be True or False"):
        plan_epoch(LENGTHS, order, 2, 2, 2, tail_first="no")


def test_shard_plan_is_a_deprecated_view_of_plan_epoch():
    order = np.arange(LENGTHS.size)
    epoch = plan_epoch(LENGTHS, order, spec=EpochSpec(batch_size=2, bptt=3, world_size=2, tail="longest_first"))
    for rank in range(2):  # shard_plan's tail_first=True is tail="longest_first"
        with pytest.deprecated_call(match="plan_epoch"):
            plan = shard_plan(LENGTHS, order, 2, 3, rank=rank, world_size=2)
        assert (plan.rank, plan.world_size) == (rank, 2)
        assert plan.order.tolist() == epoch.shards[rank].order.tolist()
        assert plan.real_steps.tolist() == epoch.real_steps.tolist()


def test_loader_state_names_each_setting_that_differs():
    loader = SlotSwapLoader(_seqs(), None, 3, 2, shuffle=True, seed=5, world_size=2, rank=1)
    state = loader.state_dict()
    assert state["config"] == {"sequences": LENGTHS.size, "lengths_crc32": state["config"]["lengths_crc32"],
                               **{k: v for k, v in loader.spec.to_json().items() if k not in EpochSpec.SHARDING}}
    assert state["world_size"] == 2
    # another number of processes is no difference: the epoch re-shards
    assert SlotSwapLoader(_seqs(), None, 3, 2, shuffle=True, seed=5).state_differences(state) == []
    other = SlotSwapLoader(_seqs(LENGTHS[:-1]), None, 3, 2, shuffle=False, seed=5, tail="none")
    assert other.state_differences(state, labels=("checkpoint", "now")) == [
        f"sequences (checkpoint {LENGTHS.size}, now {LENGTHS.size - 1})",
        f"lengths_crc32 (checkpoint {state['config']['lengths_crc32']}, "
        f"now {other.state_dict()['config']['lengths_crc32']})",
        "shuffle (checkpoint True, now False)", "tail (checkpoint 'packed', now 'none')"]
    with pytest.raises(ValueError, match=r"^Expected the loader state to come from the same data and settings, but "
                                         r"sequences .*, shuffle \(saved True, here False\), tail .* differ\.$"):
        other.load_state_dict(state)
    with pytest.raises(ValueError, match=r"^Expected a SlotSwapLoader state_dict with valid settings, got Expected "
                                         r"bptt to be an integer >= 1, got 0\.$"):
        loader.load_state_dict({**state, "config": {**state["config"], "bptt": 0}})
    with pytest.raises(ValueError, match=r"^Expected a SlotSwapLoader state_dict with epoch, window and config"):
        loader.load_state_dict({"epoch": 0})


def test_loader_is_stateful():
    loader = SlotSwapLoader(_seqs(), None, 2, 3, buffers=None)
    assert isinstance(loader, Stateful)
    assert not isinstance(EpochSpec(), Stateful)  # settings, not state
    it = iter(loader)
    next(it)
    again = SlotSwapLoader(_seqs(), None, 2, 3, buffers=None)
    again.load_state_dict(loader.state_dict())
    assert _same(_windows(again), _windows(it))


class _Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(2 + 2, 4)
        self.out = nn.Linear(4, 2)

    def forward(self, visible, context, hidden):
        h, hidden = self.rnn(torch.cat([visible, context.unsqueeze(0)], -1), hidden)
        return self.out(h), hidden


def _train(path=None, **kwargs):
    torch.manual_seed(0)
    model = _Decoder()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    settings = {"shuffle": True, "seed": 2, **kwargs}
    return train_bptt(model, _seqs(), _seqs(), torch.zeros(2), torch.zeros(1, 4), opt, 2, 3, checkpoint=path,
                      checkpoint_every=2, **settings)


def test_a_checkpoint_names_the_epoch_settings_that_differ(tmp_path):
    path = tmp_path / "run.ckpt"
    losses = _train(path)
    saved = path.read_bytes()
    assert _train(path) == losses  # a finished epoch: its losses, nothing trained
    with pytest.raises(ValueError, match=r"^Expected checkpoint .* to come from this training run, but "
                                         r"shuffle \(checkpoint True, now False\), seed \(checkpoint 2, now None\) "
                                         r"differ; nothing was trained"):
        _train(path, shuffle=False, seed=None)
    with pytest.raises(ValueError, match=r"but tail \(checkpoint 'packed', now 'none'\) differ"):
        _train(path, tail="none")
    assert path.read_bytes() == saved


def test_progress_bar_counts_windows(capsys):
    loader = SlotSwapLoader(_seqs(), None, 2, 3, shuffle=True, seed=2)
    losses = _train(progress=True)
    err = capsys.readouterr().err
    assert len(losses) == len(loader)
    assert re.search(rf"train_bptt: 100%.*\b{len(loader)}/{len(loader)}\b.*window", err), err
    assert "loss=" in err


@pytest.mark.parametrize("field", ["shuffle", "compact", "wrap_around"])
def test_numpy_flags_are_kept_as_python_bools(field):
    for value in (np.bool_(True), np.bool_(False)):
        spec = EpochSpec(**{field: value})
        assert type(getattr(spec, field)) is bool and getattr(spec, field) == bool(value)
        assert json.dumps(spec.to_json())  # a NumPy bool would not serialise


@pytest.mark.parametrize("rank", [True, False, "0", 0.0, np.float64(1)])
def test_rank_must_be_an_integer_not_a_bool(rank):
    with pytest.raises(ValueError, match=re.escape(f"Expected rank to be an integer in [0, 2), got {rank!r}.")):
        EpochSpec(rank=rank, world_size=2)
