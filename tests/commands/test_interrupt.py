"""Interrupt every writer (SIGINT and SIGKILL at random moments, in a subprocess): the old
files must still load, and Ctrl-C must leave no temporary file behind."""
from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import skimage.io

# The child repeats its writes until it is stopped, so a random moment falls anywhere in a
# write (or between writes); "ready" means the heavy imports are done and the loop starts.
CHILD = {
    "save_png": """
        import numpy as np
        from fastseq.mosaic import save_png
        print("ready", flush=True)
        for i in LOOP():
            save_png(np.random.default_rng(i).random((300, 300)), OUT + "/pic.png", zoom=2)
    """,
    "mosaic": """
        import sys
        import fastseq.mosaic, skimage.io
        from fastseq.cli import main
        print("ready", flush=True)
        for i in LOOP():
            if main(["mosaic", OUT + "/w.npy", "-o", OUT + "/pic.png", "--order", "none", "--zoom", "3"]) != 0:
                sys.exit(130)
    """,
    "train": """
        import sys
        import torch, skimage.io, fastseq.bptt, fastseq.rowrnn, fastseq.mosaic, fastseq.datasets
        from fastseq.cli import main
        print("ready", flush=True)
        for i in LOOP():
            if main(["train", "--data", DATA, "--output", OUT + "/run", "--epochs", "1", "--hidden", "8",
                     "--mosaic", "--windows", "40", "--window", "5", "--random-seed", str(i)]) != 0:
                sys.exit(130)
    """,
}


# Ctrl-C raises KeyboardInterrupt wherever the child is; if it lands in a __del__ or a
# callback, Python reports it and carries on, so the loop also stops at the next iteration.
PRELUDE = """
import signal
_stopped = []

def _on_sigint(signum, frame):
    _stopped.append(signum)
    raise KeyboardInterrupt

signal.signal(signal.SIGINT, _on_sigint)

def LOOP():
    i = 0
    while not _stopped:
        yield i
        i += 1
    raise SystemExit(130)
"""


def _interrupt(tmp_path, writer: str, sig: int, delay: float, data: str = "") -> None:
    script = tmp_path / "child.py"
    script.write_text(f"OUT = {str(tmp_path / 'out')!r}\nDATA = {data!r}\n" + PRELUDE + textwrap.dedent(CHILD[writer]))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-P", str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env, text=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 120)
        assert ready and proc.stdout.readline().strip() == "ready", proc.stderr.read()
        time.sleep(delay)
        proc.send_signal(sig)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0, "the child finished before the signal"


def _check_out(folder, expected: set[str], sig: int) -> None:
    names = set(os.listdir(folder))
    assert expected <= names, names
    leftovers = {n for n in names - expected if n.startswith(".") and ".tmp" in n}
    assert names - expected == leftovers, names  # nothing but hidden temporary files
    if sig == signal.SIGINT:  # an orderly stop removes its temporary file
        assert not leftovers, leftovers


def _old_png(path, shape=(20, 30)) -> np.ndarray:
    from fastseq.mosaic import save_png

    old = np.random.default_rng(123).random(shape)
    save_png(old, path)
    return skimage.io.imread(path)


def _loads_old_or_complete_new(path, old: np.ndarray, new_shape: tuple) -> None:
    img = skimage.io.imread(path)  # a half-written PNG fails here
    assert np.array_equal(img, old) or img.shape == new_shape, img.shape


MOMENTS = [(signal.SIGINT, 0), (signal.SIGKILL, 1)]


@pytest.mark.parametrize("sig,seed", MOMENTS)
def test_save_png_interrupted(tmp_path, sig, seed):
    (tmp_path / "out").mkdir()
    old = _old_png(tmp_path / "out" / "pic.png")
    _interrupt(tmp_path, "save_png", sig, np.random.default_rng(seed).uniform(0.05, 1.0))
    _check_out(tmp_path / "out", {"pic.png"}, sig)
    _loads_old_or_complete_new(tmp_path / "out" / "pic.png", old, (600, 600))


@pytest.mark.parametrize("sig,seed", MOMENTS)
def test_mosaic_command_interrupted(tmp_path, sig, seed):
    (tmp_path / "out").mkdir()
    np.save(tmp_path / "out" / "w.npy", np.random.default_rng(0).random((400, 144)))
    old = _old_png(tmp_path / "out" / "pic.png")
    _interrupt(tmp_path, "mosaic", sig, np.random.default_rng(seed).uniform(0.05, 1.0))
    _check_out(tmp_path / "out", {"pic.png", "w.npy"}, sig)
    _loads_old_or_complete_new(tmp_path / "out" / "pic.png", old, (3 * (20 * 12 + 19), 3 * (20 * 12 + 19)))


@pytest.mark.slow
@pytest.mark.parametrize("sig,seed", MOMENTS + [(signal.SIGKILL, 2)])
def test_train_command_interrupted(tmp_path, digits_dir, sig, seed):
    from fastseq.rowrnn.models import load_model, make_model, save_model

    out = tmp_path / "out"
    out.mkdir()
    save_model(make_model("gru", 5, 28), out / "run.safetensors")
    old_log = "an earlier run's log\nwhich must survive\n"
    (out / "run.log").write_text(old_log)
    old = {name: _old_png(out / name) for name in ("run_completion.png", "run_hidden_units.png")}
    _interrupt(tmp_path, "train", sig, np.random.default_rng(seed).uniform(0.5, 3.0), data=str(digits_dir))
    _check_out(out, {"run.safetensors", "run.log", *old}, sig)
    model = load_model(out / "run.safetensors")  # the old GRU or a complete new RNN
    assert (model.kind, model.n_hidden) in {("gru", 5), ("rnn", 8)}
    assert (out / "run.log").read_text().startswith(old_log)
    for name, image in old.items():
        skimage.io.imread(out / name)
