"""``fastseq train``: train a row RNN on MNIST digits, complete half-seen held-out digits,
and picture what its hidden units respond to."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

HELP = ("Train an RNN to predict each next row of MNIST digits (fastseq.train_bptt); report how well it "
        "completes half-seen held-out digits and picture what its hidden units respond to.")

MODELS = ("rnn", "rnn_untied", "gru", "lstm")


def _model_name(text: str) -> str:
    name = text.lower()
    if name not in MODELS:
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(m.upper() for m in MODELS)} (any case), got {text!r}")
    return name


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``fastseq train``."""
    from fastseq.commands._common import add_option, count, fraction, positive_float, positive_int

    parser.epilog = ("Example: fastseq train --model RNN --epochs 16 --hidden 169 --batch 20 --mosaic --verbose. "
                     "Writes PREFIX.safetensors (parameters), PREFIX.log, and with --mosaic "
                     "PREFIX_completion.png and PREFIX_hidden_units.png.")
    add_option(parser, "--model", type=_model_name, default=argparse.SUPPRESS, metavar="NAME",
               help="RNN (tied weights: output weights are the input weights transposed), RNN_UNTIED, GRU "
                    "or LSTM, in any case; default RNN, or the model stored in --params")
    add_option(parser, "--hidden", type=positive_int, default=argparse.SUPPRESS, metavar="N",
               help="hidden units; default 169, or the size stored in --params")
    add_option(parser, "--epochs", type=count, default=16, metavar="N",
               help="passes over the training digits (0: only evaluate and draw the model in --params; "
                    "no model is written)")
    add_option(parser, "--batch", type=positive_int, default=20, metavar="B", help="digits trained side by side")
    add_option(parser, "--bptt", type=positive_int, default=27, metavar="K",
               help="rows per truncated-BPTT window (one optimizer step each); 27 = a whole digit")
    add_option(parser, "--learning-rate", type=positive_float, default=0.01, metavar="LR", help="Adam learning rate")
    add_option(parser, "--teacher-forcing", type=fraction, default=0.5, metavar="P",
               help="in training, chance that a step reads the true row instead of the network's own "
                    "prediction of it (1: always the true row)")
    add_option(parser, "--random-seed", type=int, default=0, metavar="SEED",
               help="seed of the initial weights, the digit order and the sampled windows")
    add_option(parser, "--data", default=argparse.SUPPRESS, metavar="DIR",
               help="folder with MNIST IDX files (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
                    "optionally t10k-*); default: the 5,000 real MNIST digits shipped inside fastseq, of "
                    "which 500 are held out")
    add_option(parser, "--params", default=argparse.SUPPRESS, metavar="FILE",
               help="resume from parameters saved by an earlier run (.safetensors; the optimizer restarts)")
    add_option(parser, "--checkpoint", default=argparse.SUPPRESS, metavar="FILE",
               help="resume from FILE if it exists (parameters, Adam state, epoch and window), and "
                    "checkpoint to it every --checkpoint-every windows and at each epoch's end")
    add_option(parser, "--checkpoint-every", type=positive_int, default=100, metavar="N",
               help="windows between checkpoints")
    add_option(parser, "--output", default="fastseq_rnn", metavar="PREFIX",
               help="prefix of the files written: PREFIX.safetensors, PREFIX.log (appended to), PREFIX_*.png; "
                    "each replaced only once complete")
    add_option(parser, "--mosaic", action="store_true",
               help="draw PREFIX_completion.png (held-out digits: seen top half, completion, truth) and "
                    "PREFIX_hidden_units.png (per unit: the rows it responds to above what it predicts next)")
    add_option(parser, "--sort-units", action="store_true",
               help="in PREFIX_hidden_units.png, put units with correlated pictures next to each other "
                    "(fastseq.corrsort) instead of in index order")
    add_option(parser, "--seen", type=positive_int, default=14, metavar="K",
               help="rows shown to the network before it completes a digit")
    add_option(parser, "--window", type=positive_int, default=10, metavar="L",
               help="rows per window in the hidden-unit pictures")
    add_option(parser, "--windows", type=positive_int, default=10000, metavar="N",
               help="windows sampled for the hidden-unit pictures")
    add_option(parser, "--threads", type=positive_int, default=1, metavar="N",
               help="CPU threads for torch; the matrices are small (batch x hidden), so more threads "
                    "mostly add synchronisation, and on a busy machine they can be far slower")
    add_option(parser, "--verbose", action="store_true", help="progress bars")


class _Log:
    """Print lines and append them to PREFIX.log as they come (a context manager).

    Appending keeps every earlier run's log: an interrupted run can lose at most the
    line being written, never what an earlier run wrote."""

    def __init__(self, path: Path) -> None:
        self.file = open(path, "a", encoding="utf-8")
        if self.file.tell() > 0:
            self.file.write("\n")  # a blank line between runs

    def __call__(self, line: str) -> None:
        print(line, flush=True)
        self.file.write(line + "\n")
        self.file.flush()

    def __enter__(self) -> "_Log":
        return self

    def __exit__(self, *exc) -> None:
        self.file.close()


