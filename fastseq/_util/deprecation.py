"""Names that left a subpackage's public surface, kept importable for one release.

A subpackage lists them as ``{old name: (defining module, replacement hint)}`` and sets
``__getattr__ = moved_names(__name__, MOVED)``: reading ``fastseq.sub.old`` then warns
once per access with a :class:`DeprecationWarning` that says where the name lives now
(or what replaces it), and returns the object, so old code keeps working.
"""
from __future__ import annotations

import importlib
import warnings
from typing import Any, Callable


def moved_names(package: str, moved: dict[str, tuple[str, str]]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that serves ``moved``'s names with a DeprecationWarning.

    Example:
        >>> import warnings
        >>> get = moved_names("fastseq.example", {"sqrt": ("math", "use math.sqrt")})
        >>> with warnings.catch_warnings(record=True) as seen:
        ...     warnings.simplefilter("always")
        ...     get("sqrt")(4.0), str(seen[0].message)
        (2.0, 'fastseq.example.sqrt is deprecated and will be removed in the next release: use math.sqrt.')
    """

    def __getattr__(name: str) -> Any:
        if name not in moved:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, hint = moved[name]
        warnings.warn(f"{package}.{name} is deprecated and will be removed in the next release: {hint}.",
                      DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(module), name)

    return __getattr__
