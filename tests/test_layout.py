"""The package's shape: a small lazy top level, one subpackage per domain, no import cycles."""
from __future__ import annotations

import ast
import importlib
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import fastseq

PACKAGE = Path(fastseq.__file__).parent
FLAGSHIPS = set(fastseq._FLAGSHIPS)  # the one list; the stub and __all__ are checked against it


def all_modules() -> list[str]:
    names = ["fastseq"]
    for info in pkgutil.walk_packages([str(PACKAGE)], prefix="fastseq."):
        names.append(info.name)
    return sorted(names)


def import_edges() -> dict[str, set[str]]:
    """Module -> fastseq modules it imports (anywhere in its body), read from the source."""
    files = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        files[name] = path
    edges: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            for target in targets:
                while target and target not in files:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    edges[name].add(target)
    return edges


def test_top_level_is_subpackages_and_flagships():
    assert set(fastseq.__all__) == FLAGSHIPS | set(fastseq.SUBPACKAGES) | {"__version__"}
    for name in fastseq.__all__:
        assert getattr(fastseq, name) is not None
    from fastseq._util.stub import top_level_stub

    stub = (PACKAGE / "__init__.pyi").read_text()
    assert stub == top_level_stub(), "__init__.pyi is out of date: python -m fastseq._util.stub rewrites it"
    for name in FLAGSHIPS | set(fastseq.SUBPACKAGES):
        assert f" as {name}\n" in stub, f"{name} missing from __init__.pyi"
    for name, module in fastseq._FLAGSHIPS.items():  # a flagship is the object its subpackage exports
        assert getattr(fastseq, name) is getattr(importlib.import_module(module), name)


def test_top_level_names_load_on_first_use_and_stay(monkeypatch):
    """``fastseq.<name>`` goes through the module's ``__getattr__`` until first used: a subpackage
    or a flagship is imported then and kept, so the next use is a plain lookup."""
    for name, expected in [("mosaic", importlib.import_module("fastseq.mosaic")),
                           ("train_bptt", importlib.import_module("fastseq.bptt").train_bptt)]:
        monkeypatch.delitem(fastseq.__dict__, name, raising=False)  # as before its first use
        assert getattr(fastseq, name) is expected
        assert fastseq.__dict__[name] is expected
    with pytest.raises(AttributeError, match="module 'fastseq' has no attribute 'nothing'"):
        fastseq.nothing  # noqa: B018
    assert "nothing" not in fastseq.__dict__


def test_every_subpackage_exports_what_it_lists():
    for sub in fastseq.SUBPACKAGES:
        module = importlib.import_module(f"fastseq.{sub}")
        for name in module.__all__:
            assert getattr(module, name) is not None, (sub, name)


def test_no_module_imports_its_importer():
    edges = import_edges()
    cycles = sorted((a, b) for a in edges for b in edges[a] if a < b and a in edges.get(b, ())
                    and not (a == "fastseq" or b == "fastseq"))
    # a package importing its own submodules (and being imported by them as a namespace) is fine
    cycles = [(a, b) for a, b in cycles if not (b.startswith(a + ".") or a.startswith(b + "."))]
    assert cycles == []


def test_data_layer_does_not_import_the_engines():
    edges = import_edges()
    for module in ("fastseq.bptt.store", "fastseq.bptt.schedule", "fastseq.bptt.loader"):
        assert "fastseq.bptt.engines" not in edges[module], module


def test_every_module_imports_in_a_fresh_interpreter_and_import_is_fast():
    code = (
        "import importlib, json, sys, time\n"
        "t = time.perf_counter(); import fastseq; took = time.perf_counter() - t\n"
        f"for name in {all_modules()!r}: importlib.import_module(name)\n"
        "print(json.dumps(took))\n"
    )
    out = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True, check=True,
                         timeout=300)
    assert json.loads(out.stdout.strip().splitlines()[-1]) < 0.2
