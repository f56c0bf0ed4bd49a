"""Sphinx configuration for fastseq's documentation site.

Build: ``pip install ".[docs]" && sphinx-build -W -b html docs build/docs``. Setting
``FASTSEQ_DOCS_FAST=1`` skips running the gallery's examples (CI); the full build runs
them (each under a minute on a 2-core machine). The API reference is generated from the
subpackages' ``__all__`` and the benchmark pages from the JSON that ``bench/`` writes, so
neither is kept by hand.
"""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS))  # _build_pages; fastseq itself is the installed one (run sphinx with python -P)

import fastseq  # noqa: E402

from _build_pages import write_api_pages, write_benchmark_pages, png_scraper  # noqa: E402

project = "fastseq"
author = "fastseq contributors"
copyright = "fastseq contributors"
release = version = fastseq.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "benchmarks/*.txt", "auto_examples/*.ipynb", "auto_examples/*.py",
                    "auto_examples/*.zip", "auto_examples/*.json", "auto_examples/*.md5"]
myst_heading_anchors = 3
suppress_warnings = ["myst.header", "config.cache"]  # pages moved from the README start at a level-2 heading in places

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False

html_theme = "furo"
html_title = f"fastseq {release}"

# furo's a11y_pygments calls logging.basicConfig(level=INFO) when it is imported; without this
# the gallery's run_window calls would print fastseq.bptt's engine choices into the build log
logging.getLogger("fastseq").setLevel(logging.WARNING)

FAST = os.environ.get("FASTSEQ_DOCS_FAST", "") not in ("", "0")
sphinx_gallery_conf = {
    "examples_dirs": str(DOCS.parent / "examples" / "gallery"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "plot_gallery": not FAST,
    "image_scrapers": (png_scraper,),
    "download_all_examples": False,
    "remove_config_comments": True,
    "abort_on_example_error": True,
}


def setup(app) -> None:
    write_api_pages(DOCS / "api")
    write_benchmark_pages(DOCS / "benchmarks", DOCS / "benchmarks" / "pages")
