"""EpochSpec: the settings of a slot-swap epoch, one frozen object passed whole.

The settings that fix which windows an epoch yields (slots, window length, order,
epoch-end policy, wrap-around, shard, seed) are built once at the edge
(:func:`~fastseq.bptt.train_bptt`, :class:`~fastseq.bptt.SlotSwapLoader`) and handed on
unchanged to the planner (:func:`~fastseq.bptt.plan_epoch`), the loader's state and a
checkpoint; a resume compares them with :meth:`EpochSpec.differences`.
"""
from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass
from typing import ClassVar, Iterable, Literal

from fastseq._util.validate import bounded_int, flag, one_of, positive_int, seed_arg

__all__ = ["EpochSpec", "Tail", "MAX_WORLD_SIZE"]

Tail = Literal["packed", "longest_first", "none"]
TAILS: tuple[str, ...] = ("none", "longest_first", "packed")

# every process's shard is planned by every process, one Python object each: a bound on
# the processes keeps a wrong world size a clear error instead of an endless loop
MAX_WORLD_SIZE = 1 << 17  # 131072 processes: planned in about 2 s


@dataclass(frozen=True)
class EpochSpec:
    """The settings of a slot-swap epoch: what fixes its windows, on every process.

    Attributes:
        batch_size: slots ``B``.
        bptt: steps per window ``K``.
        shuffle: admit the sequences in the shuffle of ``seed + epoch`` (else in index order).
        seed: seed of the shuffles (None or an integer >= 0).
        tail: epoch-end policy, ``"packed"``, ``"longest_first"`` or ``"none"`` (see
            :func:`~fastseq.bptt.loader.tail_order`); not applied with ``wrap_around``.
        wrap_around: instead of idling while the epoch drains, slots re-train sequences
            from the start of the order (the original algorithm).
        compact: narrow windows to the live slots while the epoch drains.
        rank, world_size: this process's shard of each epoch (``0 <= rank < world_size <=``
            :data:`MAX_WORLD_SIZE`). The only settings an epoch may change on resume: it is
            re-sharded over any number of processes (see :data:`SHARDING`).

    Example:
        >>> spec = EpochSpec(batch_size=4, bptt=8, shuffle=True, seed=0)
        >>> EpochSpec.from_json(spec.to_json()) == spec
        True
        >>> spec.differences(EpochSpec(batch_size=2, bptt=8, shuffle=True, seed=0), labels=("saved", "here"))
        ['batch_size (saved 4, here 2)']
    """

    batch_size: int = 32
    bptt: int = 32
    shuffle: bool = False
    seed: int | None = None
    compact: bool = True
    tail: Tail = "packed"
    wrap_around: bool = False
    rank: int = 0
    world_size: int = 1

    SHARDING: ClassVar[tuple[str, ...]] = ("rank", "world_size")

    def __post_init__(self) -> None:
        checked = {
            "batch_size": positive_int("batch_size", self.batch_size),
            "bptt": positive_int("bptt", self.bptt),
            "shuffle": flag("shuffle", self.shuffle),
            "seed": seed_arg("seed", self.seed),
            "compact": flag("compact", self.compact),
            "tail": one_of("tail", self.tail, TAILS),
            "wrap_around": flag("wrap_around", self.wrap_around),
            "world_size": bounded_int("world_size", self.world_size, 1, MAX_WORLD_SIZE),
        }
        rank = self.rank
        if isinstance(rank, bool) or not isinstance(rank, numbers.Integral) or not 0 <= rank < checked["world_size"]:
            raise ValueError(f"Expected rank to be an integer in [0, {checked['world_size']}), got {rank!r}.")
        checked["rank"] = int(rank)
        for name, value in checked.items():  # plain Python values, as JSON keeps them
            object.__setattr__(self, name, value)

    @classmethod
    def fields(cls) -> tuple[str, ...]:
        """The settings' names, in order."""
        return tuple(f.name for f in dataclasses.fields(cls))

    def replace(self, **changes) -> "EpochSpec":
        """A copy with ``changes`` applied (and checked)."""
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict:
        """The settings as plain JSON values, one key per field."""
        return {name: getattr(self, name) for name in self.fields()}

    @classmethod
    def from_json(cls, data: dict) -> "EpochSpec":
        """The inverse of :meth:`to_json`; missing fields take their defaults, unknown ones are refused."""
        if not isinstance(data, dict):
            raise TypeError(f"Expected an EpochSpec as a dict of its settings, got {type(data).__name__}.")
        unknown = sorted(set(data) - set(cls.fields()))
        if unknown:
            raise ValueError(f"Expected the settings of an EpochSpec ({', '.join(cls.fields())}), got unknown "
                             f"{', '.join(map(repr, unknown))}.")
        return cls(**data)

    @classmethod
    def resolve(cls, spec: "EpochSpec | None", **settings) -> "EpochSpec":
        """``spec``, or one built from ``settings`` (None means not given: the default).

        Giving both is refused, naming the settings given, so that no setting is silently dropped.
        """
        given = {name: value for name, value in settings.items() if value is not None}
        if spec is None:
            return cls(**given)
        if not isinstance(spec, cls):
            raise TypeError(f"Expected spec to be an EpochSpec or None, got {type(spec).__name__}.")
        if given:
            raise TypeError(f"Expected either spec or the settings it holds, got spec and {', '.join(given)}.")
        return spec

    def differences(self, other: "EpochSpec", *, labels: tuple[str, str] = ("this", "other"),
                    ignore: Iterable[str] = ()) -> list[str]:
        """Each setting that differs from ``other``'s, named with both values:
        ``["bptt (saved 4, here 3)"]`` with ``labels=("saved", "here")``. Settings in
        ``ignore`` (e.g. :data:`SHARDING`) are not compared."""
        skip = set(ignore)
        return [describe_difference(name, getattr(self, name), getattr(other, name), labels)
                for name in self.fields() if name not in skip and getattr(self, name) != getattr(other, name)]


def describe_difference(name: str, mine, theirs, labels: tuple[str, str]) -> str:
    """One named difference, as every resume check words it: ``"bptt (checkpoint 4, now 3)"``."""
    return f"{name} ({labels[0]} {mine!r}, {labels[1]} {theirs!r})"
