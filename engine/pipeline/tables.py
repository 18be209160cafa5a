"""The tables of one ``wfm-intervals run``: build a window and merge it into the output store.

:func:`build_tables` takes the canonical rows the pipeline edge has already validated
(:func:`engine.pipeline.sources.canonical`) and everything set aside for them, builds the
window's tables in memory with the pure builders (:mod:`engine.tables`), and then writes each
output once, in place (every write is atomic on its own, :mod:`engine.output.files`):

* ``store/contacts`` and ``store/callback_attempts`` (every canonical row) replace the old ones;
* each interval table (``callvolume``, ``callback_intervals``, ``retry_outcomes``) keeps its
  stored rows outside the window and takes the window's rows from the build
  (:func:`merge_window`);
* ``quarantine/contacts.csv`` and ``quarantine/callback_attempts.csv`` hold what was set aside
  (landing, mappings, and the validation at the pipeline edge);
* ``exports/callback_metrics.json`` and ``exports/callback_gaps.ndjson`` for the callback window;
* ``summary.json`` and ``callbacks_summary.json`` count those rows.

Nothing written is read back: the merged tables are also returned (:attr:`Built.tables`) for the
exports.

Example:
    ``built = build_tables(out, build=BuildSettings(), window=w, contacts=rows, ...)``
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Final

import polars as pl

from engine.interval import Grid, Window
from engine.output import delta
from engine.output import files as export
from engine.output import store as callback_store
from engine.pipeline import build as pipeline
from engine.pipeline.build import BuildReport
from engine.pipeline.callbacks import CallbackOutputs, CallbackReport, callback_outputs
from engine.schema import QUARANTINE
from engine.settings import BuildSettings
from engine.tables import callback_intervals, callvolume, retry_outcomes
from engine.tables.callback_requests import in_chain_order

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
    if not delta.is_table(directory):
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


def _contacts(
    contacts: pl.DataFrame, quarantine: pl.DataFrame, window: Grid, settings: BuildSettings
) -> tuple[pl.DataFrame, BuildReport]:
    """The volume table of ``window`` from validated contacts, and the build's report (the
    pipeline edge collapsed duplicates before, so nothing is collapsed here)."""
    began = time.perf_counter()
    table = pipeline.volume_table(contacts, window=window, settings=settings)
    report = pipeline.build_report(
        table, rows_in=contacts.height + quarantine.height, contacts=contacts.height,
        quarantine=quarantine, window=window, settings=settings,
    )  # fmt: skip
    report.seconds = round(time.perf_counter() - began, 3)
    return table, report


def _callbacks(
    attempts: pl.DataFrame, quarantine: pl.DataFrame, window: Grid, settings: BuildSettings
) -> tuple[CallbackOutputs, CallbackReport]:
    """The callback outputs of ``window`` from validated attempts, and the build's report (the
    pipeline edge set the non-callbacks aside before, so none are counted here)."""
    began = time.perf_counter()
    out = callback_outputs(
        in_chain_order(attempts.lazy()).collect(), window=window, settings=settings
    )
    report = out.report(
        rows_in=attempts.height + quarantine.height, not_callbacks=0, quarantine=quarantine,
        window=window, settings=settings,
    )  # fmt: skip
    report.seconds = round(time.perf_counter() - began, 3)
    return out, report


def _merge(
    out: Path, fresh: dict[str, pl.DataFrame], grids: dict[str, Grid], *, merge: bool
) -> Built:
    """The interval tables merged with the store (read, not written)."""
    built = Built()
    for name, table in fresh.items():
        grid = grids[name]
        existing = read_store(out, name) if merge else None
        merged = merge_window(existing, table, grid=grid.frame, table=TABLES[name])
        built.window_rows[name] = merged.filter(grid.holds(pl.col("interval_start_utc"))).height
        built.rows[name], built.tables[name] = merged.height, merged
    return built


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
) -> Built:
    """Build the window's tables and merge them into ``out/store`` (see the module docstring).

    Args:
        out: the output directory.
        build: what to build.
        window: the volume table's window (whole intervals).
        callback_window: the callback tables' window (it may start earlier: chains).
        contacts: validated canonical contacts (``None``: no contact source; the tables stay as
            they are).
        contact_quarantine: everything set aside for contacts.
        attempts: validated canonical callback attempts (``None``: no callback source).
        attempt_quarantine: everything set aside for attempts.
        merge: keep the stored rows outside the window (``False``: replace the tables).
    """
    volume, chains = build.grid(window), build.grid(callback_window)
    set_aside = {
        "contacts": _quarantine(contact_quarantine),
        "callback_attempts": _quarantine(attempt_quarantine),
    }
    fresh: dict[str, pl.DataFrame] = {}
    report, callbacks, callback_report = None, None, None
    if contacts is not None:
        fresh["callvolume"], report = _contacts(contacts, set_aside["contacts"], volume, build)
    if attempts is not None:
        callbacks, callback_report = _callbacks(
            attempts, set_aside["callback_attempts"], chains, build
        )
        fresh |= {"callback_intervals": callbacks.table, "retry_outcomes": callbacks.retries}
    grids = {
        "callvolume": volume,
        "callback_intervals": chains,
        "retry_outcomes": chains,
    }
    built = _merge(out, fresh, grids, merge=merge)
    built.contacts, built.callbacks = report, callback_report
    # Every output is written once, in place, after everything is computed.
    files = built.files
    store, exports, quarantine = out / "store", out / "exports", out / "quarantine"
    if contacts is not None:
        files.append(export.write_store(contacts, store / "contacts", by="offered_at"))
        files.append(export.write_csv(set_aside["contacts"], quarantine / "contacts.csv"))
    if callbacks is not None:
        files.append(callback_store.write_attempts(callbacks.attempts, store / "callback_attempts"))
        files.append(export.write_json(callbacks.document, exports / "callback_metrics.json"))
        files.append(export.write_ndjson(callbacks.gaps, exports / "callback_gaps.ndjson"))
        files.append(
            export.write_csv(set_aside["callback_attempts"], quarantine / "callback_attempts.csv")
        )
    for name, merged in built.tables.items():
        files.append(export.write_store(merged, store / name, by="interval_start_utc"))
    for summary, name in ((report, "summary.json"), (built.callbacks, "callbacks_summary.json")):
        if summary is not None:
            summary.files = [str(f) for f in files]
            files.append(export.write_json(asdict(summary), out / name))
    return built


def _quarantine(given: pl.DataFrame | None) -> pl.DataFrame:
    if given is None:
        return pl.DataFrame(schema=QUARANTINE)
    return given.cast(QUARANTINE)  # type: ignore[arg-type]
