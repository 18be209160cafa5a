"""Smoke test of ``benchmarks/nightly.py``: ``--quick`` builds a tiny history against the
emulators, times the one-day and the nothing-new ``wfm-intervals run``, and verifies both stores.
No duration is asserted (the benchmark's numbers are for ``benchmarks/README.md``)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks.common import _interpreter, child_environment, installed_command
from tests.calendar import run_process

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_quick_nightly_benchmark_runs_and_verifies_its_runs(tmp_path: Path) -> None:
    result = tmp_path / "nightly.json"
    args = ["--quick", "--work-dir", str(tmp_path / "work"), "--json", str(result)]
    done = run_process(
        [sys.executable, "-m", "benchmarks.nightly", *args], timeout=300, cwd=ROOT, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "verified" in done.stdout
    doc = json.loads(result.read_text())
    [case] = doc["measured"]
    assert case["history_days"] == 2
    assert [run["exit_code"] for run in case["setup"]] == [0, 0]
    first = case["first_run"]
    assert first["records"] == case["setup"][0]["records"] > 0
    assert first["kb_per_record"] > 0
    assert "first run (2 days):" in done.stdout
    one_day, nothing_new = case["cases"]["one-day"], case["cases"]["nothing-new"]
    sweep = case["cases"]["sweep-night"]  # the one-day run again, on the weekly sweep's night
    assert sweep["runs"][0]["full_rebuild"] is False
    for timed in (one_day, nothing_new, sweep):
        assert (timed["verified"], timed["problems"], timed["exit_codes"]) == (True, [], [0])
        assert timed["peak_rss_mib"] > 0
        assert timed["check"]["days_checked"] == 3
    check = one_day["check"]
    assert check["new_day_offered_stored"] == check["new_day_offered_served"] > 0
    assert one_day["runs"][0]["full_rebuild"] is False
    assert sum(one_day["runs"][0]["new"].values()) > 0
    assert set(nothing_new["runs"][0]["new"].values()) == {0}
    assert not (tmp_path / "work" / "history-2").exists()  # removed without --keep


@pytest.mark.slow
def test_the_cases_timed_runs_alternate(tmp_path: Path) -> None:
    """Every history is built before any run is timed, and the cases take turns: round 1 in
    the order given, round 2 reversed (the machine's drift lands on both cases alike)."""
    result = tmp_path / "nightly.json"
    args = ["--quick", "--days", "1,2", "--repeat", "2", "--work-dir", str(tmp_path / "w")]
    done = run_process(
        [sys.executable, "-m", "benchmarks.nightly", *args, "--json", str(result)],
        timeout=600,
        cwd=ROOT,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    one, two = json.loads(result.read_text())["measured"]
    assert (one["history_days"], two["history_days"]) == (1, 2)

    def order(case: dict[str, Any], name: str) -> list[int]:
        return [run["order"] for run in case["cases"][name]["runs"]]

    # round 1: 1 day (one-day, nothing-new), then 2 days; round 2: 2 days first, then 1 day
    assert (order(one, "one-day"), order(one, "nothing-new")) == ([1, 7], [2, 8])
    assert (order(two, "one-day"), order(two, "nothing-new")) == ([3, 5], [4, 6])
    assert (order(one, "sweep-night"), order(two, "sweep-night")) == ([9, 12], [10, 11])
    for case in (one, two):
        assert all(timed["verified"] for timed in case["cases"].values())


def test_a_run_started_in_its_case_folder_imports_the_checkout_s_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``PYTHONPATH=. python -m benchmarks.nightly``: each run starts in its case's folder,
    where ``.`` names that folder; the runs are given the path made absolute."""
    monkeypatch.chdir(ROOT)
    env = child_environment({"PYTHONPATH": f".{os.pathsep}{tmp_path}", "X": "1"})
    assert env == {"PYTHONPATH": f"{ROOT}{os.pathsep}{tmp_path}", "X": "1"}
    assert "PYTHONPATH" not in child_environment({"X": "1"})


def test_a_command_that_imports_another_engine_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A benchmark verifies with the engine it imports; it refuses to time a command that
    imports another one (here: an ``engine`` package ahead of it on the path)."""
    assert Path(installed_command()).name == "wfm-intervals"
    (tmp_path / "engine").mkdir()
    (tmp_path / "engine" / "__init__.py").write_text("")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    with pytest.raises(SystemExit, match=r"imports the engine from .*/engine/__init__\.py, this"):
        installed_command()
    (tmp_path / "engine" / "__init__.py").write_text("raise ImportError('broken')")
    with pytest.raises(SystemExit, match=r"nowhere \(ImportError: broken\)"):
        installed_command()


@pytest.mark.parametrize(
    ("first_line", "expected"),
    [
        ("#!/opt/py/bin/python3.11", ["/opt/py/bin/python3.11"]),
        ("#!/usr/bin/env python3", ["/usr/bin/env", "python3"]),
        ("#!/bin/sh", [sys.executable]),  # pip's launcher for long paths: the Python is below
    ],
)
def test_the_probe_runs_the_python_of_the_command_s_first_line(
    tmp_path: Path, first_line: str, expected: list[str]
) -> None:
    script = tmp_path / "wfm-intervals"
    script.write_text(f"{first_line}\nimport sys\n")
    assert _interpreter(script) == expected
