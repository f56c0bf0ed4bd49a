"""Names that left a subpackage's surface still work for one release, with a warning."""
import importlib

import pytest

import fastseq


def _moved():
    out = []
    for sub in fastseq.SUBPACKAGES:
        module = importlib.import_module(f"fastseq.{sub}")
        out += [(sub, name, where) for name, (where, _) in getattr(module, "MOVED", {}).items()]
    return out


@pytest.mark.parametrize("sub, name, where", _moved(), ids=[f"{s}.{n}" for s, n, _ in _moved()])
def test_a_moved_name_warns_and_is_the_same_object(sub, name, where):
    package = importlib.import_module(f"fastseq.{sub}")
    assert name not in package.__all__
    with pytest.deprecated_call(match=rf"fastseq\.{sub}\.{name} is deprecated"):
        obj = getattr(package, name)
    assert obj is getattr(importlib.import_module(where), name)


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        fastseq.mosaic.nope
