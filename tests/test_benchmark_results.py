"""Committed benchmark results name no path of the machine that measured them."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from benchmarks.common import REPO, portable

RESULTS = sorted((REPO / "benchmarks" / "results").glob("*.json"))


def test_portable_drops_the_repository_and_the_temporary_folder() -> None:
    text = f'["{REPO / "benchmarks" / "x.json"}", "{Path(tempfile.gettempdir()) / "run"}"]'
    assert portable(text) == '["benchmarks/x.json", "<tmp>/run"]'


@pytest.mark.parametrize("path", RESULTS, ids=[p.name for p in RESULTS])
def test_a_committed_result_names_no_absolute_path_of_this_machine(path: Path) -> None:
    text = path.read_text()
    assert str(REPO) not in text
    assert f'"{tempfile.gettempdir()}/' not in text
