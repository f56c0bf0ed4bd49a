"""Every gallery example runs as a user would run it, and draws its pictures."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

GALLERY = Path(__file__).resolve().parents[1] / "examples" / "gallery"
EXAMPLES = sorted(GALLERY.glob("plot_*.py"))
# the examples that need an optional extra: (module, the extra that installs it)
NEEDS = {
    "plot_lightning_parquet": (("pytorch_lightning", "lightning"), ("pyarrow", "arrow"), ("matplotlib", "docs")),
    "plot_lightning_hf": (("pytorch_lightning", "lightning"), ("datasets", "hf"), ("matplotlib", "docs")),
}


def test_the_gallery_has_examples():
    assert len(EXAMPLES) >= 1


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_gallery_example_runs_and_draws(script, tmp_path):
    for module, extra in NEEDS.get(script.stem, ()):
        pytest.importorskip(module, reason=f"{script.name} needs {module} (pip install 'fastseq[{extra}]')")
    out = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    pictures = list(tmp_path.glob("*.png"))
    assert pictures, f"{script.name} wrote no PNG"
    assert all(p.stat().st_size > 200 for p in pictures)
