"""Tell whether this interpreter already has the project installed with the given extras.

Usage: ``python scripts/venv-satisfied.py dev,bench``. Exits 0 when the project is installed
in editable mode from this checkout, at the version pyproject.toml declares, with its C
extension built from the current source where setup.py builds one, and every requirement of
the project and of the named extras is installed at an allowed version; exits 1 naming what is
missing otherwise. The Makefile runs it before ``pip install`` so that an
environment that is already complete is not reinstalled.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import sysconfig
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _tools() -> tuple[Any, Any, Any] | None:
    """Return the ``tomllib`` module and packaging's ``Requirement`` and ``Version``."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib
        except ImportError:
            return None
    try:
        from packaging.requirements import Requirement
        from packaging.version import Version
    except ImportError:
        try:  # pip ships its own copy
            from pip._vendor.packaging.requirements import Requirement
            from pip._vendor.packaging.version import Version
        except ImportError:
            return None
    return tomllib, Requirement, Version


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def problems(extras: list[str]) -> list[str]:
    """What keeps this environment from having the project with ``extras``; empty if nothing."""
    tools = _tools()
    if tools is None:
        return ["cannot read pyproject.toml or requirements with this interpreter"]
    tomllib, requirement, version = tools
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    name = _canonical(project["name"])

    try:
        dist = metadata.distribution(project["name"])
    except metadata.PackageNotFoundError:
        return [f"{project['name']} is not installed"]
    found: list[str] = []
    if "version" in project and version(dist.version) != version(project["version"]):
        found.append(f"{project['name']} {dist.version} is installed, not {project['version']}")
    direct_url = json.loads(dist.read_text("direct_url.json") or "{}")
    if not direct_url.get("dir_info", {}).get("editable") or direct_url.get("url") != ROOT.as_uri():
        found.append(f"{project['name']} is not installed in editable mode from {ROOT}")

    found.extend(_extension_problems())

    optional: dict[str, list[str]] = project.get("optional-dependencies", {})
    wanted = [requirement(text) for text in project.get("dependencies", [])]
    pending, seen = list(extras), set()
    while pending:
        extra = pending.pop()
        if extra in seen:
            continue
        seen.add(extra)
        if extra not in optional:
            found.append(f"pyproject.toml has no extra {extra!r}")
            continue
        for text in optional[extra]:
            req = requirement(text)
            if _canonical(req.name) == name:
                pending.extend(req.extras)
            else:
                wanted.append(req)

    for req in wanted:
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        found.extend(_check(req, requirement))
    return found


def _extension_problems() -> list[str]:
    """The C extension is missing or older than its source, where setup.py would build it.

    Where it cannot be built (no compiler), this asks for one more install each time the
    build inputs change; the Makefile's stamp keeps it from asking on every run.
    """
    if (
        platform.python_implementation() != "CPython"
        or not sys.platform.startswith("linux")
        or sysconfig.get_config_var("Py_GIL_DISABLED")
        or os.environ.get("RESILIENT_NO_EXTENSIONS")
    ):
        return []
    source = ROOT / "src" / "resilient" / "_speedups.c"
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    built = source.with_name("_speedups" + suffix)
    if not built.exists():
        return ["the C extension resilient._speedups is not built"]
    if built.stat().st_mtime < source.stat().st_mtime:
        return ["the C extension resilient._speedups is older than its source"]
    return []


def _check(req: Any, requirement: Any) -> list[str]:
    """Problems with one requirement: missing, wrong version, or missing extras' requirements."""
    try:
        installed = metadata.version(req.name)
    except metadata.PackageNotFoundError:
        return [f"{req} is not installed"]
    if req.specifier and not req.specifier.contains(installed, prereleases=True):
        return [f"{req.name} {installed} is installed, {req} is needed"]
    found = []
    for text in metadata.requires(req.name) or []:
        sub = requirement(text)
        if sub.marker is None or not any(sub.marker.evaluate({"extra": e}) for e in req.extras):
            continue
        if sub.marker.evaluate({"extra": ""}):
            continue  # not specific to an extra: pip installed it with the package itself
        try:
            sub_installed = metadata.version(sub.name)
        except metadata.PackageNotFoundError:
            found.append(f"{sub.name} (for {req}) is not installed")
            continue
        if sub.specifier and not sub.specifier.contains(sub_installed, prereleases=True):
            found.append(f"{sub.name} {sub_installed} is installed, {sub} is needed for {req}")
    return found


def main(argv: list[str]) -> int:
    """Print what is missing, if anything, and return the exit status."""
    extras = [e.strip() for e in (argv[0] if argv else "").split(",") if e.strip()]
    found = problems(extras)
    for problem in found:
        print(f"needs install: {problem}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
