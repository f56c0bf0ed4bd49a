"""The top-level type stub, generated from the one list of flagship names.

``fastseq/__init__.py`` imports lazily, so type checkers read ``fastseq/__init__.pyi``
instead. Its lines come from ``fastseq._FLAGSHIPS`` and ``fastseq.SUBPACKAGES``; the
layout test compares the file with :func:`top_level_stub`, and
``python -m fastseq._util.stub`` rewrites it after the list changes.
"""
from __future__ import annotations

from pathlib import Path


def top_level_stub() -> str:
    """The text ``fastseq/__init__.pyi`` should hold."""
    import fastseq

    lines = [f"from fastseq import {sub} as {sub}" for sub in fastseq.SUBPACKAGES]
    by_module = sorted(fastseq._FLAGSHIPS.items(), key=lambda item: (item[1], item[0].lower()))
    lines += [f"from {module} import {name} as {name}" for name, module in by_module]
    lines += ["", "SUBPACKAGES: tuple[str, ...]", "__version__: str", "__all__: list[str]"]
    return "\n".join(lines) + "\n"


def write_stub() -> Path:
    """Rewrite ``fastseq/__init__.pyi`` from the flagship list; return its path."""
    import fastseq

    path = Path(fastseq.__file__).with_name("__init__.pyi")
    path.write_text(top_level_stub())
    return path


if __name__ == "__main__":
    print(write_stub())
