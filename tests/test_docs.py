"""Every ```python block in README.md and docs/ runs.

How blocks are selected, by the info string after the opening fence:

- ``python``, or ``python title="..."``: resilient's own code. The blocks of one markdown file
  run in order, in one fresh namespace, in a fresh interpreter started in the repository root.
- ``python title="tenacity"`` (or another name in ``PEERS``): the peer library's side of a
  migration guide. Each such block runs on its own, in its own interpreter, when that library
  is installed (it is in the ``bench`` extra, not in ``dev``); otherwise its test is skipped,
  saying so. The resilient side next to it always runs.
- anything else (``pycon``, ``text``, ``sh``, ``python3``...): shown, never run.

A file whose blocks mention ``REDIS_URL`` gets the URL of the test redis-server in that
environment variable.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

ROOT = Path(__file__).resolve().parent.parent
MARKDOWN = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
TIMEOUT = 60
OPENING = re.compile(r"^ {0,3}(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
RUNNABLE = re.compile(r'^python(?:\s+title="(?P<title>[^"]*)")?$')
#: Libraries whose code the migration guides show next to resilient's, by import name.
PEERS = frozenset({"tenacity", "pybreaker", "slowapi"})

# Runs the blocks of one file: argv[1] is a JSON file of [filename, [[line, code], ...]].
# Each block is compiled with blank lines in front, so tracebacks give markdown line numbers.
RUNNER = """
import json, sys, traceback, types
with open(sys.argv[1], encoding="utf-8") as f:
    filename, blocks = json.load(f)
main = types.ModuleType("__main__")
sys.modules["__main__"] = main
for line, code in blocks:
    try:
        exec(compile("\\n" * line + code, filename, "exec"), main.__dict__)
    except SystemExit as exit:
        if exit.code in (None, 0):
            break
        print(f"{filename}: the python block at line {line} exited:", exit.code, file=sys.stderr)
        sys.exit(1)
    except BaseException:
        print(f"{filename}: the python block at line {line} failed:", file=sys.stderr)
        traceback.print_exc()
        sys.exit(1)
"""


class Block(NamedTuple):
    line: int  # 1-based line of the opening fence
    code: str
    peer: str | None = None  # the peer library a block is written for, or None for resilient


def python_blocks(text: str) -> list[Block]:
    """The fenced blocks that run: info string ``python``, with at most a title; in order."""
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opening = OPENING.match(lines[i])
        if opening is None or (opening["fence"][0] == "`" and "`" in opening["info"]):
            i += 1
            continue
        fence, start = opening["fence"], i
        body: list[str] = []
        i += 1
        while i < len(lines):
            stripped = lines[i].strip()
            indent = len(lines[i]) - len(lines[i].lstrip(" "))
            if indent <= 3 and stripped.startswith(fence) and stripped.strip(fence[0]) == "":
                break
            body.append(lines[i])
            i += 1
        i += 1  # past the closing fence (or the end of the file: the block runs to the end)
        runnable = RUNNABLE.match(opening["info"].strip())
        if runnable is not None:
            title = runnable["title"]
            peer = title if title in PEERS else None
            blocks.append(Block(start + 1, "\n".join(body) + "\n", peer))
    return blocks


def own_blocks(text: str) -> list[Block]:
    """The blocks of resilient's own code, which run together."""
    return [block for block in python_blocks(text) if block.peer is None]


def test_only_blocks_marked_exactly_python_are_found() -> None:
    text = "\n".join(
        [
            "# Title",  # 1
            "```python",  # 2
            "a = 1",
            "```",
            "```pycon",  # 5
            ">>> b = 2",
            "```",
            "````text",  # 8
            "```python",
            "not code",
            "```",
            "````",
            "~~~python",  # 13
            "c = a + 1",
            "~~~",
            "``` python ",  # 16
            "d = c",
            "```",
            "```python3",  # 19
            "e = 5",
            "```",
        ]
    )
    assert python_blocks(text) == [
        Block(2, "a = 1\n"),
        Block(13, "c = a + 1\n"),
        Block(16, "d = c\n"),
    ]


