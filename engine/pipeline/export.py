"""The exports of one ``wfm-intervals run``, written from the merged interval tables.

What ``[output]`` asks for, under ``<output.dir>/exports/``:

* ``formats``: ``csv`` and ``ndjson`` of every interval table as the store holds it (busy rows:
  :mod:`engine.tables.dense`), ``kore`` the Contact Volume document (seed 003) of the volume
  table, zero-filled (``parquet`` is the store, always written);
* ``vendor_profiles``: the files of each WFM vendor profile, in ``vendor/<profile>/``, of the
  closed intervals only (ended ``settle_minutes`` before the run);
* ``forecast``: ``forecast.parquet``, the long ``unique_id, ds, y`` format of
  ``forecast_metrics``, closed intervals only, ``ds`` in UTC or local (``forecast_time``).

``tables`` are as the store holds them (busy rows). The volume table is zero-filled over the
partition days of its ``grids`` (:func:`volume_parts`: every queue seen in a run of consecutive
days, every interval of it, with the derived ratios), a part of the intervals at a time: the
document is written part by part, and the whole filled history is held only for the vendor
files and the forecasting format, which need it. The CSV and NDJSON dumps hold the busy rows of
that table, found among the stored rows (:func:`busy_volume`), not gathered from the parts.

Example:
    ``files = export_tables(Path("out"), settings.output, built.tables, grids=plan.volume)``
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl

from engine import clock
from engine.app.config import OutputSettings
from engine.errors import ExportError
from engine.interval import Grid, interval_grid
from engine.output import files as export
from engine.output.vendor import builtin_profiles, closed_by, render
from engine.settings import BuildSettings
from engine.tables import callvolume
from engine.tables.dense import busy, busy_filled, fill_groups, fill_with, typed
from engine.tables.forecast import long_format

__all__ = ["PART_ROWS", "busy_volume", "export_tables", "fill_parts", "volume_parts"]

#: Rows of the zero-filled volume table built at once (:func:`volume_parts`).
PART_ROWS = 8_192
_ORDER = ("queue_id", "channel", "interval_start_utc")  # the builders' order of a window
_ROW = "__row"  # a row's position in the rows given


def _blocks(grids: Sequence[Grid]) -> list[pl.DataFrame]:
    """The intervals of each run of consecutive partition days (UTC dates) of ``grids``, up to
    the last grid's end: the windows the volume table is zero-filled over (SPEC §4)."""
    end = max(g.end for g in grids)
    days = sorted(set().union(*(g.days for g in grids)))
    runs: list[list[date]] = [[days[0]]]
    for day in days[1:]:
        if day - runs[-1][-1] == timedelta(days=1):
            runs[-1].append(day)
        else:
            runs.append([day])
    blocks = []
    for run in runs:
        lo = datetime.combine(run[0], datetime.min.time(), UTC)
        hi = min(end, datetime.combine(run[-1] + timedelta(days=1), datetime.min.time(), UTC))
        grid = interval_grid(lo, hi, minutes=grids[0].minutes, tz=grids[0].tz)
        blocks.append(grid.filter(pl.col("interval_start_utc").dt.date().is_in(run)))
    return blocks


