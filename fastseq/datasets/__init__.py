"""Data sets: MNIST (IDX files, or digits that ship embedded), faces (LFW folders, or the
LFW faces that ship with scikit-image) and the Python standard library's own source as a
corpus of variable-length byte sequences."""
from fastseq.datasets.faces import Faces, cache_folder, lfw_subset_faces, load_faces, normalise_faces, preprocess_faces
from fastseq.datasets.mnist import Digits, embedded_digits, held_out_split, load_mnist, read_idx, write_idx
from fastseq.datasets.stdlib import one_hot_bytes, stdlib_paragraphs

__all__ = ["Digits", "Faces", "cache_folder", "embedded_digits", "held_out_split", "lfw_subset_faces", "load_faces",
           "load_mnist", "normalise_faces", "one_hot_bytes", "preprocess_faces", "read_idx", "stdlib_paragraphs",
           "write_idx"]
