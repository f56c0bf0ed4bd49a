"""Numba's on-disk cache where nothing of the install or the home is writable."""
from __future__ import annotations

import os
import re
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
    real = os.path.realpath(os.fsdecode(path))
    return real.startswith(ALLOWED + os.sep) or real == os.devnull  # dill, imported by torch, opens it r+b

def fake_open(path, flags, *args, **kwargs):
    if flags & WRITE and not allowed(path):
        raise PermissionError(13, "Permission denied (read-only in this test)", path)
    return real_open(path, flags, *args, **kwargs)

def fake_mkdir(path, *args, **kwargs):
    if not allowed(path) or os.environ.get("DENY_MKDIR"):
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
import fastseq.bptt._feedback_nb, fastseq.boltzmann  # every subpackage with cached kernels
from fastseq._util import numba_cache
print(numba_cache.CACHE)
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


def test_kernels_import_and_run_uncached_where_not_even_the_temporary_directory_is_writable(tmp_path):
    """No folder can be made anywhere: caching is off, and every kernel still imports and runs.
    (A temporary directory whose files cannot even be written stops ``import torch`` itself.)"""
    proc = _child(tmp_path, DENY_MKDIR="1")
    # was: "cannot cache function 'gru_forward_blocks': no locator available" (cache=True in bptt)
    assert proc.returncode == 0, proc.stderr[-2000:]
    order, folder, cache = proc.stdout.strip().splitlines()
    assert sorted(eval(order)) == list(range(6))
    assert (folder, cache) == ("None", "False")
    assert not list((tmp_path / "tmp").iterdir())


def test_every_cached_kernel_follows_the_cache_switch():
    """A kernel with ``cache=True`` raises at import where no cache folder can be had; and the
    install counts as writable only if every subpackage holding cached kernels is."""
    package = Path(numba_cache.__file__).resolve().parents[1]
    sources = {p: p.read_text() for p in package.rglob("*.py")}
    assert [p for p, text in sources.items() if re.search(r"^\s*@njit\([^)]*cache=True", text, re.M)] == []
    cached = sorted({p.parent.name for p, text in sources.items() if re.search(r"^\s*@njit\([^)]*cache=CACHE", text, re.M)})
    assert cached == sorted(numba_cache._NUMBA_FOLDERS) and "bptt" in cached


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


# --- each decision of ensure_numba_cache in this process, with a fake Numba config and environment


@pytest.fixture
def fallback(monkeypatch, tmp_path):
    """ensure_numba_cache where Numba would find no place: a fake, already imported Numba
    config, the temporary directory under ``tmp_path``, and CACHE put back afterwards."""
    import tempfile
    import types

    config = types.SimpleNamespace()  # Numba's config module, imported, no CACHE_DIR set in code
    monkeypatch.setitem(sys.modules, "numba.core.config", config)
    monkeypatch.setattr(numba_cache, "fallback_needed", lambda folders, environ: True)
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(tmp_path))
    monkeypatch.setattr(numba_cache, "CACHE", True)
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)  # put back whatever a wrong write does
    return config


def test_fallback_points_the_given_environment_and_numba_at_a_private_folder(fallback, tmp_path):
    environ: dict[str, str] = {}
    assert numba_cache.ensure_numba_cache(environ) is True
    folder = str(tmp_path / f"fastseq-numba-{os.getuid()}")
    assert environ == {"NUMBA_CACHE_DIR": folder}  # the mapping given, not os.environ
    assert fallback.CACHE_DIR == folder  # Numba read its environment already
    assert "NUMBA_CACHE_DIR" not in os.environ


def test_a_cache_dir_set_in_code_after_numba_was_imported_is_kept(fallback, tmp_path):
    fallback.CACHE_DIR = "/chosen/in/code"
    environ: dict[str, str] = {}
    assert numba_cache.ensure_numba_cache(environ) is True
    assert environ == {} and fallback.CACHE_DIR == "/chosen/in/code"
    assert not list(tmp_path.iterdir())  # no folder made


def test_caching_is_off_when_no_private_folder_can_be_had(fallback, monkeypatch):
    monkeypatch.setattr(numba_cache, "private_folder", lambda base: None)
    environ: dict[str, str] = {}
    assert numba_cache.ensure_numba_cache(environ) is False
    assert numba_cache.CACHE is False and environ == {} and not hasattr(fallback, "CACHE_DIR")


def test_caching_is_off_without_a_temporary_directory(fallback, monkeypatch, tmp_path):
    import tempfile

    def no_tmp():
        raise FileNotFoundError("no usable temporary directory")

    monkeypatch.setattr(tempfile, "gettempdir", no_tmp)
    monkeypatch.chdir(tmp_path)
    environ: dict[str, str] = {}
    assert numba_cache.ensure_numba_cache(environ) is False
    assert environ == {} and not list(tmp_path.iterdir())  # nothing made in the working directory


