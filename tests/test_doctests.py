"""Run the examples in every module's docstrings, found by walking the package (no hand-kept list)."""
import doctest
import importlib
import pkgutil

import pytest

import fastseq


def _modules() -> list[str]:
    names = ["fastseq"]
    for info in pkgutil.walk_packages(fastseq.__path__, prefix="fastseq."):
        if info.name.endswith("__main__"):
            continue  # running it would start the command line
        names.append(info.name)
    return sorted(names)


MODULES = _modules()


def test_every_subpackage_is_walked():
    for sub in fastseq.SUBPACKAGES:
        assert any(m.startswith(f"fastseq.{sub}.") for m in MODULES), sub


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed"
