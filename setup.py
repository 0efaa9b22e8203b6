"""Build the optional C extension; everything else is declared in pyproject.toml.

`resilient._speedups` (the memory token bucket's decision, the memory store's idempotency
claims, a sync ``@retry``'s and ``@Fallback``'s success path, a sync ``with timeout(...)``
block, the histogram's pending durations) is built with
CPython on Linux, except for free-threaded interpreters, whose missing GIL its lock-free paths
rely on. A failed build is not an error (``optional=True``): the pure Python version is used
instead. Set ``RESILIENT_NO_EXTENSIONS=1`` to skip it.
"""

import os
import platform
import sys
import sysconfig

from setuptools import Extension, setup

extensions = []
if (
    platform.python_implementation() == "CPython"
    and sys.platform.startswith("linux")
    and not sysconfig.get_config_var("Py_GIL_DISABLED")
    and not os.environ.get("RESILIENT_NO_EXTENSIONS")
):
    extensions.append(
        Extension(
            "resilient._speedups",
            sources=["src/resilient/_speedups.c"],
            extra_compile_args=["-O2"],
            optional=True,
        )
    )

setup(ext_modules=extensions)
