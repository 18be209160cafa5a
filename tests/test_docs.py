"""The Python examples of docs/api.md run, in order, in one namespace: the page stays true."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def blocks(path: Path) -> list[str]:
    """The fenced ``python`` blocks of a Markdown file, in order."""
    return BLOCK.findall(path.read_text(encoding="utf-8"))


def test_the_page_has_examples() -> None:
    assert len(blocks(ROOT / "docs" / "api.md")) >= 5


def test_api_examples_run() -> None:
    namespace: dict[str, object] = {"__name__": "api_md"}
    for n, code in enumerate(blocks(ROOT / "docs" / "api.md"), 1):
        exec(compile(code, f"docs/api.md block {n}", "exec"), namespace)  # noqa: S102
