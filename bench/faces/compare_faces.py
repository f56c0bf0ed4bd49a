"""Speed of the faces pipeline on the CPU: CNN training throughput per layer, encoding
batched versus one image at a time, and generating 64 faces with 1,000 Gibbs steps
(64 chains side by side versus one chain at a time) for each Boltzmann machine.

Real faces (scikit-image's LFW subset, mirrored: 200 images), at S = 25 (the default
network, 288 codes) and S = 64 (the original's five layers, 512 codes; the 25 x 25 faces
resized up). Repeats are interleaved so drifts in machine load hit every case alike (each
repeat trains a fresh network, seeded by the repeat, and times encoding with it); medians and
the spread (min-max) are printed.

    flock /tmp/fastseq-bench.lock env PYTHONPATH=. python bench/faces/compare_faces.py [--repeats 3] [--json PATH]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from fastseq.commands._face_machines import make_machine
from fastseq.conv import ConvAutoencoder, StackedModel, default_config, train_layerwise
from fastseq.datasets import lfw_subset_faces

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: the shared helpers, when run as a path
from _json_out import write_json  # noqa: E402
from _timing import seconds, summary  # noqa: E402


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--gibbs-steps", type=int, default=1000)
    parser.add_argument("--single-chains", type=int, default=4,
                        help="chains run one at a time (their time is scaled up to 64)")
    parser.add_argument("--json", default=None, metavar="PATH")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows: dict[str, list[float]] = {}

    def add(key, value):
        rows.setdefault(key, []).append(value)

    faces = {s: lfw_subset_faces(size=s, mirror=True).images for s in (25, 64)}
    nets = {s: ConvAutoencoder(default_config(s), seed=0) for s in faces}
    # the machines train once (speed of training is not the question here), on real codes
    train_layerwise(nets[25], faces[25], epochs=3)
    codes = nets[25].encode(faces[25])
    stacked = {}
    for name in ("RRBM", "R3BM", "BetaRBM", "GaussianRBM"):
        m = make_machine(name, 128, 20, seed=0)
        stacked[name] = StackedModel(nets[25], m, scaling=m.scaling).fit(codes=codes)
        stacked[name].generate(64, 2)  # compile the Numba kernels before the clock starts

    for rep in range(args.repeats):
        for s, x in faces.items():
            net = ConvAutoencoder(default_config(s), seed=rep)
            for r in train_layerwise(net, x, epochs=1, batch_size=16):
                add(f"S={s} train layer {r.layer} (images/s)", r.images_per_second)
            t_batch = seconds(lambda: net.encode(x))
            t_one = seconds(lambda: [net.encode(x[i:i + 1]) for i in range(len(x))])
            add(f"S={s} encode 200 faces batched (s)", t_batch)
            add(f"S={s} encode 200 faces one at a time (s)", t_one)
        for name, sm in stacked.items():
            add(f"generate 64 faces, {args.gibbs_steps} steps, {name}, 64 chains batched (s)",
                seconds(lambda: sm.generate(64, args.gibbs_steps, seed=rep)))
            k = args.single_chains
            t = seconds(lambda: [sm.generate(1, args.gibbs_steps, seed=i) for i in range(k)])
            add(f"generate 64 faces, {args.gibbs_steps} steps, {name}, one chain at a time (s, {k} timed x {64 // k})",
                t * 64 / k)

    out = {}
    print(f"{'measure':<92} {'median':>10} {'min':>10} {'max':>10}")
    for key, vals in rows.items():
        out[key] = {**summary(vals), "values": vals}
        print(f"{key:<92} {out[key]['median']:>10.3f} {out[key]['min']:>10.3f} {out[key]['max']:>10.3f}")
    for s in faces:
        ratio = out[f"S={s} encode 200 faces one at a time (s)"]["median"] / out[f"S={s} encode 200 faces batched (s)"]["median"]
        print(f"S={s}: batched encoding is {ratio:.1f}x one image at a time")
    for name in stacked:
        keys = [k for k in out if f", {name}, " in k]
        ratio = out[keys[1]]["median"] / out[keys[0]]["median"]
        print(f"{name}: 64 chains side by side are {ratio:.1f}x one chain at a time")
    if args.json:
        write_json(args.json, out)


if __name__ == "__main__":
    main()
