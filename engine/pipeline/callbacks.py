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

import shutil
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

import polars as pl
from deltalake.transaction import AddAction

from engine.app.sections import EngineSettings
from engine.interval import Grid, Window
from engine.output import datafiles, delta, location
from engine.output import files as export
from engine.output import store as callback_store
from engine.output.attempts import abandon, sink_attempts
from engine.pipeline import callback_days
from engine.pipeline.build import iso_utc, nothing_valid, quarantine_counts
from engine.pipeline.callback_days import holding
from engine.schema import CALLBACK_ATTEMPTS
from engine.settings import BuildSettings
from engine.tables import callback_intervals, callback_metrics, retry_outcomes
from engine.tables.callback_requests import RETRY_BUCKETS
from engine.tables.dense import busy, check_filled, fill, filled_size
from engine.validate.callback_attempts import callback_gaps

__all__ = [
    "CALLBACK_FORMATS",
    "CallbackOutputs",
    "CallbackReport",
    "build_callbacks",
    "callback_outputs",
    "callback_results",
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


def callback_window(reqs: pl.LazyFrame, settings: BuildSettings) -> Grid:
    """The smallest whole-interval grid holding every request's instant.

    Raises:
        ValueError: there are no requests.
    """
    instants = reqs.select(pl.col("instant")).collect()["instant"]
    return holding(instants.min(), instants.max(), settings)


def callback_tables(
    reqs: pl.LazyFrame, *, window: Window | Grid, settings: BuildSettings, dense: bool = True
) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """``callback_intervals`` and ``retry_outcomes`` for ``window`` from one requests frame
    (``dense=False``: their busy rows only, what the store keeps); collect them together
    (``pl.collect_all``) so that what ``reqs`` caches is computed once."""
    grid = settings.grid(window)
    if not dense:
        return (
            callback_intervals.busy_rows(reqs, window=grid, settings=settings),
            retry_outcomes.busy_rows(reqs, window=grid, settings=settings),
        )
    return (
        callback_intervals.build(reqs, window=grid, settings=settings),
        retry_outcomes.build(reqs, window=grid, settings=settings),
    )


@dataclass
class CallbackOutputs:
    """The callback outputs of a window, in memory (:func:`callback_outputs`)."""

    attempts: pl.DataFrame  #: validated, in the store's order (chain order)
    table: pl.DataFrame  #: ``callback_intervals``
    retries: pl.DataFrame  #: ``retry_outcomes``
    gaps: pl.DataFrame
    document: dict[str, Any]  #: the seed-000 metrics document of the window
    requests: int
    dense: bool = True  #: the tables zero-filled (else their busy rows only)

    def report(
        self,
        *,
        rows_in: int,
        not_callbacks: int,
        quarantine: pl.DataFrame,
        window: Window | Grid,
        settings: BuildSettings,
        kept: int | None = None,
    ) -> CallbackReport:
        """What the build did (``files`` and ``seconds`` are the caller's to fill in); the
        tables' shape is the zero-filled tables' either way. ``kept``: the clean attempts, when
        ``attempts`` does not hold them (a build that streamed them to the store)."""
        grid = settings.grid(window, checked=False)  # the grid of a build, made before
        window = grid.window
        kept = self.attempts.height if kept is None else kept
        groups = self.table.select(callback_intervals.GROUP).n_unique()
        intervals, table_rows, retry_rows = (
            self.table["interval_start_utc"].n_unique(),
            self.table.height,
            self.retries.height,
        )
        if not self.dense:  # the zero-filled tables' sizes, counted from their busy rows
            intervals, table_rows = filled_size(self.table, "callback_intervals", grid.frame)
            _, retry_rows = filled_size(self.retries, "retry_outcomes", grid.frame, seen=self.table)
        return CallbackReport(
            rows_in=rows_in,
            attempts=kept,
            requests=self.requests,
            not_callbacks=not_callbacks,
            quarantined=quarantine_counts(quarantine),
            collapsed=rows_in - not_callbacks - kept - quarantine.height,
            gaps=self.gaps.height,
            window=(iso_utc(window[0]), iso_utc(window[1])),
            interval_minutes=settings.interval_minutes,
            tz=settings.tz,
            intervals=intervals,
            combinations=groups,
            table_rows=table_rows,
            retry_rows=retry_rows,
        )


def callback_results(
    attempts: pl.DataFrame,
    grids: Sequence[Grid],
    *,
    document: Window,
    settings: BuildSettings,
    engine: EngineSettings | None = None,
    reqs: pl.LazyFrame | None = None,
    dense: bool = True,
    stored: Path | None = None,
) -> tuple[list[tuple[pl.DataFrame, pl.DataFrame]], pl.DataFrame, int, dict[str, Any]]:
    """Both callback tables of each of ``grids``, the gaps, the request count and the metrics
    document of ``document``, built here or on the Ray cluster of ``engine``
    (``kind = "ray"``: :func:`engine.distributed.callbacks.callback_tables`, the same values).

    ``attempts`` are validated attempts in the store's order (``in_chain_order``): here, their
    requests are then reduced from runs, proven by :func:`engine.output.store.requests_of`,
    once (held in memory: the tables, the count and the document all read them); ``reqs``:
    those requests, when the caller holds them already. ``dense=False``: the tables' busy
    rows only, built without their zero rows. ``stored``: the store table holding exactly
    ``attempts``, committed, whose partitions a cluster's tasks read themselves.

    Returns:
        One (``callback_intervals``, ``retry_outcomes``) pair per grid, the gaps, the number of
        requests (chains) and the document.

    Raises:
        ClusterError: the ray engine without Ray, or its cluster cannot be joined.
    """
    reqs = callback_store.requests_of(attempts) if reqs is None else reqs
    if engine is not None and engine.kind == "ray":
        from engine.distributed import callbacks as on_ray  # noqa: PLC0415 - an optional extra

        pairs, doc = on_ray.callback_tables(
            attempts if stored is None else stored, grids, document=document,
            settings=settings, address=engine.address, dense=dense,
        )  # fmt: skip
        gaps, n = pl.collect_all([callback_gaps(attempts.lazy()), reqs.select(pl.len())])
        return pairs, gaps, int(n.item()), doc
    reqs = reqs.collect().lazy()  # once, for every reader
    plans = [
        p for g in grids for p in callback_tables(reqs, window=g, settings=settings, dense=dense)
    ]
    *frames, gaps, n = pl.collect_all(
        [*plans, callback_gaps(attempts.lazy()), reqs.select(pl.len())]  # one per chain
    )
    pairs = list(zip(frames[::2], frames[1::2], strict=True))
    doc = callback_metrics.document(reqs, begin=document[0], end=document[1])
    return pairs, gaps, int(n.item()), doc


def callback_outputs(
    attempts: pl.DataFrame,
    *,
    window: Window | Grid | None,
    settings: BuildSettings,
    engine: EngineSettings | None = None,
    dense: bool = True,
    stored: Path | None = None,
    reqs: pl.LazyFrame | None = None,
) -> tuple[CallbackOutputs, Grid]:
    """Both callback tables, the gaps, the request count and the metrics document of ``window``
    (``None``: :func:`callback_window` of the requests), and that window's grid
    (:func:`callback_results` of that one grid; ``attempts``, ``reqs`` and ``stored`` as there).
    """
    if window is None:  # the requests' span: they are reduced once, for the window and the rest
        reqs = callback_store.requests_of(attempts).collect().lazy()
        grid = callback_window(reqs, settings)
    else:
        grid = settings.grid(window)
    pairs, gaps, n, document = callback_results(
        attempts, [grid], document=grid.window, settings=settings, engine=engine, reqs=reqs,
        dense=dense, stored=stored,
    )  # fmt: skip
    ((table, retries),) = pairs
    return CallbackOutputs(attempts, table, retries, gaps, document, n, dense), grid


def _write(
    name: str, table: pl.DataFrame, out_dir: Path, formats: tuple[CallbackFormat, ...]
) -> list[Path]:
    written: list[Path] = []
    if "parquet" in formats:
        kept = table.filter(busy(name))  # the store keeps busy rows (engine.tables.dense)
        written.append(export.write_store(kept, out_dir / "store" / name, by="interval_start_utc"))
    if "csv" in formats:
        written.append(export.write_csv(table, out_dir / "exports" / f"{name}.csv"))
    if "ndjson" in formats:
        written.append(export.write_ndjson(table, out_dir / "exports" / f"{name}.ndjson"))
    return written


def _span(
    days: list[callback_days.Day], settings: BuildSettings, *, filled: Callable[[], int] | None,
    rows: int,
) -> Grid:  # fmt: skip
    """The grid of the days' requests; ``filled``: zero-filled for that many call targets (a
    row of each table, one per retry bucket in the second), of ``rows`` attempts (check_filled)."""
    spans = [d.span for d in days if d.span is not None]
    lo, hi = (min(s[0] for s in spans), max(s[1] for s in spans)) if spans else (None, None)
    if filled is not None and lo is not None and hi is not None:
        groups = filled() * (1 + len(RETRY_BUCKETS.categories))
        what = ("attempts", "call-target rows (both tables)")
        check_filled(lo, hi, groups, rows, minutes=settings.interval_minutes, what=what)
    return holding(lo, hi, settings)


def _targets(path: Path, files: list[AddAction]) -> int:
    """The call targets of the attempts in the data ``files`` of the table at ``path``."""
    if not files:
        return 0
    scan = pl.scan_parquet([str(path / f.path) for f in files], hive_partitioning=False)
    return int(scan.select(pl.col("call_target_id").n_unique()).collect().item())


_Counted = tuple[int, pl.DataFrame] | None  #: the request count and the gaps, if known


def _tables(
    days: list[callback_days.Day], scratch: Path, out_dir: Path, attempts: Path, *, grid: Grid,
    settings: BuildSettings, engine: EngineSettings | None, dense: bool,
) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, Any], list[Path], _Counted]:  # fmt: skip
    """Both tables (``dense``: zero-filled), the document, the store tables written already
    (a build storing Parquet only: :func:`engine.pipeline.callback_days.write_store`, or the
    Ray tasks; the tables' groups in place of the intervals table and no retries rows, for the
    report), and (the ray engine: its tasks found them) the request count and the gaps."""
    if engine is not None and engine.kind == "ray":
        from engine.distributed import callbacks as on_ray  # noqa: PLC0415 - an optional extra

        got = on_ray.command_tables(attempts, grid, settings=settings, address=engine.address,
                                    store=None if dense else out_dir / "store")  # fmt: skip
        return got.table, got.retries, got.document, got.stored, (got.requests, got.gaps)
    names, document = callback_days.names_and_document(days, scratch, grid=grid, settings=settings)
    made = callback_days.slices(scratch, names, grid=grid, settings=settings)
    if not dense:
        groups, stored = callback_days.write_store(made, out_dir)
        return groups, groups.head(0), document, stored, None
    busy_table, busy_retries = (pl.concat(f) for f in zip(*made, strict=True))
    table, retries = pl.collect_all(
        [
            fill(busy_table.lazy(), "callback_intervals", grid.frame),
            fill(busy_retries.lazy(), "retry_outcomes", grid.frame, seen=busy_table.lazy()),
        ]
    )
    return table, retries, document, [], None


