"""The tables of one ``wfm-intervals run``: build a window and merge it into the output store.

:func:`build_tables` builds the window with the pipeline edges
(:func:`engine.pipeline.build.build_contacts`, :func:`engine.pipeline.callbacks.build_callbacks`)
into a
staging directory inside the output directory, then moves the results into place:

* ``store/contacts`` and ``store/callback_attempts`` (every canonical row) replace the old ones;
* each interval table (``callvolume``, ``callback_intervals``, ``retry_outcomes``) keeps its
  rows outside the window and takes the window's rows from the build (:func:`merge_window`);
* ``quarantine/contacts.csv`` and ``quarantine/callback_attempts.csv`` hold what the connectors
  set aside (landing and normalisation) plus what the build's validation did;
* ``summary.json`` and ``callbacks_summary.json`` count those quarantined rows too.

Example:
    ``built = build_tables(out, build=BuildSettings(), window=w, contacts=rows, ...)``
"""

from __future__ import annotations

import shutil
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import polars as pl

from engine.interval import Window, interval_grid
from engine.output import files as export
from engine.pipeline import build as pipeline
from engine.pipeline.build import BuildReport
from engine.pipeline.callbacks import CallbackReport, build_callbacks
from engine.schema import QUARANTINE
from engine.settings import BuildSettings
from engine.tables import callback_intervals, callvolume, retry_outcomes

__all__ = ["TABLES", "Built", "IntervalTable", "build_tables", "merge_window", "read_store"]


@dataclass(frozen=True)
class IntervalTable:
    """How an interval table is keyed: its group columns, additive columns and label."""

    name: str
    group: tuple[str, ...]
    additive: tuple[str, ...]
    label: tuple[str, str]  #: (name column, the id column it names)


#: The interval tables a run merges, by name.
TABLES: Final = {
    t.name: t
    for t in (
        IntervalTable(
            "callvolume", ("queue_id", "channel"), callvolume.ADDITIVE, ("queue_name", "queue_id")
        ),
        IntervalTable(
            "callback_intervals",
            callback_intervals.GROUP,
            callback_intervals.ADDITIVE,
            ("call_target_name", "call_target_id"),
        ),
        IntervalTable(
            "retry_outcomes",
            retry_outcomes.GROUP,
            retry_outcomes.COUNTS,
            ("call_target_name", "call_target_id"),
        ),
    )
}


@dataclass
class Built:
    """What :func:`build_tables` wrote: the build reports, row counts per table, files."""

    contacts: BuildReport | None = None
    callbacks: CallbackReport | None = None
    rows: dict[str, int] = field(default_factory=dict)  #: table -> rows in the store
    window_rows: dict[str, int] = field(default_factory=dict)  #: table -> rows in the window
    tables: dict[str, pl.DataFrame] = field(default_factory=dict)  #: interval tables, merged
    files: list[Path] = field(default_factory=list)


def read_store(out_dir: Path, name: str) -> pl.DataFrame | None:
    """The stored table ``name`` under ``out_dir/store``, or ``None`` when there is none.

    Example:
        >>> read_store(Path("/nonexistent"), "callvolume") is None
        True
    """
    directory = out_dir / "store" / name
    if not any(directory.rglob("*.parquet")):
        return None
    return pipeline.read_table(directory).collect()


def _conform(frame: pl.DataFrame, schema: pl.Schema) -> pl.DataFrame:
    missing = [pl.lit(None, dtype).alias(c) for c, dtype in schema.items() if c not in frame]
    return frame.with_columns(missing).select(schema.names()).cast(schema)


def merge_window(
    existing: pl.DataFrame | None, fresh: pl.DataFrame, *, grid: pl.DataFrame, table: IntervalTable
) -> pl.DataFrame:
    """The stored rows outside ``grid``'s span, plus ``fresh`` (the span rebuilt).

    A group the store has rows for inside the span but ``fresh`` does not (its contacts moved
    away) gets zero rows over the span, so rebuilding an unchanged window changes nothing.

    Example:
        >>> from datetime import datetime, UTC
        >>> at = datetime(2026, 10, 1, tzinfo=UTC)
        >>> grid = interval_grid(at, at.replace(minute=30), minutes=15, tz="UTC")
        >>> old = grid.with_columns(queue_id=pl.lit("q"), queue_name=pl.lit("Q"),
        ...                         channel=pl.lit("voice"), offered=pl.lit(2))
        >>> merged = merge_window(old, old.clear(), grid=grid, table=TABLES["callvolume"])
        >>> merged["offered"].to_list()
        [0, 0]
    """
    if existing is None or existing.height == 0:
        return fresh
    lo, hi = grid["interval_start_utc"][0], grid["interval_end_utc"][-1]
    start = pl.col("interval_start_utc")
    existing = _conform(existing, fresh.schema)
    inside = existing.filter((start >= lo) & (start < hi))
    group, (name, named) = list(table.group), table.label
    missing = (
        inside.select(group)
        .unique()
        .join(fresh.select(group).unique(), on=group, how="anti", nulls_equal=True)
    )
    labels = inside.sort("interval_start_utc").group_by(named).agg(pl.col(name).last())
    pad = (
        missing.join(grid, how="cross")
        .with_columns(pl.lit(0).alias(c) for c in table.additive if c in fresh.columns)
        .join(labels, on=named, how="left", nulls_equal=True)
    )
    outside = existing.filter((start < lo) | (start >= hi))
    parts = [outside, fresh, _conform(pad, fresh.schema)]
    return pl.concat(parts).sort([*group, "interval_start_utc"], nulls_last=True)


