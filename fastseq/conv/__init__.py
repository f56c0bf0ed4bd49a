"""Convolutional autoencoders trained layer by layer (faces), with a code model (a
Boltzmann machine, joined by duck typing) on their top-layer codes."""
from fastseq.conv.model import ConvAutoencoder, ConvConfig, default_config, load_autoencoder
from fastseq.conv.quality import mean_squared_error, pca_reconstruction_error, two_sample_accuracy
from fastseq.conv.stacked import CodeModel, CodeScaler, StackedModel
from fastseq.conv.training import LayerReport, fine_tune, train_layerwise

__all__ = [
    "CodeModel", "CodeScaler", "ConvAutoencoder", "ConvConfig", "LayerReport", "StackedModel", "default_config",
    "fine_tune", "load_autoencoder", "mean_squared_error", "pca_reconstruction_error", "train_layerwise",
    "two_sample_accuracy",
]
