"""
An RBM on digits: its filters, ordered, and its Gibbs chains
============================================================

A Bernoulli restricted Boltzmann machine (:class:`fastseq.boltzmann.RBM`, a drop-in for
scikit-learn's ``BernoulliRBM``) learns from the 5,000 MNIST digits that ship with
fastseq. Each hidden unit has one weight per pixel, a 28 x 28 filter. Shown in the
order the units happen to have, the filters look like noise; ordered with
:func:`fastseq.mosaic.corrsort`, so that correlated filters sit side by side, families of
strokes appear. Last, Gibbs chains started at real digits show what the machine believes a
digit looks like.
"""
import time

import numpy as np

from fastseq.boltzmann import RBM
from fastseq.datasets import embedded_digits
from fastseq.mosaic import corrsort, path_correlation, save_png, tile

started = time.perf_counter()
images, labels = embedded_digits(flat=True)
X = (images / 255.0 > 0.5).astype(np.float32)  # binary pixels for binary visible units

# %%
# Train a small machine for a few epochs: 100 hidden units, persistent contrastive
# divergence (PCD-1, the default). Its exact pseudo-log-likelihood per digit shows it learnt
# something.
rbm = RBM(n_components=100, learning_rate=0.05, batch_size=20, n_iter=5, random_state=0).fit(X)
score = rbm.score_samples(X).mean()

# %%
# The filters as the machine stores them (``components_``, 100 x 784), one tile each,
# each tile scaled to its own range.
filters = rbm.components_
save_png(tile(filters, shape=(28, 28), width=10), "rbm_filters_unsorted.png", zoom=2)

# %%
# The same filters ordered by correlation: ``corrsort`` returns a path through the rows
# that keeps neighbours alike ("tsp" refines the greedy path for half a second), and
# ``tile`` lays the path out line by line.
order = corrsort(filters, "tsp", time_budget=0.5)
# sphinx_gallery_thumbnail_number = 2
save_png(tile(filters, shape=(28, 28), width=10, order=order), "rbm_filters_sorted.png", zoom=2)
as_stored = path_correlation(filters, np.arange(len(filters))) / (len(filters) - 1)
sorted_r = path_correlation(filters, order) / (len(filters) - 1)

# %%
# Gibbs chains: one digit of each class (left column) and the chain after 1, 2, 5, 10, 20,
# 50, 100 and 200 steps of ``gibbs`` (v -> h -> v', each a fresh binary sample). The
# chains wander from the digit they started at to the shapes the machine finds likely.
chains = X[[np.flatnonzero(labels == c)[0] for c in range(10)]]
keep = {1, 2, 5, 10, 20, 50, 100, 200}
columns = [chains]
for step in range(1, max(keep) + 1):
    chains = rbm.gibbs(chains)
    if step in keep:
        columns.append(chains)
grid = np.stack(columns, axis=1).reshape(-1, 784)  # row = chain, column = step
save_png(tile(grid, shape=(28, 28), width=len(columns), spacing=2, scale=None, background=0.5),
         "rbm_gibbs_chains.png", zoom=2)
print(f"pseudo-log-likelihood {score:.1f} per digit; mean correlation of neighbouring filters "
      f"{as_stored:.3f} as stored, {sorted_r:.3f} ordered; {time.perf_counter() - started:.1f} s")