def _replace(staged: Path, final: Path) -> None:
    """Move a staged file or directory over ``final`` (a directory: old one removed after)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    if staged.is_file():
        staged.replace(final)
        return
    old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex}")
    if final.exists():
        final.rename(old)
    staged.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def _quarantine(out: Path, staging: Path, name: str, connectors: pl.DataFrame) -> pl.DataFrame:
    staged = staging / "quarantine" / f"{name}.csv"
    built = pl.read_csv(staged, infer_schema=False) if staged.is_file() else None
    frames = [connectors.cast(QUARANTINE)]  # type: ignore[arg-type]
    if built is not None and built.height:
        frames.append(built.cast(QUARANTINE))  # type: ignore[arg-type]
    rows = pl.concat(frames)
    export.write_csv(rows, out / "quarantine" / f"{name}.csv")
    return rows


def _summary(report: Any, rows: pl.DataFrame, extra_rows: int, window: Window) -> dict[str, Any]:
    reasons = Counter(rows["reason"].to_list())
    report.rows_in += extra_rows
    report.quarantined = {str(r): int(n) for r, n in sorted(reasons.items())}
    report.window = tuple(pipeline.iso_utc(t) for t in window)
    return asdict(report)


def _merge(
    out: Path, staging: Path, built: Built, grids: dict[str, pl.DataFrame], *, merge: bool
) -> None:
    start = pl.col("interval_start_utc")
    for name, table in TABLES.items():
        fresh = read_store(staging, name)
        if fresh is None:
            continue
        grid = grids[name]
        existing = read_store(out, name) if merge else None
        merged = merge_window(existing, fresh, grid=grid, table=table)
        lo, hi = grid["interval_start_utc"][0], grid["interval_end_utc"][-1]
        built.window_rows[name] = merged.filter((start >= lo) & (start < hi)).height
        built.rows[name], built.tables[name] = merged.height, merged
        path = export.write_store(merged, out / "store" / name, by="interval_start_utc")
        built.files.append(path)


def build_tables(
    out: Path,
    *,
    build: BuildSettings,
    window: Window,
    callback_window: Window,
    contacts: pl.DataFrame | None = None,
    contact_quarantine: pl.DataFrame | None = None,
    attempts: pl.DataFrame | None = None,
    attempt_quarantine: pl.DataFrame | None = None,
    merge: bool = True,
    org_id: str = "wfm-intervals",
    duration_unit: export.DurationUnit = "ms",
) -> Built:
    """Build the window's tables and merge them into ``out/store`` (see the module docstring).

    Args:
        out: the output directory.
        build: what to build.
        window: the volume table's window (whole intervals).
        callback_window: the callback tables' window (it may start earlier: chains).
        contacts: canonical contacts (``None``: no contact source; the tables stay as they are).
        contact_quarantine: what the connectors set aside for contacts.
        attempts: canonical callback attempts (``None``: no callback source).
        attempt_quarantine: what the connectors set aside for attempts.
        merge: keep the stored rows outside the window (``False``: replace the tables).
        org_id: ``orgId`` of the Contact Volume document.
        duration_unit: durations of the Contact Volume document.
    """
    built = Built()
    staging = out / f".run-staging-{uuid.uuid4().hex}"
    empty = pl.DataFrame(schema=QUARANTINE)
    try:
        if contacts is not None:
            built.contacts = pipeline.build_contacts(
                contacts.lazy(),
                settings=build,
                out_dir=staging,
                window=window,
                formats=("parquet",),
                org_id=org_id,
                duration_unit=duration_unit,
            )
            q = contact_quarantine if contact_quarantine is not None else empty
            rows = _quarantine(out, staging, "contacts", q)
            summary = _summary(built.contacts, rows, q.height, window)
            built.files.append(export.write_json(summary, out / "summary.json"))
        if attempts is not None:
            built.callbacks = build_callbacks(
                attempts.lazy(),
                settings=build,
                out_dir=staging,
                window=callback_window,
                formats=("parquet",),
            )
            q = attempt_quarantine if attempt_quarantine is not None else empty
            rows = _quarantine(out, staging, "callback_attempts", q)
            summary = _summary(built.callbacks, rows, q.height, callback_window)
            built.files.append(export.write_json(summary, out / "callbacks_summary.json"))
            for name in ("callback_metrics.json", "callback_gaps.ndjson"):
                _replace(staging / "exports" / name, out / "exports" / name)
                built.files.append(out / "exports" / name)
        for name in ("contacts", "callback_attempts"):
            if (staging / "store" / name).is_dir():
                _replace(staging / "store" / name, out / "store" / name)
                built.files.append(out / "store" / name)
        minutes, tz = build.interval_minutes, build.tz
        volume = interval_grid(*window, minutes=minutes, tz=tz)
        chains = interval_grid(*callback_window, minutes=minutes, tz=tz)
        grids = {"callvolume": volume, "callback_intervals": chains, "retry_outcomes": chains}
        _merge(out, staging, built, grids, merge=merge)
        built.files += [
            out / "quarantine" / f"{n}.csv"
            for n in ("contacts", "callback_attempts")
            if (out / "quarantine" / f"{n}.csv").is_file()
        ]
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return built
