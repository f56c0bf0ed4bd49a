"""Write the files in this folder with the four file formats fastseq had before ``fastseq.save``.

Run once, from a checkout of the commit before the one file format (c5c9af1), with
``PYTHONPATH=<that checkout> python tests/_util/old_files/make_old_files.py``; the files it
wrote are committed, so the tests read bytes that the old code really wrote. ``expected.npz``
holds what each model computed on fixed inputs then, and ``checkpoint.json`` the header that
``load_checkpoint`` returned then.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fastseq.boltzmann import R3BM, RBM, RRBM, BetaRBM, GaussianRBM
from fastseq.bptt import train_bptt
from fastseq.bptt.checkpoint import load_checkpoint
from fastseq.conv import ConvAutoencoder, ConvConfig
from fastseq.rowrnn.models import make_model, save_model

HERE = Path(__file__).parent


class Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(3 + 2, 4)
        self.out = nn.Linear(4, 3)

    def forward(self, visible, context, hidden):
        h, hidden = self.rnn(torch.cat([visible, context.unsqueeze(0)], -1), hidden)
        return self.out(h), hidden


def main() -> None:
    rng = np.random.default_rng(0)
    expected: dict[str, np.ndarray] = {}
    x_rbm = rng.random((8, 5))
    expected["rbm_input"] = x_rbm
    for cls, kw in [(RBM, {}), (RRBM, {"sigma": 0.2}), (R3BM, {}), (BetaRBM, {"eps": 1e-2}),
                    (GaussianRBM, {"learn_sigma": True})]:
        m = cls(n_components=3, n_iter=2, batch_size=4, random_state=0, **kw).fit(x_rbm)
        m.save(HERE / f"{cls.__name__}.npz")
        expected[cls.__name__] = m.transform(x_rbm)
    net = ConvAutoencoder(ConvConfig(8, (2,), (2,)), seed=0)
    x_conv = rng.uniform(-1, 1, (3, 8, 8)).astype(np.float32)
    expected["conv_input"], expected["conv"] = x_conv, net.encode(x_conv)
    net.save(HERE / "conv.safetensors")
    net.save(HERE / "conv.npz")
    x_rows = torch.as_tensor(rng.random((5, 2, 4)), dtype=torch.float32)
    expected["rowrnn_input"] = x_rows.numpy()
    for kind in ("rnn", "lstm"):
        torch.manual_seed(0)
        m = make_model(kind, 3, 4)
        save_model(m, HERE / f"rowrnn_{kind}.safetensors")
        expected[f"rowrnn_{kind}"] = m(x_rows)[0].detach().numpy()
    torch.manual_seed(0)
    np.random.seed(0)
    model = Decoder()
    lengths = [3, 5, 2, 4]
    ctx = [rng.standard_normal((t, 2)).astype(np.float32) for t in lengths]
    tgt = [rng.standard_normal((t, 3)).astype(np.float32) for t in lengths]
    train_bptt(model, ctx, tgt, torch.zeros(3), torch.zeros(1, 4), torch.optim.Adam(model.parameters(), lr=0.01),
               batch_size=2, bptt=2, teacher_forcing=0.5, seed=1, checkpoint=HERE / "checkpoint.ckpt",
               checkpoint_every=2)
    meta, _ = load_checkpoint(HERE / "checkpoint.ckpt")
    (HERE / "checkpoint.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    np.savez(HERE / "expected.npz", **expected)


if __name__ == "__main__":
    main()
