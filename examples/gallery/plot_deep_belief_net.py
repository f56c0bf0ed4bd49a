"""
A deep belief net on digits: samples and interpolations
=======================================================

:class:`fastseq.boltzmann.DeepBeliefNet` stacks Boltzmann machines: a Bernoulli RBM learns
the 5,000 MNIST digits that ship with fastseq, a second RBM learns the first one's hidden
means. The top machine is a prior over the first layer's hidden units; generating means
running Gibbs chains in it and passing their values down through the layer below. Two
pictures: samples, and straight lines between digits in the top layer's code, decoded.
"""
import time

import numpy as np

from fastseq.boltzmann import RBM, DeepBeliefNet
from fastseq.datasets import embedded_digits
from fastseq.mosaic import save_png, tile

started = time.perf_counter()
images, labels = embedded_digits(flat=True)
X = (images / 255.0 > 0.5).astype(np.float32)  # binary pixels for binary visible units

# %%
# Two layers, 784 -> 200 -> 50, each trained for a few epochs of persistent contrastive
# divergence; the second layer learns from the first one's hidden means. One seed on the
# net seeds both machines.
dbn = DeepBeliefNet([RBM(n_components=200, learning_rate=0.05, batch_size=20, n_iter=5),
                     RBM(n_components=50, learning_rate=0.05, batch_size=20, n_iter=10)],
                    random_state=0).fit(X)

# %%
# Samples. Left: twenty chains in the top machine started from random states, after 1,000
# Gibbs steps, decoded with visible means. Right: chains started from the up-pass of one
# digit of each class (twice), after 20 steps: most keep the class they started from,
# a few drift to a neighbouring one (a 4 to a 9). From random starts the chains of this
# small net settle on a few classes, the ones and sevens.
from_random = dbn.sample(20, n_steps=1000)
starts = X[[np.flatnonzero(labels == c)[0] for c in range(10)]]
from_digits = dbn.sample(n_steps=20, start=np.concatenate([starts, starts]))
grid = np.concatenate([from_random, from_digits])
save_png(tile(grid, shape=(28, 28), width=10, spacing=2, scale=None, background=0.5), "dbn_samples.png", zoom=2)

# %%
# Interpolations: for five pairs of digits of different classes, the top-layer codes of the
# two digits joined by a straight line, ten points decoded down through both layers. The
# ends are the net's reconstructions of the two digits.
pairs = [(0, 6), (1, 7), (3, 8), (4, 9), (2, 5)]
strips = [dbn.interpolate(starts[a], starts[b], n_steps=10) for a, b in pairs]
# sphinx_gallery_thumbnail_number = 2
save_png(tile(np.concatenate(strips), shape=(28, 28), width=10, spacing=2, scale=None, background=0.5),
         "dbn_interpolations.png", zoom=2)
error = float(np.mean((dbn.reconstruct(X) - X) ** 2))
print(f"reconstruction error {error:.4f} per pixel; {time.perf_counter() - started:.1f} s")
