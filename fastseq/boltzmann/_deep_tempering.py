"""Deep tempering: the upper layers of a deep belief net help its bottom machine's chains mix.

After Desjardins, Luo, Courville & Bengio (2014), "Deep Tempering": in a net trained layer by
layer, the layers above the bottom model its hidden codes, and chains in those upper layers
move between modes far more easily than chains of the bottom machine over its inputs. Here
the upper layers act as the "hot" rungs of a replica exchange, in an exact form:

Each layer l of the net runs its own Gibbs chains on its own machine, the joint ``p_l(v, h)``.
Layer l's hidden units and layer l+1's visible units are the same space (binary vectors of
``H_l`` units). Two neighbouring chains exchange those vectors: chain l's hidden state ``y``
and chain l+1's visible state ``x`` are swapped with the Metropolis probability

    min(1, [q_l(x) r_{l+1}(y)] / [q_l(y) r_{l+1}(x)]),

where ``q_l(h) = sum_v exp(-E_l(v, h))`` is layer l's marginal over its hidden units and
``r_{l+1}(v) = sum_h exp(-E_{l+1}(v, h))`` layer l+1's marginal over its visible units, both
unnormalised (each partition function appears above and below and cancels). The other halves
of the two chains, layer l's visible state and layer l+1's hidden state, are then drawn
afresh from their conditionals given the (possibly swapped) states. The pair of moves
(Metropolis on the two shared-space states with the rest summed out, then the rest redrawn
given them) leaves the product ``p_l(v, h) p_{l+1}(v', h')`` invariant, so chain 0 samples the
bottom machine exactly, whatever the upper layers learnt: the upper layers only decide how
often the exchanges are accepted, that is how much they help. Even and odd layer pairs take
turns, as the tempering ladders do.

Greedy training makes layer l+1's visible marginal a model of layer l's hidden codes on the
data, which is close to (not equal to) layer l's own hidden marginal: the closer, the more
exchanges are accepted. The rates per pair are reported (``DeepTemperingStats``).

Machines: the bottom may be any machine with an energy (``RBM``, ``GaussianRBM``,
``BetaRBM``); each ``q_l`` is that machine's ``_log_sum_visible`` and each ``r_{l+1}`` the
upper RBM's ``_log_sum_hidden``, in float64.
"""
from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Sequence

import numpy as np
import torch

from fastseq.boltzmann import _tempering

__all__ = ["DeepTemperingStats", "exchange_log_ratio", "run_deep_tempering"]


@dataclass(frozen=True)
class DeepTemperingStats:
    """What deep tempering did: how often each pair of neighbouring layers exchanged states.

    Attributes:
        swap_rates: ``(L - 1,)`` accepted / proposed exchanges between the chains of layer l
            and layer l + 1 (NaN where none was proposed).
        n_sweeps: Gibbs sweeps run at every layer (each followed by one round of exchanges).
    """

    swap_rates: np.ndarray
    n_sweeps: int


def exchange_log_ratio(lower, p_lower: dict, upper, p_upper: dict, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Log Metropolis ratio, per row, of swapping ``y`` (hidden rows of ``lower``) with ``x``
    (visible rows of ``upper``): ``log q(x) + log r(y) - log q(y) - log r(x)`` in float64."""
    y, x = y.double().cpu(), x.double().cpu()
    return (lower._log_sum_visible(p_lower, x) + upper._log_sum_hidden(p_upper, y)
            - lower._log_sum_visible(p_lower, y) - upper._log_sum_hidden(p_upper, x))


class _Chains:
    """N chains at every layer of a net: visible ``v[l]`` and hidden ``h[l]`` rows."""

    def __init__(self, layers: Sequence, v0: torch.Tensor, rng: np.random.Generator) -> None:
        _tempering.path_for(layers[0])  # refuses a bottom machine without an energy
        self.layers = list(layers)
        self.params = [m._params64() for m in self.layers]
        self.rng = rng
        self.v, self.h = [], []
        v = v0
        for i, m in enumerate(self.layers):
            if i:  # each upper chain starts from a draw of the codes of the chain below
                v = self.h[-1].to(m._tdtype)
            self.v.append(v)
            self.h.append(self._hidden(i, v))
        self.accepted = np.zeros(len(self.layers) - 1, np.int64)
        self.proposed = np.zeros_like(self.accepted)
        self.parity = 0
        self.n_sweeps = 0

    def _hidden(self, i: int, v: torch.Tensor) -> torch.Tensor:
        m = self.layers[i]
        return m._sample_hidden(m._free_energy_pre(v)[1])

    def _visible(self, i: int, h: torch.Tensor) -> torch.Tensor:
        m = self.layers[i]
        return m._prepare_sample(m._sample_visible(h.to(m._tdtype)))

    def sweep(self) -> None:
        """A Gibbs step v -> h at every layer, then one round of exchanges of this sweep's parity."""
        for i in range(len(self.layers)):
            self.v[i] = self._visible(i, self.h[i])
            self.h[i] = self._hidden(i, self.v[i])
        self.n_sweeps += 1
        self.exchange()

    def exchange(self) -> None:
        for lo in range(self.parity, len(self.layers) - 1, 2):
            y, x = self.h[lo], self.v[lo + 1]
            log_r = exchange_log_ratio(self.layers[lo], self.params[lo], self.layers[lo + 1], self.params[lo + 1], y, x)
            accept = np.log(self.rng.random(log_r.shape[0])) < log_r.numpy()
            self.proposed[lo] += accept.size
            self.accepted[lo] += int(accept.sum())
            if accept.any():
                keep = torch.as_tensor(accept, device=y.device)[:, None]
                self.h[lo] = torch.where(keep, x.to(y.dtype), y)
                self.v[lo + 1] = torch.where(keep, y.to(x.dtype), x)
            # the halves summed out of the ratio, drawn again given the shared-space states:
            # layer lo + 1's hidden here, layer lo's visible first thing in the next sweep
            self.h[lo + 1] = self._hidden(lo + 1, self.v[lo + 1])
        self.parity = 1 - self.parity

    def stats(self) -> DeepTemperingStats:
        with np.errstate(invalid="ignore", divide="ignore"):
            rates = self.accepted / self.proposed
        return DeepTemperingStats(rates, int(self.n_sweeps))


def run_deep_tempering(layers: Sequence, v0: torch.Tensor, n_steps: int, rng: np.random.Generator,
                       bar) -> tuple[torch.Tensor, DeepTemperingStats]:
    """Chains from ``v0`` (``N x D`` visible rows of the bottom machine) at every layer, ``n_steps``
    sweeps with exchanges; returns the bottom chains' hidden rows (after the last exchange
    round) and the stats."""
    chains = _Chains(layers, v0, rng)
    for _ in range(n_steps):
        chains.sweep()
        bar.update(1)
    return chains.h[0], chains.stats()
