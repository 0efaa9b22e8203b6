"""Every ```python block in README.md and docs/ runs, file by file, in a fresh interpreter."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
MARKDOWN = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])


def python_blocks(path: Path) -> list[tuple[int, str]]:
    """The python blocks of a markdown file, each with the line it starts on."""
    text = path.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start()) + 2, m.group(1)) for m in FENCE.finditer(text)]


def as_script(path: Path, blocks: list[tuple[int, str]]) -> str:
    # Each block keeps its own line numbers, so a traceback points into the markdown file.
    parts = []
    for line, code in blocks:
        parts.append(f"exec(compile({code!r}, {f'{path.name}:{line}'!r}, 'exec'), __ns)\n")
    return "__ns = {'__name__': '__main__'}\n" + "".join(parts)


def test_markdown_files_are_found() -> None:
    assert ROOT / "README.md" in MARKDOWN
    assert python_blocks(ROOT / "README.md"), "README.md should show runnable code"


@pytest.mark.parametrize("path", MARKDOWN, ids=lambda p: str(p.relative_to(ROOT)))
def test_markdown_examples_run(path: Path, request: pytest.FixtureRequest) -> None:
    blocks = python_blocks(path)
    if not blocks:
        pytest.skip("no python examples")
    env = dict(os.environ)
    if any("REDIS_URL" in code for _, code in blocks):
        env["REDIS_URL"] = request.getfixturevalue("redis_url")
    src = str(ROOT / "src")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    result = subprocess.run(
        [sys.executable, "-c", as_script(path, blocks)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"{path.relative_to(ROOT)} examples failed:\n{result.stderr}"
