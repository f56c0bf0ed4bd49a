"""
Faces: a convolutional autoencoder and a Boltzmann machine on its codes
=======================================================================

The pipeline of ``fastseq faces``, on the 100 LFW faces that ship with scikit-image
(25 x 25, grey) and their mirror images. A convolutional autoencoder is trained one layer
at a time, each layer learning to reconstruct the layer below, then end to end. Its top
layer turns a face into 288 numbers (the codes); a Gaussian RBM learns the distribution of
the codes. Faces go up through the network and the machine and back down, and the machine
generates codes from scratch that the network decodes into new faces.
"""
import time

import numpy as np
import torch

from fastseq.boltzmann import GaussianRBM
from fastseq.conv import (ConvAutoencoder, StackedModel, default_config, fine_tune, mean_squared_error,
                          pca_reconstruction_error, train_layerwise)
from fastseq.datasets import lfw_subset_faces
from fastseq.mosaic import save_png, tile

started = time.perf_counter()
torch.set_num_threads(1)  # small convolutions: a second thread only adds waiting on a busy machine
faces = lfw_subset_faces(size=25, mirror=True)  # 200 faces: mean 0, standard deviation 0.3, in [-1, 1]

# %%
# Hold out 20 of the 100 people, with their mirror images: the measures and pictures
# below use faces the network and the machine never saw.
people = np.unique(faces.people)
held_out = np.isin(faces.people, np.random.default_rng(0).choice(people, size=20, replace=False))
train, test = faces.images[~held_out], faces.images[held_out]

# %%
# The network for 25 x 25 faces (``default_config(25)``): three convolutional layers of 32,
# 32 and 8 channels, the first two with stride 2, so the top layer holds 6 x 6 x 8 = 288
# codes. Each layer trains for 20 epochs as an autoencoder of the one below, then all
# layers together for 20 more. PCA with as many components as the training faces allow
# is the baseline to beat.
cnn = ConvAutoencoder(default_config(25), seed=0)
for report in train_layerwise(cnn, train, epochs=20, batch_size=16, learning_rate=2e-3, seed=0):
    print(f"layer {report.layer}: reconstruction error {report.error_before:.4f} -> {report.error_after:.4f}")
fine_tune(cnn, train, epochs=20, batch_size=16, learning_rate=5e-4, seed=0)
cnn_error = mean_squared_error(cnn.reconstruct(test), test)
pca_error, components = pca_reconstruction_error(train, test, cnn.config.code_size)


# %%
# The machine on the codes. :class:`~fastseq.conv.StackedModel` joins the network to any
# model with scikit-learn's methods (``fit``, ``transform``, ``gibbs``, ``sample``) plus
# ``inverse_transform``, hidden values -> visible means; every fastseq machine has them
# (for a Gaussian RBM the mean is ``b + sigma * (W h)``). Here a Gaussian RBM of 128 hidden units,
# CD-1 with Adam for 50 epochs, on the codes standardised to mean 0 and
# standard deviation 1 (``scaling="standard"``, as Gaussian units want).
machine = GaussianRBM(n_components=128, n_iter=50, batch_size=16, optimizer="adam", learning_rate=0.01,
                      persistent=False, random_state=0)
stacked = StackedModel(cnn, machine, scaling="standard").fit(train)
autoencoded = stacked.autoencode(test)


def as_picture(images: np.ndarray, width: int) -> np.ndarray:
    """Faces in [-1, 1] as a mosaic in [0, 1]."""
    return tile((np.clip(images, -1.0, 1.0) + 1.0) / 2.0, width=width, scale=None, spacing=1)


# %%
# Ten held-out faces (top row), the network's reconstruction (middle), and the same faces
# up through the network and the machine and back down (bottom): the machine pulls each
# face toward a typical one.
shown = test[:10]
rows = np.concatenate([shown, cnn.reconstruct(shown), autoencoded[:10]])
save_png(as_picture(rows, width=10), "faces_reconstructed.png", zoom=3)

# %%
# Twenty faces generated from scratch: 1,000 Gibbs steps in the machine from random
# starts, decoded by the network.
generated = stacked.generate(20, n_steps=1000, seed=0)
save_png(as_picture(generated, width=10), "faces_generated.png", zoom=3)
print(f"held-out reconstruction error: network {cnn_error:.4f}, PCA with {components} components "
      f"{pca_error:.4f}, through the machine {mean_squared_error(autoencoded, test):.4f}; "
      f"{time.perf_counter() - started:.1f} s")
