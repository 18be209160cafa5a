"""The exports of one ``wfm-intervals run``, written from the merged interval tables.

What ``[output]`` asks for, under ``<output.dir>/exports/``:

* ``formats``: ``csv`` and ``ndjson`` dumps of every interval table, zero-filled over the days
  the run rewrote (below), ``kore`` the Contact Volume document (seed 003) of the volume table,
  zero-filled the same way (``parquet`` is the store, always written; it keeps busy rows:
  :mod:`engine.tables.dense`);
* ``vendor_profiles``: the files of each WFM vendor profile, in ``vendor/<profile>/``, of the
  closed intervals only (ended ``settle_minutes`` before the run);
* ``forecast``: ``forecast.parquet``, the long ``unique_id, ds, y`` format of
  ``forecast_metrics``, closed intervals only, ``ds`` in UTC or local (``forecast_time``).

``tables`` are the committed rows (busy rows) of the partitions the run rewrote. Each is
zero-filled over the partition days of its grids, window by window (each run of consecutive
days, up to the last grid's end: every group seen in the window, every interval of it, exactly
the builder's zero-filled table of that window): ``callvolume`` (with the derived ratios) and
``staffing`` (of the filled volume rows) over ``grids``, ``callback_intervals`` and
``retry_outcomes`` over ``callback_grids``. The filling is done a part of the intervals at a
time (:func:`fill_parts`), and each part is written to every file that holds it before the next
is made (:class:`engine.output.files.PartFiles`): the volume parts feed the document, the volume
dumps and the staffing dumps in one pass. So no whole filled table is held for the files, only
for the vendor files and the forecasting format, which need the volume's. The dumps' rows are
in interval order: by interval, then group (``queue_id, channel`` or the call target's
key), as the document (the builders' own dumps are by group, then interval). A table given
without grids is written as given.

Example:
    ``files = export_tables(Path("out"), settings.output, built.tables, grids=plan.volume,
    callback_grids=plan.callbacks)``
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl

from engine import clock
from engine.app.config import OutputSettings
from engine.errors import ExportError
from engine.interval import Grid, interval_grid
from engine.output import files as export
from engine.output.vendor import Profile, builtin_profiles, closed_by, render
from engine.pipeline.tables import staffing_rows
from engine.settings import BuildSettings
from engine.tables import callvolume, staffing
from engine.tables.dense import SHAPES, fill_groups, fill_with, typed
from engine.tables.forecast import long_format

__all__ = ["PART_ROWS", "export_tables", "fill_parts", "remove_stale", "volume_parts"]

#: Rows of a zero-filled table built at once (:func:`fill_parts`).
PART_ROWS = 8_192
_ORDER = ("queue_id", "channel", "interval_start_utc")  # the builders' order of a window
_ROW = "__row"  # a row's position in the rows given
_CALLBACKS = ("callback_intervals", "retry_outcomes")  # filled over the callback grids
#: What the staffing dumps hold beside the stored columns, taken from its volume rows: every
#: interval table's dump shows the interval's end, local start and offset, and the queue's name.
_ALONG = ("interval_end_utc", "interval_start_local", "utc_offset_min", "queue_name")
_STAFFING: dict[str, pl.DataType] = {
    "interval_start_utc": staffing.SCHEMA["interval_start_utc"],
    **{c: callvolume.SCHEMA[c] for c in _ALONG if c != "queue_name"},
    "queue_id": staffing.SCHEMA["queue_id"],
    "queue_name": callvolume.SCHEMA["queue_name"],
    **{c: t for c, t in staffing.SCHEMA.items() if c not in ("interval_start_utc", "queue_id")},
}


def _blocks(grids: Sequence[Grid]) -> list[pl.DataFrame]:
    """The intervals of each run of consecutive partition days (UTC dates) of ``grids``, from
    the first grid's start on its first day (a first run from a mid-day start: no zeros before
    it, which a vendor's import would take for counts) to the last grid's end: the windows the
    volume table is zero-filled over (SPEC §4)."""
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
        lo = max(lo, min(g.start for g in grids if run[0] in g.days))
        hi = min(end, datetime.combine(run[-1] + timedelta(days=1), datetime.min.time(), UTC))
        grid = interval_grid(lo, hi, minutes=grids[0].minutes, tz=grids[0].tz)
        blocks.append(grid.filter(pl.col("interval_start_utc").dt.date().is_in(run)))
    return blocks


def fill_parts(
    rows: pl.DataFrame,
    name: str,
    grid: pl.DataFrame,
    *,
    seen: pl.DataFrame | None = None,
    part_rows: int = PART_ROWS,
) -> Iterator[pl.DataFrame]:
    """:func:`engine.tables.dense.fill` of ``rows`` over ``grid``, a part at a time: each part is
    the filled rows of some consecutive intervals of ``grid`` (about ``part_rows`` rows), every
    group seen in the whole of ``grid`` with its name there, sorted by group, then interval; so
    the whole filled table is never held. The parts in turn, each sorted by group and interval,
    are :func:`~engine.tables.dense.fill`'s table (a property in the tests). ``seen``: the call
    targets seen in the window, for ``retry_outcomes`` (as :func:`~engine.tables.dense.fill`).

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
    known = None if seen is None else seen.lazy()
    inside, combos, names = fill_groups(rows.lazy().with_row_index(_ROW), name, grid, known)
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


