"""The numbers of the HTML report (:mod:`engine.report.build`), read from a built store with Polars.

:func:`open_store` finds what a build (``build``, ``callbacks`` or ``demo``) wrote under its
``--out`` directory; :func:`compute` turns it into :class:`ReportData`: small, collected frames,
one per report section. Roll-ups go through the engine's own functions
(:func:`engine.tables.callvolume.rollup`, :func:`engine.tables.callvolume.rollup_window`) and every
ratio
(service level, AHT, success rate) is derived again from summed additive columns with
:func:`engine.tables.callvolume.derive`, never averaged.

Example:
    >>> import tempfile
    >>> from engine.pipeline import build as pipeline
    >>> from engine.settings import BuildSettings
    >>> from engine.demo.contacts import generate_contacts
    >>> out = Path(tempfile.mkdtemp())
    >>> _ = pipeline.build_contacts(generate_contacts(days=1).lazy(), settings=BuildSettings(),
    ...                             out_dir=out)
    >>> data = compute(open_store(out))
    >>> data.heatmap["offered"].sum() == data.queues["offered"].sum()
    True
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Final

import polars as pl

from engine.errors import InputFileError, StoreError, printable
from engine.interval import Window
from engine.output import delta
from engine.output.inputs import not_a_table_without_its_log
from engine.output.read import built_windows
from engine.report.sections import (
    CallbackNumbers,
    callback_numbers,
    quality_frames,
    recorded_settings,
    service_level_formula,
)
from engine.settings import BuildSettings, SlFormula
from engine.tables import callvolume, seasonal

__all__ = [
    "HISTORY_DAYS",
    "MAX_POINTS",
    "TABLES",
    "ReportData",
    "Store",
    "StoreError",
    "compute",
    "open_store",
    "span",
]

#: The tables a report reads from ``store/``.
TABLES: Final = ("callvolume", "callback_intervals", "retry_outcomes")
#: The volume chart rolls up (hourly, then daily) until it has at most this many points per line.
MAX_POINTS: Final = 800
#: Days before the store's end a nightly report reads at least: the seasonal forecast of the
#: window's last week averages the 4 weeks before it (:func:`engine.report.planning.plan_days`).
HISTORY_DAYS: Final = seasonal.SEASON_DAYS * 5
_SUMS: Final = tuple(c for c in callvolume.ADDITIVE if c not in callvolume.MAXIMA)


@dataclass(frozen=True)
class Store:
    """What a build wrote: its tables (lazy), its summaries and reconciliation, if any."""

    root: Path
    tables: dict[str, pl.LazyFrame]
    summaries: dict[str, dict[str, Any]] = field(default_factory=dict)
    reconcile: Any = None
    reconcile_error: str | None = None
    #: the partitions (UTC dates) the tables were read from (``None``: every one)
    days: list[date] | None = None
    #: where the volume's history is known to start: with ``days``, their first instant when the
    #: volume table holds earlier partitions too; else the start of the window the contacts
    #: build recorded, if any (every interval from it on is zero where nothing is stored)
    history_from: datetime | None = None

    def setting(self, key: str) -> Any:
        """A build setting from the summaries (contacts first), or ``None``."""
        return next((s[key] for s in self.summaries.values() if key in s), None)


@dataclass(frozen=True)
class ReportData:
    """Everything the report shows, computed; frames are small and collected."""

    store: Store
    window: Window
    tz: str
    interval_minutes: int | None
    sl_formula: SlFormula
    sl_formula_note: str
    #: what the ratios are derived with: the service-level settings the build recorded (the
    #: defaults when it recorded none), with the report's zone and formula
    settings: BuildSettings
    volume_minutes: int
    volume: pl.DataFrame  #: bucket start (UTC), channel, offered, answered, abandoned
    heatmap: pl.DataFrame  #: weekday 1-7 x hour 0-23, offered; and ``days`` per weekday
    daily: pl.DataFrame  #: local day x queue: sums and derived ratios
    queues: pl.DataFrame  #: window total per queue
    totals: dict[str, Any]  #: window total of every queue
    callbacks: CallbackNumbers | None
    quarantine: pl.DataFrame  #: reason, contacts, callbacks
    intake: pl.DataFrame  #: what the builds read: measure, contacts, callbacks


def _check(tables_dir: Path, names: list[str]) -> None:
    """Each table of ``names`` against its log (a file lost or cut short: named, one stat a
    file, not Parquet's words), and each other table folder for a lost log (no missing table).

    Raises:
        StoreError: the first found.
    """
    for name in TABLES:
        try:
            if name not in names and (tables_dir / name).is_dir():
                not_a_table_without_its_log(tables_dir / name)
        except InputFileError as exc:
            raise StoreError(str(exc)) from None
        if name in names and (damaged := delta.problems(tables_dir / name, deep=False)):
            raise StoreError(f"{damaged[0]}: the table is damaged")


def open_store(path: Path, *, last_days: int | None = None) -> Store:
    """Find the tables, summaries and ``reconcile.json`` of a build's output directory.

    ``path`` is the build's ``--out`` directory (holding ``store/``) or its ``store/`` itself.
    With ``last_days``, only the partitions of the store's last ``last_days`` days (at least
    :data:`HISTORY_DAYS`, what the forecast of the last week reads) plus two are read, once,
    into memory: a nightly report reads the same few thousand rows many times, and its cost
    must not grow with history.

    Raises:
        StoreError: no interval table is there, or a summary there cannot be read.

    Example:
        >>> open_store(Path("/nonexistent"))
        Traceback (most recent call last):
        ...
        engine.errors.StoreError: /nonexistent: no store/ with callvolume, ...
    """
    tables_dir, root = (path / "store", path) if (path / "store").is_dir() else (path, path.parent)
    names = [name for name in TABLES if delta.is_table(tables_dir / name)]
    _check(tables_dir, names)
    if not names:
        msg = f"{path}: no store/ with callvolume, callback_intervals or retry_outcomes tables"
        raise StoreError(msg + " (run `wfm-intervals build`, `callbacks` or `demo` first)")
    keep, history_from = None, None
    if last_days is not None:
        held = {name: delta.partition_days(tables_dir / name) for name in names}
        if every := sorted({d for days in held.values() for d in days}):
            first = every[-1] - timedelta(days=max(last_days, HISTORY_DAYS) + 2)
            keep = [d for d in every if d >= first]
            if any(d < first for d in held.get("callvolume", [])):
                history_from = datetime.combine(first, time.min, UTC)
    tables = {
        name: delta.scan(tables_dir / name)
        if keep is None
        else delta.scan(tables_dir / name, days=keep).collect().lazy()
        for name in names
    }
    summaries: dict[str, Any] = {}
    for kind, name in (("contacts", "summary.json"), ("callbacks", "callbacks_summary.json")):
        if (path := root / name).is_file():
            try:
                summaries[kind] = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:  # torn: its zone and interval are unknown
                raise StoreError(f"{path}: cannot be read ({printable(exc)})") from None
    if history_from is None and "callvolume" in names:  # the window the volume was built over
        built = built_windows([summaries.get("contacts", {})])
        history_from = built[0][0] if built else None
    reconcile, error = None, None
    candidates = [p / "reconcile.json" for p in (root, tables_dir)]
    if found := next((p for p in candidates if p.is_file()), None):
        try:
            reconcile = json.loads(found.read_text())
        except (OSError, ValueError) as exc:
            error = f"{found}: {exc}"
    return Store(root, tables, summaries, reconcile, error, keep, history_from)


def span(store: Store) -> Window:
    """The store's first interval start and last interval end, over all its tables.

    Raises:
        StoreError: the tables hold no intervals.
    """
    return _window(store, None, None)


def _window(store: Store, start: datetime | None, end: datetime | None) -> Window:
    spans = pl.concat(
        pl.collect_all(
            [
                t.select(pl.col("interval_start_utc").min(), pl.col("interval_end_utc").max())
                for t in store.tables.values()
            ]
        )
    )
    lo, hi = start or spans["interval_start_utc"].min(), end or spans["interval_end_utc"].max()
    # the store keeps busy rows: the windows its builds recorded reach the quiet hours at their
    # ends too (a centre closed at night would have its first and last days cut, and a quiet
    # last day of the staffing plan dropped)
    for built in _built_windows(store):
        lo = min(lo, built[0]) if start is None and isinstance(lo, datetime) else lo
        hi = max(hi, built[1]) if end is None and isinstance(hi, datetime) else hi
    if not isinstance(lo, datetime) or not isinstance(hi, datetime):
        msg = f"{store.root}: the store's tables have no intervals; give --start and --end"
        raise StoreError(msg)
    if hi <= lo:
        msg = f"the window end {hi.isoformat()} is not after its start {lo.isoformat()}"
        raise StoreError(msg)
    return lo, hi


def _built_windows(store: Store) -> list[Window]:
    """The windows the store's summaries say were built (:func:`built_windows`)."""
    return built_windows(store.summaries.values())


