"""The tables of one ``wfm-intervals run``: build the plan's days and commit them to the store.

:func:`build_tables` takes the canonical rows the pipeline edge has already validated
(:class:`engine.pipeline.window.Canonical`) and the run's plan
(:func:`engine.pipeline.window.plan_run`), builds the tables of the plan's grids in memory with
the pure builders (:mod:`engine.tables`), and commits each table once, one transaction each
(:mod:`engine.output.delta`), replacing only the date partitions the plan touches:

* ``store/contacts`` and ``store/callback_attempts``: the changed partition days (every
  partition in a full rebuild), from the canonical rows;
* each interval table (``callvolume``, ``callback_intervals``, ``retry_outcomes``): the
  partitions of its grids' intervals, each keeping its stored rows outside the grids
  (:func:`merge_window`);
* ``staffing`` (:mod:`engine.tables.staffing`): rebuilt from the committed ``callvolume`` rows,
  the same partitions;
* ``quarantine/contacts.csv`` and ``quarantine/callback_attempts.csv`` hold what was set aside;
* ``exports/callback_metrics.json`` and ``exports/callback_gaps.ndjson`` for the recent window;
* ``summary.json`` and ``callbacks_summary.json`` count those rows.

The committed partitions' rows are also returned (:attr:`Built.tables`) for the exports. One
table is read back: when every partition of ``store/contacts`` was just committed (a first run,
a full rebuild), the volume is built from that table, scanned as it streams, the contacts held
let go of first, so that a whole history is not held twice.

Example:
    ``built = build_tables(out, AppSettings(), plan=plan, canonical=canon, tag=run_id)``
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Final

import polars as pl

from engine.app.config import AppSettings
from engine.app.sections import EngineSettings
from engine.interval import Grid
from engine.output import delta
from engine.output import files as export
from engine.output import store as callback_store
from engine.output.inputs import read_table
from engine.pipeline import build as pipeline
from engine.pipeline.build import BuildReport
from engine.pipeline.callbacks import CallbackOutputs, CallbackReport, callback_results
from engine.pipeline.window import (
    Canonical,
    RunPlan,
    after_until,
    plan_attempts,
    plan_contacts,
    requested,
)
from engine.schema import CONTACTS, QUARANTINE
from engine.settings import BuildSettings
from engine.tables import (
    callback_intervals,
    callvolume,
    dense,
    retry_outcomes,
    staffing,
)
from engine.tables.dense import TableShape, busy

__all__ = [
    "STAFFING_ROWS",
    "TABLES",
    "Built",
    "build_tables",
    "merge_window",
    "read_store",
    "requested",
    "staffing_rows",
]


#: The interval tables a run merges, by name: how each is keyed (engine.tables.dense).
TABLES: Final = dense.SHAPES


@dataclass
class Built:
    """What :func:`build_tables` wrote: the build reports, row counts per table, files."""

    contacts: BuildReport | None = None
    callbacks: CallbackReport | None = None
    rows: dict[str, int] = field(default_factory=dict)  #: table -> rows in the store
    window_rows: dict[str, int] = field(default_factory=dict)  #: table -> rows of the window
    #: the interval tables of the committed partitions as stored (busy rows): the exports
    #: zero-fill ``callvolume`` over the plan's grids where they need the grid
    #: (:func:`engine.pipeline.export.export_tables`)
    tables: dict[str, pl.DataFrame] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    #: table -> rows stored but after the plan's grids (:func:`~engine.pipeline.window.after_until`)
    after: dict[str, int | None] = field(default_factory=dict)


def read_store(out_dir: Path, name: str) -> pl.DataFrame | None:
    """The stored table ``name`` under ``out_dir/store``, or ``None`` when there is none.

    Example:
        >>> read_store(Path("/nonexistent"), "callvolume") is None
        True
    """
    directory = out_dir / "store" / name
    if not delta.is_table(directory):
        return None
    return read_table(directory).collect()


def _conform(frame: pl.DataFrame, schema: pl.Schema) -> pl.DataFrame:
    missing = [pl.lit(None, dtype).alias(c) for c, dtype in schema.items() if c not in frame]
    return frame.with_columns(missing).select(schema.names()).cast(schema)


def merge_window(
    existing: pl.DataFrame | None, fresh: pl.DataFrame, *, grid: pl.DataFrame, table: TableShape
) -> pl.DataFrame:
    """The stored rows outside ``grid``'s span, plus ``fresh`` (the span rebuilt).

    A group the store has rows for inside the span but ``fresh`` does not (its contacts moved
    away) keeps none there: the span is what was rebuilt. The store keeps busy rows only
    (:mod:`engine.tables.dense`), so nothing stands in for them.

    Example:
        >>> from datetime import datetime, UTC
        >>> from engine.interval import interval_grid
        >>> at = datetime(2026, 10, 1, tzinfo=UTC)
        >>> grid = interval_grid(at, at.replace(minute=30), minutes=15, tz="UTC")
        >>> old = grid.with_columns(queue_id=pl.lit("q"), queue_name=pl.lit("Q"),
        ...                         channel=pl.lit("voice"), offered=pl.lit(2))
        >>> merge_window(old, old.clear(), grid=grid, table=TABLES["callvolume"]).height
        0
    """
    if existing is None or existing.height == 0:
        return fresh
    lo, hi = grid["interval_start_utc"][0], grid["interval_end_utc"][-1]
    start = pl.col("interval_start_utc")
    outside = _conform(existing, fresh.schema).filter((start < lo) | (start >= hi))
    order = [*table.group, "interval_start_utc"]
    return pl.concat([outside, fresh]).sort(order, nulls_last=True)


def _volume(  # noqa: PLR0917
    contacts: pl.DataFrame | pl.LazyFrame,
    quarantine: pl.DataFrame,
    plan: RunPlan,
    settings: BuildSettings,
    engine: EngineSettings,
    count: int,
    *,
    stored: Path,
) -> tuple[list[pl.DataFrame], BuildReport]:
    """The volume table of each of the plan's grids from validated contacts (those it counts;
    ``count`` in all; committed to ``stored``: a cluster's tasks read its partitions), and the
    build's report (the pipeline edge collapsed duplicates before: nothing collapsed here)."""
    began = time.perf_counter()
    tables = [  # busy rows: the store keeps no zero row, the exports fill their own days
        pipeline.volume_table(
            contacts, window=g, settings=settings, engine=engine, stored=stored, dense=False
        )
        for g in plan.volume
    ]
    report = pipeline.build_report(
        pl.concat(tables), rows_in=count + quarantine.height, contacts=count,
        quarantine=quarantine, window=plan.recent, settings=settings,
    )  # fmt: skip
    report.intervals, report.table_rows = _filled("callvolume", tables, plan.volume)
    report.seconds = round(time.perf_counter() - began, 3)
    return tables, report


