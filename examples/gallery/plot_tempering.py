"""
Gibbs chains against parallel tempering: which digits an RBM's samples show
============================================================================

A restricted Boltzmann machine's Gibbs chains settle near a mode and stay there, so the
samples of a few chains can show a few digits only. Parallel tempering
(``sample(..., sampler="pt")``) runs a copy of every chain at each temperature of a ladder
and lets neighbours exchange states: the hot copies move between modes and hand their
states down to the ``beta = 1`` copies, which are the samples.

A small machine learns the 5,000 digits that ship with fastseq; 60 chains then sample it
both ways from random starts, and a nearest-neighbour classifier of the real digits says
which digit each sample looks like. The bar chart counts them per class.

What it shows: both samplers draw mostly 0s and 7s. Tempering's ladder swaps well (rates
near 0.3 between every pair), so its chains are not stuck: the machine itself puts most of
its probability on a few digit shapes. A sampler can only show what the model holds; how
many digits appear is first a question of training (see the user guide's tempering
section and ``bench/boltzmann/compare_samplers.py``).
"""
import time

import numpy as np
from sklearn.neighbors import KNeighborsClassifier

from fastseq.boltzmann import RBM
from fastseq.datasets import embedded_digits
from fastseq.mosaic import save_png, tile

started = time.perf_counter()
images, labels = embedded_digits(flat=True)
X = (images / 255.0 > 0.5).astype(np.float32)

# %%
# A 784-100 machine, persistent contrastive divergence for 5 epochs.
rbm = RBM(n_components=100, learning_rate=0.05, batch_size=20, n_iter=5, random_state=0).fit(X)

# %%
# 60 chains, 300 steps each way. With ``sampler="pt"`` the ladder of inverse
# temperatures is placed during the first quarter of the steps, aiming at a swap rate of
# about 0.3 between neighbours; ``last_tempering_`` reports it.
gibbs = rbm.sample(60, n_steps=300)
tempered = rbm.sample(60, n_steps=300, sampler="pt")
ladder = rbm.last_tempering_
save_png(tile(gibbs, shape=(28, 28), width=10), "tempering_gibbs_samples.png", zoom=2)
# sphinx_gallery_thumbnail_number = 2
save_png(tile(tempered, shape=(28, 28), width=10), "tempering_pt_samples.png", zoom=2)

# %%
# Which digit each sample looks like, by 5 nearest neighbours among the real digits.
knn = KNeighborsClassifier(5).fit(X, labels)
counts = {name: np.bincount(knn.predict((s > 0.5).astype(np.float32)), minlength=10)
          for name, s in (("Gibbs", gibbs), ("tempering", tempered))}

try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3))
    for k, (name, c) in enumerate(counts.items()):
        ax.bar(np.arange(10) + (k - 0.5) * 0.4, c, width=0.4, label=name)
    ax.set_xticks(range(10))
    ax.set_xlabel("digit the sample looks like")
    ax.set_ylabel("samples of 60")
    ax.legend()
    fig.tight_layout()
    fig.savefig("tempering_coverage.png", dpi=80)
except ImportError:  # the pictures above are drawn without matplotlib
    pass
for name, c in counts.items():
    print(f"{name}: {int((c >= 3).sum())} digits with 3 samples or more, largest share {c.max() / c.sum():.2f}")
print(f"ladder of {len(ladder.betas)} temperatures down to beta = {ladder.betas[-1]:.2f}, swap rates "
      f"{min(ladder.swap_rates):.2f}-{max(ladder.swap_rates):.2f}; {time.perf_counter() - started:.1f} s")