def _in(table: pl.LazyFrame, window: Window) -> pl.LazyFrame:
    start = pl.col("interval_start_utc")
    return table.filter(start >= window[0], start < window[1])


def _volume_minutes(window: Window, interval: int) -> int:
    minutes = (window[1] - window[0]).total_seconds() / 60
    return next(
        (m for m in (interval, 60, 1440) if m >= interval and minutes / m <= MAX_POINTS), 1440
    )


def _labelled(frame: pl.LazyFrame) -> pl.LazyFrame:
    label = pl.concat_str(
        "queue_name", pl.lit(" ("), pl.col("channel").cast(pl.String), pl.lit(")")
    )
    return frame.with_columns(label.alias("queue"))


def _volume_numbers(
    table: pl.LazyFrame, window: Window, tz: str, interval: int, settings: BuildSettings
) -> dict[str, Any]:
    base = _in(table.select(callvolume.SCHEMA.keys()), window)
    minutes = _volume_minutes(window, interval)
    counts = [pl.col(c).sum() for c in ("offered", "answered", "abandoned")]
    local = pl.col("interval_start_utc").dt.convert_time_zone(tz)
    hours = pl.DataFrame({"hour": range(24)}, schema={"hour": pl.Int8})
    grid = pl.DataFrame({"weekday": range(1, 8)}, schema={"weekday": pl.Int8}).join(
        hours, how="cross"
    )
    rolled = callvolume.rollup(base, window=window, minutes=minutes, tz=tz, partial=True)
    daily = callvolume.rollup(base, window=window, minutes=1440, tz=tz, partial=True)
    window_rows = callvolume.rollup_window(base)
    volume, heat, days, queues, totals = pl.collect_all(
        [
            rolled.group_by("interval_start_utc", "channel").agg(counts).sort(pl.all()),
            base.group_by(local.dt.weekday().alias("weekday"), local.dt.hour().alias("hour")).agg(
                pl.col("offered").sum()
            ),
            _labelled(callvolume.derive(daily, settings=settings))
            .with_columns(
                pl.col("interval_start_local").dt.date().alias("day"),
                (
                    (pl.col("interval_start_utc") < window[0])
                    | (pl.col("interval_end_utc") > window[1])
                ).alias("partial"),
            )
            .sort("day", "channel", "queue_name"),
            _labelled(callvolume.derive(window_rows, settings=settings)).sort("channel", "queue"),
            callvolume.derive(
                window_rows.select(
                    *(pl.col(c).sum() for c in _SUMS),
                    *(pl.col(c).max() for c in callvolume.MAXIMA),
                ),
                settings=settings,
            ),
        ]
    )
    weekday_days = days.select("day").unique().group_by(pl.col("day").dt.weekday().alias("weekday"))
    heatmap = (
        grid.join(heat, on=["weekday", "hour"], how="left")
        .join(weekday_days.len("days"), on="weekday", how="left")
        .with_columns(pl.col("offered", "days").fill_null(0).cast(pl.Int64))
        .sort("weekday", "hour")
    )
    return {
        "volume_minutes": minutes,
        "volume": volume,
        "heatmap": heatmap,
        "daily": days,
        "queues": queues,
        "totals": totals.row(0, named=True),
    }