def _volume_source(
    held: list[pl.DataFrame], stored: Path, canonical: Canonical, *, whole: bool
) -> pl.DataFrame | pl.LazyFrame:
    """What the volume is built from: the contacts ``held`` (taken from the list), or, when
    ``whole`` (every partition of ``stored`` was just committed from them), the committed
    table, scanned: the rows are let go of first, so that a first run's history is not held
    while its volume is built (the build does not depend on the rows' order; a Ray cluster's
    tasks read ``stored`` themselves either way)."""
    contacts = held.pop()
    if not whole:
        return contacts
    del contacts
    canonical.let_go_of_contact_rows()
    return delta.scan(stored, CONTACTS)


def _filled(
    name: str,
    tables: list[pl.DataFrame],
    grids: list[Grid],
    seen: list[pl.DataFrame] | None = None,
) -> tuple[int, int]:
    """``(intervals, rows)`` of the zero-filled tables of ``grids`` whose busy rows are
    ``tables`` (what a summary reports), counted grid by grid without building them."""
    sizes = [
        dense.filled_size(t, name, g.frame, seen=None if seen is None else seen[i])
        for i, (t, g) in enumerate(zip(tables, grids, strict=True))
    ]
    return sum(i for i, _ in sizes), sum(n for _, n in sizes)


