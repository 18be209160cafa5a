"""The store's tables: Delta Lake tables partitioned by UTC date, each commit atomic and durable.

Every table under ``<output.dir>/store/`` (``contacts``, ``callback_attempts``, ``callvolume``,
``callback_intervals``, ``retry_outcomes``, ``callvolume_kore``) is a Delta Lake table (delta-rs,
the ``deltalake`` package): Parquet files in ``date=YYYY-MM-DD/`` folders plus a transaction log
(``_delta_log/``) that names which files make up each version. A reader sees one version,
never a mix, and Polars, DuckDB, pandas and Spark read it as it is::

    pl.scan_delta("out/store/callvolume")                         # Polars
    duckdb.sql("SELECT * FROM delta_scan('out/store/callvolume')")  # DuckDB (delta extension)
    deltalake.DeltaTable("out/store/callvolume").to_pandas()      # pandas

:func:`commit` replaces whole date partitions (or the whole table) in one transaction: each new
file written and fsynced (with its folder), then the log entry that makes them visible committed
(the log's atomic put-if-absent) and fsynced. A crash before the commit leaves files no version
names (:func:`remove_orphans` takes them away); after it, the new version. Partitions not named
are never rewritten. :func:`problems` checks a table against its log (each file, size, rows).

Example:
    >>> import tempfile
    >>> from datetime import UTC, datetime
    >>> at = datetime(2026, 10, 1, 9, tzinfo=UTC)
    >>> path = Path(tempfile.mkdtemp()) / "t"
    >>> _ = commit(path, pl.DataFrame({"at": [at], "n": [1]}), by="at")
    >>> _ = commit(path, pl.DataFrame({"at": [at], "n": [2]}), by="at", days=[at.date()])
    >>> scan(path).collect()["n"].to_list(), version(path), problems(path)
    ([2], 1, [])
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterable
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl
from arro3.core import Schema, Table
from deltalake import CommitProperties, DeltaTable
from deltalake import Schema as DeltaSchema
from deltalake.exceptions import DeltaError
from deltalake.transaction import AddAction, create_table_with_add_actions

from engine import killpoint
from engine.durable import fsync, fsync_dir
from engine.errors import StoreError
from engine.output import location
from engine.output.datafiles import (
    PARTITION,
    STORE_COMPRESSION,
    days_of,
    storable,
    write_partitions,
)

__all__ = ["PARTITION", "STORE_COMPRESSION", "arrow_schema", "commit", "commit_files",
           "current_files", "data_files", "days_of", "is_table", "partition_days", "problems",
           "remove_orphans", "row_count", "scan", "unwritten", "vacuum", "version"]  # fmt: skip

_LOG = "_delta_log"
_RUN_KEY = "wfm_intervals.commit"
_VERSION_FILE = re.compile(r"\d{20}\.(json|checkpoint(\.\d+\.\d+)?\.parquet)")  # in a log


def is_table(path: Path) -> bool:
    """``path`` holds a Delta table (a log with a version: one without is a first commit that
    never happened, which the next creates), here or on the object store it stands for."""
    if (url := location.remote(path)) is not None:
        return location.has_table(url)
    log = Path(path) / _LOG
    return log.is_dir() and any(_VERSION_FILE.fullmatch(p.name) for p in log.iterdir())


_open = location.open_table
_first_line = location.one_line


def version(path: Path) -> int:
    """The table's current version (0 after its first commit).

    Raises:
        StoreError: no table at ``path``, or its log cannot be read.
    """
    return _open(path).version()


def unwritten(path: Path) -> bool:
    """The table's only version is an empty creation no writer committed (earlier releases
    created a table, then committed its first rows after it): no run's version to read yet."""
    table = _open(path)
    return table.version() == 0 and _RUN_KEY not in table.history(1)[0]


