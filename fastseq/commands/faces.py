"""``fastseq faces``: a convolutional autoencoder trained layer by layer on faces, Boltzmann
machines on its codes; four pictures (faces, autoencoded, generated, interpolated) and
measured quality (CNN vs PCA; each machine's reconstruction error, held-out
log-likelihood and a classifier two-sample test).

The protocol (split, network, baseline, measures) is :mod:`fastseq.conv.evaluation`; this
command turns options into its arguments, prints what it reports and writes the files."""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

from fastseq.commands._common import CommandError, checked as _checked, count as _count, positive_int as _positive

HELP = ("Train a convolutional autoencoder on faces layer by layer and Boltzmann machines on its codes; "
        "draw faces, autoencoded, generated and interpolated faces; measure quality.")

PICTURES = ("data", "autoencoded", "generated", "interpolated")
MACHINES = ("RRBM", "R3BM", "BetaRBM", "GaussianRBM")  # the Boltzmann machines with continuous visible units
DEEP = "dbn"  # a deep belief net, GaussianRBM at the bottom: a choice, not a default


_unit = _checked(float, lambda v: 0.0 <= v <= 1.0, "a number in [0, 1]")
_open_unit = _checked(float, lambda v: 0.0 < v < 1.0, "a number in (0, 1)")
_crop = _checked(float, lambda v: 0.0 < v <= 1.0, "a number in (0, 1]")
_rate = _checked(float, lambda v: 0.0 < v < float("inf"), "a finite number > 0")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``fastseq faces``."""
    parser.epilog = ("Example: fastseq faces --output faces_out. Writes PREFIX_data.png, PREFIX_autoencoded.png, "
                     "PREFIX_generated.png, PREFIX_interpolated.png, PREFIX_metrics.json and PREFIX_cnn.safetensors "
                     "in --output (PREFIX: faces or mnist).")
    parser.add_argument("--dataset", choices=["faces", "mnist"], default="faces",
                        help="faces (the LFW faces embedded in scikit-image, or --data) or the embedded MNIST digits")
    parser.add_argument("--data", default=None, metavar="DIR",
                        help="folder of face images: an LFW copy (DIR/Person_Name/*.jpg) or any pictures")
    parser.add_argument("--people", nargs=2, default=None, metavar="NAME",
                        help="two people to interpolate between (LFW folder names; face_000..face_099 for the "
                             "embedded faces); default random pairs")
    parser.add_argument("--size", type=_positive, default=None, metavar="S",
                        help="side of the faces in pixels (default 25 for the embedded faces, 64 for --data, "
                             "28 for mnist)")
    parser.add_argument("--crop", type=_crop, default=1.0,
                        help="share of the shorter image side kept around the centre (about 0.5 for LFW)")
    parser.add_argument("--no-mirror", dest="mirror", action="store_false",
                        help="do not add left-right mirror images of the faces")
    parser.add_argument("--held-out", type=_open_unit, default=0.2, metavar="FRACTION",
                        help="share of the images (with their mirrors) kept out of training for the measures")
    parser.add_argument("--max-images", type=_positive, default=None, metavar="N",
                        help="use at most N images (default all faces, 1500 digits)")
    parser.add_argument("--channels", type=_positive, nargs="+", default=None, metavar="C",
                        help="channels of each CNN layer (with --strides; default for S: see fastseq.conv.default_config, "
                             "data='digits' for mnist)")
    parser.add_argument("--strides", type=_positive, nargs="+", default=None, metavar="STRIDE",
                        help="stride of each CNN layer")
    parser.add_argument("--model", default=None, metavar="FILE",
                        help="a CNN saved by an earlier run (.safetensors or .npz) instead of training one")
    parser.add_argument("--cnn-epochs", type=_count, default=None, metavar="N",
                        help="epochs per layer (default 20; 4 for mnist)")
    parser.add_argument("--fine-tune-epochs", type=_count, default=None, metavar="N",
                        help="end-to-end epochs after the layers, at a quarter of --cnn-learning-rate (default 20; "
                             "40 for mnist, at the full rate)")
    parser.add_argument("--cnn-learning-rate", type=_rate, default=2e-3, metavar="LR", help="Adam step size")
    parser.add_argument("--batch", type=_positive, default=16, metavar="B", help="images (or codes) per step")
    parser.add_argument("--machines", nargs="+", choices=(*MACHINES, DEEP), default=list(MACHINES), metavar="NAME",
                        help=f"Boltzmann machines trained on the codes ({', '.join(MACHINES)}; default all), "
                             f"and {DEEP}, a deep belief net (GaussianRBM under RBMs, see --deep-hidden)")
    parser.add_argument("--picture-machine", choices=(*MACHINES, DEEP), default=None, metavar="NAME",
                        help="machine that draws the pictures (default the first of --machines)")
    parser.add_argument("--hidden", type=_positive, default=128, metavar="H", help="hidden units of each machine")
    parser.add_argument("--deep-hidden", type=_positive, nargs="+", default=None, metavar="H",
                        help=f"hidden units of each layer of {DEEP}, bottom first (default --hidden, then half of it)")
    parser.add_argument("--rbm-epochs", type=_positive, default=None, metavar="N",
                        help="epochs of each machine (default 100; 20 for mnist)")
    parser.add_argument("--rbm-learning-rate", type=_rate, default=None, metavar="LR", help="machines' Adam step size")
    parser.add_argument("--cd-steps", type=_positive, default=1, metavar="K",
                        help="Gibbs steps of each contrastive-divergence update of the machines (CD-K)")
    parser.add_argument("--gibbs-steps", type=_positive, default=1000, metavar="N", help="Gibbs steps per generated face")
    parser.add_argument("--ais-betas", type=_positive, default=3000, metavar="N",
                        help="temperatures of annealed importance sampling (log-likelihood)")
    parser.add_argument("--ais-runs", type=_positive, default=64, metavar="N", help="AIS runs")
    parser.add_argument("--mix", type=_unit, default=1.0,
                        help="autoencoded picture: share of the machine's down pass (vs the CNN's up pass) at "
                             "--mix-layer; 1 = fully through the machine")
    parser.add_argument("--mix-layer", type=_positive, default=None, metavar="L",
                        help="CNN layer (1-based) where the passes mix (default the top)")
    parser.add_argument("--interpolate-at", choices=["cnn", "hidden"], default="cnn",
                        help=f"interpolate the top CNN codes or the machine's hidden units (for {DEEP}: its top "
                             "layer's)")
    parser.add_argument("--threads", type=_positive, default=1,
                        help="torch CPU threads; these convolutions are small, and on a busy 2-core machine one "
                             "thread ran several times faster than two")
    parser.add_argument("--device", default="cpu", help="torch device for the CNN and the machines (cpu, cuda)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split, the weights and the chains")
    parser.add_argument("--output", default="fastseq_faces", metavar="DIR", help="folder for the pictures and metrics")
    parser.add_argument("--force", action="store_true", help="overwrite existing output files")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _outputs(args) -> dict[str, Path]:
    prefix = "mnist" if args.dataset == "mnist" else "faces"
    out = Path(args.output)
    paths = {name: out / f"{prefix}_{name}.png" for name in PICTURES}
    paths["metrics"] = out / f"{prefix}_metrics.json"
    paths["cnn"] = out / f"{prefix}_cnn.safetensors"
    return paths


def _option_error(exc: Exception) -> CommandError:
    """A library error about an argument as one about the option that set it."""
    message = re.sub(r"^size=", "--size ", str(exc))
    for name, option in (("data", "--data"), ("size", "--size"), ("crop", "--crop"), ("seed", "--seed")):
        message = message.replace(f"Expected {name}", f"Expected {option}")
    return CommandError(message)


def _load_images(args):
    """The split (with mirror images in each part), the data's source and its unreadable files."""
    import numpy as np

    from fastseq.conv.evaluation import split_digits, split_faces
    from fastseq.datasets.faces import lfw_subset_faces, load_faces

    if args.dataset == "mnist":
        if args.data is not None or args.people is not None:
            raise CommandError("Expected no --data or --people with --dataset mnist (the embedded digits are used).")
        from fastseq.datasets.mnist import load_mnist

        try:
            split = split_digits(load_mnist(), limit=args.max_images or 1500, held_out=args.held_out, size=args.size,
                                 seed=args.seed)
        except ValueError as exc:
            raise _option_error(exc) from None
        return split, "embedded MNIST digits", 0
    try:
        faces = (lfw_subset_faces(size=args.size or 25) if args.data is None
                 else load_faces(args.data, size=args.size or 64, crop=args.crop))
    except (ValueError, FileNotFoundError) as exc:  # name the options, not the function's arguments
        raise _option_error(exc) from None
    images, people = np.asarray(faces.images), faces.people
    if args.max_images is not None:
        images, people = images[:args.max_images], people[:args.max_images]
    if len(images) < 2:
        raise CommandError(f"Expected --data to hold at least 2 readable images (some to train on, some to hold "
                           f"out), got {len(images)} in {faces.source}.")
    try:
        split = split_faces(images, people, held_out=args.held_out, mirror=args.mirror, seed=args.seed)
    except ValueError as exc:
        raise _option_error(exc) from None
    return split, faces.source, faces.skipped


