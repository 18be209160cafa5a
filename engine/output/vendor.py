"""Vendor export files defined as data: one TOML profile per WFM product (``engine/data/exports/``).

A profile names its columns in order, each taken from a column of the volume table (optionally
formatted, mapped, or converted from ms to whole seconds, rounded half up), a constant, or the
interval length; plus the delimiter, whether there is a header, how files are split (by columns,
by size) and whether every day is zero-filled from 00:00 to 24:00 UTC (only the days the table
holds whole: it is zero-filled over what was built, and no zeros are made beyond it). Adding a
product is adding a TOML file. Besides the volume table's columns a profile can use ``queue_key``
(``queue_id:channel``, unique per row of an interval); a file name can hold ``{part}`` (the part
of a split file), a ``split_by`` column, and ``{run}``, the run's UTC date and time
(``20261106T233500Z``), for products that need every file name to be unique. A profile is checked
before anything is written: its file name is a plain file name (no folder, never ``..``) that
holds every placeholder that tells its files apart (each ``split_by`` column; ``{part}`` when
``max_file_bytes`` splits), so no file of a render ever overwrites another; its columns are
checked against the table when it is rendered (:func:`render`; :func:`load_profile` reads one of
your own). Only closed intervals are written when :func:`render` is given the instant they must
have ended by.

Example:
    >>> p = builtin_profiles()["genesys"]
    >>> [c.header for c in p.columns][:3]
    ['Interval Start UTC Date', 'Queue', 'Media Type']
"""

from __future__ import annotations

import string
import tomllib
from datetime import UTC, datetime, time, timedelta
from importlib import resources
from pathlib import Path
from typing import Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from engine import clock
from engine.errors import ExportError, printable
from engine.interval import interval_grid
from engine.output.vendor_names import (
    IDENTITY,
    NOT_NAMES,
    file_stem,
    lines_apart,
    new_name,
    told_apart,
)
from engine.tables.callvolume import ADDITIVE

__all__ = [
    "PROFILE_DIR",
    "Column",
    "ExportError",
    "Profile",
    "builtin_profiles",
    "closed_by",
    "load_profile",
    "render",
]

#: The built-in profiles, shipped inside the package.
PROFILE_DIR = Path(str(resources.files("engine") / "data" / "exports"))
#: The placeholders of a file name besides the ``split_by`` columns.
_NAMED = ("part", "run")


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
    columns: tuple[Column, ...] = Field(min_length=1)

    @field_validator("delimiter")
    @classmethod
    def _not_quote_or_line_break(cls, value: str) -> str:
        if value in '"\r\n':
            msg = f"{value!r} cannot be a delimiter (it is a quote or a line break)"
            raise ValueError(msg)
        return value

    @model_validator(mode="after")
    def _distinct_plain_file_names(self) -> Profile:
        """Every file a render writes gets a name of its own, in the output folder."""
        fields = _placeholders(self.file_name)
        named = f"file_name {self.file_name!r}"
        unknown = sorted(fields - {*_NAMED, *self.split_by})
        missing = [c for c in self.split_by if c not in fields]
        if len(set(self.split_by)) != len(self.split_by):
            msg = f"split_by {list(self.split_by)} names a column twice"
        elif unknown:
            msg = f"{named}: {{{unknown[0]}}} is neither {{part}}, {{run}} nor a split_by column"
        elif missing:
            msg = (
                f"{named} must hold {{{missing[0]}}}: the files are split by it (split_by), and "
                "without it they would get one name and overwrite each other"
            )
        elif self.max_file_bytes and "part" not in fields:
            msg = (
                f"{named} must hold {{part}}: max_file_bytes splits the files into parts, and "
                "without it they would get one name and overwrite each other"
            )
        elif not fields and self.file_name in NOT_NAMES:
            msg = f"{named} is not the name of a file"
        else:
            return self
        raise ValueError(msg)


