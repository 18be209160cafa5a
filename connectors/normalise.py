"""Rebuild canonical rows of a source from the landing store, and the store's quarantine side.

:func:`rebuild` is what the pipeline calls: for each stream of a source it scans the
de-duplicated landed records (:func:`connectors.landing.scan_landed`), runs the stream's
vectorised normalise function (a mapping to canonical columns, not a validation), and adds the
records set aside at landing time (no primary key, or a shape that does not fit the stream's
declared dtype), so that nothing is ever dropped silently (SPEC §7). Its rows name their record
as quarantine rows do (``record_id``, :data:`engine.schema.SOURCE_RECORD`) and come with each
landed record's payload (:attr:`Rebuilt.raw`): the pipeline validates the rows once, and
quarantines a bad record whole, with its payload.

Records set aside at landing (:func:`screen`: a shape that does not fit) are written by
:func:`land_rejected` next to the raw store, one durable Parquet file per page that had any::

    <root>/quarantine/source=<s>/stream=<t>/part-<uuid>.parquet
        record_id, reason, detail, raw (scrubbed JSON), batch_id

Example:
    >>> import tempfile
    >>> from connectors.vendors.ujet.client import UJET
    >>> out = rebuild(UJET, Path(tempfile.mkdtemp()))
    >>> out.rows.collect().height, out.quarantine.collect().height, out.raw.collect().height
    (0, 0, 0)
"""

from __future__ import annotations

import io
import json
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import polars as pl

from connectors.decode import fits
from connectors.landing import PiiScrubber, RejectedRecord, scan_landed
from connectors.source import Source, SourceSettings, Stream, shape_error
from connectors.state import check_name
from engine import clock
from engine.durable import atomic_write_bytes
from engine.schema import QUARANTINE, SOURCE_RECORD

__all__ = [
    "MS_BOUND",
    "RAW_SCHEMA",
    "REJECTED_SCHEMA",
    "VERSION",
    "Rebuilt",
    "land_rejected",
    "normalise_stream",
    "payloads",
    "rebuild",
    "scan_rejected",
    "screen",
    "set_aside",
    "whole_ms",
]

REJECTED_SCHEMA: dict[str, pl.DataType] = {
    "record_id": pl.String(),
    "reason": pl.String(),
    "detail": pl.String(),
    "raw": pl.String(),
    "batch_id": pl.String(),
    "updated_at": pl.Datetime("us", "UTC"),  # the record's last change (null: unknown)
    "fetched_at": pl.Datetime("us", "UTC"),  # null in files written before it was kept
}
#: What :attr:`Rebuilt.raw` holds: each landed record's (PII-free) payload, by quarantine id.
RAW_SCHEMA: dict[str, pl.DataType] = {
    "source": pl.String(),
    "record_id": pl.String(),
    "raw": pl.String(),
}
#: Milliseconds are held to +/- this before their cast to Int64: past any plausible duration (the
#: validation quarantines the record, payload and all), inside Int64, so a vendor's ``1e30``
#: neither fails a rebuild nor becomes an absent (0) duration.
MS_BOUND = float(2**62)


def whole_ms(value: pl.Expr) -> pl.Expr:
    """Milliseconds ``value`` (a float) as Int64: rounded, held to :data:`MS_BOUND`.

    Example:
        >>> pl.select(a=whole_ms(pl.lit(1e30)), b=whole_ms(pl.lit(1234.6))).row(0)
        (4611686018427387904, 1235)
    """
    return value.round().clip(-MS_BOUND, MS_BOUND).cast(pl.Int64, strict=False)


_ID = re.compile(r'^\{"id":("?)([^",}]+)\1[,}]')


def _misfit(dtype: Any) -> Callable[[Any], str | None]:
    """Where a record does not fit ``dtype`` (``None``: it fits, or there is no dtype): the
    compiled :func:`~connectors.decode.fits` for all, ``shape_error`` only to name a misfit."""
    if dtype is None:
        return lambda _: None
    check = fits(dtype)
    return lambda record: None if check(record) else shape_error(record, dtype)


def screen(
    stream: Stream, records: Sequence[Any], scrubber: PiiScrubber
) -> tuple[list[Any], list[RejectedRecord]]:
    """A page's records prepared (``stream.prepare``), and those that do not fit the stream's
    declared shape set aside, scrubbed, as ``wrong_type`` (written by :func:`land_rejected`)."""
    kept: list[Any] = []
    rejected: list[RejectedRecord] = []
    misfit = _misfit(stream.record_dtype)
    for raw in records:
        record = stream.prepare(raw) if stream.prepare and isinstance(raw, Mapping) else raw
        where = misfit(record)
        if where is None:
            kept.append(record)
            continue
        clean = scrubber(record) if isinstance(record, Mapping) else record
        raw_json = json.dumps(clean, ensure_ascii=False, separators=(",", ":"), default=str)
        rid, updated = stream.identity(record) or (None, None)
        rejected.append(RejectedRecord("wrong_type", where, raw_json, rid, updated))
    return kept, rejected


