"""The pipeline edge: read inputs, run the pure builders, collect once, write every output.

Everything else in ``engine`` is a pure ``LazyFrame -> LazyFrame`` function; this module is where
frames are collected and files are written.

Example:
    >>> from pathlib import Path
    >>> from engine.settings import BuildSettings
    >>> from engine.demo.contacts import generate_contacts
    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp())
    >>> report = build_contacts(generate_contacts(days=1).lazy(), settings=BuildSettings(),
    ...                         out_dir=out)
    >>> report.quarantined_total
    0
"""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal, NoReturn

import polars as pl

from engine.app.sections import EngineSettings
from engine.errors import NothingValidError
from engine.interval import Grid, Window
from engine.output import delta, location
from engine.output import files as export
from engine.output.contacts import scan_files, sink_contacts
from engine.output.datafiles import discard
from engine.schema import CONTACTS
from engine.settings import BuildSettings
from engine.tables import callvolume
from engine.tables.dense import busy, check_filled, filled_size

__all__ = [
    "FORMATS",
    "BuildReport",
    "build_contacts",
    "build_report",
    "data_window",
    "iso_utc",
    "nothing_valid",
    "quarantine_counts",
    "volume_table",
]

Format = Literal["parquet", "csv", "ndjson", "kore"]
FORMATS: tuple[Format, ...] = ("parquet", "csv", "ndjson", "kore")


def data_window(
    contacts: pl.DataFrame | pl.LazyFrame, settings: BuildSettings, *, filled: bool = False
) -> Grid:
    """The smallest whole-interval grid holding every segment's attribution instant.

    Raises:
        ValueError: no contacts; or, when the table is ``filled`` (zero rows built), it would
            hold too many rows over the contacts' queue x channel pairs (:func:`check_filled`).
    """
    at = pl.coalesce("ended_at" if settings.attribution == "end" else "offered_at", "offered_at")
    pairs = pl.struct("queue_id", "channel").n_unique().alias("pairs")
    sizes = [pairs, pl.len()] if filled else []  # what check_filled needs, only then
    lo, hi, *counted = (
        contacts.lazy().select(at.min(), at.max().alias("hi"), *sizes).collect().row(0)
    )
    if lo is None:
        msg = "no valid contacts to take a window from: give --start and --end"
        raise ValueError(msg)
    if filled:
        what = ("contacts", "queue x channel pairs")
        check_filled(lo, hi, *counted, minutes=settings.interval_minutes, what=what)
    return settings.grid((lo, hi + timedelta(microseconds=1)), checked=False)


def nothing_valid(quarantine: pl.DataFrame, path: Path, what: str) -> NoReturn:
    """Write ``quarantine`` (every row read) to ``path``, then raise :class:`NothingValidError`
    naming its reasons: with no window given, there is nothing to take one from."""
    export.write_csv(quarantine, path)
    reasons = ", ".join(f"{r} {n:,}" for r, n in quarantine_counts(quarantine).items())
    msg = (
        f"no valid {what}: every row read was quarantined ({reasons}; written to "
        f"{location.shown(path)}), so there is no window to build"
    )
    raise NothingValidError(msg)


@dataclass
class BuildReport:
    """What a build read, rejected and wrote (printed by the CLI, saved as ``summary.json``)."""

    rows_in: int
    contacts: int
    quarantined: dict[str, int]
    collapsed: int
    window: tuple[str, str]
    interval_minutes: int
    tz: str
    intervals: int
    queue_channels: int
    table_rows: int
    #: the service-level settings the table was built with (:meth:`BuildSettings.sl_record`):
    #: its ``service_level`` formula, thresholds and targets, for a report of the store
    sl_settings: dict[str, Any] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def quarantined_total(self) -> int:
        """Rows quarantined for any reason."""
        return sum(self.quarantined.values())


def _write_table(
    name: str, table: pl.DataFrame, out_dir: Path, formats: tuple[Format, ...], **kore: Any
) -> list[Path]:
    written: list[Path] = []
    if "parquet" in formats:  # the store keeps busy rows (engine.tables.dense)
        store = out_dir / "store" / name
        written.append(export.write_store(table.filter(busy(name)), store, by="interval_start_utc"))
    if "csv" in formats:
        written.append(export.write_csv(table, out_dir / "exports" / f"{name}.csv"))
    if "ndjson" in formats:
        written.append(export.write_ndjson(table, out_dir / "exports" / f"{name}.ndjson"))
    if "kore" in formats and name == "callvolume":
        path = out_dir / "exports" / "callvolume_document.json"
        written.append(export.write_document(table, path, **kore))
    return written


