"""The Python examples of docs/api.md run, in order, in one namespace: the page stays true.

The page's asserts are its checks (exact values a reader can verify by hand); a block that
raises fails the test with the block's number in the traceback.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "api.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
FENCE = re.compile(r"^```", re.MULTILINE)


def blocks(path: Path) -> list[str]:
    """The fenced ``python`` blocks of a Markdown file, in order."""
    return BLOCK.findall(path.read_text(encoding="utf-8"))


def test_every_fenced_block_of_the_page_is_run() -> None:
    fences = len(FENCE.findall(PAGE.read_text(encoding="utf-8")))
    found = blocks(PAGE)
    assert len(found) >= 6
    assert fences == 2 * len(found), "a fenced block that is not ```python would not be run"


def test_api_examples_run() -> None:
    namespace: dict[str, object] = {"__name__": "api_md"}
    for n, code in enumerate(blocks(PAGE), 1):
        exec(compile(code, f"docs/api.md block {n}", "exec"), namespace)  # noqa: S102


def test_the_cli_page_is_current() -> None:
    """docs/cli.md is what the commands' own --help says today (regenerate: ``make docs``)."""
    from engine.cli.docs import render

    page = (ROOT / "docs" / "cli.md").read_text()
    assert page == render(), "docs/cli.md is out of date: run `make docs` and commit it"
