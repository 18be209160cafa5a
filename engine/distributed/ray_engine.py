"""The volume table built on a Ray cluster: Ray Data maps over UTC days, the same Polars builder.

Every interval belongs to one UTC day, the day of its start (an interval that crosses UTC
midnight, as 30-minute ones do in Kathmandu, belongs to the day it starts on, with every contact
it holds), so the volume table is a map over (UTC day) partitions followed by an exact merge.
:func:`volume_table` hands each day's validated contacts to Ray Data as Arrow
(``groupby("_day").map_groups`` with ``batch_format="pyarrow"``); each task runs the one builder,
:func:`engine.tables.callvolume.build`, over that day's intervals and returns its **busy rows**.
The driver then does the two global steps the builder does over the whole window:

- the queue name: each queue's name on its most recently updated contact (ties: the greatest
  name), chosen over every day (a task only sees its own);
- the zero-fill: :func:`engine.tables.dense.fill` over the whole grid (every queue and channel
  seen in the window, every interval of it), then the derived ratios.

The result equals the single-machine table row for row (tests/engine/test_distributed.py: a
Hypothesis property on a local two-worker cluster). There is no second implementation of any
metric. Without an address, Ray starts a local cluster (``address="auto"`` joins a running one,
``ray://host:10001`` a remote one); the workers import this package, so it must be installed
there (or the working directory shipped with ``runtime_env``).

Example:
    ``table = volume_table(contacts, grid=settings.grid(window), settings=settings)``
"""

from __future__ import annotations

from functools import partial
from typing import Any

import polars as pl

from engine.distributed.cluster import DAY, by_interval_day, connect, map_days
from engine.interval import Grid
from engine.settings import BuildSettings
from engine.tables import callvolume
from engine.tables.dense import fill

__all__ = ["volume_table"]


def _day_table(
    contacts: pl.DataFrame, *, frame: pl.DataFrame, settings_json: dict[str, Any]
) -> pl.DataFrame:
    """One UTC day's busy rows of the volume table (a Ray task)."""
    settings = BuildSettings.model_validate(settings_json)
    day = contacts[DAY][0]
    grid = frame.filter(pl.col("interval_start_utc").dt.date() == day)
    lo, hi = grid["interval_start_utc"][0], grid["interval_end_utc"][-1]
    busy = callvolume.busy_rows(contacts.drop(DAY).lazy(), window=(lo, hi), settings=settings)
    return busy.collect()


def _attributed(settings: BuildSettings) -> pl.Expr:
    """The instant a contact counts at (the builder's attribution, SPEC §4)."""
    if settings.attribution == "end":
        return pl.coalesce(pl.col("ended_at"), pl.col("offered_at"))
    return pl.col("offered_at")


def _names(inbound: pl.DataFrame) -> pl.DataFrame:
    """Each queue's name over the whole window, by the builder's own rule
    (:func:`engine.tables.callvolume.latest_queue_name`), on each (queue, name)'s latest update."""
    latest = inbound.group_by("queue_id", "queue_name").agg(pl.col("updated_at").max())
    named = latest.with_columns(callvolume.latest_queue_name())
    return named.unique("queue_id").select("queue_id", "queue_name")


def volume_table(
    contacts: pl.DataFrame,
    *,
    grid: Grid,
    settings: BuildSettings,
    address: str | None = None,
    dense: bool = True,
) -> pl.DataFrame:
    """The volume table of ``grid`` (with its derived ratios) from validated contacts, built by
    Ray tasks over UTC days; equal to :func:`engine.pipeline.build.volume_table`'s (``dense=False``:
    its busy rows only, in the builder's order, without the driver's zero-fill).

    Raises:
        ClusterError: Ray is not installed, or the cluster at ``address`` cannot be joined.
    """
    connect(address)
    frame = grid.frame
    inbound = contacts.filter(pl.col("direction") == "inbound")
    # each contact's day is the UTC day of its interval's start (intervals never cross a day)
    days = by_interval_day(inbound, _attributed(settings), frame)
    if days.height == 0:
        make = callvolume.build if dense else callvolume.busy_rows
        empty = make(contacts.head(0).lazy(), window=grid, settings=settings)
        return callvolume.derive(empty, settings=settings).collect()
    task = partial(_day_table, frame=frame, settings_json=settings.model_dump(mode="json"))
    frames = [p.cast(callvolume.SCHEMA) for p in map_days(days, task)]  # type: ignore[arg-type]
    busy = pl.concat([f for f in frames if f.height], how="vertical")
    renamed = busy.drop("queue_name").join(_names(days), on="queue_id", how="left")
    if dense:
        rows = fill(renamed.lazy(), "callvolume", frame)
    else:  # the builder's order: queue, channel, name (nulls first), then interval
        order = ["queue_id", "channel", "queue_name", "interval_start_utc"]
        rows = renamed.lazy().select(list(callvolume.SCHEMA)).sort(order, nulls_last=False)
    return callvolume.derive(rows, settings=settings).collect()