def build_contacts(
    contacts: pl.LazyFrame,
    *,
    settings: BuildSettings,
    out_dir: Path,
    window: Window | None = None,
    formats: tuple[Format, ...] = FORMATS,
    org_id: str = "wfm-intervals",
    duration_unit: export.DurationUnit = "ms",
    set_aside: pl.DataFrame | None = None,
    engine: EngineSettings | None = None,
) -> BuildReport:
    """Validate contacts, build the volume table and write the store and exports.

    Args:
        contacts: contacts in the canonical shape (text columns allowed).
        settings: what to build.
        out_dir: where ``store/``, ``exports/`` and ``summary.json`` go.
        window: ``[start, end)``; default: the whole-interval span of the data.
        formats: which outputs to write besides the quarantine and summary.
        org_id: ``orgId`` of the Contact Volume document.
        duration_unit: durations of the Contact Volume document.
        set_aside: quarantine rows of the input found before
            (:func:`engine.output.inputs.read_input`).
        engine: where the volume table is built (:func:`volume_table`; default: here).
    """
    began, tag = time.perf_counter(), uuid.uuid4().hex[:12]
    path, ray = out_dir / "store" / "contacts", engine is not None and engine.kind == "ray"
    try:  # the contacts sunk to the store's files as they stream: never held
        sunk = sink_contacts(contacts, path, tag=tag, max_duration_ms=settings.max_duration_ms)
        clean, quarantine = scan_files(path, sunk.files), sunk.quarantine
        if set_aside is not None and set_aside.height:
            quarantine = pl.concat([set_aside.cast(quarantine.schema), quarantine])
        if window is None and not sunk.contacts and quarantine.height:
            nothing_valid(quarantine, out_dir / "quarantine" / "contacts.csv", "contacts")
        # Parquet alone is the store, which keeps busy rows: then no zero row is built
        dense = any(f != "parquet" for f in formats)
        grid = settings.grid(window) if window else data_window(clean, settings, filled=dense)
        if not ray:  # built from the files, then committed: a failure leaves the store as it was
            table = volume_table(clean, window=grid, settings=settings, dense=dense)
        delta.commit_files(path, sunk.files, schema=pl.Schema(CONTACTS), tag=tag)
    except BaseException:
        discard(path, tag)  # files no version names: the store is as it was
        raise
    into = None if dense or not ray else out_dir / "store" / "callvolume"  # the tasks write it
    if ray:  # committed first: the cluster's tasks read the store's partitions themselves
        table = volume_table(clean, window=grid, settings=settings, dense=dense, engine=engine,
                             stored=path, into=into)  # fmt: skip
    rows_in, files = sunk.rows_in + (0 if set_aside is None else set_aside.height), [path]
    kore = {"org_id": org_id, "unit": duration_unit}
    files += [into] if into else _write_table("callvolume", table, out_dir, formats, **kore)
    files.append(export.write_csv(quarantine, out_dir / "quarantine" / "contacts.csv"))
    report = build_report(
        table, rows_in=rows_in, contacts=sunk.contacts, quarantine=quarantine,
        window=grid, settings=settings, busy_only=not dense,
    )  # fmt: skip
    report.files = [location.shown(f) for f in files]
    report.seconds = round(time.perf_counter() - began, 3)
    summary = out_dir / "summary.json"
    export.write_json(asdict(report), summary)
    report.files.append(location.shown(summary))
    return report


def volume_table(
    contacts: pl.DataFrame | pl.LazyFrame,
    *,
    window: Window | Grid,
    settings: BuildSettings,
    dense: bool = True,
    engine: EngineSettings | None = None,
    stored: Path | None = None,
    into: Path | None = None,
) -> pl.DataFrame:
    """The volume table of ``window`` (with its derived ratios) from validated contacts; with
    ``dense=False`` its busy rows only (:func:`engine.tables.callvolume.busy_rows`). Built here,
    or on the Ray cluster of ``engine`` (:func:`engine.distributed.ray_engine.volume_table`:
    ``into`` as there, ``stored`` its ``contacts``: the committed store table of ``contacts``).

    Raises:
        ClusterError: the ray engine without Ray, or its cluster cannot be joined.
    """
    if engine is not None and engine.kind == "ray":
        from engine.distributed import ray_engine  # noqa: PLC0415 - an optional extra

        grid, rows = settings.grid(window), contacts.lazy().collect() if stored is None else stored
        return ray_engine.volume_table(
            rows, grid=grid, settings=settings, address=engine.address, dense=dense, into=into
        )
    make = callvolume.build if dense else callvolume.busy_rows
    lazy = make(contacts.lazy(), window=window, settings=settings)
    return callvolume.derive(lazy, settings=settings).collect(engine="streaming")


def build_report(
    table: pl.DataFrame,
    *,
    rows_in: int,
    contacts: int,
    quarantine: pl.DataFrame,
    window: Window | Grid,
    settings: BuildSettings,
    busy_only: bool = False,
) -> BuildReport:
    """What a build of ``table`` did: rows in, kept, quarantined and collapsed, and the table's
    shape (``files`` and ``seconds`` are the caller's to fill in). ``busy_only``: ``table`` is
    the busy rows of the window's table; the shape is the whole (zero-filled) table's."""
    grid = settings.grid(window, checked=False)  # the grid of a build, made before
    window, pairs = grid.window, table.select("queue_id", "channel").n_unique()
    intervals, table_rows = table["interval_start_utc"].n_unique(), table.height
    if busy_only:
        intervals, table_rows = filled_size(table, "callvolume", grid.frame)
    return BuildReport(
        rows_in=rows_in,
        contacts=contacts,
        quarantined=quarantine_counts(quarantine),
        collapsed=rows_in - contacts - quarantine.height,
        window=(iso_utc(window[0]), iso_utc(window[1])),
        interval_minutes=settings.interval_minutes,
        tz=settings.tz,
        intervals=intervals,
        queue_channels=pairs,
        table_rows=table_rows,
        sl_settings=settings.sl_record(),
    )


def iso_utc(value: datetime) -> str:
    """An instant as ISO 8601 with ``Z`` (the summaries' format)."""
    return value.isoformat().replace("+00:00", "Z")


def quarantine_counts(quarantine: pl.DataFrame) -> dict[str, int]:
    """Quarantined rows per reason, in reason order."""
    rows = quarantine.group_by("reason").len().sort("reason").iter_rows()
    return {str(reason): int(n) for reason, n in rows}
