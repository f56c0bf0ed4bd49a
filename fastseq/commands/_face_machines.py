"""fastseq's Boltzmann machines as code models of :class:`fastseq.conv.StackedModel`, with
their held-out log-likelihood for :func:`fastseq.conv.evaluate_faces` (the part of
``fastseq faces`` that knows both domains)."""
from __future__ import annotations

import numpy as np
import torch

from fastseq.boltzmann import (R3BM, RRBM, BetaRBM, DeepBeliefNet, GaussianRBM, ais_log_partition,
                               average_log_likelihood)

_CLASSES = {"RRBM": RRBM, "R3BM": R3BM, "BetaRBM": BetaRBM, "GaussianRBM": GaussianRBM}
DEEP = "dbn"  # the deep belief net's name among the machines


class MachineCodes:
    """A fastseq Boltzmann machine with the methods of :class:`fastseq.conv.CodeModel`
    (``inverse_transform`` is the machine's ``visible_mean``).

    ``sample`` returns the last step's visible means ``E[v | h]``, except for a ``BetaRBM``
    (``draws``), whose Beta units learn their own spread: with the command's defaults its
    means left the generated codes at 0.57 of the real spread (61% of the units within a
    factor 2) on the embedded faces, a draw at 0.97 (all units), and the two-sample accuracy
    with squares fell from 1.000 to 0.775. The other machines' visible noise is a fixed
    setting (``sigma``), not learned, so their means stay.
    """

    def __init__(self, machine, n_betas: int = 3000, n_runs: int = 64) -> None:
        self.machine = machine
        self.n_betas, self.n_runs = n_betas, n_runs  # the AIS of held_out_log_likelihood
        self.name = type(machine).__name__
        self.scaling = "standard" if isinstance(machine, GaussianRBM) else "unit"
        self.has_energy = isinstance(machine, (BetaRBM, GaussianRBM))
        self.draws = isinstance(machine, BetaRBM)

    def fit(self, X, y=None) -> "MachineCodes":
        self.machine.fit(X)
        return self

    def transform(self, X) -> np.ndarray:
        return self.machine.transform(X)

    def gibbs(self, v) -> np.ndarray:
        return self.machine.gibbs(v)

    def sample(self, n_samples: int = 16, n_steps: int = 1000, start=None) -> np.ndarray:
        return self.machine.sample(n_samples, n_steps=n_steps, start=start, return_means=not self.draws)

    def inverse_transform(self, H) -> np.ndarray:
        """Visible means ``E[v | h]``, ``N x D``, for hidden values ``N x H``."""
        return self.machine.visible_mean(H)


    def held_out_log_likelihood(self, train, test) -> dict | None:
        """AIS estimate of log Z (from ``train``) and the mean log-likelihood of ``test`` (nats per
        row, in the machine's space); None for machines without an energy (RRBM, R3BM). The
        annealing is seeded and shows progress as the machine does."""
        if not self.has_energy:
            return None
        m = self.machine
        result = ais_log_partition(m, train, n_betas=self.n_betas, n_runs=self.n_runs, random_state=m.random_state,
                                   progress=m.progress)
        with torch.no_grad():
            ll = average_log_likelihood(m, test, result)
        return {"log_z": float(result.log_z), "log_z_std": float(result.log_z_std), "log_likelihood": float(ll)}