def _placeholders(template: str) -> set[str]:
    """The placeholders of a file name template: ``{name}`` fields only.

    Raises:
        ValueError: a ``{`` or ``}`` out of place, a field that is not a plain name (``{0}``,
            ``{run.x}``, ``{run!r}``, ``{part:5}``), or a path separator or control character.
    """
    named = f"file_name {template!r}"
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        msg = f"{named}: {exc} (write {{{{ and }}}} for a brace)"
        raise ValueError(msg) from None
    fields = set()
    for literal, field, spec, conversion in parsed:
        if "/" in literal or "\\" in literal or not literal.isprintable():
            msg = f"{named} is not a plain file name: no folders (/ or \\), no control characters"
            raise ValueError(msg)
        if field is None:
            continue
        if not field.isidentifier() or spec or conversion:
            msg = (
                f"{named}: a placeholder is a plain name in braces ({{part}}, {{run}} or a "
                "split_by column), with no index, attribute, conversion or format"
            )
            raise ValueError(msg)
        fields.add(field)
    return fields


def _problem(exc: ValidationError) -> str:
    """The first problem of a profile, one line: ``<key>: <message>``."""
    first = exc.errors(include_url=False, include_input=False)[0]
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"])
    message = str(first["msg"]).removeprefix("Value error, ")
    return f"{where.lstrip('.')}: {message}" if where else message


def load_profile(path: Path) -> Profile:
    """A profile of your own, from a TOML file (``export vendor --profile-file``).

    Raises:
        ExportError: the file cannot be read, is not TOML, or is not a profile: one line, naming
            the profile's key.
    """
    try:
        return Profile.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))
    except ValidationError as exc:
        raise ExportError(_problem(exc)) from None
    except (OSError, ValueError) as exc:  # unreadable, not UTF-8, not TOML
        raise ExportError(printable(exc)) from None


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
    """Every interval of each whole UTC day the table holds, per queue and channel (zeros where a
    pair has no row): a day is whole when the table (zero-filled over what was built) holds each
    of its intervals from 00:00 up to 24:00 or the last closed by ``closed_by``. A day the builds
    covered in part is left out, never filled with zeros nobody counted (the importer would
    replace real history with them).

    Raises:
        ExportError: no whole day (the message names the table's span).
    """
    at, day = pl.col("interval_start_utc"), pl.col("interval_start_utc").dt.date().alias("_d")
    first: datetime = table["interval_start_utc"].min()  # type: ignore[assignment]
    last: datetime = table["interval_end_utc"].max()  # type: ignore[assignment]
    start = datetime.combine(first.date(), time(), tzinfo=UTC)
    end = datetime.combine(last.date(), time(), tzinfo=UTC) + timedelta(days=1)
    grid = interval_grid(start, end, minutes=profile.interval_minutes, tz="UTC")
    if closed_by is not None:
        grid = grid.filter(pl.col("interval_end_utc") <= closed_by)
    held = table.select(at.unique()).group_by(day).len()
    whole = grid.group_by(day).len().join(held, on=["_d", "len"]).drop("len")
    grid = grid.with_columns(day).join(whole, on="_d", how="semi").drop("_d")
    if grid.height == 0:
        span = " .. ".join(t.isoformat().replace("+00:00", "Z") for t in (first, last))
        msg = (
            f"profile {profile.name!r} writes whole UTC days (00:00-24:00, up to the last closed "
            f"interval), and the builds cover none: {span}; build whole UTC days (e.g. --tz UTC)"
        )
        raise ExportError(msg)
    pairs = table.select("queue_id", "channel", "queue_name").unique(["queue_id", "channel"])
    full = pairs.join(grid, how="cross").join(
        table.drop("queue_name", *grid.columns[1:]), on=["queue_id", "channel",
                                                        "interval_start_utc"], how="left"
    )  # fmt: skip
    return full.with_columns(pl.col(c).fill_null(0) for c in ADDITIVE if c in full.columns)


def _quoted(text: str, delimiter: str) -> str:
    """A header or constant as a CSV field: quoted when it holds the delimiter, a quote or a
    line break."""
    if any(c in text for c in (delimiter, '"', "\n", "\r")):
        return '"' + text.replace('"', '""') + '"'
    return text