def _config(args, size: int):
    from fastseq.conv.model import ConvConfig, default_config

    if (args.channels is None) != (args.strides is None):
        raise CommandError("Expected --channels and --strides together, got only one of them.")
    try:
        if args.channels is None:
            return default_config(size, "digits" if args.dataset == "mnist" else "faces")
        return ConvConfig(size, tuple(args.channels), tuple(args.strides))
    except ValueError as exc:
        raise CommandError(str(exc).replace("Expected size", "Expected --size").replace(
            "Expected channels and strides", "Expected --channels and --strides")) from None


def _interpolation_pairs(args, train, test, people_train, people_test, width: int = 8):
    """Images a, b (``width x S x S`` each) for the interpolation picture."""
    import numpy as np

    images = np.concatenate([train, test])
    names = np.concatenate([people_train, people_test])
    rng = np.random.default_rng(args.seed + 1)
    if args.people is None:
        distinct = np.unique(names)
        if distinct.size < 2:
            raise CommandError("Expected at least two different people to interpolate between, got one.")
        pairs = [rng.choice(distinct, 2, replace=False) for _ in range(width)]
        pick = lambda who: rng.choice(np.flatnonzero(names == who))  # noqa: E731
        return images[[pick(a) for a, _ in pairs]], images[[pick(b) for _, b in pairs]]
    from fastseq.datasets.faces import _canon

    chosen = []
    for who in args.people:
        hits = np.flatnonzero(np.array([_canon(p) == _canon(who) for p in names], dtype=bool))
        if hits.size == 0:
            some = ", ".join(sorted(set(names.tolist()))[:4])
            raise CommandError(f"Expected --people to name people in the data (e.g. {some}), got {who!r}.")
        chosen.append(images[np.resize(hits, width)])
    return chosen[0], chosen[1]


