"""Convolutional autoencoders trained layer by layer (faces), with a code model (a
Boltzmann machine, joined by duck typing) on their top-layer codes, and the faces
evaluation protocol (split, network against PCA, measures of each code model; its records
and the digits' split are in :mod:`fastseq.conv.evaluation`)."""
from fastseq.conv.evaluation import evaluate_faces, split_faces, train_autoencoder
from fastseq.conv.model import ConvAutoencoder, ConvConfig, default_config, load_autoencoder
from fastseq.conv.quality import mean_squared_error, pca_reconstruction_error, two_sample_accuracy
from fastseq.conv.stacked import CodeModel, CodeScaler, StackedModel
from fastseq.conv.training import LayerReport, fine_tune, train_layerwise

__all__ = [
    "CodeModel", "CodeScaler", "ConvAutoencoder", "ConvConfig", "LayerReport", "StackedModel", "default_config",
    "evaluate_faces", "fine_tune", "load_autoencoder", "mean_squared_error", "pca_reconstruction_error",
    "split_faces", "train_autoencoder", "train_layerwise", "two_sample_accuracy",
]