def _spanned(ordered: pl.DataFrame, reqs: pl.LazyFrame) -> callback_days.Day:
    """A streamed day of a build on the ray engine: its requests' span only (the tasks count
    the requests and find the gaps, from the store)."""
    at = callback_store.request_instant()
    lo, hi = ordered.select(at.min(), at.max().alias("hi")).row(0)
    return callback_days.Day(0, None if lo is None else (lo, hi), pl.DataFrame(), [])


def build_callbacks(
    attempts: pl.LazyFrame,
    *,
    settings: BuildSettings,
    out_dir: Path,
    window: Window | None = None,
    formats: tuple[CallbackFormat, ...] = CALLBACK_FORMATS,
    set_aside: pl.DataFrame | None = None,
    engine: EngineSettings | None = None,
) -> CallbackReport:
    """Validate attempts, build ``callback_intervals`` and ``retry_outcomes``, write everything.

    The attempts stream to the store day by day (:func:`engine.output.attempts.sink_attempts`),
    each day's requests giving the parts of the tables and the document
    (:mod:`engine.tables.callback_parts`), spilled to a scratch folder and merged at the end one
    date of intervals at a time (:mod:`engine.pipeline.callback_days`); the attempts are
    committed before the tables are written (the ray engine's tasks read them from the store).

    Args:
        attempts: attempts in the canonical shape (text columns and vendor spellings allowed).
        settings: interval length and zone.
        out_dir: where ``store/``, ``exports/``, ``quarantine/`` and the summary go.
        window: ``[start, end)``; default: the whole-interval span of the requests.
        formats: which table outputs to write besides the attempts store, the metrics document,
            gaps, quarantine and summary.
        set_aside: quarantine rows of the input found before (``read_input``).
        engine: where the tables and the document are built (:func:`callback_results`).
    """
    began = time.perf_counter()
    grid = None if window is None else settings.grid(window)
    local = engine is None or engine.kind != "ray"
    path, tag = out_dir / "store" / "callback_attempts", uuid.uuid4().hex[:12]
    made = [p for p in (out_dir, path.parent, path) if not p.exists()]
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = datafiles.new_scratch(path.parent, ".parts-")
    try:
        try:
            day = partial(callback_days.day, grid=grid, settings=settings, scratch=scratch)
            each = day if local else _spanned
            sunk = sink_attempts(
                attempts, path, tag=tag, each=each, max_duration_ms=settings.max_duration_ms
            )
            bad = pl.concat([s.cast(sunk.quarantine.schema) for s in (set_aside, sunk.quarantine)
                             if s is not None])  # fmt: skip
            if grid is None and not sunk.attempts and bad.height:
                nothing_valid(bad, out_dir / "quarantine" / "callback_attempts.csv", "attempts")
            dense = any(f != "parquet" for f in formats)  # Parquet alone is the store: busy rows
            targets = partial(_targets, path, sunk.files) if dense else None
            grid = grid or _span(sunk.units, settings, filled=targets, rows=sunk.attempts)
            delta.commit_files(path, sunk.files, schema=pl.Schema(CALLBACK_ATTEMPTS), tag=tag)
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            abandon(path, tag, made)
            raise
        table, retries, document, stored, counted = _tables(
            sunk.units, scratch, out_dir, path, grid=grid, settings=settings, engine=engine,
            dense=dense,
        )  # fmt: skip
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    quarantine, rows_in = bad, sunk.rows_in + (0 if set_aside is None else set_aside.height)
    n, gaps = counted or (
        sum(d.requests for d in sunk.units),
        pl.concat([d.gaps for d in sunk.units])
        if sunk.units
        else callback_gaps(pl.LazyFrame(schema=CALLBACK_ATTEMPTS)).collect(),
    )
    gaps = gaps.sort("source", "original_id")
    out = CallbackOutputs(pl.DataFrame(), table, retries, gaps, document, n, dense)
    files = [path, *stored]
    if not stored:
        files += _write("callback_intervals", out.table, out_dir, formats)
        files += _write("retry_outcomes", out.retries, out_dir, formats)
    files.append(export.write_json(out.document, out_dir / "exports" / "callback_metrics.json"))
    files.append(export.write_ndjson(out.gaps, out_dir / "exports" / "callback_gaps.ndjson"))
    files.append(export.write_csv(quarantine, out_dir / "quarantine" / "callback_attempts.csv"))
    report = out.report(
        rows_in=rows_in,
        not_callbacks=sunk.not_callbacks,
        quarantine=quarantine,
        window=grid,
        settings=settings,
        kept=sunk.attempts,
    )
    report.files = [location.shown(f) for f in files]
    report.seconds = round(time.perf_counter() - began, 3)
    summary = out_dir / "callbacks_summary.json"
    export.write_json(asdict(report), summary)
    report.files.append(location.shown(summary))
    return report
