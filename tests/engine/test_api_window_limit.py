"""``max_window_days`` holds for the Python API as for the command line.

The command line refused a window longer than ``[build] max_window_days`` before building, but
the builders a notebook calls took any window: a typo'd year (2226 for 2026) asked for millions
of empty intervals. The check is now where every builder gets its grid
(``BuildSettings.grid``); spans taken from the data are not windows a user gave.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

import engine
from engine.demo.callbacks import generate_attempts
from engine.demo.contacts import generate_contacts
from engine.pipeline.build import build_contacts
from engine.pipeline.callbacks import build_callbacks
from engine.tables.callback_requests import requests

DAY = datetime(2026, 10, 1, tzinfo=UTC)
TYPO = (DAY, DAY.replace(year=2030))  # 1,461 days
LIMIT = r"1,461 days is longer than max_window_days \(400\); give a shorter window"


def test_the_table_builders_refuse_a_window_longer_than_max_window_days() -> None:
    contacts = generate_contacts(start=DAY, days=1, scale=0.01).lazy()
    reqs = requests(generate_attempts(start=DAY, days=1, scale=0.05).lazy())
    settings = engine.BuildSettings()
    with pytest.raises(ValueError, match=LIMIT):
        engine.callvolume.build(contacts, window=TYPO, settings=settings)
    for module in (engine.callback_intervals, engine.retry_outcomes):
        with pytest.raises(ValueError, match=LIMIT):
            module.build(reqs, window=TYPO, settings=settings)
    with pytest.raises(ValueError, match=LIMIT):
        settings.grid(TYPO)
    longer = engine.BuildSettings(max_window_days=36_600)  # the limit is the settings'
    assert longer.grid((DAY, DAY + timedelta(days=500))).frame.height == 500 * 96


def test_the_pipeline_builds_refuse_it_too_and_a_dense_read_its_unbuilt_part(
    tmp_path: Path,
) -> None:
    """A dense read is held to what the builds covered (however long), not to the limit."""
    contacts = generate_contacts(start=DAY, days=1, scale=0.01).lazy()
    settings = engine.BuildSettings()
    with pytest.raises(ValueError, match=LIMIT):
        build_contacts(contacts, settings=settings, out_dir=tmp_path / "a", window=TYPO)
    attempts = generate_attempts(start=DAY, days=1, scale=0.05).lazy()
    with pytest.raises(ValueError, match=LIMIT):
        build_callbacks(attempts, settings=settings, out_dir=tmp_path / "b", window=TYPO)
    build_contacts(
        contacts, settings=settings, out_dir=tmp_path / "c", window=(DAY, DAY + timedelta(days=1))
    )
    with pytest.raises(engine.WfmError, match="reaches outside what the builds of callvolume"):
        engine.read_table(tmp_path / "c", "callvolume", window=TYPO, dense=True)


def test_a_span_taken_from_the_data_is_not_held_to_it(tmp_path: Path) -> None:
    """Two contacts 500 days apart, no window given: the data's span is built (its zero rows
    are held to the fill limit instead), as before."""
    one = generate_contacts(start=DAY, days=1, scale=0.01).head(1)
    later = one.with_columns(
        pl.col("contact_id") + "-later",
        *(pl.col(c) + timedelta(days=500) for c in ("offered_at", "answered_at", "ended_at",
                                                     "updated_at")),
    )  # fmt: skip
    report = build_contacts(
        pl.concat([one, later]).lazy(), settings=engine.BuildSettings(), out_dir=tmp_path
    )
    assert report.intervals > 500 * 96
