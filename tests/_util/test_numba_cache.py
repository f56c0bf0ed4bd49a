"""Numba's on-disk cache where nothing of the install or the home is writable."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fastseq._util import numba_cache

# Runs in a child: every write outside ALLOWED fails as on a read-only install with no
# writable home (os.access says no, creating files or folders raises PermissionError), so
# the test works for root too; then a Numba kernel of fastseq is compiled and cached.
CHILD = """
import os, sys
ALLOWED = os.path.realpath(sys.argv[1])
WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT
real_open, real_mkdir, real_access = os.open, os.mkdir, os.access

def allowed(path):
    return os.path.realpath(os.fsdecode(path)).startswith(ALLOWED + os.sep)

def fake_open(path, flags, *args, **kwargs):
    if flags & WRITE and not allowed(path):
        raise PermissionError(13, "Permission denied (read-only in this test)", path)
    return real_open(path, flags, *args, **kwargs)

def fake_mkdir(path, *args, **kwargs):
    if not allowed(path):
        raise PermissionError(13, "Permission denied (read-only in this test)", path)
    return real_mkdir(path, *args, **kwargs)

def fake_access(path, mode, *args, **kwargs):
    if mode & os.W_OK and not allowed(path):
        return False
    return real_access(path, mode, *args, **kwargs)

os.open, os.mkdir, os.access = fake_open, fake_mkdir, fake_access
import numpy as np
from fastseq.mosaic import corrsort
print(corrsort(np.random.default_rng(0).normal(size=(6, 5))).tolist())
print(os.environ.get("NUMBA_CACHE_DIR"))
"""


def _child(tmp_path: Path, **env) -> subprocess.CompletedProcess:
    allowed = tmp_path / "tmp"
    allowed.mkdir(exist_ok=True)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("NUMBA_", "XDG_"))}
    base.update(PYTHONPATH=os.pathsep.join(sys.path), HOME=str(tmp_path / "no-home"), TMPDIR=str(allowed))
    base.update(env)
    return subprocess.run([sys.executable, "-P", "-B", "-c", CHILD, str(allowed)], capture_output=True, text=True,
                          env=base, timeout=300)


def test_kernels_compile_and_cache_without_a_writable_install_or_home(tmp_path):
    proc = _child(tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]  # was: "cannot cache function '_corr': no locator"
    lines = proc.stdout.strip().splitlines()
    assert sorted(eval(lines[0])) == list(range(6))
    folder = Path(lines[1])
    assert folder.parent == tmp_path / "tmp" and folder.name.startswith("fastseq-numba-")
    assert (folder.stat().st_mode & 0o777) == 0o700
    assert any(p.suffix == ".nbi" for p in folder.rglob("*"))  # Numba wrote its cache there


def test_a_user_cache_dir_is_kept(tmp_path):
    mine = tmp_path / "tmp" / "mine"
    proc = _child(tmp_path, NUMBA_CACHE_DIR=str(mine))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[1] == str(mine)


def test_nothing_changes_where_numba_has_a_place(tmp_path):
    env: dict[str, str] = {}
    assert not numba_cache.fallback_needed([tmp_path], env, lambda p: True)  # writable install
    home_ok = lambda p: str(p).startswith(str(tmp_path / "cache"))  # noqa: E731
    assert not numba_cache.fallback_needed([tmp_path], {"XDG_CACHE_HOME": str(tmp_path / "cache")}, home_ok)
    assert numba_cache.fallback_needed([tmp_path], {"XDG_CACHE_HOME": str(tmp_path / "cache")}, lambda p: False)
    assert not numba_cache.fallback_needed([tmp_path], {"NUMBA_CACHE_DIR": "/x"}, lambda p: False)
    assert env == {}


def test_writable_looks_at_the_nearest_existing_folder(tmp_path):
    assert numba_cache.writable(tmp_path / "a" / "b" / "c")
    (tmp_path / "f").write_text("")
    assert not numba_cache.writable(tmp_path / "f" / "sub")  # a file is in the way


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX permissions")
def test_private_folder_is_never_one_others_can_write(tmp_path):
    folder = numba_cache.private_folder(tmp_path)
    assert folder == tmp_path / f"fastseq-numba-{os.getuid()}" and (folder.stat().st_mode & 0o777) == 0o700
    assert numba_cache.private_folder(tmp_path) == folder  # reused
    folder.chmod(0o777)  # writable by anyone: a planted cache could run code here
    other = numba_cache.private_folder(tmp_path)
    assert other != folder and other.parent == tmp_path and (other.stat().st_mode & 0o777) == 0o700
