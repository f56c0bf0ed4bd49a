"""Restricted Boltzmann machines with Bernoulli, Gaussian and Beta visible units, and
their likelihoods (exact, annealed importance sampling, pseudo-likelihood)."""
from fastseq.boltzmann._base import BoltzmannMachine, load_rbm
from fastseq.boltzmann._beta import R3BM, RRBM, BetaRBM
from fastseq.boltzmann._rbm import RBM, GaussianRBM
from fastseq.boltzmann.likelihood import (AISResult, ais_log_partition, ais_schedule, average_log_likelihood,
                                          exact_log_partition, pseudo_likelihood)

__all__ = [
    "AISResult", "BetaRBM", "BoltzmannMachine", "GaussianRBM", "R3BM", "RBM", "RRBM",
    "ais_log_partition", "ais_schedule", "average_log_likelihood", "exact_log_partition",
    "load_rbm", "pseudo_likelihood",
]
