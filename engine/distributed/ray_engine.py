"""The volume table built on a Ray cluster: Ray Data maps over UTC days, the same Polars builder.

Every interval belongs to one UTC day, the day of its start (an interval that crosses UTC
midnight, as 30-minute ones do in Kathmandu, belongs to the day it starts on, with every contact
it holds), so the volume table is a map over (UTC day) partitions followed by an exact merge.
:func:`volume_table` hands each day's validated contacts to Ray Data as Arrow
(``groupby("_day").map_groups`` with ``batch_format="pyarrow"``); each task runs the one builder,
:func:`engine.tables.callvolume.busy_rows`, over that day's intervals and returns them.
The driver then does the two global steps the builder does over the whole window:

- the queue name: each queue's name on its most recently updated contact (ties: the greatest
  name), chosen over every day (a task only sees its own);
- the zero-fill: :func:`engine.tables.dense.fill` over the whole grid (every queue and channel
  seen in the window, every interval of it), then the derived ratios.

When the contacts are committed to the store already (``store/contacts``, partitioned by the UTC
date of the offer: the nightly run commits them before it builds), the driver passes the table's
path instead of the rows: it lists the files of the partitions the grid can draw from (from the
Delta log) and each partition's Ray task reads its own files with Polars, keeps the inbound
contacts and places each in its interval's day (:func:`engine.distributed.cluster.map_partitions`);
each day's task then builds as above, and also returns each queue's latest names, which the
driver reduces by the same rule. No contact passes through this process then (its caller may
hold them: it wrote them).

For the store alone (``dense=False`` with ``into``: :func:`write_volume_table`) the day tasks'
busy rows never come here: they stay in Ray's object store, the driver gets each day's queue
names and groups, reduces the names, and Ray tasks rename, order and derive the busy rows and
write them as the store table's data files (:func:`engine.distributed.cluster.write_days`);
the driver commits the files' records in one transaction.

The result equals the single-machine table row for row (tests/engine/test_distributed.py: a
Hypothesis property on a local two-worker cluster). There is no second implementation of any
metric. Without an address, Ray starts a local cluster (``address="auto"`` joins a running one,
``ray://host:10001`` a remote one); the workers import this package, so it must be installed
there (or the working directory shipped with ``runtime_env``). With an address, the cluster
job (``_on_cluster``: from joining to the tasks' frames) runs in a helper process
(:mod:`engine.distributed.helper`: a cluster lost mid-job is a ``ClusterError``), and the
merge and the zero-fill here.

Example:
    ``table = volume_table(contacts, grid=settings.grid(window), settings=settings)``
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import polars as pl

from engine.distributed.cluster import (
    DAY,
    by_interval_day,
    connect,
    map_days,
    map_partitions,
    pack,
    read_files,
    store_partitions,
    unpack,
    write_days,
)
from engine.distributed.helper import away, call
from engine.interval import Grid
from engine.output import datafiles, delta, location
from engine.output.delta import PARTITION
from engine.schema import CONTACTS
from engine.settings import BuildSettings
from engine.tables import callvolume
from engine.tables.dense import fill

__all__ = ["volume_table", "write_volume_table"]

Found = dict[tuple[str, int], list[pl.DataFrame]]


def _day_table(
    contacts: pl.DataFrame, *, frame: pl.DataFrame, settings_json: dict[str, Any]
) -> pl.DataFrame:
    """One UTC day's busy rows of the volume table, and each (queue, name)'s latest update in
    it (a Ray task; packed: :func:`engine.distributed.cluster.pack`)."""
    settings = BuildSettings.model_validate(settings_json)
    day = contacts[DAY][0]
    grid = frame.filter(pl.col("interval_start_utc").dt.date() == day)
    lo, hi = grid["interval_start_utc"][0], grid["interval_end_utc"][-1]
    rows = contacts.drop(DAY).lazy()
    busy = callvolume.busy_rows(rows, window=(lo, hi), settings=settings)
    named = rows.group_by("queue_id", "queue_name").agg(pl.col("updated_at").max())
    first = pl.col("interval_start_utc").min()  # the table's groups, for a build's report
    groups = busy.group_by("queue_id", "channel").agg(first)
    frames = pl.collect_all([busy, named, groups])
    return pack({("busy", 0): frames[0], ("names", 0): frames[1], ("groups", 0): frames[2]})


def _attributed(settings: BuildSettings) -> pl.Expr:
    """The instant a contact counts at (the builder's attribution, SPEC §4)."""
    if settings.attribution == "end":
        return pl.coalesce(pl.col("ended_at"), pl.col("offered_at"))
    return pl.col("offered_at")


def _read_partition(
    files: list[str], *, frame: pl.DataFrame, settings_json: dict[str, Any]
) -> pl.DataFrame:
    """One partition of ``store/contacts`` (a Ray task reads its files): its inbound contacts,
    each in the UTC day of its interval in ``frame`` (the others left out)."""
    settings = BuildSettings.model_validate(settings_json)
    inbound = read_files(files, CONTACTS).filter(pl.col("direction") == "inbound").collect()
    return by_interval_day(inbound, _attributed(settings), frame)


def _partitions(store: Path, frame: pl.DataFrame, settings: BuildSettings) -> list[list[str]]:
    """The files of the partitions (offer dates) that can hold a contact of ``frame``'s
    intervals: the grid's dates; with attribution at the end, the files of earlier dates too
    whose greatest ``ended_at`` (the log's, to the millisecond below) may reach the grid's
    start, and every earlier file the log has no such figure for (a contact counts where it
    ends, at its offer when it has no end, and no bound on its length is assumed)."""
    start = frame["interval_start_utc"][0]
    last = (frame["interval_end_utc"][-1] - timedelta(microseconds=1)).date()
    keep = (pl.col(PARTITION) <= last) & (pl.col(PARTITION) >= start.date())
    if settings.attribution != "end":
        return store_partitions(store, keep)
    ended = pl.col("max.ended_at")
    reaches = ended.is_null() | (ended + timedelta(milliseconds=1) > start)
    return store_partitions(
        store, keep | ((pl.col(PARTITION) <= last) & reaches), maxima=("ended_at",)
    )


def _names(inbound: pl.DataFrame) -> pl.DataFrame:
    """Each queue's name over the whole window, by the builder's own rule
    (:func:`engine.tables.callvolume.latest_queue_name`), on each (queue, name)'s latest update."""
    latest = inbound.group_by("queue_id", "queue_name").agg(pl.col("updated_at").max())
    named = latest.with_columns(callvolume.latest_queue_name())
    return named.unique("queue_id").select("queue_id", "queue_name")


def _busy_table(
    parts: list[pl.DataFrame], names: pl.DataFrame, settings: BuildSettings
) -> pl.DataFrame:
    """The busy rows of the volume table from days' busy rows and each queue's name over the
    window: renamed, in the builder's order (queue, channel, name, nulls first, then
    interval), with the derived ratios."""
    busy = pl.concat([p.cast(callvolume.SCHEMA) for p in parts], how="vertical")  # type: ignore[arg-type]
    renamed = busy.drop("queue_name").join(names, on="queue_id", how="left")
    order = ["queue_id", "channel", "queue_name", "interval_start_utc"]
    rows = renamed.lazy().select(list(callvolume.SCHEMA)).sort(order, nulls_last=False)
    return callvolume.derive(rows, settings=settings).collect()


def _finish(
    found: Found, *, names: pl.DataFrame, settings_json: dict[str, Any]
) -> dict[str, pl.DataFrame]:
    """A day's busy rows as the store's ``callvolume`` rows (in a writing task)."""
    parts = found.get(("busy", 0), [])
    settings = BuildSettings.model_validate(settings_json)
    return {"callvolume": _busy_table(parts, names, settings)} if parts else {}


def _finisher(settings_json: dict[str, Any]) -> Any:
    """What the writing tasks do, once the queue names are known from the days' small parts."""

    def make(found: Found) -> Any:
        named = found.get(("names", 0), [])
        names = _names(pl.concat(named)) if named else pl.DataFrame(schema=_NAMES)
        return partial(_finish, names=names, settings_json=settings_json)

    return make


_NAMES = {"queue_id": CONTACTS["queue_id"], "queue_name": CONTACTS["queue_name"]}


def _on_cluster(
    contacts: pl.DataFrame | Path,
    *,
    grid: Grid,
    settings: BuildSettings,
    address: str | None,
    write: tuple[str, str] | None = None,
) -> Any:
    """What the day tasks return, by key: the job on the cluster (with an address, from the
    helper process: :mod:`engine.distributed.helper`). ``write``: (where, tag): the tasks
    write the table's files there (``contacts`` a store path) and what returns is
    :func:`engine.distributed.cluster.write_days`' pair."""
    if away(address):  # a cluster apart from this process: its driver in a helper process,
        # which has a working folder of its own
        contacts = contacts.resolve() if isinstance(contacts, Path) else contacts
        return call(
            address, _on_cluster, contacts, grid=grid, settings=settings, address=address,
            write=write,
        )  # fmt: skip
    connect(address)
    frame, settings_json = grid.frame, settings.model_dump(mode="json")
    task = partial(_day_table, frame=frame, settings_json=settings_json)
    if isinstance(contacts, Path):
        read = partial(_read_partition, frame=frame, settings_json=settings_json)
        schema = pl.Schema({**CONTACTS, DAY: pl.Date()})
        spans = frame["interval_start_utc"].dt.date().n_unique()
        packed = map_partitions(
            _partitions(contacts, frame, settings), read, schema, task, days=spans,
            held=write is None,
        )  # fmt: skip
        if write is not None:
            where, tag = write
            return write_days(
                packed, busy=("busy",), finish=_finisher(settings_json),
                where={"callvolume": where}, tag=tag,
            )  # fmt: skip
    else:
        inbound = contacts.filter(pl.col("direction") == "inbound")
        # each contact's day is the UTC day of its interval's start (intervals never cross a day)
        packed = map_days(by_interval_day(inbound, _attributed(settings), frame), task)
    return unpack(packed)


def volume_table(
    contacts: pl.DataFrame | Path,
    *,
    grid: Grid,
    settings: BuildSettings,
    address: str | None = None,
    dense: bool = True,
    into: Path | None = None,
) -> pl.DataFrame:
    """The volume table of ``grid`` (with its derived ratios) from validated contacts, built by
    Ray tasks over UTC days; equal to :func:`engine.pipeline.build.volume_table`'s (``dense=False``:
    its busy rows only, in the builder's order, without the driver's zero-fill).

    ``contacts``: the rows, or the path of the store table that holds them (``store/contacts``,
    committed: its partitions are read by the Ray tasks, not by this process). ``into`` (with
    a path and ``dense=False``): the tasks write the table there, :func:`write_volume_table`.

    Raises:
        ClusterError: Ray is not installed, or the cluster at ``address`` cannot be joined.
        StoreError: ``contacts`` is a path with no readable store table.
    """
    if into is not None and isinstance(contacts, Path) and not dense:
        return write_volume_table(contacts, into, grid=grid, settings=settings, address=address)
    found: Found = _on_cluster(contacts, grid=grid, settings=settings, address=address)
    if not any(f.height for f in found.get(("busy", 0), [])):
        make = callvolume.build if dense else callvolume.busy_rows
        empty = make(pl.LazyFrame(schema=CONTACTS), window=grid, settings=settings)
        return callvolume.derive(empty, settings=settings).collect()
    names = _names(pl.concat(found["names", 0], how="vertical"))
    if not dense:
        return _busy_table(found["busy", 0], names, settings)
    parts = [p.cast(callvolume.SCHEMA) for p in found["busy", 0]]  # type: ignore[arg-type]
    busy = pl.concat(parts, how="vertical")
    renamed = busy.drop("queue_name").join(names, on="queue_id", how="left")
    rows = fill(renamed.lazy(), "callvolume", grid.frame)
    return callvolume.derive(rows, settings=settings).collect()


def write_volume_table(
    contacts: Path, table: Path, *, grid: Grid, settings: BuildSettings, address: str | None
) -> pl.DataFrame:
    """Build the volume table of ``grid`` from the committed store table ``contacts`` as
    :func:`volume_table` does with ``dense=False``, and replace the store table ``table``
    with its busy rows in one transaction: the Ray tasks write the data files where the table
    lives (its folder, or its object-store URL), this process commits the files they name and
    never holds the rows. A job that fails leaves the table as it was (its files, in a local
    folder, removed; any left are a killed writer's: :func:`engine.output.delta.remove_orphans`).
    The table's groups (queue and channel, with its first busy interval): a build's report.

    Raises:
        ClusterError: Ray is not installed, or the cluster at ``address`` cannot be joined.
        StoreError: no readable store table at ``contacts``; a file or the commit failed.
    """
    tag = uuid.uuid4().hex[:12]
    found: Found
    files: dict[str, list[dict[str, Any]]]
    try:
        found, files = _on_cluster(
            contacts, grid=grid, settings=settings, address=address,
            write=(location.uri(table), tag),
        )  # fmt: skip
        empty = callvolume.busy_rows(pl.LazyFrame(schema=CONTACTS), window=grid, settings=settings)
        schema = callvolume.derive(empty, settings=settings).collect_schema()
        actions = datafiles.actions_of(files["callvolume"])
        delta.commit_files(table, actions, schema=schema, tag=tag, placed=True)
    except BaseException:
        datafiles.discard(table, tag)  # files no version names: the table is as it was
        raise
    groups = found.get(("groups", 0), [])
    shape = {c: callvolume.SCHEMA[c] for c in ("queue_id", "channel", "interval_start_utc")}
    if not groups:
        return pl.DataFrame(schema=shape)
    return pl.concat([g.cast(shape) for g in groups]).unique(["queue_id", "channel"])  # type: ignore[arg-type]
