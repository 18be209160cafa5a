"""A first night of sources set to start at different times: the reconciliation compares only
what every source it sets side by side has synced."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from engine.clock import StartedClock, use_clock
from tests.engine.run_support import T0, Stack, invoke, write_config
from tests.engine.run_support import clean_environment as _clean


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _clean(monkeypatch, tmp_path)


@pytest.mark.parametrize("late", ["ujet", "dixa", "kore"])
def test_a_source_set_to_start_later_is_compared_from_its_start_only(
    tmp_path: Path, stack: Stack, now: datetime, late: str
) -> None:
    """UJET (or Dixa, or Kore.ai) set to start at 09:07 and the others at midnight: the first
    night ended exit 1, "reconciliation: 58 differences out of tolerance" (the morning's calls
    that one side never synced), and the next night too (20). Now Kore.ai's check starts at
    the first whole interval every contact source and Kore.ai synced, 09:15, and finds none
    (the second night from where Kore.ai's sync began reading again, if later)."""
    config = write_config(tmp_path, stack, **{f"sources__{late}": {"start": T0 + timedelta(
        hours=9, minutes=7)}})  # fmt: skip
    for night in ("first", "second"):
        ran = invoke(["run", "--json", "--quiet"], config)
        summary = json.loads(ran.stdout)
        assert (ran.exit_code, summary["problems"]) == (0, []), night
        (kore,) = [c for c in summary["reconcile"]["checks"] if c["source"] == "kore"]
        (read,) = [p["started_from"] for p in summary["pulled"] if p["source"] == "kore"]
        assert kore["window_start"] == max("2026-11-08T09:15:00Z", read.replace(".000Z", "Z"))
        assert (kore["status"], kore["differences"]) == ("ok", 0)
        assert kore["compared"] > (100 if night == "first" else 0)  # the afternoon's, first


def test_a_source_starting_in_the_last_interval_leaves_nothing_to_compare(
    tmp_path: Path, stack: Stack, now: datetime
) -> None:
    """Kore.ai set to start at 23:50, its synced window ending at midnight: the start rounded up
    to the interval met the end and the run died in the reconciliation (``ValueError: window end
    ... is not after its start``) after its build and export, its summary and run state never
    written. Now the check says there is no complete Kore.ai data in the window; exit 0."""
    config = write_config(tmp_path, stack, sources__kore={"start": T0 + timedelta(
        hours=23, minutes=50)})  # fmt: skip
    ran = invoke(["run", "--json", "--quiet"], config)
    summary = json.loads(ran.stdout)
    assert (ran.exit_code, summary["problems"]) == (0, [])
    (kore,) = [c for c in summary["reconcile"]["checks"] if c["source"] == "kore"]
    assert (kore["status"], kore["note"]) == ("skipped", "no complete kore data in the window")


def test_kore_rows_not_read_again_this_night_are_not_compared(
    tmp_path: Path, stack: Stack, now: datetime
) -> None:
    """A call of yesterday noon changed a night later (talk time +10 min), Kore.ai's own figures
    changed with it: our interval is rebuilt, but Kore.ai's sync reads again only its lookback
    (the day window holding its cursor less 3 h), so its row of that noon was the one landed
    the night before. The run compared the two and ended exit 1 (2 differences), where a full
    refresh of the same data agreed. In a run Kore.ai now reads again at least the run's
    lookback (Dixa's day here), and its check starts where its sync began reading: the noon
    row, read again, is compared and agrees."""
    config = write_config(tmp_path, stack)
    first = invoke(["run", "--json", "--quiet"], config)
    assert (first.exit_code, json.loads(first.stdout)["problems"]) == (0, [])
    calls = stack.ujet.expected_contacts().filter(pl.col("outcome") == "answered")
    noon = calls.filter(pl.col("offered_at") >= T0 + timedelta(hours=12)).row(0, named=True)
    stack.ujet.update_records([noon["contact_id"]], talk_ms=noon["talk_ms"] + 600_000)
    stack.sync_kore()
    with use_clock(StartedClock(now + timedelta(days=1))):
        second = invoke(["run", "--json", "--quiet"], config)
    summary = json.loads(second.stdout)
    assert (second.exit_code, summary["problems"]) == (0, [])
    (kore,) = [c for c in summary["reconcile"]["checks"] if c["source"] == "kore"]
    (pulled,) = [p for p in summary["pulled"] if p["source"] == "kore"]
    assert kore["window_start"] >= pulled["started_from"].replace(".000Z", "Z")
    assert kore["window_start"] <= noon["offered_at"].strftime("%Y-%m-%dT%H:%M:%SZ")