def _rejected_dir(root: Path, source: str, stream: str) -> Path:
    source, stream = check_name(source, what="source"), check_name(stream, what="stream")
    return Path(root) / "quarantine" / f"source={source}" / f"stream={stream}"


def land_rejected(
    root: Path,
    source: str,
    stream: str,
    rejected: Sequence[RejectedRecord],
    *,
    batch_id: str,
    fetched_at: datetime | None = None,
) -> Path | None:
    """Durably write records set aside at landing (their ``raw`` is already PII-free), with
    the version each was (its id and last change, and ``fetched_at``, default now).

    Example:
        >>> import tempfile
        >>> bad = RejectedRecord("missing_record_id", "no key", '{"x":1}')
        >>> land_rejected(Path(tempfile.mkdtemp()), "ujet", "calls", [bad], batch_id="b").suffix
        '.parquet'
    """
    if not rejected:
        return None
    ids = [r.record_id or (m[2] if (m := _ID.match(r.raw)) else None) for r in rejected]
    frame = pl.DataFrame(
        {
            "record_id": ids,
            "reason": [r.reason for r in rejected],
            "detail": [r.message for r in rejected],
            "raw": [r.raw for r in rejected],
            "batch_id": [batch_id] * len(rejected),
            "updated_at": [r.updated_at for r in rejected],
            "fetched_at": [fetched_at or clock.now()] * len(rejected),
        },
        schema=REJECTED_SCHEMA,
    )
    buffer = io.BytesIO()
    frame.write_parquet(buffer, compression="zstd")
    path = _rejected_dir(root, source, stream) / f"part-{uuid.uuid4().hex}.parquet"
    atomic_write_bytes(path, buffer.getvalue())
    return path


#: How versions of one record are ordered, as :func:`connectors.landing.latest_records` orders
#: the landed ones (a version without a stamp is as new as its fetch).
_NEWEST = [pl.coalesce("updated_at", "fetched_at"), "fetched_at", "batch_id"]
#: The columns of a landed version that :func:`set_aside` compares.
VERSION = ("record_id", "updated_at", "fetched_at")


def scan_rejected(root: Path, source: str, stream: str) -> pl.LazyFrame:
    """Records set aside at landing: of a record with an id, its newest version set aside (a
    record sent misfit night after night is one record); of those without, one row per
    distinct (reason, raw payload).

    Example:
        >>> import tempfile
        >>> scan_rejected(Path(tempfile.mkdtemp()), "ujet", "calls").collect().height
        0
    """
    files = sorted(_rejected_dir(root, source, stream).glob("*.parquet"))
    if not files:
        return pl.LazyFrame(schema=REJECTED_SCHEMA)
    frame = pl.scan_parquet(
        files, schema=REJECTED_SCHEMA, hive_partitioning=False, missing_columns="insert"
    ).with_row_index("__row")
    newest = pl.col("__row") == pl.col("__row").sort_by([*_NEWEST, "__row"]).last()
    named = frame.filter(pl.col("record_id").is_not_null() & newest.over("record_id"))
    bare = frame.filter(pl.col("record_id").is_null()).unique(["reason", "raw"], keep="first")
    return pl.concat([named, bare]).sort("__row").drop("__row")


class Rebuilt(NamedTuple):
    """What :func:`rebuild` returns (lazy frames).

    Attributes:
        rows: the streams' canonical rows, not yet validated; rows of a table the pipeline
            validates carry ``record_id`` (their record's quarantine id, see ``Stream.ref``).
        quarantine: what landing and the mappings set aside (:data:`engine.schema.QUARANTINE`).
        raw: every landed record's payload by quarantine id (:data:`RAW_SCHEMA`), for the
            quarantine rows of the validation at the pipeline edge.
    """

    rows: pl.LazyFrame
    quarantine: pl.LazyFrame
    raw: pl.LazyFrame


