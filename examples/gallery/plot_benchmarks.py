"""
How fast each way of batching trains a GRU
==========================================

Whole training epochs of a GRU (128 units, 64 slots or batch rows, windows of 32 steps) on
1,000 sequences with lognormal lengths (median 37, longest 858), timed by
``bench/compare_batching.py --quick`` on a shared 2-core CPU machine. Speed counts real
steps only, so padding costs what it computes. The numbers come from the JSON file the
benchmark wrote, ``docs/benchmarks/compare_batching_quick.json``; this example reads it and
draws one bar per method.
"""
import json
from pathlib import Path

import numpy as np

from fastseq.mosaic import save_png

# found from this script's place in the repository (examples/gallery/), whatever the current
# folder; sphinx-gallery defines no __file__ but runs each example in its own folder
try:
    here = Path(__file__).resolve().parent
except NameError:
    here = Path.cwd()
results = here.parents[1] / "docs" / "benchmarks" / "compare_batching_quick.json"
data = json.loads(results.read_text())

# %%
# The lognormal GRU workload, measured at 1 and at 2 threads; each row is one method with
# the median of its repeats (``steps_per_s``) and their spread (min and max as ratios of the
# median). The "ideal" rows are references, not ways to train on these sequences: the same
# module on fixed-length windows with no sequence boundaries at all.
runs = {w["threads"]: w for w in data["workloads"] if w["workload"] == "lognormal" and w["cell"] == "gru"}
methods = [r["method"] for r in runs[1]["rows"]]
label = {r["method"]: r["label"] for r in runs[1]["rows"]}
speed = {t: {r["method"]: r for r in runs[t]["rows"]} for t in runs}
methods.sort(key=lambda m: -speed[1][m]["steps_per_s"])  # fastest at the top
kind = {m: "fastseq" if m.startswith("fastseq") else "reference" if m.startswith("ideal") else "other"
        for m in methods}

print(f"{'method':<40} {'kind':<10} {'1 thread':>9} {'2 threads':>9}   real steps/s, medians of {data['repeats']}")
for m in methods:
    print(f"{label[m]:<40} {kind[m]:<10} " + " ".join(f"{speed[t][m]['steps_per_s']:>9,.0f}" for t in sorted(speed)))

# %%
# The chart, drawn into an array, in the order of the table: per method a dark bar (1
# thread) above a light bar (2 threads): blue for fastseq's own methods, orange for the usual
# ways of batching, grey for the fixed-length references; a thin black line spans the range
# of the repeats. Vertical grid lines every 50,000 real steps per second.
colours = {"fastseq": (0.1, 0.35, 0.75), "other": (0.9, 0.5, 0.1), "reference": (0.45, 0.45, 0.45)}
bar, gap, margin = 6, 5, 8
per_px = 500.0  # steps/s per pixel
top = max(r["steps_per_s"] * r["spread"][1] for t in speed for r in speed[t].values())
width = int(np.ceil(top / per_px)) + 10
height = len(methods) * (2 * bar + gap) - gap
canvas = np.ones((height + 2 * margin, width + 2 * margin, 3))
for x in range(0, width, int(50_000 / per_px)):
    canvas[margin:margin + height, margin + x] = 0.85
for i, m in enumerate(methods):
    for j, threads in enumerate(sorted(speed)):
        row = speed[threads][m]
        y = margin + i * (2 * bar + gap) + j * bar
        colour = np.array(colours[kind[m]])
        colour = colour if j == 0 else 1 - 0.5 * (1 - colour)  # the 2-thread bar lighter
        canvas[y:y + bar - 1, margin:margin + int(row["steps_per_s"] / per_px)] = colour
        low, high = (int(row["steps_per_s"] * s / per_px) for s in row["spread"])
        canvas[y + bar // 2 - 1, margin + low:margin + high + 1] = 0.0
canvas[margin:margin + height, margin - 1] = 0.0  # the axis at 0
save_png(canvas, "benchmark_lognormal_gru.png", zoom=2)
fastest = next(m for m in methods if kind[m] != "reference")
gain = speed[1][fastest]["steps_per_s"] / speed[1]["padded_random"]["steps_per_s"]
print(f"fastest way to train on these sequences: {label[fastest]}, {gain:.1f}x padded random batches at 1 thread")