def scan(
    path: Path,
    schema: pl.Schema | dict[str, pl.DataType] | None = None,
    *,
    days: Iterable[date] | None = None,
) -> pl.LazyFrame:
    """The current version of the table, lazily, without the partition column.

    With ``schema``, the columns are cast to it (the store writes enums as text); with
    ``days``, only those partitions are read.

    Raises:
        StoreError: no table at ``path``, or its log cannot be read.
    """
    if not is_table(path):
        raise StoreError(f"{path}: no store table here")
    table = _open(path)  # a damaged log fails here, with the path, not later inside a collect
    adds = data_files(path, table)
    columns = {k: v for k, v in pl.Schema(table.schema()).items() if k != PARTITION}
    if days is not None:
        adds = adds.filter(pl.col(PARTITION).is_in(sorted(set(days))))
    # The current version's files, read directly: this store writes no deletion vectors and no
    # column mapping (pl.scan_delta would also load pyarrow, ~0.1 s of a nightly run).
    if files := [f"{location.uri(path)}/{rel}" for rel in adds.get_column("path").to_list()]:
        frame = pl.scan_parquet(files, missing_columns="insert", extra_columns="ignore")
        frame = frame.select(list(columns)).cast(columns)  # type: ignore[arg-type]
    else:
        frame = pl.LazyFrame(schema=columns)
    if schema is None:
        return frame
    return frame.select(list(schema)).cast(dict(schema))  # type: ignore[arg-type]


def data_files(
    path: Path, table: DeltaTable | None = None, *, maxima: tuple[str, ...] = ()
) -> pl.DataFrame:
    """The current version's files, from the log: ``path`` (relative), ``size_bytes``,
    ``num_records`` (null where the log holds no count) and the partition ``date``; and
    ``max.<column>`` of each of ``maxima`` (UTC instants: the file's greatest, to the
    millisecond below; null where the log holds none).

    Raises:
        StoreError: no table at ``path``, or its log cannot be read.
    """
    try:
        adds = pl.DataFrame((table or _open(path)).get_add_actions(flatten=True))
    except (DeltaError, OSError) as exc:
        raise StoreError(f"{location.shown(path)}: unreadable log ({_first_line(exc)})") from None
    most = {f"max.{c}": pl.Datetime("us", "UTC") for c in maxima}
    if not adds.height:
        return pl.DataFrame(schema={"path": pl.String, "size_bytes": pl.Int64,
                                    "num_records": pl.Int64, PARTITION: pl.Date,
                                    **most})  # fmt: skip
    part = pl.col(f"partition.{PARTITION}").alias(PARTITION)
    stats = [(pl.col(n) if n in adds else pl.lit(None)).cast(t).alias(n) for n, t in most.items()]
    return adds.select("path", "size_bytes", "num_records", part, *stats)


def current_files(path: Path) -> set[str]:
    """The data files of the table's current version, relative to ``path``."""
    return set(data_files(path)["path"].to_list())


def partition_days(path: Path) -> list[date]:
    """The partitions (UTC dates) holding files in the table's current version, in order."""
    return sorted(data_files(path).get_column(PARTITION).unique().to_list())


def row_count(path: Path) -> int:
    """The current version's rows, from the log's count per file (no count: the file's footer)."""
    adds = data_files(path)
    where = location.uri(path)
    unknown = [f"{where}/{rel}" for rel in adds.filter(pl.col("num_records").is_null())["path"]]
    extra = pl.scan_parquet(unknown).select(pl.len()).collect().item() if unknown else 0
    return int(adds["num_records"].sum()) + int(extra)


def _changed(
    path: Path, dated: pl.DataFrame, days: list[date], known: pl.DataFrame | None, by: pl.Expr
) -> list[date]:
    """The partitions of ``days`` whose stored rows differ from ``dated``'s (any row order);
    ``known``: those partitions' rows, already read by the caller (:func:`scan`), else read."""
    stored = storable(scan(path, days=days).collect() if known is None else known)
    stored = stored.with_columns(days_of(by))
    ours = storable(dated)
    if set(stored.columns) != set(ours.columns):
        return days
    try:
        theirs = stored.select(ours.columns).cast(ours.schema)
    except pl.exceptions.PolarsError:
        return days
    changed = []
    for day in days:
        a = ours.filter(pl.col(PARTITION) == day)
        b = theirs.filter(pl.col(PARTITION) == day)
        try:
            same = a.height == b.height and a.sort(ours.columns, nulls_last=True).equals(
                b.sort(ours.columns, nulls_last=True)
            )
        except pl.exceptions.PolarsError:  # a column that cannot be sorted: assume changed
            same = False
        if not same:
            changed.append(day)
    return changed


def arrow_schema(frame: pl.DataFrame) -> Schema:
    """The Arrow schema of ``frame`` as stored (:func:`storable`), by the Arrow C interface
    (``arro3``, as ``deltalake``): no ``pyarrow`` loaded (~36 MiB resident, ~0.15 s). Text is
    string views there, not large strings: both are the log's ``string``, the same schema."""
    return Table.from_arrow(storable(frame.head(0))).schema