def _cell(col: Column, profile: Profile, delimiter: str) -> pl.Expr:
    if col.interval_length:
        return pl.lit(str(profile.interval_minutes))
    if col.const is not None:
        return pl.lit(_quoted(col.const, delimiter))
    assert col.column is not None
    value = pl.col(col.column)
    if col.unit == "s":
        value = (value + 500) // 1000
    if col.format is not None:
        value = value.dt.strftime(col.format)
    text = value.cast(pl.String)
    if col.map:
        text = text.replace(col.map)
    needs_quotes = pl.any_horizontal(
        text.str.contains(c, literal=True) for c in (delimiter, '"', "\n", "\r")
    )
    quoted = pl.lit('"') + text.str.replace_all('"', '""', literal=True) + pl.lit('"')
    return pl.when(needs_quotes).then(quoted).otherwise(text).fill_null("")


def _check_columns(rows: pl.DataFrame, profile: Profile) -> None:
    """Every column a profile reads is in ``rows``, of a type its options can render.

    Raises:
        ExportError: the first that is not, naming the profile's key.
    """
    schema = rows.schema
    known = f"a column of the volume table ({', '.join(schema)})"
    for name in profile.split_by:
        if name not in schema:
            msg = f"profile {profile.name!r}: split_by {name!r} is not {known}"
            raise ExportError(msg)
    for i, col in enumerate(profile.columns):
        where = f"profile {profile.name!r}: columns[{i}] ({col.header!r})"
        if col.column is None:
            continue
        dtype = schema.get(col.column)
        if dtype is None:
            msg = f"{where}: column {col.column!r} is not {known}"
        elif col.format is not None and not isinstance(dtype, pl.Datetime | pl.Date | pl.Time):
            msg = f"{where}: format needs a date or time column; {col.column!r} is {dtype}"
        elif col.unit == "s" and not dtype.is_numeric():
            msg = f'{where}: unit = "s" needs a number of ms; {col.column!r} is {dtype}'
        else:
            try:  # what else the options ask (a strftime format, say) on one row
                rows.head(1).select(_cell(col, profile, profile.delimiter))
            except pl.exceptions.PolarsError as exc:
                msg = f"{where}: {printable(exc)}"
            else:
                continue
        raise ExportError(msg)


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
        ExportError: the table's intervals do not fit the profile; a column it reads is not in
            the table or not of a type its options render; two files would get one name (two
            ``split_by`` values that differ only in characters a file name replaces, or in
            letter case), or a name is not a plain file name; a ``full_days`` profile over a
            table that holds no whole UTC day (:func:`_full_days`).
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
    )
    _check_columns(rows, profile)
    d = profile.delimiter
    # split by queue too where the files are by queue name: two queues of one name a file each
    by_name = "queue_name" in profile.split_by and "queue_id" not in profile.split_by
    keys = [*profile.split_by, *(["queue_id"] if by_name else [])]
    naming = [c for c in profile.columns if c.column in IDENTITY]
    try:
        lines = rows.sort(*keys, "interval_start_utc", "queue_id", "channel").select(
            *keys,
            pl.concat_str([_cell(c, profile, d) for c in profile.columns], separator=d).alias("_l"),
            pl.concat_str([pl.lit(""), *(_cell(c, profile, d) for c in naming)], separator=d).alias(
                "_id"
            ),
        )
    except pl.exceptions.PolarsError as exc:
        raise ExportError(f"profile {profile.name!r}: {printable(exc)}") from None
    lines_apart(lines.select(*keys, "_id"), profile.name, [c.header for c in naming])
    lines = lines.drop("_id")
    header = d.join(_quoted(c.header, d) for c in profile.columns) + "\n" if profile.header else ""
    groups = lines.partition_by(*keys, as_dict=True) if keys else {(): lines}
    files: list[tuple[str, str]] = []
    seen: dict[str, dict[str, object]] = {}
    for key, group in groups.items():
        values = dict(zip(profile.split_by, key, strict=False))  # the file name's own
        queue = dict(zip(keys, key, strict=True))
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
            name = file_stem(profile.file_name, stem)
            if name.casefold() in seen and values and seen[name.casefold()] != values:
                name = told_apart(name, values)  # another split's values made the same name
            elif name.casefold() in seen and queue != values:
                name = told_apart(name, queue)  # another queue of the same name
            new_name(name, values, seen, profile.name)
            files.append((name, header + "\n".join(chunk["_l"]) + "\n"))
    return files
