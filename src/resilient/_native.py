"""Finding the optional C extension, `resilient._speedups` (see _speedups.c)."""

from __future__ import annotations

import os
from typing import Any

__all__: list[str] = []


def load_speedups() -> Any:
    """The C extension module `resilient._speedups`, or None.

    None when the extension was not built (no compiler at install time, or not CPython on
    Linux) or when the ``RESILIENT_NO_EXTENSIONS`` environment variable is set: every user of
    it then runs its pure Python version, which behaves the same.
    """
    if os.environ.get("RESILIENT_NO_EXTENSIONS"):
        return None
    try:
        from . import _speedups
    except ImportError:
        return None
    return _speedups