def commit(
    path: Path,
    frame: pl.DataFrame,
    *,
    by: str | pl.Expr,
    days: Iterable[date] | None = None,
    tag: str | None = None,
    if_changed: bool = False,
    stored: pl.DataFrame | None = None,
) -> int:
    """Replace the date partitions ``days`` of the table at ``path`` (every partition when
    ``days`` is ``None``) with ``frame``'s rows, in one durable transaction; the new version.

    With ``if_changed``, partitions that already hold exactly ``frame``'s rows (the same rows,
    in any order) are not rewritten, and when that is every one of ``days`` nothing is committed
    and the current version is returned: a run that changes nothing leaves the table as it was.
    ``stored``: the rows of ``days`` as :func:`scan` gave them, when the caller holds them
    already (not read a second time).

    Each row goes to the partition of the UTC date of ``by``; every row must fall in one of
    ``days`` (a partition named with no rows is emptied). The table is created on first use
    with ``frame``'s schema and rows in one commit (version 0: no reader sees it without
    them). ``tag`` names the writer in the file names and the commit (a run id:
    :func:`remove_orphans` tells a finished run's files from a killed one's by it).

    Raises:
        ValueError: a row outside ``days``.
        StoreError: the table cannot be read or committed (the message names the path).
    """
    tag = tag or uuid.uuid4().hex[:12]
    dated = frame.with_columns(days_of(by))
    chosen = None if days is None else sorted(set(days))
    if chosen is not None:
        outside = dated.filter(~pl.col(PARTITION).is_in(chosen))
        if outside.height:
            first = outside[PARTITION].min()
            assert isinstance(first, date)
            msg = f"{path}: rows of {first.isoformat()} outside the partitions being replaced"
            raise ValueError(msg)
    if chosen == [] and is_table(path):
        return version(path)  # no partition to replace
    _unborn(path)
    try:
        # brought forward from the last read: one writer (the store's lock); None: created below
        table = _open(path) if is_table(path) else None
        if if_changed and chosen and table is not None:
            instant = pl.col(by) if isinstance(by, str) else by
            chosen = _changed(path, dated, chosen, stored, instant)
            dated = dated.filter(pl.col(PARTITION).is_in(chosen))
            if not chosen:
                return table.version()
        schema = arrow_schema(dated)
        actions = write_partitions(path, dated, tag)
        killpoint.reached("delta.files_written")
        filters = None if chosen is None else [(PARTITION, "in", [d.isoformat() for d in chosen])]
    except (DeltaError, OSError) as exc:
        raise StoreError(f"{location.shown(path)}: commit failed ({_first_line(exc)})") from None
    return _transact(path, table, actions, schema=schema, filters=filters, tag=tag)


def commit_files(
    path: Path, actions: list[AddAction], *, schema: pl.Schema, tag: str, placed: bool = False
) -> int:
    """Replace the whole table at ``path`` with the files ``actions`` describe, written and
    fsynced before by the writer ``tag`` (:func:`engine.output.datafiles.added`), in one
    durable transaction; the new version. ``schema``: the rows' columns (the table is created
    with them on first use). ``placed``: the files are where the table lives already (written
    there by Ray tasks: :func:`engine.output.datafiles.write_file`), none staged to upload.

    Raises:
        StoreError: the table cannot be read or committed (the message names the path).
    """
    empty = pl.DataFrame(schema=schema).with_columns(days_of(pl.lit(None, pl.Datetime)))
    arrow = arrow_schema(empty)  # the partition column last, as commit's
    _unborn(path)
    try:
        table = _open(path) if is_table(path) else None  # None: created with its files
    except (DeltaError, OSError) as exc:
        raise StoreError(f"{location.shown(path)}: commit failed ({_first_line(exc)})") from None
    killpoint.reached("delta.files_written")
    return _transact(path, table, list(actions), schema=arrow, filters=None, tag=tag, placed=placed)


def _unborn(path: Path) -> None:
    """Make the folder of the table at ``path`` and its log's (a local one's): a writer killed
    before a first commit leaves a log with no version (:func:`is_table`: none yet)."""
    if location.remote(path) is None:
        (path / _LOG).mkdir(parents=True, exist_ok=True)
    path.mkdir(parents=True, exist_ok=True)


