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

import os
from functools import partial
from pathlib import Path
from typing import Any

import polars as pl

from engine.interval import Grid
from engine.settings import BuildSettings
from engine.tables import callvolume, dense

__all__ = ["volume_table"]

_DAY = "_day"


def _day_table(batch: Any, *, frame: pl.DataFrame, settings_json: dict[str, Any]) -> Any:
    """One UTC day's busy rows of the volume table (a Ray task: Arrow in, Arrow out)."""
    contacts = pl.from_arrow(batch)
    assert isinstance(contacts, pl.DataFrame)
    settings = BuildSettings.model_validate(settings_json)
    day = contacts[_DAY][0]
    grid = frame.filter(pl.col("interval_start_utc").dt.date() == day)
    lo, hi = grid["interval_start_utc"][0], grid["interval_end_utc"][-1]
    built = callvolume.build(contacts.drop(_DAY).lazy(), window=(lo, hi), settings=settings)
    return built.filter(dense.busy("callvolume")).collect().to_arrow()


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


def _init(address: str | None) -> None:
    try:
        import ray  # noqa: PLC0415 - an optional extra, loaded only for --engine ray
    except ImportError:
        msg = "--engine ray: Ray is not installed (pip install 'wfm-intervals[ray]')"
        raise ValueError(msg) from None

    if ray.is_initialized():
        return
    root = str(Path(__file__).resolve().parents[2])
    paths = [root, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    runtime = {"env_vars": {"PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}}
    ray.init(address=address, runtime_env=runtime, include_dashboard=False, log_to_driver=False)


def volume_table(
    contacts: pl.DataFrame, *, grid: Grid, settings: BuildSettings, address: str | None = None
) -> pl.DataFrame:
    """The volume table of ``grid`` (with its derived ratios) from validated contacts, built by
    Ray tasks over UTC days; equal to :func:`engine.pipeline.build.volume_table`'s."""
    _init(address)
    import ray  # noqa: PLC0415 - an optional extra
    import ray.data  # noqa: PLC0415

    frame = grid.frame
    at = _attributed(settings)
    lo, hi = frame["interval_start_utc"][0], frame["interval_end_utc"][-1]
    inbound = contacts.filter(pl.col("direction") == "inbound", at >= lo, at < hi)
    starts = frame.select("interval_start_utc", "interval_end_utc")
    # each contact's day is the UTC day of its interval's start (intervals never cross a day)
    placed = (
        inbound.with_columns(_at=at)
        .sort("_at")
        .join_asof(starts, left_on="_at", right_on="interval_start_utc", strategy="backward")
    )
    placed = placed.with_columns(pl.col("interval_start_utc").dt.date().alias(_DAY))
    days = placed.drop("_at", "interval_start_utc", "interval_end_utc")
    if days.height == 0:
        empty = callvolume.build(contacts.head(0).lazy(), window=grid, settings=settings)
        return callvolume.derive(empty, settings=settings).collect()
    settings_json = settings.model_dump(mode="json")
    tables = (
        ray.data.from_arrow(days.to_arrow())
        .groupby(_DAY, num_partitions=max(1, days[_DAY].n_unique()))
        .map_groups(
            partial(_day_table, frame=frame, settings_json=settings_json), batch_format="pyarrow"
        )
    )
    parts = [pl.from_arrow(t) for t in ray.get(tables.to_arrow_refs())]
    frames = [p.cast(callvolume.SCHEMA) for p in parts if isinstance(p, pl.DataFrame)]  # type: ignore[arg-type]
    busy = pl.concat([f for f in frames if f.height], how="vertical")
    renamed = busy.drop("queue_name").join(_names(inbound), on="queue_id", how="left")
    filled = dense.fill(renamed.lazy(), "callvolume", frame)
    return callvolume.derive(filled, settings=settings).collect()
