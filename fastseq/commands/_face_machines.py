"""fastseq's Boltzmann machines as code models of :class:`fastseq.conv.StackedModel`, with
their held-out log-likelihood for :func:`fastseq.conv.evaluate_faces` (the part of
``fastseq faces`` that knows both domains)."""
from __future__ import annotations

import numpy as np
import torch

from fastseq.boltzmann import R3BM, RRBM, BetaRBM, GaussianRBM, ais_log_partition, average_log_likelihood

_CLASSES = {"RRBM": RRBM, "R3BM": R3BM, "BetaRBM": BetaRBM, "GaussianRBM": GaussianRBM}


class MachineCodes:
    """A fastseq Boltzmann machine with the methods of :class:`fastseq.conv.CodeModel`
    (``inverse_transform`` is the machine's ``visible_mean``)."""

    def __init__(self, machine, n_betas: int = 3000, n_runs: int = 64) -> None:
        self.machine = machine
        self.n_betas, self.n_runs = n_betas, n_runs  # the AIS of held_out_log_likelihood
        self.name = type(machine).__name__
        self.scaling = "standard" if isinstance(machine, GaussianRBM) else "unit"
        self.has_energy = isinstance(machine, (BetaRBM, GaussianRBM))

    def fit(self, X, y=None) -> "MachineCodes":
        self.machine.fit(X)
        return self

    def transform(self, X) -> np.ndarray:
        return self.machine.transform(X)

    def gibbs(self, v) -> np.ndarray:
        return self.machine.gibbs(v)

    def sample(self, n_samples: int = 16, n_steps: int = 1000, start=None) -> np.ndarray:
        return self.machine.sample(n_samples, n_steps=n_steps, start=start)

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


def make_machine(name: str, n_hidden: int, epochs: int, seed: int, device: str = "cpu", batch_size: int = 16,
                 learning_rate: float | None = None, progress: bool = False, ais_betas: int = 3000,
                 ais_runs: int = 64) -> MachineCodes:
    """One of RRBM, R3BM, BetaRBM, GaussianRBM with the settings ``fastseq faces`` uses for codes
    (``ais_betas`` temperatures and ``ais_runs`` runs estimate its log-likelihood).

    CD-1 rather than persistent CD: on the 160 embedded face codes PCD-1 left RRBM's
    mean-field reconstruction at 0.91 of the code variance and its samples nearly
    constant; CD-1 reached 0.68 (train) / 0.76 (held out) with samples of 0.39 of the
    real spread (Adam, rate 0.01, 100 epochs).
    """
    if name not in _CLASSES:
        raise ValueError(f"Expected a machine in {', '.join(_CLASSES)}, got {name!r}.")
    kwargs = dict(n_components=n_hidden, n_iter=epochs, batch_size=batch_size, optimizer="adam",
                  learning_rate=learning_rate or 0.01, persistent=False,
                  device=device, random_state=seed, progress=progress)
    if name in ("RRBM", "R3BM"):
        kwargs["sigma"] = 0.1
    return MachineCodes(_CLASSES[name](**kwargs), n_betas=ais_betas, n_runs=ais_runs)