# floats per unit of one step's state kept for backward, per model kind (gates + state)
_GATES = {"rnn": 1, "rnn_untied": 1, "gru": 3, "lstm": 4}


def parameter_count(kind: str, hidden: int, n_visible: int) -> int:
    """The number of parameters of ``make_model(kind, hidden, n_visible)``, without building it."""
    h, f = hidden, n_visible
    if kind in ("rnn", "rnn_untied"):  # Wxh, Whh, b, c (and Why when untied)
        return f * h + h * h + h + f + (h * f if kind == "rnn_untied" else 0)
    g = _GATES[kind]  # torch's cell: g gates' input and hidden weights and two biases; a Linear read-out
    return g * h * (f + h) + 2 * g * h + h * f + f


def _check_sizes(args, kind: str, hidden: int, n_visible: int, n_train: int) -> None:
    """Refuse sizes whose memory cannot fit, before any is allocated (float32 throughout)."""
    from fastseq.commands._common import fits

    g, f = _GATES[kind], n_visible
    # weights, gradients and Adam's two moments
    fits(16.0 * parameter_count(kind, hidden, f), f"--hidden {hidden}")
    slots = min(args.batch, n_train)  # slots beyond the number of digits are never used
    # per step and slot: the schedule's index arrays (int64 rows, flags) and the saved activations
    window = args.bptt * slots * (24.0 + 4 * ((g + 2) * hidden + 3 * f))
    fits(window, f"--batch {args.batch} with --bptt {args.bptt} and --hidden {hidden}")
    if args.mosaic:
        pictures = 4.0 * args.windows * args.window * f + 16.0 * hidden * 2 * args.window * f
        fits(pictures, f"--windows {args.windows} of --window {args.window} rows for {hidden} units")


def run(args: argparse.Namespace) -> int:
    """Train, evaluate and draw; see ``fastseq train --help``."""
    import torch

    from fastseq.commands._common import CommandError, output_file, threads
    from fastseq.datasets.mnist import load_mnist

    for name in ("model", "hidden", "data", "params", "checkpoint"):  # left out of the namespace so --help shows no "None"
        if not hasattr(args, name):
            setattr(args, name, None)
    prefix = output_file(args.output)
    if args.checkpoint is not None:  # found now, not when the first checkpoint is written
        output_file(args.checkpoint, "--checkpoint")
    if args.epochs == 0 and args.params is None:
        raise CommandError("Expected --params FILE with --epochs 0 (evaluate a saved model), got no --params.")
    torch.set_num_threads(threads(args.threads))
    torch.manual_seed(args.random_seed)
    digits = load_mnist(args.data)
    rows = digits.train_images.shape[1]
    if not 1 <= args.seen < rows:
        raise CommandError(f"--seen: expected 1 to {rows - 1} rows, got {args.seen}")
    if args.window > rows:
        raise CommandError(f"--window: expected at most {rows} rows, got {args.window}")
    n_visible = digits.train_images.shape[2]
    if args.params is None:  # refused before the model is built
        _check_sizes(args, args.model or "rnn", args.hidden or 169, n_visible, len(digits.train_images))
    model = _model(args, n_visible)
    if args.params is not None:  # the sizes stored in the file
        _check_sizes(args, model.kind, model.n_hidden, n_visible, len(digits.train_images))
    checkpoint = _checkpoint_meta(args, model, len(digits.train_images))
    with _Log(prefix.with_name(prefix.name + ".log")) as log:
        settings = {k: v for k, v in sorted(vars(args).items()) if not k.startswith("_") and k != "command"}
        log("fastseq train " + " ".join(_option(k, v) for k, v in settings.items() if v is not None and v is not False))
        log(f"data: {digits.source}, {len(digits.train_images)} training and {len(digits.test_images)} held-out digits")
        log(f"model: {model.kind}, {model.n_hidden} hidden units, {sum(p.numel() for p in model.parameters())} "
            f"parameters{', resumed from ' + str(args.params) if args.params else ''}")
        if checkpoint is not None:
            log(_resumed_line(args, checkpoint))
        _run_logged(model, digits, prefix, args, log, checkpoint)
    return 0


def _option(name: str, value) -> str:
    """``--name value`` as typed on the command line (dashes, flags without a value)."""
    flag = "--" + name.replace("_", "-")
    return flag if value is True else f"{flag} {value}"