def _picture(faces, path, width: int = 8) -> None:
    import numpy as np

    from fastseq.mosaic.tiles import save_png, tile

    arr = (np.clip(np.asarray(faces, dtype=np.float64), -1.0, 1.0) + 1.0) / 2.0
    save_png(tile(arr, width=width, scale=None, spacing=1), path, zoom=2)


# the protocol's figures mean something from about these counts on: the CNN-vs-PCA
# comparison needs the network to see enough faces, and the two-sample accuracy
# cross-validated over n held-out images has a standard error of about 0.5 / sqrt(n)
MIN_TRAIN_IMAGES, MIN_HELD_OUT_IMAGES = 100, 25


def _too_few_images(train: int, test: int) -> str:
    """The warning for data too small for the protocol's figures to mean anything ('' if none)."""
    if train >= MIN_TRAIN_IMAGES and test >= MIN_HELD_OUT_IMAGES:
        return ""
    return (f"only {train} training and {test} held-out images; the protocol needs at least {MIN_TRAIN_IMAGES} "
            f"training images (for the CNN-vs-PCA comparison) and {MIN_HELD_OUT_IMAGES} held-out ones (below that "
            f"the two-sample accuracy's standard error is above 0.1), so treat the figures below as a smoke test, "
            f"not a measurement; add images (or raise --max-images).")


def _say(args, text: str) -> None:
    print(text, flush=True)


def _report(rep) -> dict:
    return {"error_before": rep.error_before, "error_after": rep.error_after, "seconds": rep.seconds,
            "images_per_second": rep.images_per_second}


def _train_cnn(args, config, train, paths):
    """The network, trained and saved at once, and what its training did."""
    from fastseq.conv.evaluation import DIGITS_TRAINING, train_autoencoder

    settings = dict(DIGITS_TRAINING) if args.dataset == "mnist" else {}
    for key, option in (("epochs", args.cnn_epochs), ("fine_tune_epochs", args.fine_tune_epochs)):
        if option is not None:
            settings[key] = option
    model, reports = train_autoencoder(
        train, config, **settings, learning_rate=args.cnn_learning_rate, batch_size=args.batch, seed=args.seed,
        device=args.device, progress=not args.quiet, log=lambda text: _say(args, text))
    info: dict = {"layers": [{"layer": r.layer, **_report(r)} for r in reports if r.layer]}
    info.update({"fine_tune": _report(r) for r in reports if not r.layer})
    model.save(paths["cnn"])
    return model, info


