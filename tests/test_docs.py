"""The manual's promises: every public name documented and referenced, the README's code runs."""
from __future__ import annotations

import importlib
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

import fastseq

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def _public() -> list[tuple[str, object]]:
    names = []
    for sub in fastseq.SUBPACKAGES:
        module = importlib.import_module(f"fastseq.{sub}")
        names += [(f"fastseq.{sub}.{n}", getattr(module, n)) for n in module.__all__]
    names += [(f"fastseq.{n}", getattr(fastseq, n)) for n in fastseq.__all__ if n not in fastseq.SUBPACKAGES
              and not n.startswith("_")]
    return names


@pytest.mark.parametrize("name, obj", _public(), ids=[n for n, _ in _public()])
def test_every_public_name_has_its_own_docstring(name, obj):
    if not (inspect.isclass(obj) or callable(obj) or inspect.ismodule(obj)):
        return  # constants are documented where they are defined
    doc = obj.__dict__.get("__doc__") if inspect.isclass(obj) else obj.__doc__
    assert doc and len(doc.strip()) > 20, f"{name} has no docstring of its own"


def test_the_api_reference_has_an_entry_for_every_public_name(tmp_path):
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        from _build_pages import write_api_pages
    finally:
        sys.path.remove(str(ROOT / "docs"))
    write_api_pages(tmp_path)
    for sub in fastseq.SUBPACKAGES:
        page = (tmp_path / f"{sub}.rst").read_text()
        for n in importlib.import_module(f"fastseq.{sub}").__all__:
            assert re.search(rf"^\.\. auto\w+:: fastseq\.{sub}\.{n}$", page, re.M), (sub, n)


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, re.S | re.M)


def test_readme_is_a_front_page():
    assert README.stat().st_size <= 15_000
    assert len(_python_blocks(README.read_text())) >= 2


@pytest.mark.parametrize("index", range(len(_python_blocks(README.read_text()))))
def test_readme_python_block_runs_as_written(index, tmp_path):
    code = _python_blocks(README.read_text())[index]
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, f"README block {index} failed:\n{code}\n{out.stderr[-3000:]}"
