"""Reading a built store's tables from Python: as stored (busy rows) or zero-filled.

The store keeps the busy rows of each interval table (:mod:`engine.tables.dense`). A notebook
user reads them lazily with :func:`read_table`; ``dense=True`` gives the zero-filled grid of a
window (every group seen in the window, every interval of it), in the zone and interval length
the store was built with (:func:`built_with`), over what the store's builds covered only
(:func:`covered_span`, the span its exports zero-fill).

Example:
    ``engine.read_table(Path("demo-out"), "callvolume", window=(start, end), dense=True)``
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from engine.errors import StoreError
from engine.interval import Window
from engine.output import delta, location
from engine.settings import BuildSettings
from engine.tables import callvolume
from engine.tables.dense import SHAPES, fill

__all__ = [
    "built_windows",
    "built_with",
    "covered_span",
    "filled_volume",
    "read_table",
    "table_identity",
]


def table_identity(path: Path) -> str:
    """``<table id>@<version>`` of the store table at ``path``: a table made anew (restored from
    a backup, deleted and built again into the same folder) has another id, whatever its
    version, so a reader that keeps what it read by this key never serves a replaced table.

    Raises:
        StoreError: no table at ``path``, or its log cannot be read.
    """
    table = location.open_table(path)
    return f"{table.metadata().id}@{table.version()}"


def built_windows(summaries: Iterable[Mapping[str, Any]]) -> list[Window]:
    """The windows ``summaries`` (a build's ``summary.json`` or ``callbacks_summary.json``
    documents) say were built: each ``window``, two aware ISO 8601 instants in order; anything
    else is passed over.

    Example:
        >>> built_windows([{"window": ["2026-10-01T00:00:00+00:00", "2026-10-02T00:00:00+00:00"]},
        ...                {"window": "?"}])[0][1].isoformat()
        '2026-10-02T00:00:00+00:00'
    """
    found = []
    for summary in summaries:
        window = summary.get("window")
        if not isinstance(window, list) or len(window) != 2:
            continue
        if all(isinstance(w, str) for w in window):
            try:
                lo, hi = (datetime.fromisoformat(w) for w in window)
            except ValueError:
                continue
            if lo.tzinfo is not None and hi.tzinfo is not None and lo < hi:
                found.append((lo, hi))
    return found


def _document(path: Path) -> dict[str, Any]:
    """The JSON object in ``path`` (``{}`` when there is none or it cannot be read)."""
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _recorded_windows(out_dir: Path, table: str) -> list[Window]:
    """The windows the builds of ``table`` into ``out_dir`` recorded: the last build's
    (``summary.json``, or ``callbacks_summary.json`` for a callback table) and the grids the
    last ``run`` rebuilt (``run_summary.json``'s ``plan``)."""
    callbacks = table in _CALLBACK_TABLES
    summary = _document(out_dir / ("callbacks_summary.json" if callbacks else "summary.json"))
    plan = _document(out_dir / "run_summary.json").get("plan")
    grids = (
        plan.get("callback_tables" if callbacks else "callvolume")
        if isinstance(plan, dict)
        else None
    )
    runs = [{"window": g} for g in grids] if isinstance(grids, list) else []
    return built_windows([summary, *runs])


def covered_span(out_dir: Path, table: str, rows: pl.LazyFrame) -> Window | None:
    """The span the builds of the interval table ``table`` into ``out_dir`` covered, as the
    exports count it (:func:`engine.cli.export.volume_table`; the last run's rebuilt grids
    counted too): from the first stored row's interval or recorded window
    (:func:`_recorded_windows`) to the last's end (``None``: no row and no recorded window).
    The store keeps busy rows only, so an interval in it with no row counted nothing; one
    outside it was never built, and its counts are unknown, not zero."""
    start, end = pl.col("interval_start_utc"), pl.col("interval_end_utc")
    lo, hi = rows.select(start.min(), end.max()).collect().row(0)
    spans = [*_recorded_windows(out_dir, table), *([(lo, hi)] if lo is not None else [])]
    if not spans:
        return None
    return min(s[0] for s in spans), max(s[1] for s in spans)


#: The tables a ``callbacks`` build writes: read on its grid (``callbacks_summary.json``) first.
_CALLBACK_TABLES = ("callback_attempts", "callback_intervals", "retry_outcomes")
#: The instant a canonical table's rows start at (the interval tables': ``interval_start_utc``).
_STARTS = {"contacts": "offered_at", "callback_attempts": "created_at"}


def built_with(out_dir: Path, table: str | None = None) -> BuildSettings:
    """The zone and interval length the store under ``out_dir`` was built with (its
    ``summary.json``, else its ``callbacks_summary.json``; for a ``table`` a ``callbacks``
    build writes, the other way round: a store may hold a 60-minute volume beside 15-minute
    callback tables; UTC and 15 minutes when there is no store and neither file).

    Raises:
        StoreError: a summary that cannot be read or says no zone, or a store with neither:
            its rows would be read on another grid (a torn ``summary.json`` re-gridded a
            Lord Howe hourly table to 15-minute UTC rows, and vendor files took it, exit 0).

    Example:
        >>> built_with(Path("/nonexistent")).tz
        'UTC'
    """
    names = ("summary.json", "callbacks_summary.json")
    for name in names[::-1] if table in _CALLBACK_TABLES else names:
        path = out_dir / name
        try:
            found = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not valid JSON"
            raise StoreError(f"{path}: {why}: {_UNKNOWN_GRID}") from None
        try:
            return BuildSettings(tz=found["tz"], interval_minutes=found.get("interval_minutes", 15))
        except (TypeError, KeyError, ValueError):  # not an object, no tz, or not a build's
            raise StoreError(f"{path}: no zone and interval length: {_UNKNOWN_GRID}") from None
    if any(delta.is_table(out_dir / "store" / name) for name in SHAPES):
        msg = f"{out_dir}: neither summary.json nor callbacks_summary.json: {_UNKNOWN_GRID}"
        raise StoreError(msg)
    return BuildSettings()


#: Why a store whose build settings cannot be read is not read.
_UNKNOWN_GRID = (
    "the zone and interval length its store was built with are unknown; restore the file, or "
    "build the store again"
)


def read_table(
    out_dir: str | os.PathLike[str], name: str, *, window: Window | None = None, dense: bool = False
) -> pl.LazyFrame:
    """The table ``name`` of the store built into ``out_dir`` (a ``build``, ``callbacks``,
    ``run`` or ``demo`` output directory; a path or a string), lazily; with ``window``, the
    rows starting in it (an interval's start; a contact's ``offered_at``, a callback attempt's
    ``created_at``).

    With ``dense`` (``callvolume``, ``callback_intervals``, ``retry_outcomes``; ``window``
    required), the zero-filled grid of the window: the builder's own table for that window (a
    window starting or ending inside an interval is widened to whole intervals, as the builder
    widens it); the volume table's ratios are as stored on busy rows and null on the zeros.
    Zeros are made only inside the span the store's builds covered (:func:`covered_span`): a
    window reaching outside it is refused, not filled with counts nobody took.

    Raises:
        StoreError: no such table in the store; ``dense`` over a window reaching outside what
            its builds covered (the message names that span).
        ValueError: ``dense`` without a ``window``, or for a table that is not zero-filled; a
            naive or reversed ``window``.
    """
    out_dir = Path(out_dir)
    path = out_dir / "store" / name
    if not delta.is_table(path):
        raise StoreError(f"{out_dir}: no store/{name} table (run `wfm-intervals build` first)")
    frame, at = delta.scan(path), pl.col(_STARTS.get(name, "interval_start_utc"))
    if not dense:
        if window is None:
            return frame
        if any(w.tzinfo is None for w in window) or window[1] <= window[0]:
            raise ValueError(f"window {window[0]} .. {window[1]}: two aware instants in order")
        lo, hi = (w.astimezone(UTC) for w in window)  # the stored instants are UTC
        return frame.filter(at >= lo, at < hi)
    if window is None or name not in SHAPES:
        raise ValueError(f"dense=True needs a window and one of {', '.join(SHAPES)}")
    # the window widened to whole intervals, as the builder widens it: the rows of an interval
    # the window starts or ends inside are that interval's rows, not zeros
    whole = built_with(out_dir, name).grid(window, checked=False)  # held to what was built
    grid, (first, end) = whole.frame, whole.window
    span = covered_span(out_dir, name, frame)
    if span is None or first < span[0] or end > span[1]:
        built = "nothing" if span is None else " .. ".join(_z(t) for t in span)
        msg = (
            f"{out_dir}: the window {_z(first)} .. {_z(end)} reaches outside what the builds "
            f"of {name} covered ({built}): no zeros are made where nothing was counted; read "
            "a window inside it, or build the rest first"
        )
        raise StoreError(msg)
    frame = frame.filter(at >= first, at < end)
    seen = None
    if name == "retry_outcomes" and delta.is_table(out_dir / "store" / "callback_intervals"):
        seen = delta.scan(out_dir / "store" / "callback_intervals")
    if name != "callvolume":
        return fill(frame, name, grid, seen=seen)
    if not set(callvolume.DERIVED) <= set(frame.collect_schema().names()):
        return callvolume.derive(fill(frame, name, grid), settings=built_with(out_dir, name))
    return filled_volume(frame, grid)


def _z(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def filled_volume(rows: pl.LazyFrame, grid: pl.DataFrame) -> pl.LazyFrame:
    """A volume table's rows (busy rows as stored, with their ratios) zero-filled over ``grid``
    (:func:`engine.tables.dense.fill`): the ratios as stored on the busy rows and null on the
    zeros, where every denominator is zero. Keys in the builder's types."""
    keys = list(callvolume.KEYS)
    ratios = rows.select(*keys, *callvolume.DERIVED).with_columns(
        pl.col(k).cast(callvolume.SCHEMA[k]) for k in keys
    )
    filled = fill(rows, "callvolume", grid)
    return filled.join(ratios, on=keys, how="left", nulls_equal=True, maintain_order="left")