def _machine_metrics(s) -> dict:
    return {"seconds": s.seconds, "image_mse": s.image_mse, "code_mse_relative": s.code_mse_relative,
            "ais": s.log_likelihood, "generate_seconds": s.generate_seconds,
            "two_sample_accuracy": s.two_sample_accuracy,
            "two_sample_accuracy_quadratic": s.two_sample_accuracy_quadratic, "generated_spread": s.generated_spread,
            "generated_spread_within_2x": s.generated_spread_within_2x}


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from fastseq._util.atomic import atomic_path
    from fastseq.commands._face_machines import make_machine
    from fastseq.conv.evaluation import evaluate_faces

    paths = _outputs(args)
    existing = [str(p) for key, p in paths.items() if p.exists()]
    if existing and not args.force:
        raise CommandError(f"Expected --output to hold no earlier results, got {existing[0]} "
                           f"(and {len(existing) - 1} more); use --force to overwrite.")
    if args.device != "cpu" and not args.device.startswith("cuda"):
        raise CommandError(f"Expected --device cpu or cuda[:N], got {args.device!r}.")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise CommandError(f"Expected a CUDA device for --device {args.device}, got none on this machine.")
    if args.people is not None and args.people[0] == args.people[1]:
        raise CommandError(f"Expected --people to name two different people, got {args.people[0]!r} twice.")
    started = time.perf_counter()
    split, source, skipped = _load_images(args)
    train, test = split.train, split.test
    if len(test) < 2:  # evaluate_faces would refuse them, but only after the network had trained
        raise CommandError(f"Expected at least 2 held-out images (the two-sample test cross-validates over them), "
                           f"got {len(test)}; raise --held-out or --max-images, or drop --no-mirror.")
    size = train.shape[1]
    config = _config(args, size)
    if args.mix_layer is not None and args.mix_layer > config.depth:
        raise CommandError(f"Expected --mix-layer in 1..{config.depth}, got {args.mix_layer}.")
    pairs = _interpolation_pairs(args, train, test, split.people_train, split.people_test)
    names = args.machines if args.picture_machine is None else [args.picture_machine] + [
        m for m in args.machines if m != args.picture_machine]
    loaded = None
    if args.model is not None:  # a network that does not fit is an error before any warning
        from fastseq.conv.model import load_autoencoder

        loaded = load_autoencoder(args.model, config=config, device=args.device)
    too_few = _too_few_images(len(train), len(test))  # after every check: an error stays one line
    if too_few:
        print(f"fastseq faces: warning: {too_few}", file=sys.stderr, flush=True)
    Path(args.output).mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    _say(args, f"data: {len(train)} training and {len(test)} held-out {size}x{size} images from {source}"
               + (f" ({skipped} unreadable files skipped)" if skipped else ""))

    cnn, cnn_info = (loaded, {"loaded_from": str(args.model)}) if loaded is not None else _train_cnn(
        args, config, train, paths)
    epochs = args.rbm_epochs or (20 if args.dataset == "mnist" else 100)
    machines = {name: make_machine(name, args.hidden, epochs, args.seed, device=args.device, batch_size=args.batch,
                                   learning_rate=args.rbm_learning_rate, progress=not args.quiet,
                                   ais_betas=args.ais_betas, ais_runs=args.ais_runs, deep_hidden=args.deep_hidden,
                                   cd_steps=args.cd_steps)
                for name in names}
    result = evaluate_faces(train, test, machines, autoencoder=cnn, gibbs_steps=args.gibbs_steps, seed=args.seed,
                            log=lambda text: _say(args, text))
    cnn_info.update({"config": json.loads(config.to_json()), "code_size": result.code_size,
                     "test_mse": result.cnn_mse, "pca_mse": result.pca_mse, "pca_components": result.pca_components,
                     "pca_over_cnn": result.pca_over_cnn})

    pictures_model, generated_codes = result.stacked[names[0]], result.generated_codes[names[0]]
    rng = np.random.default_rng(args.seed + 2)
    every = np.concatenate([test, train])
    shown = every[np.sort(rng.choice(len(every), min(64, len(every)), replace=False))]
    _picture(shown, paths["data"])
    _picture(pictures_model.autoencode(shown, mix=args.mix, mix_layer=args.mix_layer), paths["autoencoded"])
    _picture(cnn.decode(generated_codes[:64]), paths["generated"])
    steps = pictures_model.interpolate(pairs[0], pairs[1], steps=8, at=args.interpolate_at)
    _picture(steps.reshape(-1, size, size), paths["interpolated"], width=steps.shape[1])

    best = result.best_two_sample
    metrics = {"dataset": args.dataset, "source": source, "size": size, "train_images": len(train),
               "held_out_images": len(test), "skipped_files": skipped, "mirror": bool(args.mirror),
               "seed": args.seed, "warnings": [too_few] if too_few else [], "cnn": cnn_info,
               "machines": {name: _machine_metrics(s) for name, s in result.scores.items()},
               "picture_machine": names[0], "best_two_sample": best, "seconds": time.perf_counter() - started,
               "options": {k: v for k, v in vars(args).items() if not k.startswith("_")}}
    with atomic_path(paths["metrics"]) as tmp, open(tmp, "w") as fh:
        json.dump(metrics, fh, indent=1)
    written = len(paths) - (loaded is not None)  # a network read from --model is not written again
    _say(args, f"closest to real codes (two-sample accuracy with squares nearest 0.5): {best}; wrote {written} files in "
               f"{args.output} ({metrics['seconds']:.0f} s)")
    return 0
