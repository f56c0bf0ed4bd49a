"""The `fastseq demo` command: the main job on data that ships with Python."""
import subprocess
import sys

import numpy as np
import pytest

from fastseq.cli import main
from fastseq.commands.demo import padded_steps
from fastseq.datasets.stdlib import stdlib_paragraphs


def test_demo_runs_and_reports(capsys):
    assert main(["demo", "--sequences", "40", "--hidden", "16", "--batch", "8", "--bptt", "8", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "real steps/s" in out and "padding" in out and "bits per byte" in out


def test_demo_counts_the_windows_it_trains(capsys):
    """The bar's total and the slot-steps line come from the schedule train_bptt runs."""
    import re

    assert main(["demo", "--sequences", "300", "--hidden", "8", "--batch", "16", "--bptt", "8"]) == 0
    captured = capsys.readouterr()
    trained = int(re.search(r"\(\S+ s, (\d+) windows\)", captured.out).group(1))
    totals = {int(t) for t in re.findall(r"\| *\d+/(\d+) \[", captured.err)}
    assert totals == {trained}, (totals, trained)
    assert f"{trained}/{trained} [" in captured.err


@pytest.mark.parametrize("argv,text", [
    (["demo", "--batch", "0"], "argument --batch: expected an integer >= 1, got 0"),
    (["demo", "--threads", "0"], "argument --threads: expected an integer >= 1"),
    (["demo", "--learning-rate", "nan"], "expected a finite number > 0, got nan"),
])
def test_demo_bad_options_print_one_line(argv, text, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and text in err[0]


@pytest.mark.parametrize("argv,text", [
    (["demo", "--bogus"], "unrecognized arguments: --bogus"),
    (["bogus"], "invalid choice: 'bogus'"),
    (["demo", "--batch", "x"], "argument --batch: expected an integer >= 1, got 'x'"),
])
def test_usage_errors_are_one_line(argv, text):
    proc = subprocess.run([sys.executable, "-m", "fastseq.cli", *argv], capture_output=True, text=True, timeout=300)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and text in lines[0]


def test_padded_steps_counts_batch_maxima():
    assert padded_steps([1, 5, 2], batch=3, seed=0) == 15
    assert padded_steps([4], batch=2, seed=0) == 4


def test_corpus_is_real_and_variable_length():
    seqs = stdlib_paragraphs(max_sequences=300)
    lengths = np.array([len(s) for s in seqs])
    assert len(seqs) == 300 and lengths.min() >= 2 and lengths.max() > 10 * np.median(lengths) / 2
    assert b"import" in b"".join(s.tobytes() for s in seqs)
    assert all(len(s) <= 50 for s in stdlib_paragraphs(max_sequences=50, max_length=50))
