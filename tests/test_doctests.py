"""Run the examples in public docstrings."""
import doctest
import importlib

import pytest

MODULES = ["fastseq.schedule", "fastseq.store", "fastseq.trainer", "fastseq.corpus", "fastseq.distributed",
           "fastseq.data", "fastseq.rnn", "fastseq.inspect"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