def _by_interval(part: pl.DataFrame, name: str) -> pl.DataFrame:
    """A part of :func:`fill_parts` in the dumps' order: by interval, then group."""
    group = SHAPES["callvolume" if name == "staffing" else name].group
    return part.sort(["interval_start_utc", *group], nulls_last=False)


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
    remove_stale(folder, profile, written, every=True)
    return written


def remove_stale(
    folder: Path, profile: Profile, written: Iterable[Path], *, every: bool = False
) -> list[Path]:
    """Remove from ``folder`` what an earlier export of ``profile`` left there and this one did
    not write (``written``: a part beyond this export's last, a queue no longer seen): with
    ``every`` (a run's own ``vendor/<profile>`` folder), anything else in it; else only the
    files the last export recorded writing there (``.<profile>.exported.json``, rewritten with
    this export's files): never a file the exports did not write, whatever its name. A profile
    whose file names carry ``{run}`` removes nothing: each export is a delivery of its own,
    which the vendor's import may not have collected yet. Returns what was removed.

    Raises:
        OSError: a file could not be removed, or the record not written.
    """
    keep, removed = set(written), []
    if every:
        stale = [p for p in sorted(folder.iterdir()) if p not in keep] if folder.is_dir() else []
    elif "{run}" in profile.file_name:
        return []
    else:
        record = folder / f".{profile.name}.exported.json"
        try:
            names = json.loads(record.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            names = []  # no record (a first export, or torn): nothing is taken for its
        listed = [n for n in names if isinstance(n, str)] if isinstance(names, list) else []
        stale = [folder / n for n in listed if Path(n).name == n and folder / n not in keep]
        export.write_text(json.dumps(sorted(p.name for p in keep)), record)
    for path in stale:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
        else:
            continue
        removed.append(path)
    return removed


def export_tables(
    out: Path,
    output: OutputSettings,
    tables: Mapping[str, pl.DataFrame],
    *,
    grids: Sequence[Grid] = (),
    callback_grids: Sequence[Grid] = (),
    build: BuildSettings | None = None,
    now: datetime | None = None,
) -> list[Path]:
    """Write the exports ``output`` asks for from ``tables`` (name -> committed busy rows),
    zero-filled: ``callvolume`` and ``staffing`` over ``grids`` with ``build``'s ratios and
    staffing, the callback tables over ``callback_grids`` (see the module). The dumps of each
    table are written a part at a time, its rows by interval, then group.

    The vendor files and the forecasting format hold the intervals closed at ``now`` (default:
    the clock's now): ended at least ``output.settle_minutes`` before it.

    Raises:
        ExportError: a vendor profile does not fit the table (the message names the setting).

    Example:
        >>> import tempfile
        >>> export_tables(Path(tempfile.mkdtemp()), OutputSettings(), {})
        []
    """
    exports, settings = out / "exports", build or BuildSettings()
    whole = bool(output.vendor_profiles or output.forecast)  # they read the filled volume
    files: list[Path] = []
    volume = tables.get("callvolume")
    if volume is not None and grids:  # the document, the volume and staffing dumps: one pass
        files, volume = _volume_files(exports, output, tables, grids, settings, keep=whole)
    else:  # as given
        if volume is not None and "kore" in output.formats:
            path, unit = exports / "callvolume_document.json", output.duration_unit
            files.append(export.write_document(volume, path, org_id=output.org_id, unit=unit))
        for name in ("callvolume", "staffing"):
            if (given := tables.get(name)) is not None:
                files += _dumps(exports, output, name, iter([given]), given.schema)
    for name in _CALLBACKS:
        if (rows := tables.get(name)) is not None:
            seen = tables.get("callback_intervals") if name == "retry_outcomes" else None
            parts = _filled(rows, name, callback_grids, seen=seen)
            files += _dumps(exports, output, name, parts, SHAPES[name].schema)
    if volume is None:
        return files
    at = now or clock.now()
    closed = closed_by(at, output.settle_minutes)
    for name in output.vendor_profiles:
        files += _vendor(out, name, volume, closed, at)
    if output.forecast:
        frame = long_format(
            volume.lazy(), metrics=output.forecast_metrics, time=output.forecast_time,
            closed=closed, tz=settings.tz,
        ).collect()  # fmt: skip
        files.append(export.write_parquet(frame, exports / "forecast.parquet"))
    return files


def _filled(
    rows: pl.DataFrame, name: str, grids: Sequence[Grid], *, seen: pl.DataFrame | None = None
) -> Iterator[pl.DataFrame]:
    """Table ``name``'s committed ``rows`` zero-filled over ``grids``' windows a part at a time,
    in the dumps' order (``rows`` as given without grids)."""
    if not grids:
        yield rows
        return
    for block in _blocks(grids):
        for part in fill_parts(rows, name, block, seen=seen):
            yield _by_interval(part, name)


def _writers(
    files: export.PartFiles,
    exports: Path,
    output: OutputSettings,
    name: str,
    schema: Mapping[str, pl.DataType],
) -> list[Callable[[pl.DataFrame], None]]:
    """What writes a part of table ``name`` to each of the dumps ``output`` asks for."""
    writers = []
    if "csv" in output.formats:
        writers.append(files.csv(exports / f"{name}.csv", schema))
    if "ndjson" in output.formats:
        writers.append(files.ndjson(exports / f"{name}.ndjson"))
    return writers


def _dumps(
    exports: Path,
    output: OutputSettings,
    name: str,
    parts: Iterator[pl.DataFrame],
    schema: Mapping[str, pl.DataType],
) -> list[Path]:
    """The CSV and NDJSON dumps of table ``name`` that ``output`` asks for, from its ``parts``
    (of ``schema``; drawn once, and only when a dump is asked for)."""
    with export.PartFiles() as files:
        if writers := _writers(files, exports, output, name, schema):
            for part in parts:
                for write in writers:
                    write(part)
    return files.paths


def _volume_files(
    exports: Path,
    output: OutputSettings,
    tables: Mapping[str, pl.DataFrame],
    grids: Sequence[Grid],
    settings: BuildSettings,
    *,
    keep: bool,
) -> tuple[list[Path], pl.DataFrame | None]:
    """The volume table's document and dumps and the staffing dumps (``staffing`` of each
    filled volume part, when ``tables`` has that table), in one pass over the volume's parts
    (:func:`volume_parts`); when ``keep``, also the filled volume table, whole (window by
    window in the builders' order)."""
    rows, held = tables["callvolume"], []
    empty = pl.LazyFrame(schema=callvolume.SCHEMA)
    schema = callvolume.derive(empty, settings=settings).collect_schema()
    with export.PartFiles() as files:
        document = None
        if "kore" in output.formats:
            path, unit = exports / "callvolume_document.json", output.duration_unit
            document = files.document(path, org_id=output.org_id, unit=unit)
        volume = _writers(files, exports, output, "callvolume", schema)
        need = []
        if "staffing" in tables:
            need = _writers(files, exports, output, "staffing", _STAFFING)
        if document or volume or need or keep:  # else nothing reads the parts
            for i, part in volume_parts(rows, grids, settings):
                if document is not None:
                    document(part)
                ordered = _by_interval(part, "callvolume")
                for write in volume:
                    write(ordered)
                if need:  # row by row of the volume rows, in their order
                    table = staffing_rows(ordered, settings=settings)
                    table = table.hstack(ordered.select(_ALONG)).select(list(_STAFFING))
                    for write in need:
                        write(table)
                if keep:
                    held.append((i, part))
    return files.paths, _in_order(held, rows) if keep else None