def test_without_an_environment_given_the_processes_own_is_changed(fallback, tmp_path):
    assert numba_cache.ensure_numba_cache() is True
    assert os.environ["NUMBA_CACHE_DIR"] == str(tmp_path / f"fastseq-numba-{os.getuid()}")


def test_the_install_is_judged_by_its_numba_subpackages_and_the_environment_given(fallback, monkeypatch):
    seen = []
    monkeypatch.setattr(numba_cache, "fallback_needed", lambda folders, environ: seen.append((folders, environ)))
    environ = {"XDG_CACHE_HOME": "/somewhere"}
    assert numba_cache.ensure_numba_cache(environ) is True
    package = Path(numba_cache.__file__).resolve().parents[1]
    assert seen == [([package / "boltzmann", package / "bptt", package / "mosaic"], environ)]
    assert seen[0][1] is environ and environ == {"XDG_CACHE_HOME": "/somewhere"}  # no fallback: unchanged


def test_writable_needs_a_folder_with_write_and_search_permission(monkeypatch, tmp_path):
    (tmp_path / "file").write_text("")
    monkeypatch.setattr(os, "access", lambda path, mode: not mode & os.W_OK)  # may not write
    assert numba_cache.writable(tmp_path) is False
    monkeypatch.setattr(os, "access", lambda path, mode: not mode & os.X_OK)  # may not enter
    assert numba_cache.writable(tmp_path) is False
    monkeypatch.setattr(os, "access", lambda path, mode: True)
    assert numba_cache.writable(tmp_path) is True
    assert numba_cache.writable(tmp_path / "file") is False  # a file, however permissive, holds no cache


def test_the_install_counts_as_writable_only_through_its_pycache_folders(tmp_path):
    only_pycache = lambda p: p.name == "__pycache__"  # noqa: E731
    assert not numba_cache.fallback_needed([tmp_path / "a", tmp_path / "b"], {}, only_pycache)
    never = lambda p: False  # noqa: E731
    assert numba_cache.fallback_needed([tmp_path / "a"], {"XDG_CACHE_HOME": str(tmp_path)}, never)


def test_writable_is_false_when_nothing_of_the_path_exists(monkeypatch, tmp_path):
    """A path on a drive that does not exist: the walk up reaches the root without finding a folder."""
    monkeypatch.setattr(Path, "exists", lambda self: False)
    assert numba_cache.writable(tmp_path / "a" / "b") is False


@pytest.mark.parametrize("platform, environ, expected", [
    ("linux", {"XDG_CACHE_HOME": "/xdg"}, "/xdg/numba"),
    ("linux", {}, "HOME/.cache/numba"),
    ("freebsd14", {}, "HOME/.cache/numba"),
    ("darwin", {"XDG_CACHE_HOME": "/xdg"}, "HOME/Library/Caches/numba"),
    ("win32", {"LOCALAPPDATA": "/local"}, "/local/numba"),
    ("win32", {}, None),
    ("linux", {"XDG_CACHE_HOME": "~nobody-here/cache"}, None),  # a home expanduser could not find
])
def test_user_wide_cache_follows_numbas_rule_per_platform(monkeypatch, tmp_path, platform, environ, expected):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(sys, "platform", platform)
    got = numba_cache.user_wide_cache(environ)
    assert got == (None if expected is None else Path(expected.replace("HOME", str(tmp_path))))


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX permissions")
def test_private_folder_is_named_for_the_user_and_accepts_only_others_execute(monkeypatch, tmp_path):
    folder = numba_cache.private_folder(tmp_path / "a")  # base missing: refused, not created
    assert folder is None
    monkeypatch.setattr(os, "getuid", lambda: 4242)  # another uid than the folder's owner
    other = numba_cache.private_folder(tmp_path)
    assert (tmp_path / "fastseq-numba-4242").is_dir()  # named for the uid, but not ours: not used
    assert other.parent == tmp_path and other.name.startswith("fastseq-numba-") and other.name != "fastseq-numba-4242"
    monkeypatch.undo()
    mine = numba_cache.private_folder(tmp_path)
    mine.chmod(0o701)  # others may pass through, not list or write: still private enough
    assert numba_cache.private_folder(tmp_path) == mine


def test_private_folder_without_user_ids_is_user_zeros(monkeypatch, tmp_path):
    monkeypatch.delattr(os, "getuid")
    numba_cache.private_folder(tmp_path)
    assert (tmp_path / "fastseq-numba-0").is_dir()
