"""Rebuild canonical rows of a source from the landing store, and the store's quarantine side.

:func:`rebuild` is what the pipeline calls: for each stream of a source it scans the
de-duplicated landed records (:func:`connectors.landing.scan_landed`), runs the stream's
vectorised normalise function (which ends at :func:`engine.validate.contacts.validate_contacts`),
and
adds the records set aside at landing time (no primary key, or a shape that does not fit the
stream's declared dtype), so that nothing is ever dropped silently (SPEC §7).

Records set aside at landing are written by :func:`land_rejected` next to the raw store, one
durable Parquet file per page that had any::

    <root>/quarantine/source=<s>/stream=<t>/part-<uuid>.parquet
        record_id, reason, detail, raw (scrubbed JSON), batch_id

Example:
    >>> import tempfile
    >>> from connectors.vendors.ujet.client import UJET
    >>> out = rebuild(UJET, Path(tempfile.mkdtemp()))
    >>> out.rows.collect().height, out.quarantine.collect().height
    (0, 0)
"""

from __future__ import annotations

import io
import re
import uuid
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from connectors.landing import RejectedRecord, scan_landed
from connectors.source import Normalised, Source, SourceSettings
from connectors.state import atomic_write_bytes, check_name
from engine.schema import QUARANTINE

__all__ = ["REJECTED_SCHEMA", "land_rejected", "rebuild", "scan_rejected"]

REJECTED_SCHEMA: dict[str, pl.DataType] = {
    "record_id": pl.String(),
    "reason": pl.String(),
    "detail": pl.String(),
    "raw": pl.String(),
    "batch_id": pl.String(),
}
_ID = re.compile(r'^\{"id":("?)([^",}]+)\1[,}]')


def _rejected_dir(root: Path, source: str, stream: str) -> Path:
    source, stream = check_name(source, what="source"), check_name(stream, what="stream")
    return Path(root) / "quarantine" / f"source={source}" / f"stream={stream}"


def land_rejected(
    root: Path, source: str, stream: str, rejected: Sequence[RejectedRecord], *, batch_id: str
) -> Path | None:
    """Durably write records set aside at landing (their ``raw`` is already PII-free).

    Example:
        >>> import tempfile
        >>> bad = RejectedRecord("missing_record_id", "no key", '{"x":1}')
        >>> land_rejected(Path(tempfile.mkdtemp()), "ujet", "calls", [bad], batch_id="b").suffix
        '.parquet'
    """
    if not rejected:
        return None
    ids = [m[2] if (m := _ID.match(r.raw)) else None for r in rejected]
    frame = pl.DataFrame(
        {
            "record_id": ids,
            "reason": [r.reason for r in rejected],
            "detail": [r.message for r in rejected],
            "raw": [r.raw for r in rejected],
            "batch_id": [batch_id] * len(rejected),
        },
        schema=REJECTED_SCHEMA,
    )
    buffer = io.BytesIO()
    frame.write_parquet(buffer, compression="zstd")
    path = _rejected_dir(root, source, stream) / f"part-{uuid.uuid4().hex}.parquet"
    atomic_write_bytes(path, buffer.getvalue())
    return path


def scan_rejected(root: Path, source: str, stream: str) -> pl.LazyFrame:
    """Records set aside at landing, one row per distinct (record id, reason, raw payload).

    Example:
        >>> import tempfile
        >>> scan_rejected(Path(tempfile.mkdtemp()), "ujet", "calls").collect().height
        0
    """
    files = sorted(_rejected_dir(root, source, stream).glob("*.parquet"))
    if not files:
        return pl.LazyFrame(schema=REJECTED_SCHEMA)
    frame = pl.scan_parquet(files, schema=REJECTED_SCHEMA, hive_partitioning=False)
    return frame.unique(["record_id", "reason", "raw"], keep="first", maintain_order=True)


def rebuild(source: Source, root: Path, settings: SourceSettings | None = None) -> Normalised:
    """Canonical rows and quarantine of ``source`` from the landing store under ``root``.

    A record set aside at landing is reported unless a later version of it was landed. With
    ``settings``, the source's streams are those configured (:meth:`Source.configured`).
    """
    source = source.configured(settings)
    rows: list[pl.LazyFrame] = []
    quarantine: list[pl.LazyFrame] = []
    for stream in source.streams:
        landed = scan_landed(root, source.name, stream.name, record_dtype=stream.landed_dtype)
        out = stream.normalise(landed)
        rows.append(out.rows)
        quarantine.append(out.quarantine)
        rejected = scan_rejected(root, source.name, stream.name).join(
            landed.select("record_id"), on="record_id", how="anti", nulls_equal=False
        )
        quarantine.append(
            rejected.select(
                pl.lit(source.name).alias("source"),
                pl.lit(source.table).alias("table"),
                stream.ref(pl.col("record_id")).alias("record_id"),
                "reason",
                "detail",
                "raw",
            ).cast(QUARANTINE)  # type: ignore[arg-type]
        )
    return Normalised(pl.concat(rows), pl.concat(quarantine))
