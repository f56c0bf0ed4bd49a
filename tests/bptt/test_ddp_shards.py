"""Plain DistributedDataParallel over SlotSwapLoader shards (real gloo processes), and the
example script under torchrun."""
import os
import re
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
from _gloo import leave_group, spawn
from torch import nn

from fastseq.bptt import SlotSwapLoader

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "ddp_slot_swap.py"
# one sequence is far longer than all others together: its shard runs 15 windows, the other 2
LENGTHS = [60, 2, 3, 1, 2, 4, 1, 3, 2, 2]
B, K, F, H, WORLD = 2, 4, 3, 5, 2

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not built in")


def _example():
    sys.path.insert(0, str(EXAMPLE.parent))
    try:
        import ddp_slot_swap
    finally:
        sys.path.pop(0)
    return ddp_slot_swap


def _data():
    g = np.random.default_rng(1)
    xs = [g.standard_normal((n, F)).astype(np.float32) for n in LENGTHS]
    return xs, [g.standard_normal((n, F)).astype(np.float32) for n in LENGTHS]


def _loader(rank):
    xs, ys = _data()
    return SlotSwapLoader(xs, ys, B, K, shuffle=True, seed=2, rank=rank, world_size=WORLD, buffers=None)


def _model():
    torch.manual_seed(0)
    return _example().WindowLoss(F, H)


def ddp_worker(rank, folder):
    os.environ.update(MASTER_ADDR="127.0.0.1", GLOO_SOCKET_IFNAME="lo")
    dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank, world_size=WORLD,
                            timeout=timedelta(seconds=60))  # a rank left waiting fails instead of hanging
    try:
        torch.set_num_threads(1)
        model = _model()
        ddp = nn.parallel.DistributedDataParallel(model)
        opt = torch.optim.SGD(ddp.parameters(), lr=0.05)
        grads = []
        _example().train_epoch(_loader(rank), ddp, opt, WORLD,
                               on_window=lambda w, m: grads.append([p.grad.clone() for p in m.parameters()]))
        torch.save({"grads": [torch.cat([g.reshape(-1) for g in step]) for step in grads],
                    **model.state_dict()}, f"{folder}/rank{rank}.pt")
    finally:
        leave_group()


def reference():
    """One process: each window's loss summed over both shards' windows, divided by their real steps."""
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    shards = [list(_loader(r)) for r in range(WORLD)]
    hidden = [torch.zeros(lo.slots, H) for lo in (_loader(r) for r in range(WORLD))]
    grads = []
    for index in range(max(len(s) for s in shards)):
        total, real = 0.0, 0
        for r, shard in enumerate(shards):
            w = shard[index]
            h = hidden[r].detach()[torch.as_tensor(w.slot_map)]
            cost, hidden[r] = model(w.inputs, w.targets, w.reset, w.valid, h)
            total, real = total + cost, real + w.real_steps
        opt.zero_grad()
        (total / real).backward()
        grads.append(torch.cat([p.grad.reshape(-1) for p in model.parameters()]))
        opt.step()
    return grads, model.state_dict()


def test_plain_ddp_over_shards_of_very_different_lengths_matches_one_process(tmp_path):
    plan = _loader(0).epoch_shards(0)
    assert max(plan.windows_per_rank) >= 5 * min(plan.windows_per_rank)  # very different shards
    spawn(ddp_worker, (str(tmp_path),), WORLD)
    runs = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]
    want_grads, want_state = reference()
    assert len(runs[0]["grads"]) == len(runs[1]["grads"]) == len(want_grads) == plan.windows
    for index, (got, want) in enumerate(zip(runs[0]["grads"], want_grads)):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6, msg=f"window {index}")
        torch.testing.assert_close(runs[1]["grads"][index], got, rtol=0, atol=0)
    for name, value in want_state.items():
        torch.testing.assert_close(runs[0][name], value, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.slow
def test_example_runs_under_torchrun(tmp_path):
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable)) or shutil.which("torchrun")
    if torchrun is None:
        pytest.skip("torchrun is not installed")
    # the installed fastseq, not the source tree (whose extension may not be built in place)
    env = dict(os.environ, GLOO_SOCKET_IFNAME="lo", OMP_NUM_THREADS="1", PYTHONSAFEPATH="1")
    env.pop("PYTHONPATH", None)
    done = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", str(EXAMPLE), "--sequences",
                           "32", "--epochs", "1"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    found = re.findall(r"rank (\d)/2 epoch 0: (\d+) windows", done.stdout)  # the ranks' lines may interleave
    assert sorted(rank for rank, _ in found) == ["0", "1"]
    assert len({n for _, n in found}) == 1  # both processes ran the same number of windows