def test_titles_mark_peer_blocks() -> None:
    text = "\n".join(
        [
            '```python title="tenacity"',  # 1
            "import tenacity",
            "```",
            '```python title="resilient"',  # 4
            "import resilient",
            "```",
            '```python title="tenacity" hl_lines="1"',  # 7: other options: not run
            "x = 1",
            "```",
        ]
    )
    assert python_blocks(text) == [
        Block(1, "import tenacity\n", "tenacity"),
        Block(4, "import resilient\n"),
    ]
    assert own_blocks(text) == [Block(4, "import resilient\n")]


def test_markdown_files_are_found() -> None:
    assert ROOT / "README.md" in MARKDOWN
    assert ROOT / "docs" / "index.md" in MARKDOWN
    assert python_blocks((ROOT / "README.md").read_text(encoding="utf-8")), (
        "README.md should show runnable code"
    )


def _needs_redis(blocks: list[Block]) -> bool:
    return any("REDIS_URL" in block.code for block in blocks)


def _param(path: Path) -> object:
    needs_redis = _needs_redis(own_blocks(path.read_text(encoding="utf-8")))
    marks = [pytest.mark.redis] if needs_redis else []
    return pytest.param(path, marks=marks, id=str(path.relative_to(ROOT)))


@pytest.mark.parametrize("path", [_param(path) for path in MARKDOWN])
def test_markdown_examples_run(path: Path, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    blocks = own_blocks(path.read_text(encoding="utf-8"))
    if not blocks:
        return  # nothing to run
    _run_blocks(path, blocks, request, tmp_path)


def _peer_params() -> list[object]:
    params = []
    for path in MARKDOWN:
        for block in python_blocks(path.read_text(encoding="utf-8")):
            if block.peer is not None:
                relative = path.relative_to(ROOT)
                params.append(pytest.param(path, block, id=f"{relative}:{block.line}"))
    return params


@pytest.mark.parametrize(("path", "block"), _peer_params())
def test_peer_examples_run(
    path: Path, block: Block, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """A peer library's side of a migration guide runs where that library is installed."""
    assert block.peer is not None
    if importlib.util.find_spec(block.peer) is None:
        pytest.skip(f"{block.peer} is not installed (it is in the 'bench' extra)")
    _run_blocks(path, [block], request, tmp_path)


def test_migration_guides_show_both_sides() -> None:
    guides = sorted((ROOT / "docs" / "migration").glob("*.md"))
    assert guides, "docs/migration/ should hold the migration guides"
    for guide in guides:
        blocks = python_blocks(guide.read_text(encoding="utf-8"))
        assert any(block.peer for block in blocks), f"{guide.name} shows no peer code"
        assert any(block.peer is None for block in blocks), f"{guide.name} shows no resilient code"


def _run_blocks(
    path: Path, blocks: list[Block], request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    relative = str(path.relative_to(ROOT))
    env = dict(os.environ)
    if _needs_redis(blocks):
        env["REDIS_URL"] = request.getfixturevalue("redis_url")
    src = str(ROOT / "src")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    program = tmp_path / "blocks.json"
    payload = [relative, [[block.line, block.code] for block in blocks]]
    program.write_text(json.dumps(payload), encoding="utf-8")
    try:
        result = subprocess.run(
            [sys.executable, "-c", RUNNER, str(program)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        timed_out = error
    else:
        if result.returncode != 0:
            pytest.fail(f"{relative}: a python block failed\n{result.stderr}", pytrace=False)
        return
    stderr = timed_out.stderr
    if isinstance(stderr, bytes):
        stderr = stderr.decode(errors="replace")
    pytest.fail(
        f"{relative}: the python blocks did not finish in {TIMEOUT}s\n{stderr or ''}", pytrace=False
    )