def _empty_volume() -> dict[str, Any]:
    empty = pl.DataFrame()
    frames = dict.fromkeys(("volume", "heatmap", "daily", "queues"), empty)
    return {"volume_minutes": 0, "totals": {}, **frames}


def compute(
    store: Store,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    tz: str | None = None,
    sl_formula: SlFormula | None = None,
) -> ReportData:
    """Every number of the report for ``[start, end)`` (default: the span of the store).

    Args:
        store: from :func:`open_store`.
        start: first instant (UTC-aware); intervals starting at or after it are in.
        end: end instant, exclusive.
        tz: zone of days, hours and weekdays (default: the zone the store was built in).
        sl_formula: service-level formula (default: the one the store was built with).

    Raises:
        StoreError: the window is empty or reversed, or ``tz`` is not a zone, or one whose
            hours or days the store's intervals do not nest in (a 60-minute UTC store in
            Asia/Kolkata: its hours start at hh:30 UTC; the message names ``--tz`` or the zone).
    """
    zone = tz or store.setting("tz") or "UTC"
    try:
        settings = BuildSettings(tz=zone)
    except ValueError as exc:
        msg = f"--tz {zone!r}: not an IANA time zone"
        raise StoreError(msg) from exc
    window = _window(store, start, end)
    table = store.tables.get("callvolume")
    built = recorded_settings(store.setting("sl_settings"))
    recorded = None if built is None else built.sl_formula
    formula, note = service_level_formula(table, sl_formula, recorded)
    if built is not None:  # its thresholds and targets too (the tiles')
        settings = built.model_copy(update={"tz": settings.tz})
    settings = settings.model_copy(update={"sl_formula": formula})
    interval = store.setting("interval_minutes")
    if interval is None and table is not None:
        lengths = table.select((pl.col("interval_end_utc") - pl.col("interval_start_utc")).mode())
        interval = int(lengths.collect().to_series()[0].total_seconds() // 60)
    try:
        volume = (
            _volume_numbers(table, window, zone, int(interval or 15), settings)
            if table is not None
            else _empty_volume()
        )
    except StoreError as exc:  # the store's intervals do not nest in the zone's hours or days
        given = f"--tz {zone}" if tz else f"the store's zone {zone}"
        given = given if tz or store.setting("tz") else "UTC (the store records no zone: give --tz)"
        raise StoreError(f"{given}: {exc}") from None
    cb, ro = store.tables.get("callback_intervals"), store.tables.get("retry_outcomes")
    callbacks = (
        callback_numbers(_in(cb, window), _in(ro, window) if ro is not None else None)
        if cb is not None
        else None
    )
    quarantine, intake = quality_frames(store.root, store.summaries)
    return ReportData(
        store=store,
        window=window,
        tz=zone,
        interval_minutes=int(interval) if interval else None,
        sl_formula=formula,
        sl_formula_note=note,
        settings=settings,
        callbacks=callbacks,
        quarantine=quarantine,
        intake=intake,
        **volume,
    )
