"""The period a report covers: the run's report is bounded by ``[run] report_days``; the
``report`` command shows the whole store by default.

Expected numbers come from the stored ``callvolume`` table read directly, never from
:mod:`engine.report`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from engine.app.sections import RunSettings
from engine.cli.main import cli
from engine.demo.contacts import generate_contacts
from engine.pipeline import build as pipeline
from engine.report.build import write_run_report
from engine.settings import BuildSettings

START = datetime(2026, 9, 1, tzinfo=UTC)
DAYS = 10
REPORT_DAYS = 3
GENERATED = datetime(2026, 9, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Ten days of contacts in UTC."""
    out = tmp_path_factory.mktemp("store")
    window = (START, START + timedelta(days=DAYS))
    contacts = generate_contacts(seed=5, start=START, days=DAYS, time_zone="UTC")
    pipeline.build_contacts(
        contacts.lazy(), settings=BuildSettings(tz="UTC"), out_dir=out, window=window
    )
    return out


@pytest.fixture(scope="module")
def stored(store: Path) -> pl.DataFrame:
    return pl.read_delta(str(store / "store" / "callvolume"))


def _shown(page: str) -> tuple[str, int]:
    """The UTC window of the header and the offered total of the queue table, as printed."""
    window = re.search(r"<dt>Window \(UTC\)</dt><dd>([^<]+)</dd>", page)
    totals = re.search(r'<table id="queue-totals">.*?<tr class="total">(.*?)</tr>', page)
    assert window
    assert totals
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", totals.group(1))
    assert cells[0] == "All queues"
    return window.group(1), int(cells[1].replace(",", ""))


def _utc(at: datetime) -> str:
    return f"{at:%Y-%m-%dT%H:%MZ}"


def test_the_run_report_covers_only_the_last_report_days(
    store: Path, stored: pl.DataFrame, tmp_path: Path
) -> None:
    end = stored["interval_end_utc"].max()
    assert isinstance(end, datetime)
    start = end - timedelta(days=REPORT_DAYS)
    assert stored["interval_start_utc"].min() < start  # the store holds more than the period
    expected = stored.filter(pl.col("interval_start_utc") >= start)["offered"].sum()
    assert 0 < expected < stored["offered"].sum()

    out = tmp_path / "report.html"
    write_run_report(store, out, days=REPORT_DAYS, generated_at=GENERATED)
    window, offered = _shown(out.read_text())
    assert window == f"{_utc(start)} to {_utc(end)}"
    assert offered == expected


def test_a_period_longer_than_the_store_starts_at_its_first_interval(
    store: Path, stored: pl.DataFrame, tmp_path: Path
) -> None:
    out = tmp_path / "report.html"
    write_run_report(store, out, days=DAYS * 3, generated_at=GENERATED)
    window, offered = _shown(out.read_text())
    first, last = stored["interval_start_utc"].min(), stored["interval_end_utc"].max()
    assert isinstance(first, datetime)
    assert isinstance(last, datetime)
    assert window == f"{_utc(first)} to {_utc(last)}"
    assert offered == stored["offered"].sum()


def test_the_report_command_still_covers_the_whole_store(
    store: Path, stored: pl.DataFrame, tmp_path: Path
) -> None:
    out = tmp_path / "report.html"
    result = CliRunner().invoke(cli, ["report", "--store", str(store), "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    window, offered = _shown(out.read_text())
    first, last = stored["interval_start_utc"].min(), stored["interval_end_utc"].max()
    assert isinstance(first, datetime)
    assert isinstance(last, datetime)
    assert last - first >= timedelta(days=DAYS)
    assert window == f"{_utc(first)} to {_utc(last)}"
    assert offered == stored["offered"].sum()


def test_report_days_is_a_positive_setting(tmp_path: Path, store: Path) -> None:
    assert RunSettings().report_days == 35
    assert RunSettings(report_days=1).report_days == 1
    with pytest.raises(ValidationError, match="report_days"):
        RunSettings(report_days=0)
    with pytest.raises(ValueError, match="days must be >= 1"):
        write_run_report(store, tmp_path / "r.html", days=0)


def test_the_default_window_is_the_built_one_not_the_busy_rows_span(tmp_path: Path) -> None:
    """A centre open 12:00-20:00 built over whole days: the store keeps busy rows, and the
    report's default window was their span, so its first and last days read as cut by the
    window and the last one left the staffing plan. Its builds' windows count too."""
    from engine.report.data import compute, open_store

    settings = BuildSettings(tz="America/New_York")
    built = (datetime(2026, 10, 31, 4, tzinfo=UTC), datetime(2026, 11, 4, 5, tzinfo=UTC))
    stamps = [datetime(2026, 10, 31, 16, tzinfo=UTC) + timedelta(days=d, hours=h)
              for d in range(4) for h in range(8)]  # fmt: skip
    contacts = pl.DataFrame(
        {"source": "u", "contact_id": [f"c{k}" for k in range(len(stamps))], "segment_no": 1,
         "channel": "voice", "queue_id": "q", "offered_at": stamps, "outcome": "abandoned"},
    )  # fmt: skip
    pipeline.build_contacts(contacts.lazy(), settings=settings, out_dir=tmp_path, window=built)
    assert compute(open_store(tmp_path)).window == built