def _run_logged(model, digits, prefix: Path, args, log, checkpoint: dict | None) -> None:
    from fastseq.rowrnn.models import baseline_errors, complete, completion_mse, save_model

    start = time.perf_counter()
    _train(model, digits, args, log, _first_epoch(checkpoint))
    train_s = time.perf_counter() - start
    written = [prefix.name + ".log"]
    if args.epochs > 0:  # an evaluation-only run has nothing new to save
        save_model(model, prefix.with_name(prefix.name + ".safetensors"))
        written.insert(0, prefix.name + ".safetensors")

    model.eval()
    k, test = args.seen, digits.test_images
    rows = test.shape[1]
    completed = complete(model, test, k=k)
    err = completion_mse(completed, test, k)
    base = baseline_errors(digits.train_images, test, k)
    log(f"completion MSE of rows {k}-{rows - 1} on {len(test)} held-out digits: model {err:.4f}, "
        f"repeat last seen row {base['repeat_last']:.4f}, mean bottom of training digits {base['mean_bottom']:.4f}")
    verdict = "beats both baselines" if err < min(base.values()) else "does NOT beat both baselines"
    log(f"model {verdict}; training took {train_s:.1f} s")
    if args.mosaic:
        from fastseq.rowrnn.units import hidden_unit_pictures

        _save_picture(_completion_figure(test, completed, digits.test_labels, k), prefix, "_completion.png", zoom=3)
        pics = hidden_unit_pictures(model, digits.train_images, args.window, args.windows,
                                    seed=args.random_seed, progress=args.verbose)
        order = None
        if args.sort_units:
            from fastseq.mosaic.order import corrsort

            order = corrsort(pics.reshape(len(pics), -1))
        _save_picture(_units_figure(pics, args.window, order), prefix, "_hidden_units.png", zoom=2)
        written += [prefix.name + "_completion.png", prefix.name + "_hidden_units.png"]
    log(f"wrote {', '.join(str(prefix.with_name(w)) for w in written)}")


def _model(args, n_visible: int):
    from fastseq.commands._common import CommandError
    from fastseq.rowrnn.models import load_model, make_model

    if args.params is None:
        return make_model(args.model or "rnn", args.hidden or 169, n_visible)
    model = load_model(args.params)
    if args.model is not None and args.model != model.kind:
        raise CommandError(f"--model {args.model.upper()} does not match --params {args.params}, which holds {model.kind.upper()}")
    if args.hidden is not None and args.hidden != model.n_hidden:
        raise CommandError(f"--hidden {args.hidden} does not match --params {args.params}, which has {model.n_hidden} units")
    if model.n_visible != n_visible:
        raise CommandError(f"--params {args.params} reads rows of {model.n_visible} pixels, the data has {n_visible}")
    return model


def _train(model, digits, args, log, first_epoch: int) -> None:
    import numpy as np
    import torch

    import fastseq
    from fastseq.rowrnn.models import as_sequences

    contexts, targets = as_sequences(digits.train_images)
    # more slots than digits would only allocate slots that stay idle (same windows, same result)
    test_x = torch.as_tensor(digits.test_images).transpose(0, 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.learning_rate)

    def cost(pred, target):
        return torch.nn.functional.binary_cross_entropy(pred, target, reduction="none").sum(-1)

    for epoch in range(first_epoch, args.epochs):
        t0 = time.perf_counter()
        model.train()
        losses = fastseq.train_bptt(
            model.as_decoder(feedback=args.teacher_forcing < 1.0),
            contexts, targets, torch.zeros(model.n_visible), model.hidden_seed(), optimizer,
            min(args.batch, len(contexts)), args.bptt, cost, teacher_forcing=args.teacher_forcing, shuffle=True,
            seed=args.random_seed, epoch=epoch, progress=args.verbose, checkpoint=args.checkpoint,
            checkpoint_every=args.checkpoint_every)
        model.eval()
        with torch.no_grad():
            y, _ = model(test_x[:-1])
            held = float(cost(y, test_x[1:]).mean())
        log(f"epoch {epoch + 1}/{args.epochs}: training loss {np.mean(losses):.3f}, held-out loss {held:.3f} "
            f"(cross-entropy per row), {time.perf_counter() - t0:.1f} s")


def _first_epoch(checkpoint: dict | None) -> int:
    """The epoch to (re)start: the checkpoint's, or the one it finished (which train_bptt
    reports again and which restores the parameters and the optimizer). It is below
    ``--epochs``: :func:`_checkpoint_meta` refuses a checkpoint beyond them."""
    if checkpoint is None:
        return 0
    at, window = checkpoint["loader"]["epoch"], checkpoint["loader"]["window"]
    return max(at - (window == 0), 0)


