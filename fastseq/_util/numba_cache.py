"""Numba's on-disk cache without a crash where nothing is writable.

``@njit(cache=True)`` raises "cannot cache function ...: no locator available" at import
when neither the package's ``__pycache__`` folders (a read-only or root-owned install)
nor the user-wide cache (``$XDG_CACHE_HOME/numba`` or ``~/.cache/numba``: no writable
home) can be written. :func:`ensure_numba_cache` runs once when ``fastseq`` is imported,
before any fastseq module imports Numba. It changes nothing when one of Numba's own
places is writable or the user set ``NUMBA_CACHE_DIR``; otherwise it points
``NUMBA_CACHE_DIR`` at a private folder under the system's temporary directory. Only
when even that fails does :data:`CACHE` become False, for ``@njit(cache=CACHE)``.

The checks use :func:`os.access` on the nearest existing folder (no files are created on
import); ``access(2)`` reports read-only file systems too.
"""
from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from typing import Callable, Iterable, MutableMapping

# Numba-using subpackages: Numba caches next to each source file, in its __pycache__
_PACKAGE = Path(__file__).resolve().parent.parent
_NUMBA_FOLDERS = ("boltzmann", "bptt", "mosaic")

CACHE = True  # whether ``@njit(cache=...)`` may ask for an on-disk cache


def writable(folder: Path) -> bool:
    """True if ``folder`` exists and is writable, or its nearest existing parent is."""
    folder = Path(folder)
    while not folder.exists():
        if folder.parent == folder:
            return False
        folder = folder.parent
    return folder.is_dir() and os.access(folder, os.W_OK | os.X_OK)


def user_wide_cache(environ: MutableMapping[str, str]) -> Path | None:
    """Numba's user-wide cache folder on this platform (its ``appdirs`` rule), or None."""
    if sys.platform.startswith("linux") or sys.platform.startswith("freebsd"):
        base = environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    elif sys.platform == "darwin":
        base = os.path.expanduser("~/Library/Caches")
    else:  # Windows: LOCALAPPDATA; without it Numba has no user-wide place either
        base = environ.get("LOCALAPPDATA", "")
    if not base or base.startswith("~"):  # no home at all: expanduser left it as it was
        return None
    return Path(base) / "numba"


def fallback_needed(
    folders: Iterable[Path],
    environ: MutableMapping[str, str],
    is_writable: Callable[[Path], bool] = writable,
) -> bool:
    """True when Numba would find no cache locator for modules in ``folders``."""
    if environ.get("NUMBA_CACHE_DIR"):
        return False  # the user's choice, even if it turns out not to be writable
    if all(is_writable(Path(f) / "__pycache__") for f in folders):
        return False
    user = user_wide_cache(environ)
    return user is None or not is_writable(user)


def private_folder(base: Path) -> Path | None:
    """``base/fastseq-numba-<uid>``, created 0700 or reused only if it is ours and private.

    Numba's cache index is a pickle, so a folder another user could write would let them
    run code in this process: such a folder is never used (a fresh ``mkdtemp`` instead).
    """
    uid = os.getuid() if hasattr(os, "getuid") else 0
    folder = Path(base) / f"fastseq-numba-{uid}"
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        info = os.lstat(folder)
        if stat.S_ISDIR(info.st_mode) and info.st_uid == uid and not info.st_mode & 0o022:
            return folder
        import tempfile

        return Path(tempfile.mkdtemp(prefix="fastseq-numba-", dir=base))
    except OSError:
        return None


def ensure_numba_cache(environ: MutableMapping[str, str] | None = None) -> bool:
    """Make ``@njit(cache=True)`` safe to decorate; return whether caching stays on.

    Example:
        >>> ensure_numba_cache()   # a writable install: nothing changes
        True
    """
    global CACHE
    environ = os.environ if environ is None else environ
    numba_config = sys.modules.get("numba.core.config")
    if numba_config is not None and getattr(numba_config, "CACHE_DIR", ""):
        return CACHE  # set by the user in code, after Numba was imported
    if not fallback_needed([_PACKAGE / f for f in _NUMBA_FOLDERS], environ):
        return CACHE
    import tempfile  # only here: it costs import time and probes the disk

    try:
        base = Path(tempfile.gettempdir())
    except (OSError, FileNotFoundError):  # no usable temporary directory at all
        base = None
    folder = private_folder(base) if base is not None else None
    if folder is None:
        CACHE = False
        return CACHE
    environ["NUMBA_CACHE_DIR"] = str(folder)
    if numba_config is not None:
        numba_config.CACHE_DIR = str(folder)  # Numba already read the environment
    return CACHE
