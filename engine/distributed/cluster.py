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
driver unpacks them (:func:`unpack`).

Example:
    ``frames = map_days(by_interval_day(rows, pl.col("offered_at"), grid.frame), task)``
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any, Final

import polars as pl

from engine.errors import ClusterError
from engine.output import delta, location

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
]

#: The column :func:`by_interval_day` adds: the UTC date of the start of the row's interval.
DAY: Final = "_day"

#: A day's task: the day's rows (with :data:`DAY`) in, one frame out.
Task = Callable[[pl.DataFrame], pl.DataFrame]
#: A partition's read: the full paths of its files in, its rows with :data:`DAY` out.
Reader = Callable[[list[str]], pl.DataFrame]


def connect(address: str | None) -> None:
    """Join the Ray cluster at ``address`` (``auto``: the one running on this machine;
    ``ray://host:10001``: a remote one through Ray Client; ``None``: start a local one with one
    worker per CPU), unless this process has joined one already (the first join wins).

    The workers get the driver's ``PYTHONPATH`` and this package's root, so a source checkout
    runs as the installed package does.

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
    try:
        ray.init(
            address=address,
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
    """One day's task on a worker: Arrow in (typed as the driver's rows), Arrow out."""
    rows = pl.from_arrow(batch)
    assert isinstance(rows, pl.DataFrame)
    return task(rows.cast(schema)).to_arrow()


def _grouped(source: Any, groups: int, task: Task, schema: pl.Schema) -> list[pl.DataFrame]:
    """``task`` over each day's rows of the Ray dataset ``source`` (with :data:`DAY`, typed as
    ``schema`` once cast), ``groups`` shuffle partitions; the frames the tasks return."""
    import ray  # noqa: PLC0415 - an optional extra
    from ray.data.context import ShuffleStrategy  # noqa: PLC0415

    # This dataset's own context: a task-based sort shuffle starts no actor pool per job (the
    # default hash shuffle costs seconds before the first row moves); nothing global changes.
    source.context.shuffle_strategy = ShuffleStrategy.SORT_SHUFFLE_PULL_BASED
    results = source.groupby(DAY, num_partitions=groups).map_groups(
        partial(_run, task=task, schema=schema), batch_format="pyarrow"
    )
    logger, level = logging.getLogger("ray.data"), logging.getLogger("ray.data").level
    logger.setLevel(logging.WARNING)  # Ray Data's progress lines: not on our stderr
    try:
        refs = results.to_arrow_refs()
    finally:
        logger.setLevel(level)
    frames = [pl.from_arrow(t) for t in ray.get(refs)]
    return [f for f in frames if isinstance(f, pl.DataFrame) and f.height]


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
    Arrow, enums as text (so that every block of the shuffle has one schema)."""
    (files,) = batch.column("files").to_pylist()
    rows = read(list(files))
    return rows.with_columns(pl.col(pl.Enum, pl.Categorical).cast(pl.String)).to_arrow()


def map_partitions(
    partitions: list[list[str]], read: Reader, schema: pl.Schema, task: Task, *, days: int
) -> list[pl.DataFrame]:
    """``task`` over each day's rows, read by the Ray tasks themselves: one task per partition
    runs ``read`` over its files (:func:`store_partitions`: the driver sends paths, never rows)
    and returns its rows stamped with :data:`DAY` (one of at most ``days`` days; ``schema``'s
    columns and types), then every day's rows reach one task, as in :func:`map_days`. The
    frames the tasks return.
    """
    import ray.data  # noqa: PLC0415 - an optional extra

    if not partitions:
        return []
    items = [{"files": files} for files in partitions]
    source = ray.data.from_items(items, override_num_blocks=len(partitions))
    rows = source.map_batches(partial(_read, read=read), batch_size=1, batch_format="pyarrow")
    # the shuffle's partitions: about one per day the rows fall on (never more than the grid's
    # days; at arrival, a partition's rows fall on its day or the one before)
    return _grouped(rows, max(1, min(days, len(partitions) + 1)), task, schema)


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
