"""Data sets: MNIST (IDX files, or digits that ship embedded) and the Python standard
library's own source as a corpus of variable-length byte sequences."""
from fastseq.datasets.mnist import Digits, embedded_digits, held_out_split, load_mnist, read_idx, write_idx
from fastseq.datasets.stdlib import one_hot_bytes, stdlib_paragraphs

__all__ = ["Digits", "embedded_digits", "held_out_split", "load_mnist", "one_hot_bytes", "read_idx", "stdlib_paragraphs", "write_idx"]
