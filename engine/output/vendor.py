"""Vendor export files defined as data: one TOML profile per WFM product (``engine/data/exports/``).

A profile names its columns in order, each taken from a column of the volume table (optionally
formatted, mapped, or converted from ms to whole seconds, rounded half up), a constant, or the
interval length; plus the delimiter, whether there is a header, how files are split (by columns,
by size) and whether every day is zero-filled from 00:00 to 24:00 UTC. Adding a product is adding
a TOML file. Besides the volume table's columns a profile can use ``queue_key``
(``queue_id:channel``, unique per row of an interval); a file name can hold ``{part}`` (the part
of a split file), a ``split_by`` column, and ``{run}``, the run's UTC date and time
(``20261106T233500Z``), for products that need every file name to be unique. Only closed
intervals are written when :func:`render` is given the instant they must have ended by.

Example:
    >>> p = builtin_profiles()["genesys"]
    >>> [c.header for c in p.columns][:3]
    ['Interval Start UTC Date', 'Queue', 'Media Type']
"""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, time, timedelta
from importlib import resources
from pathlib import Path
from typing import Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator

from engine import clock
from engine.errors import ExportError
from engine.interval import interval_grid
from engine.tables.callvolume import ADDITIVE

__all__ = [
    "PROFILE_DIR",
    "Column",
    "ExportError",
    "Profile",
    "builtin_profiles",
    "closed_by",
    "render",
]

#: The built-in profiles, shipped inside the package.
PROFILE_DIR = Path(str(resources.files("engine") / "data" / "exports"))


class Column(BaseModel):
    """One output column: exactly one of ``column``, ``const`` or ``interval_length``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    header: str
    column: str | None = None
    const: str | None = None
    interval_length: bool = False
    format: str | None = None
    unit: Literal["ms", "s"] = "ms"
    map: dict[str, str] | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Column:
        sources = [self.column is not None, self.const is not None, self.interval_length]
        if sum(sources) != 1:
            msg = f"column {self.header!r}: give exactly one of column, const, interval_length"
            raise ValueError(msg)
        return self


class Profile(BaseModel):
    """A vendor file format."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""
    interval_minutes: Literal[15, 30, 60] = 15
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    header: bool = True
    split_by: tuple[str, ...] = ()
    file_name: str
    max_file_bytes: int = Field(default=0, ge=0)
    full_days: bool = False
    columns: tuple[Column, ...]


def builtin_profiles(directory: Path = PROFILE_DIR) -> dict[str, Profile]:
    """Every ``*.toml`` profile in ``directory``, by name."""
    profiles = {}
    for path in sorted(directory.glob("*.toml")):
        with path.open("rb") as fh:
            profile = Profile.model_validate(tomllib.load(fh))
        profiles[profile.name] = profile
    return profiles


def _check_intervals(table: pl.DataFrame, profile: Profile) -> None:
    step_us = profile.interval_minutes * 60_000_000
    length = (pl.col("interval_end_utc") - pl.col("interval_start_utc")).dt.total_microseconds()
    bad = table.filter(
        (length != step_us) | (pl.col("interval_start_utc").cast(pl.Int64) % step_us != 0)
    )
    if bad.height:
        msg = (
            f"profile {profile.name!r} needs {profile.interval_minutes}-minute intervals aligned "
            f"to UTC; build the table with --interval {profile.interval_minutes} and a zone whose "
            f"offset is a multiple of it (e.g. --tz UTC)"
        )
        raise ExportError(msg)


def _full_days(table: pl.DataFrame, profile: Profile, closed_by: datetime | None) -> pl.DataFrame:
    """Zero rows for every interval of every UTC day the table touches, per queue and channel,
    up to the last interval closed by ``closed_by`` (never an interval still to come)."""
    first: datetime = table["interval_start_utc"].min()  # type: ignore[assignment]
    last: datetime = table["interval_start_utc"].max()  # type: ignore[assignment]
    start = datetime.combine(first.date(), time(), tzinfo=UTC)
    end = datetime.combine(last.date(), time(), tzinfo=UTC) + timedelta(days=1)
    grid = interval_grid(start, end, minutes=profile.interval_minutes, tz="UTC")
    if closed_by is not None:
        grid = grid.filter(pl.col("interval_end_utc") <= closed_by)
    pairs = table.select("queue_id", "channel", "queue_name").unique(["queue_id", "channel"])
    full = pairs.join(grid, how="cross").join(
        table.drop("queue_name", *grid.columns[1:]), on=["queue_id", "channel",
                                                        "interval_start_utc"], how="left"
    )  # fmt: skip
    return full.with_columns(pl.col(c).fill_null(0) for c in ADDITIVE if c in full.columns)


