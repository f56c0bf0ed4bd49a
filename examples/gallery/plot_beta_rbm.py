"""
A Beta RBM on grey-level digits
===============================

:class:`fastseq.boltzmann.BetaRBM` models real values in [0, 1]: each visible unit is
Beta-distributed given the binary hidden units, and the machine has a true energy, so its
log-likelihood can be computed. With 16 hidden units the partition function is exact (a
sum over the 65,536 hidden states), which scores the machine on held-out digits before and
after a few epochs of training. The picture shows what it makes of held-out digits.
"""
import time

import numpy as np

from fastseq.boltzmann import BetaRBM, average_log_likelihood, exact_log_partition
from fastseq.datasets import embedded_digits, held_out_split
from fastseq.mosaic import save_png, tile

started = time.perf_counter()
images, labels = embedded_digits()

# %%
# Grey levels: 2 x 2 blocks of pixels averaged (14 x 14 digits with real grey values, and
# a quarter of the work). A Beta density is zero or infinite at exactly 0 and 1, so the
# values are squeezed into [0.02, 0.98]; otherwise the blank background, piled up on the
# edge, would dominate the likelihood.
grey = images.reshape(-1, 14, 2, 14, 2).mean(axis=(2, 4)) / 255.0
X = (0.02 + 0.96 * grey).reshape(len(grey), -1).astype(np.float32)
train, test = held_out_split(labels, fraction=0.2, seed=0)  # 20% of each class held out


def held_out_score(machine):
    """Mean log-density of the held-out digits (nats per digit) and the reconstruction error."""
    log_z = exact_log_partition(machine)
    return average_log_likelihood(machine, X[test], log_z), machine.reconstruction_error(X[test])


# %%
# Before training: ``n_iter=0`` only initialises the machine, each pixel's Beta fitted to
# that pixel's mean and variance (half of each pixel's Beta shapes carried by the hidden
# weights, the hidden biases offsetting the average input so that every unit starts about
# half on). Then 8 epochs of persistent contrastive divergence with Adam.
settings = dict(n_components=16, optimizer="adam", learning_rate=0.03, batch_size=20, random_state=0)
before = BetaRBM(n_iter=0, **settings).fit(X[train])
machine = BetaRBM(n_iter=8, **settings).fit(X[train])
(ll_before, err_before), (ll_after, err_after) = held_out_score(before), held_out_score(machine)

# %%
# One held-out digit of each class (top row), then: the untrained machine's mean-field
# reconstruction (the average digit), the trained machine's reconstruction, one Gibbs step
# (a Beta draw for every pixel), and the mean after 100 Gibbs steps from the digit. Sixteen
# units, trained for seconds, hold only the rough shape of a digit: the reconstructions are
# blurred, and after 100 steps the chains have wandered to other rough digit shapes, not
# all to one blob.
digits = X[[test[labels[test] == c][0] for c in range(10)]]
rows = [digits, before.reconstruct(digits), machine.reconstruct(digits), machine.gibbs(digits),
        machine.sample(10, n_steps=100, start=digits)]
save_png(tile(np.concatenate(rows), shape=(14, 14), width=10, spacing=1, scale=None, background=0.5),
         "beta_rbm_digits.png", zoom=4)
print(f"held-out log-likelihood {ll_before:.1f} -> {ll_after:.1f} nats per digit, reconstruction error "
      f"{err_before:.4f} -> {err_after:.4f}; {time.perf_counter() - started:.1f} s")
