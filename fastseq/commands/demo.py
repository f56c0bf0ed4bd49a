"""`fastseq demo`: slot-swap training of a byte-level GRU on a corpus that ships with Python.

The corpus is the paragraphs of the standard library's source (fastseq.datasets.stdlib):
real, variable-length, long-tailed. The command prints real steps per second and
how much padding the slot-swap schedule avoided compared with padded batches.
"""
from __future__ import annotations

import argparse
import time

HELP = "Train a byte-level GRU on Python's own source with slot-swap BPTT and report its speed."


def add_arguments(p: argparse.ArgumentParser) -> None:
    from fastseq.commands._common import add_option, positive_float, positive_int

    add_option(p, "--sequences", type=positive_int, default=2000, help="paragraphs of the corpus to train on")
    add_option(p, "--max-length", type=positive_int, default=2000,
               help="skip longer paragraphs (a few data tables run to 37,000 bytes, longer than "
                    "a whole epoch of a slot: no batching can run them in parallel)")
    add_option(p, "--epochs", type=positive_int, default=1, help="passes over the corpus")
    add_option(p, "--hidden", type=positive_int, default=128, help="GRU hidden units")
    add_option(p, "--batch", type=positive_int, default=64, help="slots B")
    add_option(p, "--bptt", type=positive_int, default=32, help="steps per optimizer step K")
    add_option(p, "--learning-rate", type=positive_float, default=3e-3, help="Adam learning rate")
    add_option(p, "--random-seed", type=int, default=0, help="seed for the order and the weights")
    add_option(p, "--device", default="cpu", help="torch device, e.g. cpu or cuda")
    add_option(p, "--threads", type=positive_int, default=1,
               help="torch CPU threads (at most the cores available); one step of a small GRU is too small "
                    "to split, and on a busy 2-core machine two threads ran 8x slower than one")
    add_option(p, "--quiet", action="store_true", help="no progress bar")


def padded_steps(lengths, batch: int, seed: int) -> int:
    """Slot-steps that padded random batches of `batch` sequences would compute."""
    import numpy as np

    order = np.random.default_rng(seed).permutation(len(lengths))
    sizes = np.asarray(lengths)[order]
    return int(sum(sizes[i:i + batch].max() * len(sizes[i:i + batch]) for i in range(0, len(sizes), batch)))


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch
    from torch import nn

    from fastseq._util.progress import progress_bar
    from fastseq.commands._common import fits, threads, torch_device
    from fastseq.datasets.stdlib import stdlib_paragraphs
    from fastseq.bptt.epoch import EpochSpec
    from fastseq.bptt.loader import tail_order
    from fastseq.bptt.schedule import SlotSchedule, epoch_order
    from fastseq.bptt.trainer import train_bptt

    device = torch_device(args.device)
    h = args.hidden
    # weights, gradients, Adam's moments of the embedding, the GRU and the head (float32)
    fits(16.0 * (256 * 32 + 3 * h * (32 + h + 2) + 256 * (h + 1)), f"--hidden {h}")
    torch.set_num_threads(threads(args.threads))
    torch.manual_seed(args.random_seed)
    paragraphs = stdlib_paragraphs(max_sequences=args.sequences, max_length=args.max_length + 1)
    # input: the current byte; target: the next byte (both as one-column float rows)
    contexts = [p[:-1, None].astype(np.float32) for p in paragraphs]
    targets = [p[1:, None].astype(np.float32) for p in paragraphs]
    lengths = np.array([len(c) for c in contexts])
    slots = min(args.batch, len(lengths))  # slots beyond the number of paragraphs stay idle
    # per step and slot: the schedule's index arrays (int64 rows, flags) and the saved activations
    fits(args.bptt * slots * (24.0 + 4 * (5 * h + 3 * 256 + 32)),
         f"--batch {args.batch} with --bptt {args.bptt} and --hidden {h}")

    class ByteGRU(nn.Module):
        def __init__(self, hidden: int):
            super().__init__()
            self.embed = nn.Embedding(256, 32)
            self.rnn = nn.GRU(32, hidden)
            self.head = nn.Linear(hidden, 256)

        def forward(self, visible, context, hidden):
            h, hidden = self.rnn(self.embed(context[:, 0].long()).unsqueeze(0), hidden)
            return self.head(h), hidden

    def cross_entropy(logits, target):
        return nn.functional.cross_entropy(logits, target[:, 0].long(), reduction="none")

    model = ByteGRU(args.hidden).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=args.learning_rate)
    real = int(lengths.sum())
    print(f"corpus: {len(lengths)} paragraphs of Python {'.'.join(map(str, __import__('sys').version_info[:2]))}'s "
          f"standard library, {real} byte steps, lengths {lengths.min()}..{lengths.max()} "
          f"(median {int(np.median(lengths))})")
    for epoch in range(args.epochs):
        # the order train_bptt admits the paragraphs in: its shuffle, then its epoch-end policy
        order = tail_order(epoch_order(len(lengths), shuffle=True, seed=args.random_seed + epoch), lengths, slots,
                           EpochSpec().tail)
        windows = [w.steps * w.width for w in SlotSchedule(lengths, slots, args.bptt, order, compact=True)]
        slot_steps = sum(windows)
        padded = padded_steps(lengths, args.batch, args.random_seed + epoch)
        # one optimizer step per window: the bar counts the schedule's windows, as they run
        with progress_bar(not args.quiet, total=len(windows), unit="window", desc="demo") as bar:
            hook = opt.register_step_post_hook(lambda *_: bar.update())
            start = time.perf_counter()
            losses = train_bptt(model, contexts, targets, torch.zeros(256), torch.zeros(1, args.hidden), opt,
                                slots, args.bptt, cost_fn=cross_entropy, shuffle=True,
                                seed=args.random_seed + epoch, device=device)
            seconds = time.perf_counter() - start
            hook.remove()
        head = np.mean(losses[: max(1, len(losses) // 10)]) / np.log(2)
        tail = np.mean(losses[-max(1, len(losses) // 10):]) / np.log(2)
        print(f"epoch {epoch + 1}: {real / seconds:,.0f} real steps/s ({seconds:.1f} s, {len(losses)} windows); "
              f"bits per byte {head:.2f} -> {tail:.2f} (first -> last tenth of the windows)")
        print(f"  slot-swap computed {slot_steps:,} slot-steps for {real:,} real ones "
              f"({100 * (slot_steps - real) / slot_steps:.1f}% idle while draining); padded random batches "
              f"of {args.batch} would compute {padded:,} ({100 * (padded - real) / padded:.1f}% padding, "
              f"{padded / slot_steps:.1f}x the work)")
    return 0