def _callbacks(  # noqa: PLR0917
    attempts: pl.DataFrame,
    quarantine: pl.DataFrame,
    plan: RunPlan,
    settings: BuildSettings,
    engine: EngineSettings,
    canonical: Canonical,
    *,
    stored: Path,
) -> tuple[CallbackOutputs, list[tuple[pl.DataFrame, pl.DataFrame]], CallbackReport]:
    """Both callback tables of each of the plan's grids from validated attempts in chain order
    (those it counts; committed to ``stored``: a cluster's tasks read its partitions), the
    metrics document of the recent window, the gaps and the build's report of every chain
    (``canonical``'s: the pipeline edge set the non-callbacks aside, none are counted here)."""
    began = time.perf_counter()
    recent = plan.recent
    reached = [*((g.start, g.end) for g in plan.callbacks), recent]
    near = attempts if plan.full or engine.kind == "ray" else requested(attempts, reached)
    pairs, gaps, n, document = callback_results(
        near, plan.callbacks, document=recent, settings=settings, engine=engine,
        stored=stored, dense=False,
    )  # fmt: skip
    if near is not attempts:  # the gaps and the request count are of every chain
        n, gaps = canonical.chains() or (n, gaps)
    count = canonical.attempt_count or 0
    table = pl.concat([t for t, _ in pairs]) if pairs else empty_table("callback_intervals")
    retries = pl.concat([r for _, r in pairs]) if pairs else empty_table("retry_outcomes")
    out = CallbackOutputs(attempts, table, retries, gaps, document, n, dense=False)
    report = out.report(
        rows_in=count + quarantine.height, not_callbacks=0, quarantine=quarantine,
        window=recent, settings=settings, kept=count,
    )  # fmt: skip
    busy = [t for t, _ in pairs]  # the shape of every grid's tables, not the recent one's
    report.intervals, report.table_rows = _filled("callback_intervals", busy, plan.callbacks)
    _, report.retry_rows = _filled(
        "retry_outcomes", [r for _, r in pairs], plan.callbacks, seen=busy
    )
    report.seconds = round(time.perf_counter() - began, 3)
    return out, pairs, report


def _grid_days(grids: list[Grid]) -> set[date]:
    """The partitions (UTC dates) of every interval of ``grids``."""
    return set().union(*(g.days for g in grids))


def _commit_interval_table(
    out: Path, name: str, fresh: list[pl.DataFrame], grids: list[Grid], *, full: bool, tag: str
) -> pl.DataFrame:
    """Merge each grid's rows with the stored rows of its partitions; commit those partitions
    (the whole table when ``full``); the committed rows."""
    path, table = out / "store" / name, TABLES[name]
    days = _grid_days(grids)
    existing = None
    if not full and delta.is_table(path):
        existing = delta.scan(path, days=days).collect()
    merged = []
    for frame, grid in zip(fresh, grids, strict=True):
        own = None
        if existing is not None:
            own = existing.filter(pl.col("interval_start_utc").dt.date().is_in(_grid_days([grid])))
        merged.append(merge_window(own, frame, grid=grid.frame, table=table))
    rows = pl.concat(merged) if merged else empty_table(name)
    kept = rows.filter(busy(name))  # the store keeps busy rows (engine.tables.dense)
    delta.commit(
        path, kept, by="interval_start_utc", days=None if full else days, tag=tag,
        if_changed=True, stored=existing,  # read above: not read again to compare
    )  # fmt: skip
    return kept


#: Rows of a volume table whose staffing :func:`staffing_rows` computes at once: each row's
#: candidate agent counts (~40 or more) are exploded, ~4 KB of intermediates a row (8,192 rows
#: at once, ~15 MiB more than 2,048, set a 272-day first run's peak in its export).
STAFFING_ROWS = 2_048


def staffing_rows(
    table: pl.DataFrame, *, settings: BuildSettings, chunk_rows: int = STAFFING_ROWS
) -> pl.DataFrame:
    """:func:`engine.tables.staffing.build` of a volume table, ``chunk_rows`` rows at a time
    (a row's staffing depends on that row alone), so the exploded candidates of a whole history
    are never held at once: the same rows in the same order (floats but for their last bits:
    Polars' float kernels can round an element differently by the length of its array)."""
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
    parts = [  # one chunk after another: a chunk's intermediates are freed before the next
        staffing.build(part.lazy(), settings=settings).collect()
        for part in table.iter_slices(chunk_rows)
    ]
    return pl.concat(parts) if parts else staffing.build(table.lazy(), settings=settings).collect()


def empty_table(name: str) -> pl.DataFrame:
    """An empty table ``name`` (no grid: nothing to commit)."""
    schemas = {
        "callvolume": callvolume.SCHEMA,
        "callback_intervals": callback_intervals.SCHEMA,
        "retry_outcomes": retry_outcomes.SCHEMA,
    }
    return pl.DataFrame(schema=schemas[name])


