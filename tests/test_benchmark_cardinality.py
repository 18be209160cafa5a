"""Smoke test of ``benchmarks/cardinality.py``: ``--quick`` on the seven-pairs case runs the whole
``build`` and ``callbacks`` commands and DuckDB's same jobs once, and their outputs agree value
for value. No duration is asserted (the benchmark's numbers are for ``benchmarks/README.md``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.calendar import run_process

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_quick_cardinality_benchmark_verifies_both_commands(tmp_path: Path) -> None:
    result = tmp_path / "cardinality.json"
    args = ["--quick", "--cases", "seven-pairs", "--json", str(result)]
    args += ["--data-dir", str(tmp_path / "data"), "--work-dir", str(tmp_path / "runs")]
    done = run_process(
        [sys.executable, "-m", "benchmarks.cardinality", *args], timeout=300, cwd=ROOT, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("verified") == 2
    doc = json.loads(result.read_text())
    assert doc["machine"]["nproc"]
    assert doc["machine"]["engine"]["commit"]
    assert [(m["command"], m["case"]) for m in doc["measured"]] == [
        ("build", "seven-pairs"),
        ("callbacks", "seven-pairs"),
    ]
    for m in doc["measured"]:
        check = m["check"]
        assert check["rows_in"] > 20_000
        assert check["collapsed"] > 0  # the 2 % re-sent rows
        assert check["quarantined"] == {}
        for engine in ("wfm-intervals", "duckdb"):
            summary = m["summary"][engine]
            assert min(summary["wall_s"], summary["cpu_s"], summary["peak_rss_mib"]) > 0
            assert summary["bytes"]["total"] > 0
            assert [r["exit_code"] for r in m["runs"][engine]] == [0]
    assert not (tmp_path / "runs" / "build-seven-pairs-20000").exists()  # removed without --keep