def fill_parts(
    rows: pl.DataFrame, name: str, grid: pl.DataFrame, *, part_rows: int = PART_ROWS
) -> Iterator[pl.DataFrame]:
    """:func:`engine.tables.dense.fill` of ``rows`` over ``grid``, a part at a time: each part is
    the filled rows of some consecutive intervals of ``grid`` (about ``part_rows`` rows), every
    group seen in the whole of ``grid`` with its name there, sorted by group, then interval; so
    the whole filled table is never held. The parts in turn, each sorted by group and interval,
    are :func:`~engine.tables.dense.fill`'s table (a property in the tests).

    Example:
        >>> from datetime import datetime, UTC
        >>> from engine.interval import interval_grid
        >>> at = datetime(2026, 10, 1, tzinfo=UTC)
        >>> grid = interval_grid(at, at.replace(hour=1), minutes=15, tz="UTC")
        >>> counts = dict.fromkeys(callvolume.ADDITIVE, pl.lit(1))
        >>> rows = grid.head(1).with_columns(queue_id=pl.lit("q"), queue_name=pl.lit("Q"),
        ...                                  channel=pl.lit("voice"), **counts)
        >>> [p.height for p in fill_parts(rows, "callvolume", grid, part_rows=3)]
        [3, 1]
    """
    if part_rows < 1:
        raise ValueError(f"part_rows must be >= 1, got {part_rows}")
    at = pl.col("interval_start_utc")
    inside, combos, names = fill_groups(rows.lazy().with_row_index(_ROW), name, grid)
    # once for all: the groups, their names, and the rows inside in interval order, as their
    # positions in ``rows`` (a part's rows are gathered from there, no sorted copy is held)
    order, groups, labels = pl.collect_all([inside.select(_ROW, at).sort(at), combos, names])
    step = max(1, part_rows // max(1, groups.height))
    starts, positions = order.get_column("interval_start_utc"), order.get_column(_ROW)
    for part in grid.iter_slices(step):
        bounds = pl.concat([part["interval_start_utc"].head(1), part["interval_end_utc"].tail(1)])
        first, last = starts.search_sorted(bounds, side="left").to_list()
        rows_in = typed(rows[positions.slice(first, last - first)].lazy(), name)
        yield fill_with(rows_in, name, part, groups.lazy(), labels.lazy()).collect()


def volume_parts(
    rows: pl.DataFrame,
    grids: Sequence[Grid],
    settings: BuildSettings,
    *,
    part_rows: int = PART_ROWS,
) -> Iterator[tuple[int, pl.DataFrame]]:
    """The volume table's committed busy ``rows`` zero-filled over ``grids``' partition days,
    with the derived ratios, in parts of about ``part_rows`` rows: ``(window, part)``, the
    windows (runs of consecutive days) and their intervals in order. Each window's parts, sorted
    by queue, channel and interval, are its zero-filled table
    (:func:`fill_parts`)."""
    for i, block in enumerate(_blocks(grids)):
        for part in fill_parts(rows, "callvolume", block, part_rows=part_rows):
            yield i, callvolume.derive(part.lazy(), settings=settings).collect()


def busy_volume(rows: pl.DataFrame, grids: Sequence[Grid], settings: BuildSettings) -> pl.DataFrame:
    """The busy rows of :func:`volume_parts`' table, window by window in its order (the parts
    of each window sorted by queue, channel and interval), with the derived ratios: found among
    the stored ``rows`` (:func:`engine.tables.dense.busy_filled`), not in the filled grid."""
    windows = [
        callvolume.derive(busy_filled(rows.lazy(), "callvolume", block), settings=settings)
        for block in _blocks(grids)
    ]
    return pl.concat(windows).collect()


def _busy_only(rows: pl.DataFrame, name: str) -> pl.DataFrame:
    """``rows`` without their rows that are not busy (the same frame when every one is: a
    table of busy rows is not copied)."""
    kept = rows.select(busy(name)).to_series()
    return rows if kept.all() else rows.filter(kept)


def _in_order(parts: list[tuple[int, pl.DataFrame]], like: pl.DataFrame) -> pl.DataFrame:
    """The parts of each window in the builders' order (group, then interval), window by
    window."""
    windows: dict[int, list[pl.DataFrame]] = {}
    for i, part in parts:
        windows.setdefault(i, []).append(part)
    ordered = [pl.concat(w).sort(_ORDER, nulls_last=False) for w in windows.values()]
    return pl.concat(ordered) if ordered else like


def _vendor(
    out: Path, name: str, table: pl.DataFrame, closed: datetime, now: datetime
) -> list[Path]:
    profile = builtin_profiles()[name]
    try:
        files = render(table, profile, closed=closed, run_at=now)
    except ExportError as exc:
        raise ExportError(f"output.vendor_profiles: {name}: {exc}") from None
    folder = out / "exports" / "vendor" / name
    # each file replaced whole (a vendor's import polling the folder never reads a torn one),
    # then what an earlier run's split made and this one did not is removed
    written = [export.write_text(text, folder / file_name) for file_name, text in files]
    for stale in set(folder.iterdir() if folder.is_dir() else ()) - set(written):
        if stale.is_dir():
            shutil.rmtree(stale)
        else:
            stale.unlink()
    return written


def export_tables(
    out: Path,
    output: OutputSettings,
    tables: Mapping[str, pl.DataFrame],
    *,
    grids: Sequence[Grid] = (),
    build: BuildSettings | None = None,
    now: datetime | None = None,
) -> list[Path]:
    """Write the exports ``output`` asks for from ``tables`` (name -> committed busy rows;
    ``callvolume`` zero-filled over ``grids`` with ``build``'s ratios, see the module).

    The vendor files and the forecasting format hold the intervals closed at ``now`` (default:
    the clock's now): ended at least ``output.settle_minutes`` before it.

    Raises:
        ExportError: a vendor profile does not fit the table (the message names the setting).

    Example:
        >>> import tempfile
        >>> export_tables(Path(tempfile.mkdtemp()), OutputSettings(), {})
        []
    """
    exports = out / "exports"
    kept = tables.get("callvolume")
    whole = bool(output.vendor_profiles or output.forecast)
    volume = kept
    wanted = whole or bool({"kore", "csv", "ndjson"} & set(output.formats))  # else: unread
    if kept is not None and grids and kept.height and wanted:
        settings = build or BuildSettings()
        if whole:  # the vendor files and the forecast read every filled row: kept from the parts
            parts: list[tuple[int, pl.DataFrame]] = []

            def filled() -> Iterator[pl.DataFrame]:
                for i, part in volume_parts(kept, grids, settings):
                    parts.append((i, part))
                    yield part

            files = _document(exports, output, filled())
            volume = _in_order(parts, kept)
            del parts
        else:  # the text dumps' busy rows, found in the stored rows (no zero row held for them)
            files = _document(exports, output, (p for _, p in volume_parts(kept, grids, settings)))
            volume = busy_volume(kept, grids, settings)
    else:
        files = [] if volume is None else _document(exports, output, iter([volume]))
    for name, table in tables.items():
        rows = volume if name == "callvolume" else table
        assert rows is not None
        rows = _busy_only(rows, name)  # the table as the store holds it: busy rows
        if "csv" in output.formats:
            files.append(export.write_csv(rows, exports / f"{name}.csv"))
        if "ndjson" in output.formats:
            files.append(export.write_ndjson(rows, exports / f"{name}.ndjson"))
    if volume is None:
        return files
    at = now or clock.now()
    closed = closed_by(at, output.settle_minutes)
    for name in output.vendor_profiles:
        files += _vendor(out, name, volume, closed, at)
    if output.forecast:
        ended = volume.lazy().filter(pl.col("interval_end_utc") <= closed)
        frame = long_format(
            ended, metrics=output.forecast_metrics, time=output.forecast_time
        ).collect()
        files.append(export.write_parquet(frame, exports / "forecast.parquet"))
    return files


def _document(exports: Path, output: OutputSettings, parts: Iterator[pl.DataFrame]) -> list[Path]:
    """The Contact Volume document of the volume table's ``parts`` (when ``kore`` is asked
    for; the parts are drawn either way)."""
    if "kore" not in output.formats:
        for _ in parts:
            pass
        return []
    path, unit = exports / "callvolume_document.json", output.duration_unit
    return [export.write_document(parts, path, org_id=output.org_id, unit=unit)]