def _cell(col: Column, profile: Profile, delimiter: str) -> pl.Expr:
    if col.interval_length:
        return pl.lit(str(profile.interval_minutes))
    if col.const is not None:
        return pl.lit(col.const)
    assert col.column is not None
    value = pl.col(col.column)
    if col.unit == "s":
        value = (value + 500) // 1000
    if col.format is not None:
        value = value.dt.strftime(col.format)
    text = value.cast(pl.String)
    if col.map:
        text = text.replace(col.map)
    needs_quotes = text.str.contains(f'[{delimiter}"\n]')
    quoted = pl.lit('"') + text.str.replace_all('"', '""', literal=True) + pl.lit('"')
    return pl.when(needs_quotes).then(quoted).otherwise(text).fill_null("")


def _file_stem(template: str, values: dict[str, object]) -> str:
    safe = {k: "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(v))
            for k, v in values.items()}  # fmt: skip
    return template.format(**safe)


def closed_by(now: datetime, settle_minutes: int) -> datetime:
    """The instant by which an interval must have ended to be exported: ``now`` less the settle
    time (an interval is closed when its end plus the settle time has passed).

    Example:
        >>> closed_by(datetime(2026, 11, 6, 23, 35, tzinfo=UTC), 0).isoformat()
        '2026-11-06T23:35:00+00:00'
    """
    return now - timedelta(minutes=settle_minutes)


def render(
    table: pl.DataFrame,
    profile: Profile,
    *,
    closed: datetime | None = None,
    run_at: datetime | None = None,
) -> list[tuple[str, str]]:
    """The files of ``profile`` for a volume table: ``[(file name, text), ...]``.

    Args:
        table: the zero-filled volume table (with ``queue_name`` and the additive columns).
        profile: the file format.
        closed: only intervals that ended by this instant are written (:func:`closed_by`; a
            running interval is never exported); ``None``: every interval of ``table``.
        run_at: the run's instant, for a ``{run}`` in the file name (``YYYYMMDDTHHMMSSZ``,
            UTC; default: now, from :mod:`engine.clock`).

    Raises:
        ExportError: the table's intervals do not fit the profile.
    """
    if closed is not None:
        table = table.filter(pl.col("interval_end_utc") <= closed)
    if table.height == 0:
        return []
    _check_intervals(table, profile)
    stamp = (run_at or clock.now()).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    rows = _full_days(table, profile, closed) if profile.full_days else table
    rows = rows.with_columns(
        pl.concat_str(pl.col("queue_id"), pl.col("channel").cast(pl.String), separator=":").alias(
            "queue_key"
        )
    ).sort(*profile.split_by, "interval_start_utc", "queue_id", "channel")
    d = profile.delimiter
    lines = rows.select(
        *profile.split_by,
        pl.concat_str([_cell(c, profile, d) for c in profile.columns], separator=d).alias("_l"),
    )
    header = d.join(c.header for c in profile.columns) + "\n" if profile.header else ""
    groups = lines.partition_by(*profile.split_by, as_dict=True) if profile.split_by else {
        (): lines}  # fmt: skip
    files: list[tuple[str, str]] = []
    for key, group in groups.items():
        values = dict(zip(profile.split_by, key, strict=True))
        if profile.max_file_bytes:
            budget = profile.max_file_bytes - len(header.encode())
            sizes = group["_l"].str.len_bytes() + 1
            budget -= int(sizes.to_numpy().max())  # so that a part never exceeds the limit
            if budget <= 0:
                msg = f"profile {profile.name!r}: max_file_bytes is too small for one line"
                raise ExportError(msg)
            part = (sizes.cum_sum() // budget).alias("_part")
            # cum_sum only grows, so parts come out in order
            parts = group.with_columns(part).partition_by("_part", maintain_order=True)
        else:
            parts = [group]
        for number, chunk in enumerate(parts):
            stem = {**values, "part": f"{number + 1:03d}", "run": stamp}
            name = _file_stem(profile.file_name, stem)
            files.append((name, header + "\n".join(chunk["_l"]) + "\n"))
    return files
