"""Convolutional autoencoders trained layer by layer (faces), with a code model (a
Boltzmann machine, joined by duck typing) on their top-layer codes, and the faces
evaluation protocol (split, network against PCA, measures of each code model; its records
and the digits' split are in :mod:`fastseq.conv.evaluation`)."""
from fastseq._util.deprecation import moved_names
from fastseq.conv.evaluation import evaluate_faces, split_faces, train_autoencoder
from fastseq.conv.model import ConvAutoencoder, ConvConfig, default_config
from fastseq.conv.quality import mean_squared_error, pca_reconstruction_error, two_sample_accuracy
from fastseq.conv.stacked import CodeModel, StackedModel
from fastseq.conv.training import fine_tune, train_layerwise

__all__ = [
    "CodeModel", "ConvAutoencoder", "ConvConfig", "StackedModel", "default_config", "evaluate_faces", "fine_tune",
    "mean_squared_error", "pca_reconstruction_error", "split_faces", "train_autoencoder", "train_layerwise",
    "two_sample_accuracy",
]

# no longer public here (still in their modules)
MOVED = {
    "CodeScaler": ("fastseq.conv.stacked", "StackedModel scales the codes; import it from fastseq.conv.stacked"),
    "LayerReport": ("fastseq.conv.training", "it is what train_layerwise returns; import it from fastseq.conv.training"),
    "load_autoencoder": ("fastseq.conv.model", "use fastseq.load(path)"),
}
__getattr__ = moved_names(__name__, MOVED)