def build_tables(
    out: Path,
    settings: AppSettings,
    *,
    plan: RunPlan,
    canonical: Canonical,
    tag: str,
) -> Built:
    """Build the plan's tables and commit them to ``out/store`` (see the module docstring).

    Args:
        out: the output directory.
        settings: what to build (``[build]``) and where (``[engine]``: here, or a Ray cluster).
        plan: the run's plan (grids per interval table, partition days per canonical table).
        canonical: validated canonical rows and everything set aside for them (attempts in
            chain order); a table no source feeds is left as it is.
        tag: the run's id, in the names of the files it commits.
    """
    build, engine = settings.build, settings.engine
    set_aside = {
        "contacts": _quarantine(canonical.contact_quarantine),
        "callback_attempts": _quarantine(canonical.attempt_quarantine),
    }
    built, files = Built(), []
    store, exports, quarantine = out / "store", out / "exports", out / "quarantine"
    commit = plan.commit_days
    if (contacts := plan_contacts(canonical, plan, build)) is not None:
        built.after["contacts"] = after_until(plan, "contacts", contacts, build)
        # committed first: the tables are built from what the store holds (on a cluster, its
        # tasks read those partitions themselves); no table is committed before them either way
        days = commit.get("contacts")
        rows = (
            contacts if days is None else contacts.filter(delta.days_of("offered_at").is_in(days))
        )
        delta.commit(store / "contacts", rows, by="offered_at", days=days, tag=tag, if_changed=True)
        files.append(store / "contacts")
        held = [contacts]
        del contacts, rows
        source = _volume_source(held, store / "contacts", canonical, whole=days is None)
        fresh, built.contacts = _volume(
            source, set_aside["contacts"], plan, build, engine, canonical.contact_count or 0,
            stored=store / "contacts",
        )  # fmt: skip
        kept = _commit_interval_table(
            out, "callvolume", fresh, plan.volume, full=plan.full, tag=tag
        )
        built.tables["callvolume"] = kept  # the exports fill it, a part at a time
        del fresh, source  # read no more: the staffing and the callbacks hold less
        canonical.let_go_of_contact_rows()
        # staffing is row by row of the volume table: the same partitions, rebuilt whole, from
        # the busy rows (an interval with nothing offered needs no agent and is not stored)
        plan_days = None if plan.full else _grid_days(plan.volume)
        need = staffing_rows(kept, settings=build)
        delta.commit(
            store / "staffing", need.filter(busy("staffing")), by="interval_start_utc",
            days=plan_days, tag=tag, if_changed=True,
        )  # fmt: skip
        built.tables["staffing"] = need
        files.append(export.write_csv(set_aside["contacts"], quarantine / "contacts.csv"))
    if (attempts := plan_attempts(canonical, plan, every=engine.kind == "ray")) is not None:
        built.after["callback_attempts"] = after_until(plan, "callback_attempts", attempts, build)
        days = commit.get("callback_attempts")
        rows = attempts
        if days is not None:
            rows = attempts.filter(callback_store.request_dates(attempts).is_in(days))
        callback_store.write_attempts(
            rows, store / "callback_attempts", days=days, tag=tag, if_changed=True
        )
        files.append(store / "callback_attempts")
        outputs, pairs, built.callbacks = _callbacks(
            attempts, set_aside["callback_attempts"], plan, build, engine, canonical,
            stored=store / "callback_attempts",
        )  # fmt: skip
        stored = [
            _commit_interval_table(
                out, name, [p[i] for p in pairs], plan.callbacks, full=plan.full, tag=tag
            )
            for i, name in enumerate(("callback_intervals", "retry_outcomes"))
        ]
        # as stored: their exports (CSV, NDJSON) are their busy rows; no zero row is built
        built.tables["callback_intervals"], built.tables["retry_outcomes"] = stored
        files.append(export.write_json(outputs.document, exports / "callback_metrics.json"))
        files.append(export.write_ndjson(outputs.gaps, exports / "callback_gaps.ndjson"))
        files.append(
            export.write_csv(set_aside["callback_attempts"], quarantine / "callback_attempts.csv")
        )
    for name, rows in built.tables.items():
        files.append(store / name)
        grids = plan.volume if name in {"callvolume", "staffing"} else plan.callbacks
        at = pl.col("interval_start_utc")
        inside = pl.any_horizontal(g.holds(at) for g in grids) if grids else pl.lit(False)
        built.window_rows[name] = rows.filter(inside & busy(name)).height
        built.rows[name] = delta.row_count(store / name)  # from the log: no file read
    for summary, name in (
        (built.contacts, "summary.json"),
        (built.callbacks, "callbacks_summary.json"),
    ):
        if summary is not None:
            summary.files = [str(f) for f in files]
            files.append(export.write_json(asdict(summary), out / name))
    built.files = files
    return built


def _quarantine(given: pl.DataFrame | None) -> pl.DataFrame:
    if given is None:
        return pl.DataFrame(schema=QUARANTINE)
    return given.cast(QUARANTINE)  # type: ignore[arg-type]
