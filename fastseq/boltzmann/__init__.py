"""Restricted Boltzmann machines with Bernoulli, Gaussian and Beta visible units, deep belief
nets stacked from them, and their likelihoods (exact, annealed importance sampling, pseudo-likelihood)."""
from fastseq._util.deprecation import moved_names
from fastseq.boltzmann._base import BoltzmannMachine
from fastseq.boltzmann._beta import R3BM, RRBM, BetaRBM
from fastseq.boltzmann._deep_tempering import DeepTemperingStats
from fastseq.boltzmann._rbm import RBM, GaussianRBM
from fastseq.boltzmann._tempering import TemperingStats
from fastseq.boltzmann.deep import DeepBeliefNet
from fastseq.boltzmann.likelihood import (AISResult, ais_log_partition, average_log_likelihood, exact_log_partition,
                                          pseudo_likelihood)

__all__ = [
    "AISResult", "BetaRBM", "BoltzmannMachine", "DeepBeliefNet", "DeepTemperingStats", "GaussianRBM", "R3BM", "RBM", "RRBM",
    "TemperingStats", "ais_log_partition", "average_log_likelihood", "exact_log_partition", "pseudo_likelihood",
]

# no longer public here (still in their modules)
MOVED = {
    "ais_schedule": ("fastseq.boltzmann.likelihood", "ais_log_partition builds it; import it from "
                     "fastseq.boltzmann.likelihood"),
    "load_rbm": ("fastseq.boltzmann._base", "use fastseq.load(path) or RBM.load(path)"),
}
__getattr__ = moved_names(__name__, MOVED)