def _transact(
    path: Path,
    table: DeltaTable | None,
    actions: list[Any],
    *,
    schema: Any,
    filters: Any,
    tag: str,
    placed: bool = False,
) -> int:
    """Commit ``actions`` (files written and fsynced) over the partitions ``filters`` (every
    partition: ``None``), then fsync the log; the new version. On object storage the files are
    uploaded first (unless ``placed`` there already), and the log's put-if-absent is the commit
    (nothing to fsync). No ``table`` yet: the table is created with those files, in one commit
    (version 0): a reader never sees a created table without its first rows."""
    url = location.remote(path)
    if not placed:
        location.upload(path, [a.path for a in actions])
    written = CommitProperties(custom_metadata={_RUN_KEY: tag})
    try:
        if table is None:
            create_table_with_add_actions(location.uri(path), DeltaSchema.from_arrow(schema),
                                          actions, partition_by=[PARTITION],
                                          commit_properties=written)  # fmt: skip
        else:
            table.create_write_transaction(actions, mode="overwrite", schema=schema,
                                           partition_by=[PARTITION], partition_filters=filters,
                                           commit_properties=written)  # fmt: skip
    except (DeltaError, OSError) as exc:
        raise StoreError(f"{location.shown(path)}: commit failed ({_first_line(exc)})") from None
    killpoint.reached("delta.committed")
    if url is not None:
        return _open(path).version()
    log = path / _LOG
    new = _open(path).version()
    entry = log / f"{new:020d}.json"
    if entry.exists():
        fsync(entry)
    fsync_dir(log)
    return new


def problems(
    path: Path, *, deep: bool = True, whole: bool = False, changed_after: int = -1
) -> list[str]:
    """What is wrong with the table at ``path``, one line a finding: no table, an unreadable log,
    a current file missing, of another size or (``deep``: its footer's) row count than the log's,
    or not readable whole: read whole when ``whole`` (``verify``: a sound footer can sit over
    damaged pages) or changed on disk after ``changed_after`` (a ``st_ctime_ns``: bytes
    overwritten in place keep a file's size, not its change time); else one stat a file."""
    if not is_table(path):
        return [f"{path}: missing (no transaction log)"]
    try:
        adds = data_files(path)
    except StoreError as exc:
        return [str(exc)]
    found = []
    for rel, size, rows in adds.select("path", "size_bytes", "num_records").iter_rows():
        try:
            held = os.stat(file := path / rel)
        except OSError:
            found.append(f"{file}: missing")
            continue
        read = whole or 0 <= changed_after < held.st_ctime_ns
        if held.st_size != size:
            found.append(f"{file}: {held.st_size} bytes, the log says {size}")
        elif read or (deep and rows is not None):
            try:
                scan = pl.scan_parquet(file)
                count = scan.collect().height if read else scan.select(pl.len()).collect().item()
            except (pl.exceptions.PolarsError, pl.exceptions.PanicException, OSError) as exc:
                found.append(f"{file}: unreadable, damaged on disk ({_first_line(exc)})")
                continue
            if rows is not None and count != rows:
                found.append(f"{file}: {count} rows, the log says {rows}")
    return found


def remove_orphans(path: Path) -> int:
    """Delete the data files of commits that never happened (a killed writer's); their count.

    A file is an orphan when the current version does not name it and its writer's tag is not
    in the table's history (files of earlier versions stay, for readers and time travel).
    """
    if not is_table(path):
        return 0
    table = _open(path)
    current = set(data_files(path, table)["path"].to_list())
    tags = {h.get(_RUN_KEY) for h in table.history()}
    removed = 0
    for file in path.glob(f"{PARTITION}=*/part-*.parquet"):
        relative = f"{file.parent.name}/{file.name}"
        tag = file.name.removeprefix("part-").rsplit("-", 1)[0]
        if relative not in current and tag not in tags:
            file.unlink()
            removed += 1
    return removed


def vacuum(path: Path, *, keep_hours: int = 168) -> int:
    """Delete the files of versions replaced more than ``keep_hours`` ago (time travel and slow
    readers keep that long); how many. Without it, every partition a run rewrites would leave
    its old files on disk for ever.

    Raises:
        StoreError: the table cannot be read.
    """
    if not is_table(path):
        return 0
    try:
        removed = DeltaTable(str(path)).vacuum(
            retention_hours=keep_hours, enforce_retention_duration=False, dry_run=False
        )
    except (DeltaError, OSError) as exc:
        raise StoreError(f"{path}: vacuum failed ({_first_line(exc)})") from None
    return len(removed)
