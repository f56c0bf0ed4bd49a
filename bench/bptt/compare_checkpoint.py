"""Checkpoint size and time per checkpoint of train_bptt, for the tied RNN of `fastseq train`
(169 units, MNIST rows) and a GRU decoder with H=512, both with Adam's state, B=20 slots of
carried state and 1,000 losses; save (atomic, fsync'd) and load timed in interleaved repeats.

    python bench/bptt/compare_checkpoint.py [--repeats 9] [--json out.json]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch
from torch import nn

from fastseq.bptt.checkpoint import load_checkpoint, save_checkpoint
from fastseq.rowrnn import TiedRNN

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: the shared helpers, when run as a path
from _json_out import write_json  # noqa: E402
from _timing import summary, time_cases  # noqa: E402


class GRUDecoder(nn.Module):
    def __init__(self, features: int = 28, hidden: int = 512) -> None:
        super().__init__()
        self.rnn, self.out = nn.GRU(2 * features, hidden), nn.Linear(hidden, features)

    def forward(self, visible, context, hidden):
        y, hidden = self.rnn(torch.cat([visible, context.unsqueeze(0)], -1), hidden)
        return self.out(y), hidden


def case(name: str, module: nn.Module, hidden: int) -> dict:
    opt = torch.optim.Adam(module.parameters(), lr=1e-3)
    for p in module.parameters():
        p.grad = torch.randn_like(p)
    opt.step()  # Adam's moments exist, as in any checkpoint after the first window
    carried = (torch.zeros(1, 20, 28), torch.randn(1, 20, hidden))
    return {"name": name, "module": module, "opt": opt, "carried": carried,
            "params": sum(p.numel() for p in module.parameters())}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--json")
    args = p.parse_args(argv)
    torch.manual_seed(0)
    cases = [case("TiedRNN 169 units", TiedRNN(28, 169), 169), case("GRU H=512", GRUDecoder(), 512)]
    folder = Path(tempfile.mkdtemp(prefix="fastseq-ckpt-bench-"))
    paths = {c["name"]: folder / (c["name"].split()[0] + ".ckpt") for c in cases}

    def save(c: dict) -> None:
        save_checkpoint(paths[c["name"]], config={}, loader_state={"epoch": 0, "window": 1}, decoder=c["module"],
                        optimizer=c["opt"], carried=c["carried"], losses=[0.5] * 1000, generator=None)

    # in turn: save then load each case's checkpoint (a load reads the save just before it); no warm-up
    steps = {}
    for c in cases:
        steps[(c["name"], "save")] = lambda c=c: save(c)
        steps[(c["name"], "load")] = lambda c=c: load_checkpoint(paths[c["name"]])
    times = time_cases(steps, args.repeats, warmup=False)
    result = {}
    for c in cases:
        save_s, load_s = summary(times[(c["name"], "save")]), summary(times[(c["name"], "load")])
        result[c["name"]] = {"parameters": c["params"], "bytes": paths[c["name"]].stat().st_size,
                             "save_ms_median": 1e3 * save_s["median"],
                             "save_ms_range": [1e3 * save_s["min"], 1e3 * save_s["max"]],
                             "load_ms_median": 1e3 * load_s["median"]}
        r = result[c["name"]]
        print(f"{c['name']:>18}: {c['params']:>9,} parameters, checkpoint {r['bytes'] / 2**20:6.2f} MiB, save "
              f"{r['save_ms_median']:6.1f} ms (range {r['save_ms_range'][0]:.1f}-{r['save_ms_range'][1]:.1f}), "
              f"load {r['load_ms_median']:5.1f} ms; medians of {args.repeats}")
    if args.json:
        write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
