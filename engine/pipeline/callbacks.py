"""The callback pipeline edge: validate attempts, build the callback tables, write every output.

Outputs under ``out_dir``: ``store/callback_attempts`` (clean attempts in chain order, by the
date of their request: :func:`engine.output.store.write_attempts`),
``store/callback_intervals`` and ``store/retry_outcomes`` (Parquet, by interval date), CSV and
NDJSON exports of both tables, ``exports/callback_metrics.json`` (the seed-000 document for the
window), ``exports/callback_gaps.ndjson``, ``quarantine/callback_attempts.csv`` and
``callbacks_summary.json``.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from engine.settings import BuildSettings
    >>> from engine.demo.callbacks import generate_attempts
    >>> report = build_callbacks(generate_attempts(days=1, scale=0.2).lazy(),
    ...                          settings=BuildSettings(), out_dir=Path(tempfile.mkdtemp()))
    >>> report.quarantined_total, report.not_callbacks
    (0, 0)
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

import polars as pl

from engine.interval import Window, in_grid, interval_grid, snap_window
from engine.output import files as export
from engine.output import store as callback_store
from engine.pipeline.build import iso_utc, quarantine_counts
from engine.settings import BuildSettings
from engine.tables import callback_intervals, callback_metrics, retry_outcomes
from engine.tables.callback_requests import (
    call_target_names,
    in_chain_order,
    partitioned_requests,
    requests,
)
from engine.validate.callback_attempts import (
    callback_gaps,
    not_callbacks,
    validate_callback_attempts,
)

__all__ = [
    "CALLBACK_FORMATS",
    "CallbackReport",
    "build_callbacks",
    "callback_tables",
    "callback_window",
]

CallbackFormat = Literal["parquet", "csv", "ndjson"]
CALLBACK_FORMATS: tuple[CallbackFormat, ...] = ("parquet", "csv", "ndjson")


@dataclass
class CallbackReport:
    """What a callback build read, set aside, rejected and wrote."""

    rows_in: int
    attempts: int
    requests: int
    not_callbacks: int
    quarantined: dict[str, int]
    collapsed: int
    gaps: int
    window: tuple[str, str]
    interval_minutes: int
    tz: str
    intervals: int
    combinations: int
    table_rows: int
    retry_rows: int
    files: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def quarantined_total(self) -> int:
        """Rows quarantined for any reason."""
        return sum(self.quarantined.values())


def callback_window(
    attempts: pl.DataFrame, settings: BuildSettings, *, chain_ordered: bool = False
) -> Window:
    """The smallest whole-interval window holding every request's instant.

    ``chain_ordered``: ``attempts`` is in chain order
    (:func:`engine.tables.callback_requests.requests`).

    Raises:
        ValueError: there are no attempts.
    """
    reqs = requests(attempts.lazy(), chain_ordered=chain_ordered)
    instants = reqs.select(pl.col("instant")).collect()["instant"]
    lo, hi = instants.min(), instants.max()
    if not isinstance(lo, datetime) or not isinstance(hi, datetime):
        msg = "no valid callback attempts to take a window from: give --start and --end"
        raise ValueError(msg)
    end = hi + timedelta(microseconds=1)
    return snap_window(lo, end, minutes=settings.interval_minutes, tz=settings.tz)


def callback_tables(
    attempts: pl.LazyFrame,
    *,
    window: Window,
    settings: BuildSettings,
    partitions: int = 1,
    row_id: str | None = None,
    chain_ordered: bool = False,
) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """``callback_intervals`` and ``retry_outcomes`` for ``window``, from one requests frame.

    Each table's ``build`` reduces the chains itself; built side by side they would do it twice
    (and the call targets' names twice more), since each use prunes the requests to other
    columns and the plans then differ. Here the window's requests are reduced once, to the
    columns either table reads, and cached; collect both frames together (``pl.collect_all``).
    Chain-ordered attempts' requests are reduced from runs for each use instead (0.6 CPU-s more
    at 10M attempts than holding them, and half the memory).

    Args:
        attempts: canonical (validated) attempts.
        window: ``[start, end)``; widened to whole intervals.
        settings: interval length and zone.
        partitions: build the requests in this many parts to bound memory
            (:func:`engine.tables.callback_requests.partitioned_requests`).
        row_id: a row-identifying integer column of ``attempts``, to join on instead of the
            attempt's id (:func:`engine.tables.callback_requests.requests` says which columns
            qualify).
        chain_ordered: ``attempts`` yields its rows in the store's chain order
            (:data:`engine.tables.callback_requests.CHAIN_ORDER`): the requests are then reduced
            where
            their chains lie, in one pass (``partitions`` and ``row_id`` do not apply).
    """
    grid = interval_grid(*window, minutes=settings.interval_minutes, tz=settings.tz)
    columns = dict.fromkeys([*callback_intervals.REQUEST_COLUMNS, *retry_outcomes.REQUEST_COLUMNS])
    where = [in_grid(pl.col("instant"), grid)]
    reqs = partitioned_requests(
        attempts,
        where=where,
        columns=list(columns),
        partitions=partitions,
        row_id=row_id,
        chain_ordered=chain_ordered,
    )
    if chain_ordered:  # runs are cheaper to reduce again than to hold (1.1 GiB at 10M)
        names = call_target_names(reqs)
    else:
        reqs = reqs.cache()
        names = call_target_names(reqs).cache()
    return (
        callback_intervals.from_requests(reqs, grid, names),
        retry_outcomes.from_requests(reqs, grid, names),
    )


def _write(
    name: str, table: pl.DataFrame, out_dir: Path, formats: tuple[CallbackFormat, ...]
) -> list[Path]:
    written: list[Path] = []
    if "parquet" in formats:
        written.append(export.write_store(table, out_dir / "store" / name, by="interval_start_utc"))
    if "csv" in formats:
        written.append(export.write_csv(table, out_dir / "exports" / f"{name}.csv"))
    if "ndjson" in formats:
        written.append(export.write_ndjson(table, out_dir / "exports" / f"{name}.ndjson"))
    return written


def build_callbacks(
    attempts: pl.LazyFrame,
    *,
    settings: BuildSettings,
    out_dir: Path,
    window: Window | None = None,
    formats: tuple[CallbackFormat, ...] = CALLBACK_FORMATS,
) -> CallbackReport:
    """Validate attempts, build ``callback_intervals`` and ``retry_outcomes``, write everything.

    Args:
        attempts: attempts in the canonical shape (text columns and vendor spellings allowed).
        settings: interval length and zone.
        out_dir: where ``store/``, ``exports/``, ``quarantine/`` and the summary go.
        window: ``[start, end)``; default: the whole-interval span of the requests.
        formats: which table outputs to write besides the attempts store, the metrics document,
            gaps, quarantine and summary.
    """
    began = time.perf_counter()
    clean_lf, quarantine_lf = validate_callback_attempts(attempts)
    rows_in, clean, quarantine, skipped = pl.collect_all(
        [
            attempts.select(pl.len()),
            # The store's order: each chain's attempts in one run, so that requests are reduced
            # where they lie (engine.tables.callback_requests.requests), here and when the store is
            # read.
            in_chain_order(clean_lf),
            quarantine_lf,
            not_callbacks(attempts).select(pl.len()),
        ]
    )
    window = snap_window(
        *(window or callback_window(clean, settings, chain_ordered=True)),
        minutes=settings.interval_minutes,
        tz=settings.tz,
    )
    lazy = clean.lazy()
    table, retries, gaps, n_requests = pl.collect_all(
        [
            *callback_tables(lazy, window=window, settings=settings, chain_ordered=True),
            callback_gaps(lazy),
            requests(lazy, chain_ordered=True).select(pl.len()),  # one per chain
        ]
    )
    document = callback_metrics.document(lazy, begin=window[0], end=window[1], chain_ordered=True)

    files = [callback_store.write_attempts(clean, out_dir / "store" / "callback_attempts")]
    files += _write("callback_intervals", table, out_dir, formats)
    files += _write("retry_outcomes", retries, out_dir, formats)
    files.append(export.write_json(document, out_dir / "exports" / "callback_metrics.json"))
    files.append(export.write_ndjson(gaps, out_dir / "exports" / "callback_gaps.ndjson"))
    files.append(export.write_csv(quarantine, out_dir / "quarantine" / "callback_attempts.csv"))
    report = CallbackReport(
        rows_in=int(rows_in.item()),
        attempts=clean.height,
        requests=int(n_requests.item()),
        not_callbacks=int(skipped.item()),
        quarantined=quarantine_counts(quarantine),
        collapsed=int(rows_in.item()) - int(skipped.item()) - clean.height - quarantine.height,
        gaps=gaps.height,
        window=(iso_utc(window[0]), iso_utc(window[1])),
        interval_minutes=settings.interval_minutes,
        tz=settings.tz,
        intervals=table["interval_start_utc"].n_unique(),
        combinations=table.select(callback_intervals.GROUP).n_unique(),
        table_rows=table.height,
        retry_rows=retries.height,
        files=[str(f) for f in files],
    )
    report.seconds = round(time.perf_counter() - began, 3)
    summary = out_dir / "callbacks_summary.json"
    export.write_json(asdict(report), summary)
    report.files.append(str(summary))
    return report
