"""The raw landing store: records as received (minus PII) in Parquet, and reading them back.

Layout: ``<root>/raw/source=<s>/stream=<t>/date=<fetch date, UTC>/part-<uuid>.parquet``, one
file per landed page until :func:`merge_files` merges them (a long sync merges its pages in
batches as they land, :func:`compact` the days before). Columns (:data:`LANDING_SCHEMA`):
``record_id``, ``updated_at`` (vendor's last change, or null), ``fetched_at``, ``batch_id`` (the
sync run), ``page_no``, and ``payload``: the record's JSON after :class:`PiiScrubber` dropped the
PII paths and replaced phone numbers by :func:`pii_hash`.

A stream that lands *decoded* (``record_dtype`` given to :func:`land_page`, :func:`scan_landed`
and :func:`compact`) also stores each payload decoded to that dtype, in the column ``record``
(:data:`RECORD`), in files named ``part-<uuid>.record-<dtype digest>.parquet``
(:func:`decoded_suffix`): the JSON is parsed once, when the page lands, and a rebuild reads typed
Parquet columns instead of parsing ~2.5 KB of JSON per record again. ``payload`` stays the
lossless record (quarantine rows show it; a stream that changes its dtype rebuilds from it).
Files landed without ``record``, or decoded to another dtype (the digest in the name tells), are
read by decoding their payload, and :func:`compact` rewrites them decoded. A page of fewer than
:data:`DECODE_MIN_RECORDS` records lands JSON only (decoding it would cost more than landing
it); the merges of a long sync and the next day's compaction write it decoded.

:func:`land_page` writes a temp file, fsyncs and renames it, then appends the file's entry to the
stream's manifest (:mod:`connectors.landing.manifest`: which files must be there, their row
counts, sizes and digests, and the cursor range each covers) and fsyncs that: on return the page
and its entry are durable, and only then may the sync commit its state.
:mod:`connectors.landing.check` compares the manifest with the files present and, at the start of
a sync, has a lost or damaged file's range fetched again.

:func:`scan_landed` keeps each ``record_id``'s latest version (latest ``updated_at``, one
without it as new as its ``fetched_at``; then ``fetched_at``, ``batch_id``, ``page_no``), so
re-landing a page after a crash, a lookback or a repair never double counts. Different
contents sent under the same latest ``updated_at`` are all kept: a conflict, which the pipeline
edge quarantines as ``conflicting_duplicate`` (when their canonical rows differ) rather than let
the later fetch win.

Example:
    >>> import tempfile
    >>> root, now = Path(tempfile.mkdtemp()), datetime(2026, 10, 1, tzinfo=UTC)
    >>> page = [{"id": 7, "updated_at": "2026-10-01T00:00:00Z", "email": "a@b.c"}]
    >>> for run in ("run-1", "run-2"):  # the same page landed twice
    ...     _ = land_page(root, "ujet", "calls", page, key=RecordKey("id", "updated_at"),
    ...                   scrubber=PiiScrubber(drop=("email",)), fetched_at=now, batch_id=run)
    >>> scan_landed(root, "ujet", "calls").select("record_id", "payload").collect().rows()
    [('7', '{"id":7,"updated_at":"2026-10-01T00:00:00Z"}')]
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson
import polars as pl

from connectors.decode import decode_pages
from connectors.errors import RecordError
from connectors.landing.manifest import (
    Span,
    append_entry,
    batches,
    describe,
    entry_of,
    footer,
    landed_files,
    read_manifest,
    rows_of,
    stream_dir,
    write_manifest,
)
from connectors.landing.partitions import partitions
from connectors.landing.records import LandedBatch, RecordKey, RejectedRecord
from connectors.pii import PiiScrubber, pii_hash
from engine import killpoint
from engine.durable import atomic_write_bytes, durable_replace, fsync_dir
from engine.errors import REFUSED_WRITE, naming
from engine.schema import UTC_TS

__all__ = [
    "DECODE_MIN_RECORDS",
    "LANDING_SCHEMA",
    "MERGE_ROWS",
    "RECORD",
    "LandedBatch",
    "PiiScrubber",
    "RecordKey",
    "RejectedRecord",
    "Span",
    "compact",
    "decoded_suffix",
    "land_page",
    "landed_files",
    "latest_records",
    "merge_files",
    "pii_hash",
    "scan_files",
    "scan_landed",
    "with_record",
]

LANDING_SCHEMA: dict[str, pl.DataType] = {
    "record_id": pl.String(),
    "updated_at": UTC_TS,
    "fetched_at": UTC_TS,
    "batch_id": pl.String(),
    "page_no": pl.Int32(),
    "payload": pl.String(),
}
#: The most landed rows :func:`compact` merges into one file (~2 MB of UJET records on disk).
MERGE_ROWS = 10_000
#: The rows of a row group of a merged landing file: a merge streams one at a time.
MERGE_GROUP = 1_000
#: A page of fewer records lands JSON only even for a stream that lands decoded: Polars' cost a
#: call would be most of its landing (Mindful's pages hold an hour, ~5 records: 2.1 ms of CPU a
#: page JSON only, 3.3 ms decoded).
DECODE_MIN_RECORDS = 50
#: The column of a decoded landing file that holds the payload decoded to the stream's dtype.
RECORD = "record"
_json_dump = functools.partial(json.dumps, ensure_ascii=False, separators=(",", ":"), default=str)
_PASS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def _dump(value: Any) -> str:
    """Compact JSON text of a parsed record: ``orjson`` (~4x cheaper than ``json.dumps``; the
    same text for what JSON parses to), ``json.dumps`` where orjson refuses (an integer beyond
    64 bits, a lone surrogate, a non-string key)."""
    try:
        return orjson.dumps(value, default=str, option=_PASS).decode()
    except (TypeError, orjson.JSONEncodeError):
        return _json_dump(value)


def land_page(
    root: Path,
    source: str,
    stream: str,
    records: Sequence[Any],
    *,
    key: RecordKey,
    scrubber: PiiScrubber,
    fetched_at: datetime,
    batch_id: str,
    page_no: int = 1,
    record_dtype: pl.DataType | None = None,
    span: Span | None = None,
) -> LandedBatch:
    """Scrub and land one page durably, with its manifest entry; records without a key come
    back as ``rejected``.

    A record repeated within the page is landed once (its latest ``updated_at``, then last),
    unless copies under the same latest ``updated_at`` (or with none) differ: each is landed, a
    conflict the pipeline edge quarantines as ``conflicting_duplicate`` (the later copy of a
    page is no likelier to be right). With ``record_dtype`` a page of
    :data:`DECODE_MIN_RECORDS` or more lands decoded too (see the module docstring): the
    caller has checked that every record fits it (:func:`connectors.source.shape_error`).
    ``span`` is the cursor range the page covers (the sync's:
    :class:`~connectors.landing.manifest.Span`); its unknown ``end`` is the page's latest
    ``updated_at``, and without it the start is unknown (a loss of the file cannot be fetched
    again by itself). See the module docstring for an example.
    """
    if fetched_at.tzinfo is None:
        raise ValueError("naive datetime: fetched_at must be timezone-aware")
    rows: dict[str, tuple[datetime | None, list[str]]] = {}  # each id's stamp, its copies
    rejected: list[RejectedRecord] = []
    for raw in records:
        clean = scrubber(raw) if isinstance(raw, dict) else raw
        try:
            if not isinstance(raw, dict):
                raise RecordError("not_an_object", "record is not a JSON object")
            rid, updated = key.read(raw)
        except RecordError as exc:
            rejected.append(RejectedRecord(exc.reason, str(exc), _dump(clean)))
            continue
        old, payload = rows.get(rid), _dump(clean)
        if old is None or (updated is not None and (old[0] is None or updated > old[0])):
            rows[rid] = (updated, [payload])
        elif updated == old[0] and payload not in old[1]:  # the same stamp, or both none
            old[1].append(payload)  # a conflict: kept for the pipeline edge to quarantine
    stamps = [u for u, _ in rows.values() if u is not None]
    landed = [(rid, u, p) for rid, (u, copies) in rows.items() for p in copies]
    path = None
    if landed:
        n, day = len(landed), fetched_at.astimezone(UTC).date().isoformat()
        columns = {"record_id": [r for r, _, _ in landed], "updated_at": [u for _, u, _ in landed]}
        columns |= {"fetched_at": [fetched_at] * n, "batch_id": [batch_id] * n}
        columns |= {"page_no": [page_no] * n, "payload": [p for _, _, p in landed]}
        frame = pl.DataFrame(columns, schema=LANDING_SCHEMA)
        if n < DECODE_MIN_RECORDS:
            record_dtype = None  # decoded by the merge or the compaction that takes it
        if record_dtype is not None:
            frame = with_record(frame, record_dtype)
        given = span or Span()
        covers = Span(given.start, given.end or max(stamps, default=None), given.committed)
        buffer = io.BytesIO()
        frame.write_parquet(buffer, compression="zstd", metadata=footer(covers))
        folder = stream_dir(root, source, stream)
        path = folder / f"date={day}" / _file_name(record_dtype)
        data = buffer.getvalue()
        atomic_write_bytes(path, data)
        entry = entry_of(path.relative_to(folder).as_posix(), data, n, covers)
        append_entry(root, source, stream, entry)
    return LandedBatch(path, len(landed), tuple(rejected), max(stamps, default=None), batch_id)


def with_record(frame: pl.DataFrame, dtype: pl.DataType) -> pl.DataFrame:
    """``frame`` (landing columns) with :data:`RECORD`: its ``payload`` decoded to ``dtype``.

    The decode is :func:`connectors.decode.decode_pages` (``pl.read_json`` on pages of
    records, ``str.json_decode`` where that refuses): unknown keys are left in ``payload`` only.

    Example:
        >>> frame = pl.DataFrame({"payload": ['{"a":1,"new":[2]}']})
        >>> with_record(frame, pl.Struct({"a": pl.Int64}))[RECORD].to_list()
        [{'a': 1}]
    """
    fields = decode_pages(frame, "payload", dtype)
    return frame.with_columns(fields.to_struct(RECORD).cast(dtype))


def decoded_suffix(dtype: pl.DataType) -> str:
    """How the name of a landing file whose :data:`RECORD` column has ``dtype`` ends.

    Example:
        >>> decoded_suffix(pl.Struct({"a": pl.Int64}))
        '.record-dd21d52adc67.parquet'
    """
    digest = hashlib.sha256(repr(dtype).encode()).hexdigest()[:12]
    return f".record-{digest}.parquet"


def _file_name(record_dtype: pl.DataType | None) -> str:
    suffix = ".parquet" if record_dtype is None else decoded_suffix(record_dtype)
    return f"part-{uuid.uuid4().hex}{suffix}"


def scan_files(files: list[Path], record_dtype: pl.DataType | None) -> pl.LazyFrame:
    """Landing files as one lazy frame: :data:`LANDING_SCHEMA`, plus :data:`RECORD` if
    ``record_dtype`` is given (read from decoded files, decoded from the payload of others)."""

    def json_only(paths: list[Path]) -> pl.LazyFrame:  # a decoded file's extra column unread
        return pl.scan_parquet(
            paths, schema=LANDING_SCHEMA, hive_partitioning=False, extra_columns="ignore"
        )

    if record_dtype is None:
        return json_only(files)
    suffix = decoded_suffix(record_dtype)  # other files: decoded here (JSON only, other dtype)
    decoded = [f for f in files if f.name.endswith(suffix)]
    plain = [f for f in files if not f.name.endswith(suffix)]
    schema = _schema(record_dtype)
    parts = [pl.scan_parquet(decoded, schema=schema, hive_partitioning=False)] if decoded else []
    if plain:
        decode = functools.partial(with_record, dtype=record_dtype)
        parts.append(json_only(plain).map_batches(decode, schema=schema))
    return pl.concat(parts) if parts else pl.LazyFrame(schema=schema)


def _schema(record_dtype: pl.DataType | None) -> pl.Schema:
    """The landing columns, with :data:`RECORD` for a decoded stream."""
    extra = {} if record_dtype is None else {RECORD: record_dtype}
    return pl.Schema(LANDING_SCHEMA | extra)


def latest_records(frame: pl.LazyFrame) -> pl.LazyFrame:
    """One row per ``record_id``: its latest version (see the module docstring for the order),
    or, when the vendor sent different contents under the same latest ``updated_at``, each of
    them (a conflict the validation quarantines).

    Most ids are landed once (a compacted partition holds each id once), so one cheap window
    count finds them and only the ids landed more than once go through the ordering window:
    ~6x cheaper in all than ordering every row (measured on 1M landed records).

    Example:
        >>> latest_records(pl.LazyFrame(schema=LANDING_SCHEMA)).collect().height
        0
    """
    # A version without a stamp (the vendor stopped sending it, or sent one we cannot read) is
    # as new as its fetch: taken as older than any stamp, it lost to the last stamped version
    # for good, and every later change of the record was ignored.
    stamp, of_page = pl.col("updated_at"), ("fetched_at", "batch_id", "page_no")
    order = [pl.coalesce(stamp, "fetched_at"), *of_page]
    row = pl.col("__row")  # one winning row per id (a window, not a per-column sort: 28x faster)
    latest = row == row.sort_by(order).last().over("record_id")
    # Versions the vendor stamped with the same, latest updated_at but sent with other content
    # (unstamped: those of the winner's page, one fetch) are all kept: the validation at the
    # pipeline edge quarantines them as a conflict (SPEC §7) instead of the later fetch winning
    # silently. Identical re-reads stay one row.
    won = {c: pl.col(c).sort_by(order).last().over("record_id") for c in ("updated_at", *of_page)}
    page = pl.all_horizontal([pl.col(c) == won[c] for c in of_page])
    unstamped = stamp.is_null() & won["updated_at"].is_null() & page
    tied = unstamped | (stamp.is_not_null() & (stamp == won["updated_at"]))
    counted = frame.with_columns(pl.len().over("record_id").alias("__n")).cache()
    once = counted.filter(pl.col("__n") == 1).drop("__n")
    again = counted.filter(pl.col("__n") > 1).drop("__n").with_row_index("__row")
    kept = again.filter(latest | tied).sort("__row").drop("__row")
    return pl.concat(
        [once, kept.unique(["record_id", "payload"], keep="last", maintain_order=True)]
    )


def scan_landed(
    root: Path, source: str, stream: str, *, record_dtype: pl.DataType | None = None
) -> pl.LazyFrame:
    """The de-duplicated landed records of one stream, lazily (see the module docstring).

    With ``record_dtype``, also the column :data:`RECORD` (the payload decoded to it).
    """
    files = landed_files(root, source, stream)
    if not files:
        return pl.LazyFrame(schema=_schema(record_dtype))
    return latest_records(scan_files(files, record_dtype))


def compact(
    root: Path,
    source: str,
    stream: str,
    *,
    before: date | None = None,
    min_files: int = 2,
    record_dtype: pl.DataType | None = None,
    max_rows: int = MERGE_ROWS,
) -> int:
    """Merge each date partition's files (before ``before``, if given); count removals. A
    ``date=`` folder that is no day raises :class:`LandingError` (``partitions``).

    Files are merged (:func:`merge_files`) in name order in groups of at most ``max_rows``
    landed rows (their manifest's counts): a day of a normal size becomes one file, a day a
    first sync filled with 300K records files of ~``max_rows`` each, so a merge holds a bounded
    number of records in memory. A group of fewer than ``min_files`` files is left alone unless
    it holds files not decoded to ``record_dtype`` (then rewritten decoded).

    Example:
        >>> import tempfile
        >>> compact(Path(tempfile.mkdtemp()), "ujet", "calls")
        0
    """
    removed = 0
    suffix = None if record_dtype is None else decoded_suffix(record_dtype)
    folder = stream_dir(root, source, stream)
    for day, part in partitions(root, source, stream):
        files = sorted(part.glob("*.parquet"))
        undecoded = suffix is not None and any(not f.name.endswith(suffix) for f in files)
        if (len(files) < min_files and not undecoded) or (before and day >= before):
            continue
        listed = read_manifest(root, source, stream).entries
        for group in batches(files, listed, folder, max_rows):
            if len(group) >= min_files or any(not f.name.endswith(suffix or "") for f in group):
                removed += merge_files(root, source, stream, group, record_dtype=record_dtype)
    return removed


def _merged(files: list[Path], record_dtype: pl.DataType | None) -> pl.LazyFrame:
    """The rows of ``files`` that :func:`latest_records` keeps, in the files' order, streamed:
    the kept rows are found from the key columns (and the payloads of ids landed twice) first,
    so a sink holds a row group at a time, not every payload (~110 MiB for 10,000 UJET calls,
    now ~55-70: reading 100 page files and writing row groups of :data:`MERGE_GROUP` rows)."""
    if record_dtype is not None:  # the order scan_files reads them in: decoded files first
        files = sorted(files, key=lambda f: not f.name.endswith(decoded_suffix(record_dtype)))
    keys = ["record_id", "updated_at", "fetched_at", "batch_id", "page_no"]
    rows = scan_files(files, None).select(keys).with_row_index("__i")
    again = rows.filter(pl.len().over("record_id") > 1).collect()
    landed = scan_files(files, record_dtype).with_row_index("__i")
    if again.height:
        twice = pl.col("__i").is_in(again["__i"].implode())
        payloads = scan_files(files, None).with_row_index("__i").filter(twice)
        won = latest_records(payloads.collect(engine="streaming").lazy()).collect()["__i"]
        landed = landed.filter(~twice | pl.col("__i").is_in(won.implode()))
    return landed.drop("__i")


def merge_files(
    root: Path,
    source: str,
    stream: str,
    files: Sequence[Path],
    *,
    record_dtype: pl.DataType | None = None,
) -> int:
    """Merge landing ``files`` of one date partition of ``source/stream`` into one; count them.

    The latest version of each record among them is kept (:func:`scan_landed` is unchanged).
    Crash-safe, in this order: the merged file (its span the union of the inputs', also in its
    footer) is durable; the manifest is replaced atomically; the inputs are deleted. Killed in
    between, every record is still in a readable file, and unlisted files are listed again by
    :func:`connectors.landing.check.repair_landing`. Not while the stream is being scanned.
    With ``record_dtype`` the merged file is a decoded one.
    """
    if not files:
        return 0
    folder, part = stream_dir(root, source, stream), files[0].parent
    if any(f.parent != part for f in files):
        raise ValueError("merge_files: the files are not all in one date partition")
    listed = read_manifest(root, source, stream).entries
    inputs = [f.relative_to(folder).as_posix() for f in files]
    spans = [
        listed[name].span if name in listed else describe(file, stream_folder=folder).span
        for name, file in zip(inputs, files, strict=True)
    ]
    tmp, path = part / f".compact-{uuid.uuid4().hex}.tmp", part / _file_name(record_dtype)
    covers = functools.reduce(Span.union, spans)
    with naming(path, REFUSED_WRITE):  # the plan reads the inputs too: their errors stay
        _merged(list(files), record_dtype).sink_parquet(
            tmp, compression="zstd", metadata=footer(covers), row_group_size=MERGE_GROUP
        )
        durable_replace(tmp, path)
    killpoint.reached("landing.compact_written")
    entry = entry_of(path.relative_to(folder).as_posix(), path, rows_of(path), covers)
    kept = [e for name, e in listed.items() if name not in inputs]
    write_manifest(root, source, stream, [*kept, entry])
    for file in files:
        file.unlink()
    fsync_dir(part)
    killpoint.reached("landing.compact_removed")
    return len(files)
