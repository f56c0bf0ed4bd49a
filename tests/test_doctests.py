"""Run the examples in public docstrings."""
import doctest
import importlib

import pytest

MODULES = ["fastseq.bptt.schedule", "fastseq.bptt.plans", "fastseq.bptt.state", "fastseq.bptt.store", "fastseq.bptt.store_writer", "fastseq.bptt.trainer", "fastseq.datasets.stdlib", "fastseq.bptt.distributed", "fastseq.bptt.shards",
           "fastseq.datasets.mnist", "fastseq.rowrnn.models", "fastseq.rowrnn.units", "fastseq.mosaic.tiles", "fastseq.mosaic.order",
           "fastseq.mosaic.layout", "fastseq.boltzmann._rbm", "fastseq.boltzmann._beta", "fastseq.boltzmann.likelihood",
           "fastseq.datasets.faces", "fastseq.conv.model", "fastseq.conv.training", "fastseq.conv.stacked", "fastseq.conv.quality"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