def _checkpoint_meta(args, model, n_train: int) -> dict | None:
    """The header of the --checkpoint to resume from (None if there is none yet), after
    refusing, in one line naming each, the options that differ from the run that wrote it.

    train_bptt restores the optimizer's state, learning rate included, and refuses other
    settings by their internal names; checked here, each is named as the option typed.
    """
    from fastseq.bptt.checkpoint import load_checkpoint
    from fastseq.commands._common import CommandError

    if args.checkpoint is None or not Path(args.checkpoint).exists() or args.epochs == 0:
        return None  # (--epochs 0 only evaluates --params: nothing resumes)
    meta, _ = load_checkpoint(args.checkpoint)  # a bad file: a ValueError, one line from the CLI
    config, loader = meta["config"], meta["loader"]["config"]  # the loader's data and EpochSpec settings
    groups = meta["optimizer"]["param_groups"]
    slots = min(args.batch, n_train)
    differ = [
        f"{option} {now} (checkpoint {saved})"
        for option, now, saved, same in [
            ("--learning-rate", args.learning_rate, groups[0].get("lr") if groups else None, None),
            ("--teacher-forcing", args.teacher_forcing, config.get("teacher_forcing"), None),
            ("--batch", args.batch, loader.get("batch_size"), slots == loader.get("batch_size")),
            ("--bptt", args.bptt, loader.get("bptt"), None),
            ("--random-seed", args.random_seed, loader.get("seed"), None),
        ]
        if not (same if same is not None else now == saved)
    ]
    if loader.get("sequences") != n_train:
        differ.append(f"--data with {n_train} training digits (checkpoint {loader.get('sequences')})")
    tensors = {k: [list(v.shape), str(v.dtype)] for k, v in model.as_decoder().state_dict().items()}
    saved_tensors = config["model"]["tensors"]
    if tensors != saved_tensors:
        shapes = ", ".join(f"{k} {v[0]}" for k, v in sorted(saved_tensors.items()))
        differ.append(f"--model {model.kind.upper()} with --hidden {model.n_hidden} "
                      f"(checkpoint: a model with {shapes})")
    at, window = meta["loader"]["epoch"], meta["loader"]["window"]
    if at > args.epochs or (at == args.epochs and window > 0):
        differ.append(f"--epochs {args.epochs} (checkpoint: in epoch {at + 1} after {window} windows)")
    if differ:
        raise CommandError(f"Expected the options of the run that wrote --checkpoint {args.checkpoint} to resume it, "
                           f"got {', '.join(differ)}; nothing was trained (use its options, or another "
                           "--checkpoint file to start anew).")
    return meta


def _resumed_line(args, checkpoint: dict) -> str:
    """Where a run resumes: the epoch (counted from 1, as in the epoch lines) and window."""
    at, window = checkpoint["loader"]["epoch"], checkpoint["loader"]["window"]
    if window == 0 and at >= args.epochs:
        where = f"epoch {at}/{args.epochs}, the last, was done; nothing is left to train"
    elif window == 0:
        where = f"epoch {at + 1}/{args.epochs}, window 0 (epoch {at} was done)"
    else:
        where = f"epoch {at + 1}/{args.epochs}, window {window} ({window} windows of it were done)"
    replaced = f"; its parameters replace those of --params {args.params}" if args.params else ""
    return f"resumed from checkpoint {args.checkpoint}: {where}{replaced}"


def _completion_figure(test, completed, labels, k: int, per_class: int = 2):
    """Rows of 10 digits (one per class): seen top half (unseen part grey), completion, truth."""
    import numpy as np

    chosen = [np.flatnonzero(labels == c)[:per_class] for c in range(10)]
    groups = []
    for i in range(per_class):
        idx = np.array([c[i] for c in chosen if len(c) > i], dtype=np.int64)
        seen = test[idx].copy()
        seen[:, k:] = 0.5
        groups += [seen, completed[idx], test[idx]]
    width = max(len(g) for g in groups)
    return _tile(np.concatenate(groups), width=width, spacing=2, scale=None)


def _units_figure(pics, window: int, order=None):
    """One cell per unit, scaled to its own range: the weighted window above a grey line
    above the rows the network expects next."""
    import numpy as np

    lo = pics.min(axis=(1, 2), keepdims=True)
    span = pics.max(axis=(1, 2), keepdims=True) - lo
    scaled = np.where(span > 0, (pics - lo) / np.where(span > 0, span, 1.0), 0.5)
    gap = np.full((pics.shape[0], 1, pics.shape[2]), 0.5)
    cells = np.concatenate([scaled[:, :window], gap, scaled[:, window:]], axis=1)
    return _tile(cells, spacing=2, scale=None, order=order)


def _tile(images, **kwargs):
    from fastseq.mosaic.tiles import tile

    return tile(images, background=1.0, **kwargs)


def _save_picture(array, prefix: Path, suffix: str, zoom: int) -> None:
    from fastseq.mosaic.tiles import save_png

    save_png(array, prefix.with_name(prefix.name + suffix), zoom=zoom)
