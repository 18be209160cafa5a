"""What the distributed tables share: joining a Ray cluster, placing rows in the UTC day of their
interval, one Ray Data task per day, reads of the store's partitions by the tasks themselves,
and frames handed back as Arrow IPC.

A table of intervals is a map over UTC days: every interval belongs to the day of its start
(intervals never cross a UTC day, and one that does, as 60-minute ones do in Kathmandu, belongs
to the day it starts on with every row it holds). :func:`by_interval_day` stamps each row with
that day (``_day``), :func:`map_days` hands each day's rows to one task
(``groupby("_day").map_groups`` with Arrow batches) and returns what the tasks return. When the
rows are a table of the store already, the driver hands out file paths only:
:func:`store_partitions` lists the current version's files of each date partition (from the
Delta log), and :func:`map_partitions` has one Ray task read each partition with Polars
(:func:`read_files`) and stamp its rows with their day, then groups them by day as
:func:`map_days` does. A task that returns several frames packs them (:func:`pack`) and the
driver unpacks them (:func:`unpack`). For a table the tasks write themselves, the day tasks'
frames stay in Ray's object store and :func:`write_days` has Ray tasks write their busy rows
as the table's data files, the driver getting the small parts and the files' records only.

Example:
    ``frames = map_days(by_interval_day(rows, pl.col("offered_at"), grid.frame), task)``
"""

from __future__ import annotations

import io
import logging
import os
import signal
import threading
from collections.abc import Callable, Mapping
from datetime import date
from functools import partial
from pathlib import Path
from typing import Any, Final

import polars as pl

from engine.errors import ClusterError
from engine.output import datafiles, delta, location

__all__ = [
    "DAY",
    "by_interval_day",
    "connect",
    "map_days",
    "map_partitions",
    "pack",
    "read_files",
    "store_partitions",
    "unpack",
    "write_days",
]

#: The column :func:`by_interval_day` adds: the UTC date of the start of the row's interval.
DAY: Final = "_day"

#: The day of a partition read's side results (:func:`map_partitions`): no interval's.
SIDE: Final = date(1, 1, 1)
_SIDE: Final = "_side"

#: A day's task: the day's rows (with :data:`DAY`) in, one frame out.
Task = Callable[[pl.DataFrame], pl.DataFrame]
#: A partition's read: the full paths of its files in, its rows with :data:`DAY` out, and
#: possibly its side results (a :func:`pack`ed frame).
Reader = Callable[[list[str]], pl.DataFrame | tuple[pl.DataFrame, pl.DataFrame]]
#: What a day's busy rows become in the files (:func:`write_days`): the tasks' frames by key
#: in, each table's finished rows by name out.
Finish = Callable[[dict[tuple[str, int], list[pl.DataFrame]]], dict[str, pl.DataFrame]]


