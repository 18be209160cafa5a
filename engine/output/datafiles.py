"""The data files of a store table: written (from rows held, or streamed from a lazy plan), made
durable and described for the transaction that makes them visible (:mod:`engine.output.delta`).

Every file goes to ``date=YYYY-MM-DD/part-<tag>-<id>.parquet`` under the table, ``date`` the UTC
date of the row's ``by`` instant, ``tag`` the writer's (:func:`engine.output.delta.remove_orphans`
tells a committed writer's files from a killed one's by it). Nothing here commits: files no
version names are invisible to readers until :func:`engine.output.delta.commit_files` (or
:func:`engine.output.delta.commit`) names them.

:func:`sink_partitions` writes rows as a lazy plan streams them, so a table larger than memory
is written without ever being held: one pass of the plan, with any other outputs collected
beside it (``pl.collect_all``); :func:`added` then describes what the writer ``tag`` wrote.

Example:
    >>> import tempfile
    >>> from datetime import UTC, datetime
    >>> path = Path(tempfile.mkdtemp()) / "t"
    >>> rows = pl.LazyFrame({"at": [datetime(2026, 10, 1, 9, tzinfo=UTC)], "n": [1]})
    >>> sink_partitions(rows, path, by="at", tag="t1").collect()
    shape: (0, 0)
    ┌┐
    ╞╡
    └┘
    >>> [(a.path.split("/")[0], a.partition_values) for a in added(path, "t1")]
    [('date=2026-10-01', {'date': '2026-10-01'})]
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import socket
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any, Final, Literal, TypeVar

import polars as pl
from deltalake.transaction import AddAction

from engine.durable import fsync, fsync_dir
from engine.errors import naming
from engine.output import location

__all__ = [
    "PARTITION",
    "STORE_COMPRESSION",
    "WRITTEN",
    "actions_of",
    "added",
    "aside",
    "days_of",
    "discard",
    "drop_apart",
    "new_scratch",
    "scratch",
    "set_apart",
    "sink_partitions",
    "storable",
    "write_file",
    "write_partitions",
]

#: The partition column of every store table: the UTC date of its ``by`` instant.
PARTITION: Final = "date"
_APART: Final = "__apart"
#: Codec of the store's files: lz4 decodes faster than zstd for about 1.5x the disk, and reading
#: is the largest single cost of a build (the figures: benchmarks/README.md, "Where the time goes").
STORE_COMPRESSION: Literal["lz4"] = "lz4"
#: An instant in the log's file statistics (the table format's: milliseconds, UTC).
_MS: Final = "%Y-%m-%dT%H:%M:%S%.3fZ"

Frame = TypeVar("Frame", pl.DataFrame, pl.LazyFrame)


def days_of(by: str | pl.Expr) -> pl.Expr:
    """The partition value of each row: the UTC date of ``by`` (a column or an instant)."""
    instant = pl.col(by) if isinstance(by, str) else by
    return instant.dt.date().alias(PARTITION)


def storable(frame: Frame) -> Frame:
    """Enums as text: the table format has no enum type (the readers cast them back)."""
    return frame.with_columns(pl.col(pl.Enum, pl.Categorical).cast(pl.String))


def _name(tag: str) -> str:
    return f"part-{tag}-{uuid.uuid4().hex[:12]}.parquet"


#: A data file :func:`_name` names, in its date partition, relative to its table.
WRITTEN: Final = re.compile(
    rf"{PARTITION}=\d{{4}}-\d{{2}}-\d{{2}}/part-[0-9a-z]+-[0-9a-f]{{12}}\.parquet"
)


def _stats(frame: pl.DataFrame | pl.LazyFrame) -> str:
    """A file's statistics for the log: its rows, and each UTC instant column's least and
    greatest value to the millisecond below (as the table format's own writer records them;
    readers may skip files by them: :func:`engine.output.delta.data_files`' ``maxima``)."""
    at = pl.selectors.datetime(time_zone="UTC")
    row = frame.lazy().select(
        pl.len().alias("numRecords"),
        at.min().dt.strftime(_MS).name.prefix("minValues."),
        at.max().dt.strftime(_MS).name.prefix("maxValues."),
    )
    found: dict[str, Any] = {"minValues": {}, "maxValues": {}}
    for key, value in row.collect().row(0, named=True).items():
        kind, _, column = key.partition(".")
        if value is not None:
            found[kind] = value if not column else {**found[kind], column: value}
    return json.dumps({k: v for k, v in found.items() if v != {}})


def _action(path: Path, file: Path, stats: str) -> AddAction:
    day = file.parent.name.removeprefix(f"{PARTITION}=")
    relative = f"{file.parent.name}/{file.name}"
    return AddAction(relative, file.stat().st_size, {PARTITION: day}, 0, True, stats)


def write_partitions(path: Path, frame: pl.DataFrame, tag: str) -> list[AddAction]:
    """Write one durable file per partition of ``frame`` (a ``date`` column; rows in
    ``frame``'s order) and describe them.

    Each partition is filtered out of ``frame`` as it is written, so one partition's copy is
    held at a time (a group-by would first copy the whole frame into one chunk).
    """
    actions: list[AddAction] = []
    folders = set()
    for day in frame.get_column(PARTITION).unique().sort():
        assert isinstance(day, date)
        part = storable(frame.filter(pl.col(PARTITION) == day).drop(PARTITION))
        folder = path / f"{PARTITION}={day.isoformat()}"
        folder.mkdir(parents=True, exist_ok=True)
        file = folder / _name(tag)
        with naming(file):
            part.write_parquet(file, compression=STORE_COMPRESSION)
            fsync(file)
        folders.add(folder)
        actions.append(_action(path, file, _stats(part)))
    for folder in (*folders, path):
        fsync_dir(folder)
    return actions


def write_file(where: str, rows: pl.DataFrame, day: date, tag: str) -> dict[str, Any]:
    """Write ``rows`` as one new data file of partition ``day`` of the table at ``where`` (its
    folder's absolute path, or its object-store URL: :func:`engine.output.location.uri`),
    named for the writer ``tag`` as :func:`write_partitions` names it, durable (a local file
    fsynced with its folders; an object appears whole); what its add action records
    (:func:`actions_of`). A Ray task's write, where the table lives: nothing is committed.

    Raises:
        StoreError: an upload to the object store failed.
    """
    part = storable(rows)
    relative = f"{PARTITION}={day.isoformat()}/{_name(tag)}"
    buffer = io.BytesIO()
    part.write_parquet(buffer, compression=STORE_COMPRESSION)
    data = buffer.getvalue()
    if location.is_url(where):
        location.put(where, relative, data)
    else:
        file = Path(where) / relative
        file.parent.mkdir(parents=True, exist_ok=True)
        with naming(file), file.open("wb") as out:
            out.write(data)
        fsync(file)
        for folder in (file.parent, file.parent.parent):
            fsync_dir(folder)
    return {"path": relative, "size": len(data), "day": day, "stats": _stats(part)}


def actions_of(files: list[dict[str, Any]]) -> list[AddAction]:
    """The add actions of files :func:`write_file` wrote (its records, in any process)."""
    return [
        AddAction(f["path"], f["size"], {PARTITION: f["day"].isoformat()}, 0, True, f["stats"])
        for f in files
    ]


def sink_partitions(
    frame: pl.LazyFrame, path: Path, *, by: str | pl.Expr, tag: str, apart: str | None = None
) -> pl.LazyFrame:
    """The lazy sink writing ``frame``'s rows to the partitions of the UTC date of ``by`` as
    they stream (one file or more per partition, named for ``tag``): collect it, alone or with
    other outputs of the same plan; then :func:`added` makes the files durable and describes
    them. The rows of a partition are not kept in ``frame``'s order.

    ``apart``: a text column of ``frame`` (not written) naming, where it is not null, a folder
    ``date=<name>`` its row goes to instead, in files named for :func:`aside` ``(tag)``: not the
    table's rows, and deleted as a killed writer's would be (no version names that tag)."""

    def file_path(args: Any) -> str:
        day, folder = args.partition_keys.row(0)
        if folder is not None:
            return f"{PARTITION}={folder}/{_name(aside(tag))}"
        return f"{PARTITION}={day.isoformat()}/{_name(tag)}"

    # a key that is a column of ``frame`` keeps its name: left out of the files with the others
    folder = pl.lit(None, pl.String).alias(_APART) if apart is None else pl.col(apart)
    key = [pl.when(folder.is_null()).then(days_of(by)).alias(PARTITION), folder]
    target = pl.PartitionBy(path, key=key, include_key=False, file_path_provider=file_path)
    return storable(frame).sink_parquet(
        target, compression=STORE_COMPRESSION, mkdir=True, maintain_order=False, lazy=True
    )


def aside(tag: str) -> str:
    """The writer tag of the rows the writer ``tag`` set apart (:func:`sink_partitions`)."""
    return f"{tag}x"


def set_apart(path: Path, tag: str, folder: str) -> list[Path]:
    """The files of the rows the writer ``tag`` set apart to ``folder``, relative to ``path``
    (as a commit's files are: a relative ``path`` must not be joined to them twice)."""
    found = (path / f"{PARTITION}={folder}").glob(f"part-{aside(tag)}-*.parquet")
    return sorted(f.relative_to(path) for f in found)


def _written(path: Path, tag: str) -> list[Path]:
    return sorted(path.glob(f"{PARTITION}=*/part-{tag}-*.parquet"))


def added(path: Path, tag: str) -> list[AddAction]:
    """The files the writer ``tag`` left under ``path`` (:func:`sink_partitions`), fsynced with
    their folders, described for a commit (each file's rows and bounds, read back)."""
    path.mkdir(parents=True, exist_ok=True)
    files = _written(path, tag)
    actions = []
    for file in files:
        fsync(file)
        actions.append(_action(path, file, _stats(pl.scan_parquet(file))))
    for folder in (*{f.parent for f in files}, path):
        fsync_dir(folder)
    return actions


def discard(path: Path, tag: str) -> None:
    """Delete the files the writer ``tag`` left under ``path`` (a build that failed before its
    commit: no version names them)."""
    for file in _written(path, tag):
        file.unlink(missing_ok=True)
    drop_apart(path, tag)


def drop_apart(path: Path, tag: str) -> None:
    """Delete the files of the rows the writer ``tag`` set apart, and their emptied folders."""
    files = _written(path, aside(tag))
    for file in files:
        file.unlink(missing_ok=True)
    for folder in {f.parent for f in files}:
        if not any(folder.iterdir()):
            folder.rmdir()


def _alive(pid: int) -> bool:
    """A process ``pid`` runs on this host (one of another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def new_scratch(parent: Path, prefix: str) -> Path:
    """A new scratch folder in ``parent``, ``<prefix><pid>@<host>@<random>``, for the caller to
    remove when done. The folders of ``prefix`` that processes of this host left (a killed
    command's: their pid no longer runs) are removed first, so a killed build's spilled rows do
    not stay beside the store for good; another host's, or a running process's, are left."""
    parent.mkdir(parents=True, exist_ok=True)
    host = socket.gethostname()
    shape = re.compile(rf"{re.escape(prefix)}(\d+)@(.+)@[^@]+")
    for found in parent.glob(f"{prefix}*"):
        m = shape.fullmatch(found.name)
        if m and m[2] == host and not _alive(int(m[1])):  # this process is alive too
            shutil.rmtree(found, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}@{host}@", dir=parent))


@contextmanager
def scratch(parent: Path, prefix: str) -> Iterator[Path]:
    """:func:`new_scratch` for the ``with`` block, removed after it whatever happens."""
    folder = new_scratch(parent, prefix)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
