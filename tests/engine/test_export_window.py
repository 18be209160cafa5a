"""``export`` and ``serve`` present the zero-filled grid of the store's window, as ``build`` does.

The store keeps busy rows; a quiet first or last interval of a built window is zeros in the
build's own document, and must be in every later export of the same store too (docs/metrics.md:
"every export, document, ``serve`` page and report presents the zero-filled grid of its
window"). The stores here are built by the CLI, and every command runs against them.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from engine.cli.main import cli
from engine.output.read import read_table
from engine.serve.documents import StoreDocuments
from tests.calendar import TEST_NOW
from tests.environment import invoke

HEADER = (
    "source,contact_id,segment_no,channel,direction,queue_id,queue_name,offered_at,answered_at,"
    "ended_at,outcome,wait_ms,talk_ms,updated_at"
)


def _run(*args: str) -> str:
    result = invoke(cli, args, {})
    assert result.exit_code == 0, result.stderr
    return result.stdout


def _store(tmp_path: Path, offered: str, start: str, end: str, *extra: str) -> Path:
    """A store built by ``build`` from one answered contact offered at ``offered``."""
    at = datetime.fromisoformat(offered)
    stamp = [(at + timedelta(seconds=s)).isoformat().replace("+00:00", "Z") for s in (0, 5, 60)]
    path = tmp_path / "contacts.csv"
    row = f"s,a1,1,voice,inbound,q1,Q1,{','.join(stamp)},answered,5000,1000,{stamp[2]}"
    path.write_text(f"{HEADER}\n{row}\n", encoding="utf-8")
    out = tmp_path / "out"
    _run("build", "--contacts", str(path), "--out", str(out), "--start", start, "--end", end,
         *extra)  # fmt: skip
    return out


@pytest.fixture
def morning(tmp_path: Path) -> Path:
    """08:00Z-11:00Z built, one contact at 09:05Z: 12 quarter-hours, 11 of them quiet."""
    return _store(tmp_path, "2026-10-01T09:05:00+00:00", "2026-10-01T08:00:00Z",
                  "2026-10-01T11:00:00Z")  # fmt: skip


def _starts(doc: dict[str, object]) -> list[str]:
    rows = doc["CallVolumeUpdate"]
    assert isinstance(rows, list)
    return [r["intervalStartTimeStamp"] for r in rows]


def test_contact_volume_pages_the_built_window_as_the_build_s_own_document(morning: Path) -> None:
    built = json.loads((morning / "exports" / "callvolume_document.json").read_text())
    assert built["totalCount"] == 12
    page = json.loads(_run("export", "contact-volume", "--store", str(morning), "--limit", "1000"))
    assert page["totalCount"] == built["totalCount"] == 12
    assert _starts(page) == _starts(built)
    assert _starts(page)[0] == "2026-10-01T08:00:00.000Z"
    assert _starts(page)[-1] == "2026-10-01T10:45:00.000Z"
    offered = [r["offeredContacts"] for r in page["CallVolumeUpdate"]]
    assert offered == [0] * 4 + [1] + [0] * 7
    window = (datetime(2026, 10, 1, 8, tzinfo=UTC), datetime(2026, 10, 1, 11, tzinfo=UTC))
    assert read_table(morning, "callvolume", window=window, dense=True).collect().height == 12


def test_the_forecast_holds_the_quiet_closed_intervals(morning: Path) -> None:
    out = morning.parent / "fc.csv"
    assert "1 series, 12 rows" in _run(
        "export", "forecast", "--store", str(morning), "--out", str(out), "--metric", "offered"
    )
    frame = pl.read_csv(out)
    assert frame["ds"].to_list()[0] == "2026-10-01T08:00:00"
    assert frame["ds"].to_list()[-1] == "2026-10-01T10:45:00"
    assert frame["y"].sum() == 1


def test_vendor_files_hold_the_quiet_closed_intervals(morning: Path) -> None:
    folder = morning.parent / "genesys"
    _run("export", "vendor", "genesys", "--store", str(morning), "--out", str(folder))
    (text,) = (p.read_text() for p in folder.glob("*.csv"))  # beside the export record
    stamps = [line.split(",")[0] for line in text.splitlines()[1:]]
    assert len(stamps) == 12
    assert (stamps[0], stamps[-1]) == ("2026-10-01T08:00:00.000Z", "2026-10-01T10:45:00.000Z")


def test_serve_pages_the_built_window(morning: Path) -> None:
    docs = StoreDocuments(morning, org_id="wfm-intervals")
    page = docs.callvolume(since=None, until=datetime(2027, 1, 1, tzinfo=UTC), skip=0, limit=100)
    assert page["totalCount"] == 12


def test_a_new_york_fall_back_day_forecast_ends_with_its_last_closed_interval(
    tmp_path: Path,
) -> None:
    # 2026-11-01 in New York: 25 hours, 100 quarter-hours, 04:00Z to 05:00Z the next day
    store = _store(tmp_path, "2026-11-01T12:00:00+00:00", "2026-11-01T04:00:00Z",
                   "2026-11-02T05:00:00Z", "--tz", "America/New_York")  # fmt: skip
    assert datetime(2026, 11, 2, 5, 15, tzinfo=UTC) < TEST_NOW  # every interval closed
    out = tmp_path / "fc.csv"
    assert "1 series, 100 rows" in _run(
        "export", "forecast", "--store", str(store), "--out", str(out), "--metric", "offered"
    )
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert (rows[0]["ds"], rows[-1]["ds"]) == ("2026-11-01T04:00:00", "2026-11-02T04:45:00")
    page = json.loads(_run("export", "contact-volume", "--store", str(store), "--limit", "1000"))
    assert page["totalCount"] == 100


def test_busy_rows_outside_the_recorded_window_still_widen_the_span(tmp_path: Path) -> None:
    # a summary recording a narrower window (an older build's) does not cut rows off
    store = _store(tmp_path, "2026-10-01T09:05:00+00:00", "2026-10-01T08:00:00Z",
                   "2026-10-01T11:00:00Z")  # fmt: skip
    summary = json.loads((store / "summary.json").read_text())
    summary["window"] = ["2026-10-01T10:00:00+00:00", "2026-10-01T10:30:00+00:00"]
    (store / "summary.json").write_text(json.dumps(summary))
    page = json.loads(_run("export", "contact-volume", "--store", str(store), "--limit", "1000"))
    assert _starts(page)[0] == "2026-10-01T09:00:00.000Z"
    assert _starts(page)[-1] == "2026-10-01T10:15:00.000Z"
