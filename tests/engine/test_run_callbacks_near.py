"""An incremental run reduces only the callback chains its plan reaches
(engine.pipeline.tables.build_tables): its tables, request count and gaps are still those of a
full rebuild, however old the changed chain."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from engine.app.config import AppSettings
from engine.demo.callbacks import generate_attempts
from engine.output import delta
from engine.output.store import request_dates
from engine.pipeline.tables import build_tables, requested
from engine.pipeline.window import Canonical, fingerprints, plan_run
from engine.schema import CALLBACK_OUTCOMES, QUARANTINE
from engine.tables.callback_requests import requests

START = datetime(2026, 3, 2, tzinfo=UTC)
DAYS = 220
NOW = START + timedelta(days=DAYS, hours=2)
TABLES = ("callback_attempts", "callback_intervals", "retry_outcomes")


def _canonical(attempts: pl.DataFrame) -> Canonical:
    return Canonical.of(None, (attempts, pl.DataFrame(schema=QUARANTINE)), None)


def _build(out: Path, canon: Canonical, previous: Canonical | None) -> dict[str, object]:
    plan = plan_run(
        canon,
        settings=AppSettings().build,
        first_start=START,
        recent_start=None if previous is None else NOW - timedelta(hours=3),
        given=(None, None),
        previous=None if previous is None else fingerprints(previous),
        now=NOW,
    )
    build_tables(out, AppSettings(), plan=plan, canonical=canon, tag="t")
    return plan.to_json()


def _stored(out: Path) -> dict[str, pl.DataFrame]:
    found = {}
    for name in TABLES:
        rows = delta.scan(out / "store" / name).collect()
        found[name] = rows.sort(rows.columns, nulls_last=True)
    return found


def _summary(out: Path) -> dict[str, object]:
    summary = json.loads((out / "callbacks_summary.json").read_text())
    return {k: summary[k] for k in ("attempts", "requests", "gaps", "collapsed")}


def test_a_change_to_a_chain_requested_200_days_ago_is_counted_again(tmp_path: Path) -> None:
    before = generate_attempts(seed=3, start=START, days=DAYS, scale=0.05)
    canon = _canonical(before)
    attempts = canon.attempt_rows
    assert attempts is not None
    old_day = (START + timedelta(days=15)).date()
    on_old_day = request_dates(attempts) == old_day
    chain = attempts.filter(on_old_day).select("source", "original_id").row(0)
    is_chain = (pl.col("source") == chain[0]) & (pl.col("original_id") == chain[1])
    # its final attempt now ends another way, and a retry number goes missing (a gap)
    after = before.with_columns(
        pl.when(is_chain)
        .then(pl.lit("abandoned"))
        .otherwise(pl.col("outcome").cast(pl.String))
        .cast(CALLBACK_OUTCOMES)
        .alias("outcome"),
        pl.when(is_chain & (pl.col("retry_attempt") == 0))
        .then(pl.col("retry_attempt") + 7)
        .otherwise("retry_attempt")
        .alias("retry_attempt"),
    )
    incremental, fresh = tmp_path / "incremental", tmp_path / "fresh"
    _build(incremental, canon, None)
    plan = _build(incremental, _canonical(after), canon)
    assert plan["full_rebuild"] is False
    assert old_day.isoformat() in plan["partitions"]["callback_attempts"]  # type: ignore[index]
    _build(fresh, _canonical(after), None)
    ours, theirs = _stored(incremental), _stored(fresh)
    for name in TABLES:
        assert ours[name].equals(theirs[name]), name
    assert _summary(incremental) == _summary(fresh)
    gaps = [out / "exports" / "callback_gaps.ndjson" for out in (incremental, fresh)]
    assert gaps[0].read_text() == gaps[1].read_text()
    assert chain[1] in gaps[0].read_text()  # the old chain's gap is reported


def test_a_run_where_nothing_changed_but_the_recent_window_keeps_every_old_day(
    tmp_path: Path,
) -> None:
    attempts = generate_attempts(seed=5, start=START, days=DAYS, scale=0.05)
    canon = _canonical(attempts)
    out = tmp_path / "out"
    _build(out, canon, None)
    first = _stored(out)
    summary = _summary(out)
    plan = _build(out, canon, canon)
    assert plan["callback_tables"] == [["2026-10-07T00:00:00Z", "2026-10-08T02:00:00Z"]]
    again = _stored(out)
    assert all(again[n].equals(first[n]) for n in TABLES)
    assert _summary(out) == summary  # every chain counted, not the recent window's


def test_the_chains_kept_are_whole_and_every_request_of_the_windows_is_among_them() -> None:
    attempts = _canonical(generate_attempts(seed=7, start=START, days=40, scale=0.2)).attempt_rows
    assert attempts is not None
    day = START + timedelta(days=20)
    windows = [  # over two midnights UTC, and a short one ten days later
        (day - timedelta(hours=12), day + timedelta(hours=36)),
        (day + timedelta(days=10, hours=14), day + timedelta(days=10, hours=14, minutes=15)),
    ]
    kept = requested(attempts, windows)
    assert 0 < kept.height < attempts.height / 4

    def inside(reqs: pl.DataFrame) -> pl.DataFrame:
        at = pl.col("instant")
        hit = pl.any_horizontal([(at >= lo) & (at < hi) for lo, hi in windows])
        return reqs.filter(hit).sort("source", "original_id")

    everything = requests(attempts.lazy()).collect()
    ours = requests(kept.lazy()).collect()
    for lo, hi in windows:  # requests in each window, on each of its days
        on = inside(ours).filter((pl.col("instant") >= lo) & (pl.col("instant") < hi))
        assert (
            on["instant"].dt.date().n_unique() == (hi - timedelta(microseconds=1)).day - lo.day + 1
        )
    assert inside(ours).equals(inside(everything))
    chains = everything.join(ours.select("source", "original_id"), on=["source", "original_id"])
    assert chains.sort("source", "original_id").equals(ours.sort("source", "original_id"))
