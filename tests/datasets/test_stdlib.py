"""The standard library's text as sequences, against a plain model of the rule: paragraphs are
blocks between lines holding only whitespace, in sorted file order, filtered by length."""
from __future__ import annotations

import re
import sysconfig
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastseq.datasets.stdlib import one_hot_bytes, stdlib_paragraphs


def _split_at_blank_lines(text: bytes) -> list[bytes]:
    r"""Cut ``text`` at each newline, whitespace-only run, newline (scanned left to right, the
    scan resuming after the second newline): what ``re.split(rb"\n[ \t\r\f\v]*\n")`` does."""
    blocks, start, i = [], 0, 0
    while i < len(text):
        if text[i:i + 1] == b"\n":
            j = i + 1
            while j < len(text) and text[j:j + 1] in (b" ", b"\t", b"\r", b"\f", b"\v"):
                j += 1
            if text[j:j + 1] == b"\n":
                blocks.append(text[start:i])
                start = i = j + 1
                continue
        i += 1
    return blocks + [text[start:]]


def _paragraphs_model(folder: Path, max_sequences=None, min_length=2, max_length=None) -> list[bytes]:
    """The rule written plainly: every sorted ``.py`` file cut at blank lines, filtered by length."""
    out = []
    for path in sorted(folder.glob("*.py")):
        for block in _split_at_blank_lines(path.read_bytes()):
            text = block.strip(b"\n")
            if len(text) >= min_length and (max_length is None or len(text) <= max_length):
                out.append(text)
    return out if max_sequences is None else out[:max_sequences]


def _corpus(tmp_path: Path) -> Path:
    (tmp_path / "b.py").write_bytes(b"x = 1\ny = 2\n\n\ndef f():\n    return 3\n \t\nz\n\n \n \nw = 4\n\n\n\nlast")
    (tmp_path / "a.py").write_bytes(b"# first file in sorted order\nimport os\n\nclass A:\n    pass\n\nzz\n\nX = 1\nY = X\n")
    (tmp_path / "notes.txt").write_bytes(b"not python\n\nskipped\n")
    return tmp_path


def test_paragraphs_match_the_plain_rule_in_sorted_file_order(tmp_path):
    folder = _corpus(tmp_path)
    got = [s.tobytes() for s in stdlib_paragraphs(root=folder)]
    assert got == _paragraphs_model(folder)
    assert got[0].startswith(b"# first file")  # a.py before b.py
    assert b"z" not in got and b"zz" in got  # min_length = 2 by default
    assert b"X = 1\nY = X" in got  # only newlines are stripped from a paragraph's ends
    assert all(s.dtype == np.uint8 for s in stdlib_paragraphs(root=folder))


@pytest.mark.parametrize("max_sequences", [1, 2, 3, 100])
@pytest.mark.parametrize("min_length,max_length", [(1, None), (2, None), (5, 12), (1, 5), (30, None)])
def test_limits_match_the_plain_rule(tmp_path, max_sequences, min_length, max_length):
    folder = _corpus(tmp_path)
    got = stdlib_paragraphs(max_sequences, min_length=min_length, max_length=max_length, root=folder)
    want = _paragraphs_model(folder, max_sequences, min_length, max_length)
    assert [s.tobytes() for s in got] == want
    assert len(got) <= max_sequences


@settings(max_examples=80, deadline=None)
@given(st.binary(min_size=0, max_size=60).map(lambda b: bytes(b"ab\n \t\r"[x % 6] for x in b)))
def test_any_text_of_letters_newlines_and_blanks_splits_like_the_plain_rule(text):
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "m.py").write_bytes(b"start\n" + text)
        got = [s.tobytes() for s in stdlib_paragraphs(min_length=1, root=folder)]
        assert got == _paragraphs_model(Path(folder), None, 1, None)


def test_the_real_standard_library_starts_like_the_plain_rule():
    folder = Path(sysconfig.get_paths()["stdlib"])
    got = [s.tobytes() for s in stdlib_paragraphs(max_sequences=40, max_length=400)]
    assert got == _paragraphs_model(folder, 40, 2, 400)
    assert len(got) == 40


def test_sequences_are_copies_the_caller_may_write(tmp_path):
    seqs = stdlib_paragraphs(root=_corpus(tmp_path))
    seqs[0][0] = 0  # a view of bytes would be read-only
    assert seqs[0].flags.writeable and seqs[0].flags.owndata


@pytest.mark.parametrize("name,kwargs", [("max_sequences", {"max_sequences": 0}), ("min_length", {"min_length": 0}),
                                         ("max_length", {"max_length": -1})])
def test_bad_limits_name_the_argument(tmp_path, name, kwargs):
    with pytest.raises(ValueError, match=rf"^Expected {name} to be"):
        stdlib_paragraphs(root=_corpus(tmp_path), **kwargs)


def test_a_folder_without_python_files_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(f"Expected .py files in root {str(tmp_path)!r}")):
        stdlib_paragraphs(root=tmp_path)
    with pytest.raises(TypeError, match=r"^Expected root to be a folder path, got int 3"):
        stdlib_paragraphs(root=3)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 9), max_size=40), st.integers(10, 12))
def test_one_hot_matches_rows_of_the_identity(values, vocabulary):
    seq = np.array(values, dtype=np.uint8)
    got = one_hot_bytes(seq, vocabulary=vocabulary)
    assert got.shape == (len(values), vocabulary) and got.dtype == np.float32
    np.testing.assert_array_equal(got, np.eye(vocabulary, dtype=np.float32)[seq.astype(np.int64)])


def test_one_hot_defaults_and_dtype():
    got = one_hot_bytes(np.array([255, 0], np.uint8))
    assert got.shape == (2, 256) and got[0, 255] == 1 and got[1, 0] == 1 and got.sum() == 2
    assert one_hot_bytes(np.array([1], np.int64), vocabulary=2, dtype=np.float64).dtype == np.float64


@pytest.mark.parametrize("seq", [np.array([0, 3]), np.array([-1, 0]), np.array([0.5, 1.0])])
def test_one_hot_refuses_values_outside_the_vocabulary(seq):
    with pytest.raises(ValueError, match=r"^Expected seq to hold integers in \[0, vocabulary=3\)"):
        one_hot_bytes(seq, vocabulary=3)


def test_one_hot_refuses_what_memory_cannot_hold():
    with pytest.raises(ValueError, match=r"^one_hot_bytes\(vocabulary=10000000\) would need 3725 GiB"):
        one_hot_bytes(np.zeros(10**5, np.uint8), vocabulary=10**7)


def test_one_hot_names_its_arguments():
    with pytest.raises(ValueError, match=r"^Expected vocabulary to be"):
        one_hot_bytes(np.array([0], np.uint8), vocabulary=0)
    with pytest.raises(ValueError, match=r"\bseq\b"):
        one_hot_bytes(np.zeros((2, 2), np.uint8))
