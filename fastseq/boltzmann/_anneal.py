"""Annealing paths for AIS (see ``fastseq.boltzmann.likelihood.ais_log_partition``).

Each machine returns its path from ``_anneal_path``; a path knows the base model (weights
switched off, log Z in closed form), how to start from it, the change of the log importance
weight between two inverse temperatures, and one exact Gibbs transition at a temperature.
This module imports no machine: the machines import it.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["AnnealRBM", "AnnealBeta", "AnnealGauss"]


class AnnealRBM:
    """AIS path for the Bernoulli RBM from a base-rate model with visible logits ``b0``."""

    def __init__(self, model, data):
        self.m = model
        p = model.params_
        self.W, self.b, self.c = p["W"].detach(), p["b"].detach(), p["c"].detach()
        if data is None:
            self.b0 = self.b.clone()
        else:
            mean = model._column_moments(model._validate(data))[0].clamp(1e-3, 1 - 1e-3)
            self.b0 = torch.log(mean / (1 - mean))
        self.db = (self.b - self.b0).double()

    def log_z_base(self) -> float:
        return float(F.softplus(self.b0.double()).sum() + self.c.numel() * math.log(2))

    def start(self, n):
        return self.m._bernoulli(self.b0.expand(n, -1))

    def pre(self, v):
        return torch.addmm(self.c, v, self.W)

    def delta(self, v, pre, b_new, b_old):
        pre64 = pre.double()
        lin = (b_new - b_old) * (v.double() @ self.db)
        return lin + (F.softplus(b_new * pre64) - F.softplus(b_old * pre64)).sum(1)

    def step(self, v, pre, beta):
        h = self.m._bernoulli(beta * pre)
        return self.m._bernoulli((1 - beta) * self.b0 + beta * torch.addmm(self.b, h, self.W.T))


class AnnealBeta(AnnealRBM):
    """AIS path for BetaRBM from independent Beta(A0, B0) visible units (the model's A, B)."""

    def __init__(self, model, data):
        self.m = model
        s = model.shapes()
        self.A, self.B, self.Wa, self.Wb = s["A"], s["B"], s["Wa"], s["Wb"]
        self.c = model.params_["c"].detach()
        self.A0, self.B0 = self.A.clone(), self.B.clone()
        self.tiny = 1e-12 if model._tdtype == torch.float64 else 1e-6

    def log_z_base(self) -> float:
        a, b = self.A0.double(), self.B0.double()
        return float((torch.lgamma(a) + torch.lgamma(b) - torch.lgamma(a + b)).sum() + self.c.numel() * math.log(2))

    def _clamp(self, v):
        return v.clamp(self.tiny, 1 - self.tiny)

    def start(self, n):
        return self._clamp(self.m._beta_ab(self.A0.expand(n, -1), self.B0.expand(n, -1)))

    def pre(self, v):
        return self.c + torch.log(v) @ self.Wa + torch.log1p(-v) @ self.Wb

    def delta(self, v, pre, b_new, b_old):
        # the base and model visible terms differ only by (A - A0), (B - B0): zero here
        pre64 = pre.double()
        return (F.softplus(b_new * pre64) - F.softplus(b_old * pre64)).sum(1)

    def step(self, v, pre, beta):
        h = self.m._bernoulli(beta * pre)
        a = (1 - beta) * self.A0 + beta * (self.A + h @ self.Wa.T)
        b = (1 - beta) * self.B0 + beta * (self.B + h @ self.Wb.T)
        return self._clamp(self.m._beta_ab(a, b))


class AnnealGauss(AnnealRBM):
    """AIS path for GaussianRBM from independent N(b, sigma^2) visible units."""

    def __init__(self, model, data):
        self.m = model
        p = model.params_
        self.W, self.b, self.c = p["W"].detach(), p["b"].detach(), p["c"].detach()
        self.s = torch.exp(p["log_sigma"].detach())

    def log_z_base(self) -> float:
        return float(torch.log(math.sqrt(2 * math.pi) * self.s.double()).sum() + self.c.numel() * math.log(2))

    def start(self, n):
        noise = torch.randn(n, self.b.numel(), generator=self.m._tgen, device=self.b.device, dtype=self.b.dtype)
        return self.b + self.s * noise

    def pre(self, v):
        return torch.addmm(self.c, v / self.s, self.W)

    def delta(self, v, pre, b_new, b_old):
        pre64 = pre.double()
        return (F.softplus(b_new * pre64) - F.softplus(b_old * pre64)).sum(1)

    def step(self, v, pre, beta):
        h = self.m._bernoulli(beta * pre)
        noise = torch.randn(v.shape, generator=self.m._tgen, device=v.device, dtype=v.dtype)
        return self.b + self.s * (beta * (h @ self.W.T)) + self.s * noise
