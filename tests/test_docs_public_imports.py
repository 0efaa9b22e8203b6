"""The examples in the docs use the public API only: no ``resilient._private`` module."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.test_docs import MARKDOWN, ROOT, python_blocks

PRIVATE = re.compile(r"\bresilient(?:\.\w+)*\._\w+")


@pytest.mark.parametrize("path", MARKDOWN, ids=lambda p: str(p.relative_to(ROOT)))
def test_examples_import_no_private_module(path: Path) -> None:
    for block in python_blocks(path.read_text(encoding="utf-8")):
        found = PRIVATE.findall(block.code)
        assert not found, f"{path.name}, block at line {block.line}: {found}"


def test_the_check_catches_a_private_import() -> None:
    assert PRIVATE.findall("from resilient._events import HUB")
    assert PRIVATE.findall("import resilient.stores._memory")
    assert not PRIVATE.findall("from resilient.instrumentation import subscribe")
