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
    p.add_argument("--sequences", type=int, default=2000, help="paragraphs of the corpus to train on")
    p.add_argument("--max_length", type=int, default=2000,
                   help="skip longer paragraphs (a few data tables run to 37,000 bytes, longer than "
                        "a whole epoch of a slot: no batching can run them in parallel)")
    p.add_argument("--epochs", type=int, default=1, help="passes over the corpus")
    p.add_argument("--hidden", type=int, default=128, help="GRU hidden units")
    p.add_argument("--batch", type=int, default=64, help="slots B")
    p.add_argument("--bptt", type=int, default=32, help="steps per optimizer step K")
    p.add_argument("--learning_rate", type=float, default=3e-3, help="Adam learning rate")
    p.add_argument("--random_seed", type=int, default=0, help="seed for the order and the weights")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads; one step of a small GRU is too small to split, and on a "
                        "busy 2-core machine two threads ran 8x slower than one")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


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

    from fastseq.cli import CommandError
    from fastseq.datasets.stdlib import stdlib_paragraphs
    from fastseq.bptt.schedule import SlotSchedule, epoch_order
    from fastseq.bptt.trainer import train_bptt

    for name in ("sequences", "max_length", "epochs", "hidden", "batch", "bptt", "threads"):
        if getattr(args, name) < 1:
            raise CommandError(f"--{name} must be >= 1, got {getattr(args, name)}")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.random_seed)
    paragraphs = stdlib_paragraphs(max_sequences=args.sequences, max_length=args.max_length + 1)
    # input: the current byte; target: the next byte (both as one-column float rows)
    contexts = [p[:-1, None].astype(np.float32) for p in paragraphs]
    targets = [p[1:, None].astype(np.float32) for p in paragraphs]
    lengths = np.array([len(c) for c in contexts])

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

    model = ByteGRU(args.hidden).to(args.device)
    opt = torch.optim.Adam(model.parameters(), lr=args.learning_rate)
    real = int(lengths.sum())
    print(f"corpus: {len(lengths)} paragraphs of Python {'.'.join(map(str, __import__('sys').version_info[:2]))}'s "
          f"standard library, {real} byte steps, lengths {lengths.min()}..{lengths.max()} "
          f"(median {int(np.median(lengths))})")
    for epoch in range(args.epochs):
        order = epoch_order(len(lengths), shuffle=True, seed=args.random_seed + epoch, lengths=lengths,
                            longest_first=args.batch)
        slot_steps = sum(w.steps * w.width for w in SlotSchedule(lengths, args.batch, args.bptt, order,
                                                                  compact=True))
        padded = padded_steps(lengths, args.batch, args.random_seed + epoch)
        start = time.perf_counter()
        losses = train_bptt(model, contexts, targets, torch.zeros(256), torch.zeros(1, args.hidden), opt,
                            args.batch, args.bptt, cost_fn=cross_entropy, shuffle=True,
                            seed=args.random_seed + epoch, device=args.device, progress=not args.quiet)
        seconds = time.perf_counter() - start
        head = np.mean(losses[: max(1, len(losses) // 10)]) / np.log(2)
        tail = np.mean(losses[-max(1, len(losses) // 10):]) / np.log(2)
        print(f"epoch {epoch + 1}: {real / seconds:,.0f} real steps/s ({seconds:.1f} s, {len(losses)} windows); "
              f"bits per byte {head:.2f} -> {tail:.2f} (first -> last tenth of the windows)")
        print(f"  slot-swap computed {slot_steps:,} slot-steps for {real:,} real ones "
              f"({100 * (slot_steps - real) / slot_steps:.1f}% idle while draining); padded random batches "
              f"of {args.batch} would compute {padded:,} ({100 * (padded - real) / padded:.1f}% padding, "
              f"{padded / slot_steps:.1f}x the work)")
    return 0