def set_aside(source: Source, stream: Stream, root: Path, landed: pl.LazyFrame) -> pl.LazyFrame:
    """Quarantine rows (:data:`engine.schema.QUARANTINE`) of the records of ``stream`` set aside
    at landing (:func:`scan_rejected`) that ``landed`` holds no version of at least as new (its
    ``record_id``, ``updated_at`` and ``fetched_at``; without the last two, or for a record set
    aside before its version was kept, any version landed will do). A record whose newest
    version was set aside is listed so, while the version landed before it stays counted.

    Example:
        >>> import tempfile
        >>> from connectors.vendors.ujet.client import UJET
        >>> ids = pl.LazyFrame(schema={"record_id": pl.String})
        >>> set_aside(UJET, UJET.streams[0], Path(tempfile.mkdtemp()), ids).collect().height
        0
    """
    names = landed.collect_schema().names()
    stamps = [
        pl.col(c) if c in names else pl.lit(None, REJECTED_SCHEMA[c]).alias(c)
        for c in ("updated_at", "fetched_at")
    ]
    versions = landed.select("record_id", *stamps)
    when = pl.coalesce("updated_at", "fetched_at")
    rejected = scan_rejected(root, source.name, stream.name).with_columns(when.alias("__when"))
    found = rejected.join(
        versions.with_columns(when.alias("__when")), on="record_id", how="inner", suffix="_l"
    )
    older = (pl.col("__when_l") > pl.col("__when")) | (
        (pl.col("__when_l") == pl.col("__when")) & (pl.col("fetched_at_l") >= pl.col("fetched_at"))
    )
    beaten = older.fill_null(True)  # an old reject (no stamps) gives way to any landed version
    superseded = found.filter(beaten).select("record_id").unique()
    kept = rejected.join(superseded, on="record_id", how="anti", nulls_equal=False)
    return kept.select(
        pl.lit(source.name).alias("source"),
        pl.lit(source.table).alias("table"),
        stream.ref(pl.col("record_id")).alias("record_id"),
        "reason",
        "detail",
        "raw",
    ).cast(QUARANTINE)  # type: ignore[arg-type]


def payloads(source: Source, stream: Stream, landed: pl.LazyFrame) -> pl.LazyFrame:
    """``landed``'s payloads by quarantine id (:data:`RAW_SCHEMA`).

    Example:
        >>> from connectors.landing import LANDING_SCHEMA
        >>> from connectors.vendors.ujet.client import UJET
        >>> payloads(UJET, UJET.streams[0], pl.LazyFrame(schema=LANDING_SCHEMA)).collect().height
        0
    """
    ref = stream.ref(pl.col("record_id")).alias("record_id")
    frame = landed.select(pl.lit(source.name).alias("source"), ref, pl.col("payload").alias("raw"))
    return frame.cast(RAW_SCHEMA)  # type: ignore[arg-type]


def normalise_stream(source: Source, stream: Stream, landed: pl.LazyFrame) -> Rebuilt:
    """One stream's landed records (``landed``, de-duplicated) mapped: its rows named by their
    records' quarantine ids, the mapping's quarantine, and the payloads (no landing rejects).

    Example:
        >>> from connectors.landing import LANDING_SCHEMA
        >>> from connectors.vendors.ujet.client import UJET
        >>> out = normalise_stream(UJET, UJET.streams[0], pl.LazyFrame(schema=LANDING_SCHEMA))
        >>> out.rows.collect_schema()["record_id"]
        String
    """
    ref = stream.ref(pl.col("record_id")).alias("record_id")
    out = stream.normalise(landed)
    named = SOURCE_RECORD in out.rows.collect_schema().names()
    return Rebuilt(
        out.rows.with_columns(ref) if named else out.rows,
        out.quarantine,
        payloads(source, stream, landed),
    )


def rebuild(source: Source, root: Path, settings: SourceSettings | None = None) -> Rebuilt:
    """Canonical rows, quarantine and payloads of ``source`` from the landing store at ``root``.

    A record set aside at landing is reported unless a version of it at least as new was
    landed (:func:`set_aside`). With
    ``settings``, the source's streams are those configured (:meth:`Source.configured`).
    """
    source = source.configured(settings)
    parts: list[Rebuilt] = []
    for stream in source.streams:
        landed = scan_landed(root, source.name, stream.name, record_dtype=stream.landed_dtype)
        rejected = set_aside(source, stream, root, landed.select(*VERSION))
        out = normalise_stream(source, stream, landed)
        parts.append(out._replace(quarantine=pl.concat([out.quarantine, rejected])))
    return Rebuilt(
        pl.concat([p.rows for p in parts], how="vertical_relaxed"),
        pl.concat([p.quarantine for p in parts]),
        pl.concat([p.raw for p in parts]),
    )