class DeepCodes:
    """A :class:`~fastseq.boltzmann.DeepBeliefNet` with the methods of :class:`fastseq.conv.CodeModel`.

    ``transform`` is the top layer's hidden means and ``inverse_transform`` goes back down
    with visible means through every layer, so ``--interpolate-at hidden`` mixes the top
    layer's codes. ``sample`` runs the top machine's Gibbs chains from the up-pass of
    ``start``, draws the layers between, and returns the bottom machine's visible means
    given that draw: the convention of the single machines (``E[v | h]`` for a sampled h).
    On the embedded faces' codes (128-64, the command's defaults) that kept the generated
    codes at 0.83 of the real spread (every unit within a factor 2); means all the way down
    (``DeepBeliefNet.sample``) left 0.65 (83% of the units).
    """

    scaling = "standard"  # a GaussianRBM at the bottom
    has_energy = True

    def __init__(self, net: DeepBeliefNet, n_betas: int = 3000, n_runs: int = 64, n_samples: int = 100) -> None:
        self.net = net
        self.n_betas, self.n_runs, self.n_samples = n_betas, n_runs, n_samples  # of held_out_log_likelihood
        self.name = DEEP

    def fit(self, X, y=None) -> "DeepCodes":
        self.net.fit(X)
        return self

    def transform(self, X) -> np.ndarray:
        return self.net.transform(X)

    def _below_top(self, X) -> np.ndarray:
        """Hidden means of every layer but the top: the top machine's visible values, ``N x H_(L-1)``."""
        for layer in self.net.layers_[:-1]:
            X = layer.transform(X)
        return X

    def _down(self, h, layers) -> np.ndarray:
        for layer in reversed(layers):
            h = layer.visible_mean(h)
        return h

    def inverse_transform(self, H) -> np.ndarray:
        """Visible means ``N x D`` down every layer from top-layer hidden values ``N x H_top``."""
        return self._down(H, self.net.layers_)

    def gibbs(self, v) -> np.ndarray:
        """Up with means to the top machine, one Gibbs step there, down with visible means."""
        return self._down(self.net.layers_[-1].gibbs(self._below_top(v)), self.net.layers_[:-1])

    def sample(self, n_samples: int = 16, n_steps: int = 1000, start=None) -> np.ndarray:
        layers = self.net.layers_
        if len(layers) == 1:
            return layers[0].sample(n_samples, n_steps=n_steps, start=start)
        h = layers[-1].sample(n_samples, n_steps=n_steps, start=None if start is None else self._below_top(start),
                              return_means=False)
        for layer in reversed(layers[1:-1]):
            h = layer.sample_visible(h)
        return layers[0].visible_mean(h)

    def held_out_log_likelihood(self, train, test) -> dict:
        """The net's variational lower bound of the held-out log-likelihood (mean nats per row),
        with the top machine's log Z by AIS started from the training rows' up-pass."""
        top = self.net.layers_[-1]
        result = ais_log_partition(top, self._below_top(train), n_betas=self.n_betas, n_runs=self.n_runs,
                                   random_state=top.random_state, progress=top.progress)
        bound = self.net.log_likelihood_bound(test, log_z=result, n_samples=self.n_samples,
                                              random_state=top.random_state)
        return {"log_z": float(result.log_z), "log_z_std": float(result.log_z_std),
                "log_likelihood": float(np.mean(bound))}


def deep_sizes(n_hidden: int, sizes=None) -> tuple[int, ...]:
    """The deep net's hidden layer sizes: ``sizes``, or by default ``n_hidden`` at the bottom and
    half of it above."""
    return tuple(sizes) if sizes else (n_hidden, max(1, n_hidden // 2))


def make_machine(name: str, n_hidden: int, epochs: int, seed: int, device: str = "cpu", batch_size: int = 16,
                 learning_rate: float | None = None, progress: bool = False, ais_betas: int = 3000,
                 ais_runs: int = 64, deep_hidden=None, cd_steps: int = 1) -> MachineCodes | DeepCodes:
    """One of RRBM, R3BM, BetaRBM, GaussianRBM with the settings ``fastseq faces`` uses for codes
    (``ais_betas`` temperatures and ``ais_runs`` runs estimate its log-likelihood; ``cd_steps``
    Gibbs steps per contrastive-divergence update).

    CD-1 rather than persistent CD: on the 160 embedded face codes PCD-1 left RRBM's
    mean-field reconstruction at 0.91 of the code variance and its samples nearly
    constant; CD-1 reached 0.68 (train) / 0.76 (held out) with samples of 0.39 of the
    real spread (Adam, rate 0.01, 100 epochs).

    ``"dbn"`` is a :class:`~fastseq.boltzmann.DeepBeliefNet` of a ``GaussianRBM`` (the codes
    are real-valued and standardised) under Bernoulli ``RBM`` s, hidden sizes
    :func:`deep_sizes` (``n_hidden``, ``deep_hidden``), each layer with the settings above.
    """
    if name not in (*_CLASSES, DEEP):
        raise ValueError(f"Expected a machine in {', '.join([*_CLASSES, DEEP])}, got {name!r}.")
    kwargs = dict(n_components=n_hidden, n_iter=epochs, batch_size=batch_size, optimizer="adam",
                  learning_rate=learning_rate or 0.01, persistent=False, k=cd_steps,
                  device=device, random_state=seed, progress=progress)
    if name == DEEP:
        del kwargs["n_components"], kwargs["random_state"]
        net = DeepBeliefNet.from_sizes(deep_sizes(n_hidden, deep_hidden), bottom="gaussian", random_state=seed,
                                       **kwargs)
        return DeepCodes(net, n_betas=ais_betas, n_runs=ais_runs)
    if name in ("RRBM", "R3BM"):
        kwargs["sigma"] = 0.1
    return MachineCodes(_CLASSES[name](**kwargs), n_betas=ais_betas, n_runs=ais_runs)
