"""Data sets: MNIST (IDX files, or digits that ship embedded), faces (LFW folders, or the
LFW faces that ship with scikit-image) and the Python standard library's own source as a
corpus of variable-length byte sequences."""
from fastseq._util.deprecation import moved_names
from fastseq.datasets.faces import Faces, lfw_subset_faces, load_faces
from fastseq.datasets.mnist import embedded_digits, held_out_split, load_mnist
from fastseq.datasets.stdlib import stdlib_paragraphs

__all__ = ["Faces", "embedded_digits", "held_out_split", "lfw_subset_faces", "load_faces", "load_mnist",
           "stdlib_paragraphs"]

# no longer public here: plumbing of the loaders above (still in their modules)
MOVED = {
    "Digits": ("fastseq.datasets.mnist", "it is what embedded_digits and load_mnist return; import it from fastseq.datasets.mnist"),
    "read_idx": ("fastseq.datasets.mnist", "load_mnist reads IDX files; the reader is fastseq.datasets.mnist.read_idx"),
    "write_idx": ("fastseq.datasets.mnist", "import it from fastseq.datasets.mnist"),
    "cache_folder": ("fastseq.datasets.faces", "import it from fastseq.datasets.faces"),
    "normalise_faces": ("fastseq.datasets.faces", "load_faces and lfw_subset_faces normalise; import it from fastseq.datasets.faces"),
    "preprocess_faces": ("fastseq.datasets.faces", "load_faces and lfw_subset_faces preprocess; import it from fastseq.datasets.faces"),
    "one_hot_bytes": ("fastseq.datasets.stdlib", "import it from fastseq.datasets.stdlib"),
}
__getattr__ = moved_names(__name__, MOVED)
