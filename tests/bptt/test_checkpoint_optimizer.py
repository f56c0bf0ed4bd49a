"""A checkpoint restores any optimizer's state as it was: tensors and plain values, under keys
with dots in them (custom optimizers name their buffers freely), for every parameter."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from fastseq.bptt.checkpoint import load_checkpoint, restore, save_checkpoint


class DottedState(torch.optim.Optimizer):
    """SGD that keeps an average under a dotted key, a Python count and a Python float per parameter."""

    def __init__(self, params, lr=0.1):
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                st = self.state[p]
                st["ema.fast"] = 0.5 * st.get("ema.fast", torch.zeros_like(p)) + p.grad
                st["calls"] = st.get("calls", 0) + 1
                st["scale.last"] = float(p.grad.abs().max())
                p.add_(st["ema.fast"], alpha=-group["lr"])


def _trained(seed: int):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    opt = DottedState(model.parameters())
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(5, 3)).pow(2).sum().backward()
        opt.step()
    return model, opt


def test_an_optimizer_state_with_dotted_keys_and_plain_values_comes_back_whole(tmp_path):
    model, opt = _trained(0)
    path = tmp_path / "run.ckpt"
    save_checkpoint(path, config={}, loader_state={}, decoder=model, optimizer=opt,
                    carried=(torch.zeros(1, 2, 3),), losses=[0.25], generator=None)
    fresh, fresh_opt = _trained(1)  # other weights and another state, overwritten by the restore
    meta, tensors = load_checkpoint(path)
    restore(meta, tensors, fresh, fresh_opt, None, torch.device("cpu"))
    want, got = opt.state_dict(), fresh_opt.state_dict()
    assert got["param_groups"] == want["param_groups"]
    assert sorted(got["state"]) == sorted(want["state"]) == list(range(4))
    for pid, entries in want["state"].items():
        assert set(got["state"][pid]) == {"ema.fast", "calls", "scale.last"}
        assert torch.equal(got["state"][pid]["ema.fast"], entries["ema.fast"])
        assert got["state"][pid]["calls"] == 3 and got["state"][pid]["scale.last"] == entries["scale.last"]
    # and the restored optimizer steps on exactly as the original does
    batch = torch.randn(5, 3)
    for m, o in ((model, opt), (fresh, fresh_opt)):
        o.zero_grad()
        m(batch).pow(2).sum().backward()
        o.step()
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), fresh.parameters()))
    assert np.isclose(fresh_opt.state[next(fresh.parameters())]["calls"], 4)


class CountsOnly(torch.optim.SGD):
    """SGD that keeps nothing but a Python count for each parameter: a state without tensors."""

    @torch.no_grad()
    def step(self, closure=None):
        super().step(closure)
        for group in self.param_groups:
            for p in group["params"]:
                self.state[p]["calls"] = self.state[p].get("calls", 0) + 1


def test_an_optimizer_state_of_plain_values_only_comes_back(tmp_path):
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    opt = CountsOnly(model.parameters(), lr=0.1)
    for _ in range(2):
        opt.zero_grad()
        model(torch.randn(4, 3)).sum().backward()
        opt.step()
    path = tmp_path / "run.ckpt"
    save_checkpoint(path, config={}, loader_state={}, decoder=model, optimizer=opt,
                    carried=(torch.zeros(1, 2, 3),), losses=[0.25], generator=None)
    fresh = nn.Linear(3, 2)
    fresh_opt = CountsOnly(fresh.parameters(), lr=0.1)
    meta, tensors = load_checkpoint(path)
    restore(meta, tensors, fresh, fresh_opt, None, torch.device("cpu"))
    got = fresh_opt.state_dict()["state"]
    assert {pid: {k: v for k, v in st.items() if k == "calls"} for pid, st in got.items()} == {0: {"calls": 2}, 1: {"calls": 2}}
