"""Every fuzz test runs in its own empty folder: junk paths such as 'abc' or '1' are
relative, and what a call writes there must not land in the source tree."""
import pytest


@pytest.fixture(autouse=True)
def _in_a_scratch_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