def connect(address: str | None) -> None:
    """Join the Ray cluster at ``address`` (``auto``: the one running on this machine;
    ``ray://host:10001``: a remote one through Ray Client; ``None``: start a local one with one
    worker per CPU), unless this process has joined one already (the first join wins).

    The workers get the driver's ``PYTHONPATH`` and this package's root, so a source checkout
    runs as the installed package does. A SIGTERM handler the process had (the command line's:
    an interruption, exit 130) is put back over the one Ray's driver sets (exit 15).

    Raises:
        ClusterError: Ray is not installed, or the cluster cannot be joined.
    """
    try:
        import ray  # noqa: PLC0415 - an optional extra, loaded only for the ray engine
    except ImportError:
        msg = "engine ray: Ray is not installed (pip install 'wfm-intervals[ray]')"
        raise ClusterError(msg) from None

    if ray.is_initialized():
        return
    root = str(Path(__file__).resolve().parents[2])
    paths = [root, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    runtime = {"env_vars": {"PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}}
    kept = signal.getsignal(signal.SIGTERM)
    try:
        ray.init(
            # no address: a cluster of our own ("local"); Ray's default (None) would join one
            # that RAY_ADDRESS or another job's `ray start` on this machine names, unasked
            address=address or "local",
            runtime_env=runtime,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
        )
    except Exception as exc:
        where = address or "a local cluster"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        msg = f"Ray cluster {where}: cannot be joined ({first})"
        raise ClusterError(msg) from None
    finally:
        if callable(kept) and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, kept)


def by_interval_day(frame: pl.DataFrame, at: pl.Expr, intervals: pl.DataFrame) -> pl.DataFrame:
    """The rows of ``frame`` whose instant ``at`` lies in one of ``intervals``, each with
    :data:`DAY`, the UTC date of its interval's start; the other rows are left out.

    ``at`` is evaluated on ``frame`` as it is (before any reordering); ``intervals`` has
    ``interval_start_utc`` and ``interval_end_utc``, sorted and not overlapping (one grid, or
    the intervals of several grids of one length and zone). The rows come out sorted by ``at``
    (a stable sort: rows with one instant keep their order).
    """
    bounds = (
        intervals.select("interval_start_utc", "interval_end_utc")
        .unique()
        .sort("interval_start_utc")
    )
    placed = (
        frame.with_columns(at.alias("_at"))
        .sort("_at", maintain_order=True)
        .join_asof(bounds, left_on="_at", right_on="interval_start_utc", strategy="backward")
        .filter(pl.col("_at") < pl.col("interval_end_utc"))
    )
    day = pl.col("interval_start_utc").dt.date().alias(DAY)
    return placed.with_columns(day).drop("_at", "interval_start_utc", "interval_end_utc")


def _run(batch: Any, *, task: Task, schema: pl.Schema) -> Any:
    """One day's task on a worker: Arrow in (typed as the driver's rows), Arrow out; the reads'
    side results (the day :data:`SIDE`) go through as they are."""
    rows = pl.from_arrow(batch)
    assert isinstance(rows, pl.DataFrame)
    if _SIDE in rows.columns:
        if rows.height and rows[DAY][0] == SIDE:
            return pl.concat([pl.read_ipc(io.BytesIO(b)) for b in rows[_SIDE]]).to_arrow()
        rows = rows.drop(_SIDE)
    return task(rows.cast(schema)).to_arrow()


def _grouped(source: Any, groups: int, task: Task, schema: pl.Schema) -> list[pl.DataFrame]:
    """``task`` over each day's rows of the Ray dataset ``source`` (with :data:`DAY`, typed as
    ``schema`` once cast), ``groups`` shuffle partitions; the frames the tasks return."""
    import ray  # noqa: PLC0415 - an optional extra

    frames = [pl.from_arrow(t) for t in ray.get(_grouped_refs(source, groups, task, schema))]
    return [f for f in frames if isinstance(f, pl.DataFrame) and f.height]


def _grouped_refs(source: Any, groups: int, task: Task, schema: pl.Schema) -> list[Any]:
    """As :func:`_grouped`, the references of the tasks' frames (Arrow, in Ray's object store:
    none of them fetched here)."""
    from ray.data.context import ShuffleStrategy  # noqa: PLC0415 - an optional extra

    # This dataset's own context: a task-based sort shuffle starts no actor pool per job (the
    # default hash shuffle costs seconds before the first row moves); nothing global changes.
    source.context.shuffle_strategy = ShuffleStrategy.SORT_SHUFFLE_PULL_BASED
    results = source.groupby(DAY, num_partitions=groups).map_groups(
        partial(_run, task=task, schema=schema), batch_format="pyarrow"
    )
    logger, level = logging.getLogger("ray.data"), logging.getLogger("ray.data").level
    logger.setLevel(logging.WARNING)  # Ray Data's progress lines: not on our stderr
    try:
        refs: list[Any] = results.to_arrow_refs()
    finally:
        logger.setLevel(level)
    return refs


def map_days(rows: pl.DataFrame, task: Task) -> list[pl.DataFrame]:
    """``task`` over each day's rows of ``rows`` (stamped by :func:`by_interval_day`), one Ray
    Data task per day, and the frames the tasks return (in no particular order).

    ``task`` must be picklable (a module-level function, or a ``functools.partial`` of one);
    every row of one day reaches the same task, in no particular order. Call :func:`connect`
    first.
    """
    import ray.data  # noqa: PLC0415 - an optional extra

    if rows.height == 0:
        return []
    source = ray.data.from_arrow(rows.to_arrow())
    return _grouped(source, rows[DAY].n_unique(), task, rows.schema)


def store_partitions(path: Path, keep: pl.Expr, *, maxima: tuple[str, ...] = ()) -> list[list[str]]:
    """The data files of the store table at ``path`` (its current version, as its log names
    them) for which ``keep`` holds, one list of absolute paths (or ``s3://`` URLs: a table on
    object storage, :mod:`engine.output.location`) per date partition, in date
    order: what the read tasks open. ``keep`` is an expression over the columns of
    :func:`engine.output.delta.data_files` (with ``maxima``: the log's greatest value of
    those columns in each file).

    Raises:
        StoreError: no table at ``path``, or its log cannot be read.
    """
    files = delta.data_files(path, maxima=maxima).filter(keep)
    files = files.sort(delta.PARTITION, maintain_order=True)
    grouped = files.group_by(delta.PARTITION, maintain_order=True).agg(pl.col("path"))
    # absolute (a worker's working folder is not this process's), or the object store's URLs
    where = location.uri(path)
    return [[f"{where}/{rel}" for rel in rels] for rels in grouped["path"].to_list()]


def read_files(files: list[str], schema: Mapping[str, pl.DataType]) -> pl.LazyFrame:
    """Data files of a store table as ``schema``'s columns and types (the store writes enums
    as text), rows in the files' order: :func:`engine.output.delta.scan`'s read, by path."""
    frame = pl.scan_parquet(
        files, missing_columns="insert", extra_columns="ignore", hive_partitioning=False
    )
    return frame.select(list(schema)).cast(dict(schema))  # type: ignore[arg-type]


def _read(batch: Any, *, read: Reader) -> Any:
    """One partition's read on a worker: the paths of its files in (one row), its rows out as
    Arrow, enums as text (so that every block of the shuffle has one schema); a read's side
    results as one more row, of the day :data:`SIDE` (its packed frame's IPC bytes)."""
    (files,) = batch.column("files").to_pylist()
    got = read(list(files))
    rows, side = got if isinstance(got, tuple) else (got, None)
    rows = rows.with_columns(pl.col(pl.Enum, pl.Categorical).cast(pl.String))
    if side is not None:
        buffer = io.BytesIO()
        side.write_ipc(buffer)
        extra = pl.DataFrame({DAY: [SIDE], _SIDE: [buffer.getvalue()]})
        rows = pl.concat([rows, extra], how="diagonal")
    return rows.to_arrow()


def map_partitions(
    partitions: list[list[str]],
    read: Reader,
    schema: pl.Schema,
    task: Task,
    *,
    days: int,
    held: bool = True,
) -> list[Any]:
    """``task`` over each day's rows, read by the Ray tasks themselves: one task per partition
    runs ``read`` over its files (:func:`store_partitions`: the driver sends paths, never rows)
    and returns its rows stamped with :data:`DAY` (one of at most ``days`` days; ``schema``'s
    columns and types), then every day's rows reach one task, as in :func:`map_days`. The
    frames the tasks return, and the reads' side results (a ``read`` that returns a pair: its
    packed frame, as the tasks' are); not ``held``: the references of those frames in Ray's
    object store (Arrow; :func:`write_days` writes them).
    """
    import ray.data  # noqa: PLC0415 - an optional extra

    if not partitions:
        return []
    items = [{"files": files} for files in partitions]
    source = ray.data.from_items(items, override_num_blocks=len(partitions))
    rows = source.map_batches(partial(_read, read=read), batch_size=1, batch_format="pyarrow")
    # the shuffle's partitions: about one per day the rows fall on (never more than the grid's
    # days; at arrival, a partition's rows fall on its day or the one before)
    groups = max(1, min(days, len(partitions) + 1))
    if not held:
        return _grouped_refs(rows, groups, task, schema)
    return _grouped(rows, groups, task, schema)


def _small(block: Any, *, busy: tuple[str, ...]) -> Any:
    """A day task's packed frame without its busy rows (a Ray task: the small parts only)."""
    packed = pl.from_arrow(block)
    assert isinstance(packed, pl.DataFrame)
    return packed.filter(~pl.col("kind").is_in(busy)).to_arrow()


def _write(block: Any, *, finish: Finish, where: Mapping[str, str], tag: str) -> Any:
    """A day task's busy rows written as the tables' data files (a Ray task): each table's
    finished rows, one file per UTC date of their interval; the files' records."""
    packed = pl.from_arrow(block)
    assert isinstance(packed, pl.DataFrame)
    records = []
    for name, rows in finish(unpack([packed])).items():
        dated = rows.with_columns(datafiles.days_of("interval_start_utc"))
        for part in dated.partition_by(delta.PARTITION, maintain_order=True):
            day = part[delta.PARTITION][0]
            file = datafiles.write_file(where[name], part.drop(delta.PARTITION), day, tag)
            records.append({"table": name, **file})
    return pl.DataFrame(records, schema=_RECORD).to_arrow()


_RECORD: Final = pl.Schema(
    {"table": pl.String, "path": pl.String, "size": pl.Int64, "day": pl.Date, "stats": pl.String}
)


def write_days(
    refs: list[Any],
    *,
    busy: tuple[str, ...],
    finish: Callable[[dict[tuple[str, int], list[pl.DataFrame]]], Finish],
    where: Mapping[str, str],
    tag: str,
) -> tuple[dict[tuple[str, int], list[pl.DataFrame]], dict[str, list[dict[str, Any]]]]:
    """The day tasks' frames (``refs``: :func:`map_partitions`, not ``held``) written by Ray
    tasks as data files of the tables at ``where`` (name: folder or object-store URL), named
    for the writer ``tag``, nothing committed; the busy rows (the kinds ``busy``) never reach
    this process. First every other part comes here (small: names, groups, the document's
    parts) and ``finish`` makes of them what the writing tasks do to the busy rows (each
    table's rows by name: a picklable function); then each day's block is written where it
    is. The small parts by key, and each table's files (:func:`engine.output.datafiles.
    write_file`'s records; a table no file was written for: none).
    """
    import ray  # noqa: PLC0415 - an optional extra

    small: Any = ray.remote(_small)  # type: ignore[arg-type]
    parts = [pl.from_arrow(t) for t in ray.get([small.remote(r, busy=busy) for r in refs])]
    found = unpack([p for p in parts if isinstance(p, pl.DataFrame)])
    write: Any = ray.remote(_write)  # type: ignore[arg-type]
    job = finish(found)
    done = ray.get([write.remote(r, finish=job, where=dict(where), tag=tag) for r in refs])
    files: dict[str, list[dict[str, Any]]] = {name: [] for name in where}
    for records in done:
        frame = pl.from_arrow(records)
        assert isinstance(frame, pl.DataFrame)
        for record in frame.iter_rows(named=True):
            files[record.pop("table")].append(record)
    return found, files


def pack(frames: Mapping[tuple[str, int], pl.DataFrame]) -> pl.DataFrame:
    """Several frames as one (a task returns one frame): a row per frame, its key (``kind``,
    ``part``) and its Arrow IPC bytes (``ipc``)."""
    blobs = []
    for frame in frames.values():
        buffer = io.BytesIO()
        frame.write_ipc(buffer)
        blobs.append(buffer.getvalue())
    return pl.DataFrame(
        {
            "kind": [k for k, _ in frames],
            "part": [p for _, p in frames],
            "ipc": blobs,
        },
        schema={"kind": pl.String, "part": pl.Int64, "ipc": pl.Binary},
    )


def unpack(packed: list[pl.DataFrame]) -> dict[tuple[str, int], list[pl.DataFrame]]:
    """The frames of :func:`pack`'s rows, by key (every task's frame of that key)."""
    found: dict[tuple[str, int], list[pl.DataFrame]] = {}
    for frame in packed:
        for kind, part, blob in frame.iter_rows():
            found.setdefault((kind, part), []).append(pl.read_ipc(io.BytesIO(blob)))
    return found
