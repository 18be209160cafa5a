"""Writing tables out: the Parquet store, CSV, NDJSON, and the Contact Volume document (§5.1).

:func:`write_store` replaces a store table whole, in one transaction of the Delta Lake store
(:mod:`engine.output.delta`, partitioned by UTC date): a crash leaves either the old table or the
new one, never a mix. The other writes replace one file atomically (a temporary sibling renamed
into place).

Example:
    >>> import polars as pl
    >>> doc = callvolume_document(pl.DataFrame(schema=DOCUMENT_INPUT), org_id="o-1")
    >>> doc["hasMore"], doc["totalCount"]
    (False, 0)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import IO, Any, Literal

import polars as pl

from engine import killpoint
from engine.durable import durable_mkdir, durable_replace, temporary_sibling
from engine.errors import naming
from engine.output.delta import STORE_COMPRESSION, commit
from engine.tables.callvolume import DERIVED, SCHEMA

__all__ = [
    "DOCUMENT_INPUT",
    "STORE_COMPRESSION",
    "TEXT_ROWS",
    "DurationUnit",
    "PartFiles",
    "callvolume_document",
    "document_rows",
    "page_document",
    "write_csv",
    "write_csv_parts",
    "write_document",
    "write_json",
    "write_ndjson",
    "write_ndjson_parts",
    "write_parquet",
    "write_store",
    "write_text",
]

DurationUnit = Literal["ms", "s"]
DOCUMENT_INPUT: dict[str, pl.DataType] = {
    **SCHEMA,
    **dict.fromkeys(DERIVED, pl.Float64()),
}
_ISO_MS = "%Y-%m-%dT%H:%M:%S%.3fZ"


def write_store(frame: pl.DataFrame, directory: Path, *, by: str | pl.Expr) -> Path:
    """Replace the store table at ``directory`` with ``frame``, partitioned by the UTC date of
    column ``by`` (or of the instant ``by`` computes), in one transaction
    (:func:`engine.output.delta.commit`). Each partition keeps the rows' order.

    Returns:
        The table's directory.
    """
    commit(directory, frame, by=by)
    return directory


def _atomic_write(path: Path, write: Any) -> Path:
    """``write(tmp)`` to a temporary file beside ``path``, then that file fsynced and renamed
    over ``path``, and the folders whose entries changed fsynced: a reader, and the machine
    after a power cut, see the old file or the new one whole, never a torn or empty one, once
    a run's state (saved after its files) says they were written. A failed write removes its
    temporary file."""
    durable_mkdir(path.parent)
    tmp = temporary_sibling(path)
    try:
        with naming(path):  # a full disk names the file, so its volume
            write(tmp)
        killpoint.reached("files.written")
        with naming(path):
            durable_replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    killpoint.reached("files.replaced")
    return path


def write_parquet(frame: pl.DataFrame, path: Path) -> Path:
    """``frame`` as one Parquet file, written atomically and durably (the forecasting format)."""
    return _atomic_write(path, frame.write_parquet)


def write_text(text: str, path: Path) -> Path:
    """``text`` as UTF-8, written atomically and durably (a vendor file, the report's page)."""
    return _atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def write_json(document: Any, path: Path) -> Path:
    """A JSON document, written atomically; the text is ``json.dumps(document, indent=1)``,
    streamed to the file chunk by chunk (never the whole text in memory at once)."""

    def write(p: Path) -> None:
        with p.open("w", encoding="utf-8") as f:
            json.dump(document, f, indent=1)

    return _atomic_write(path, write)


def _text_safe(frame: pl.DataFrame) -> pl.DataFrame:
    """Instants as ISO 8601 (``Z``), local times without offset, enums as text."""
    return frame.with_columns(
        pl.col(pl.Datetime("us", "UTC")).dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ"),
        pl.col(pl.Datetime("us")).dt.strftime("%Y-%m-%dT%H:%M:%S"),
        pl.col(pl.Enum).cast(pl.String),
    )


#: Rows written at once by the CSV and NDJSON writers (their text is rendered a slice at a
#: time: a whole table's text is never held).
TEXT_ROWS = 16_384

_Add = Callable[[pl.DataFrame], None]  #: writes one part to its file
Schema = Mapping[str, pl.DataType]  #: a table's columns and their types


class PartFiles:
    """Files written a part at a time, together: one pass over the parts feeds every file
    (:meth:`csv`, :meth:`ndjson`, :meth:`document` each give the function that writes a part),
    and no part is held after it is written. Each file is replaced atomically and durably, as
    the other writes here replace theirs: the parts go to a temporary sibling; when the block ends,
    each file is completed, fsynced and renamed into place in turn. A failure (in the block, or
    a write) removes the temporary files not renamed yet; an error of a write names its file.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> with PartFiles() as files:
        ...     adds = files.csv(folder / "t.csv", {"a": pl.Int64()}), files.ndjson(folder / "t.nd")
        ...     for part in (pl.DataFrame({"a": [1]}), pl.DataFrame({"a": [2]})):
        ...         for add in adds:
        ...             add(part)
        >>> (folder / "t.csv").read_text(), [p.name for p in files.paths]
        ('a\\n1\\n2\\n', ['t.csv', 't.nd'])
    """

    def __init__(self) -> None:
        #: (the file, its temporary sibling, the open handle, what completes it)
        self._open: list[tuple[Path, Path, IO[Any], Callable[[IO[Any]], None]]] = []
        self.paths: list[Path] = []  #: the files written, once the block has ended

    def __enter__(self) -> PartFiles:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is not None:
            self._discard()
            return
        try:
            for path, _tmp, handle, end in self._open:
                with naming(path):
                    end(handle)
                    handle.close()
            for path, tmp, _handle, _end in self._open:
                killpoint.reached("files.written")
                with naming(path):
                    durable_replace(tmp, path)
                killpoint.reached("files.replaced")
                self.paths.append(path)
        except BaseException:
            self._discard()
            raise

    def _discard(self) -> None:
        for _path, tmp, handle, _end in self._open:
            with contextlib.suppress(OSError):
                handle.close()
            tmp.unlink(missing_ok=True)

    def _start(
        self, path: Path, *, text: bool = False, end: Callable[[IO[Any]], None] | None = None
    ) -> IO[Any]:
        """The open temporary sibling of ``path`` (``end`` writes its last text)."""
        durable_mkdir(path.parent)
        tmp = temporary_sibling(path)
        with naming(path):  # a full disk names the file, so its volume
            handle: IO[Any] = tmp.open("w", encoding="utf-8") if text else tmp.open("wb")
        self._open.append((path, tmp, handle, end or (lambda _: None)))
        return handle

    def csv(self, path: Path, schema: Schema, *, chunk_rows: int = TEXT_ROWS) -> _Add:
        """``path`` as CSV: the header of ``schema``'s columns, then each part's rows (of those
        columns, in that order), instants in ISO 8601 UTC, ``chunk_rows`` rows rendered at a
        time: the bytes of :func:`write_csv` of the parts concatenated."""
        f, names = self._start(path), list(schema)
        with naming(path):
            _text_safe(pl.DataFrame(schema=schema)).write_csv(f)

        def add(part: pl.DataFrame) -> None:
            if part.columns != names:
                raise ValueError(f"{path.name}: columns {part.columns}, expected {names}")
            with naming(path):
                for piece in part.iter_slices(chunk_rows):
                    _text_safe(piece).write_csv(f, include_header=False)

        return add

    def ndjson(self, path: Path, *, chunk_rows: int = TEXT_ROWS) -> _Add:
        """``path`` as NDJSON: one JSON object a line, each part's rows in turn, instants in ISO
        8601 UTC, ``chunk_rows`` rows rendered at a time."""
        f = self._start(path)

        def add(part: pl.DataFrame) -> None:
            with naming(path):
                for piece in part.iter_slices(chunk_rows):
                    _text_safe(piece).write_ndjson(f)

        return add

    def document(
        self, path: Path, *, org_id: str, unit: DurationUnit = "ms", chunk_rows: int = 5_000
    ) -> _Add:
        """``path`` as the Contact Volume document (:func:`write_document`) of the parts, each
        of later intervals than the one before."""
        total, sep = 0, "\n"

        def end(handle: IO[Any]) -> None:
            handle.write(f'\n], "totalCount": {total}}}\n')

        f = self._start(path, text=True, end=end)
        with naming(path):
            f.write('{"hasMore": false, "CallVolumeUpdate": [')

        def add(part: pl.DataFrame) -> None:
            nonlocal total, sep
            rows = document_rows(part, org_id=org_id, unit=unit)
            total += rows.height
            with naming(path):
                for piece in rows.iter_slices(chunk_rows):  # an object a line; newlines escaped
                    if piece.height:
                        f.write(sep + piece.write_ndjson().rstrip("\n").replace("\n", ",\n"))
                        sep = ",\n"

        return add


def _write_parts(
    parts: Iterable[pl.DataFrame], path: Path, start: Callable[[PartFiles], _Add]
) -> Path:
    """``path`` written from ``parts`` by the writer ``start`` opens, alone."""
    with PartFiles() as files:
        add = start(files)
        for part in parts:
            add(part)
    return path


def write_csv_parts(
    parts: Iterable[pl.DataFrame], path: Path, *, schema: Schema, chunk_rows: int = TEXT_ROWS
) -> Path:
    """One CSV file of ``parts`` (each of ``schema``'s columns; the header from ``schema``),
    written atomically and durably a part at a time, no part held after it is written."""
    return _write_parts(parts, path, lambda files: files.csv(path, schema, chunk_rows=chunk_rows))


def write_ndjson_parts(
    parts: Iterable[pl.DataFrame], path: Path, *, chunk_rows: int = TEXT_ROWS
) -> Path:
    """One NDJSON file of ``parts``, written atomically and durably a part at a time."""
    return _write_parts(parts, path, lambda files: files.ndjson(path, chunk_rows=chunk_rows))


def write_csv(frame: pl.DataFrame, path: Path, *, chunk_rows: int = TEXT_ROWS) -> Path:
    """CSV with a header; instants in ISO 8601 UTC; written ``chunk_rows`` rows at a time."""
    return write_csv_parts([frame], path, schema=frame.schema, chunk_rows=chunk_rows)


def write_ndjson(frame: pl.DataFrame, path: Path, *, chunk_rows: int = TEXT_ROWS) -> Path:
    """One JSON object per line; instants in ISO 8601 UTC; ``chunk_rows`` rows at a time."""
    return write_ndjson_parts([frame], path, chunk_rows=chunk_rows)


def _pair_digests(table: pl.DataFrame, org_id: str) -> pl.DataFrame:
    """A stable 14-hex-digit SHA-256 prefix per (org, queue, channel): one per pair, not row."""
    pairs = table.select("queue_id", pl.col("channel").cast(pl.String)).unique()
    digests = [
        hashlib.sha256(f"{org_id}|{q}|{c}".encode()).hexdigest()[:14] for q, c in pairs.iter_rows()
    ]
    return pairs.with_columns(pl.Series("_digest", digests, pl.String))


def _duration(col: str, unit: DurationUnit) -> pl.Expr:
    return pl.col(col) if unit == "ms" else (pl.col(col) + 500) // 1000


def _ratio_duration(col: str, total: str, unit: DurationUnit) -> pl.Expr:
    """``col`` (ms), or ``total / (answered * 1000)`` rounded once (exact below 2**53 ms)."""
    a = pl.col("answered").cast(pl.Int64)
    return pl.col(col) if unit == "ms" else pl.when(a > 0).then(pl.col(total) / (a * 1000))


def document_rows(table: pl.DataFrame, *, org_id: str, unit: DurationUnit = "ms") -> pl.DataFrame:
    """The volume table (with derived columns) renamed and shaped as seed 003's rows.

    Rows are ordered by interval, queue and channel (voice, chat, email, callback, messaging,
    whatever the column's type), so skip/limit paging is stable and the same everywhere."""
    iid = "st-" + str(uuid.uuid5(uuid.NAMESPACE_URL, f"wfm-intervals:{org_id}"))
    channel = pl.col("channel").cast(pl.String).cast(SCHEMA["channel"], strict=False)
    ordered = table.sort("interval_start_utc", "queue_id", channel).join(
        _pair_digests(table, org_id).with_columns(pl.col("channel").cast(table["channel"].dtype)),
        on=["queue_id", "channel"],
        how="left",
        maintain_order="left",
    )
    minutes = pl.col("interval_start_utc").dt.epoch("s") // 60
    return ordered.select(
        # 24 characters of [0-9a-f], like the vendor's ids: the pair's digest + epoch minutes.
        (pl.col("_digest") + minutes.cast(pl.String).str.zfill(10)).alias("_id"),
        pl.col("interval_start_utc").dt.strftime(_ISO_MS).alias("intervalStartTimeStamp"),
        pl.lit(org_id).alias("orgId"),
        pl.col("queue_id").alias("queueId"),
        pl.col("channel").cast(pl.String).alias("source"),
        pl.lit(0).alias("__v"),
        pl.col("interval_end_utc").dt.strftime(_ISO_MS).alias("intervalEndTimeStamp"),
        pl.col("offered").alias("offeredContacts"),
        pl.col("answered").alias("answeredContacts"),
        _duration("wait_answered_max_ms", unit).alias("maxQueueHoldTimeAnswered"),
        _duration("wait_answered_ms", unit).alias("queueHoldTimeAnswered"),
        _duration("acw_ms", unit).alias("acwDuration"),
        pl.col("completed").alias("completedContacts"),
        _duration("handle_ms", unit).alias("conversationHandleTime"),
        _duration("talk_ms", unit).alias("conversationTalkTime"),
        _duration("hold_ms", unit).alias("holdDuration"),
        pl.col("messages").alias("messageCount"),
        pl.lit(0).alias("savedMessageCount"),
        pl.col("csat_responses").alias("csatResponses"),
        pl.col("csat_score").alias("csatScore"),
        pl.col("abandoned").alias("abandonedContacts"),
        _duration("wait_abandoned_max_ms", unit).alias("maxqueueHoldTimeAbandoned"),
        _duration("wait_abandoned_ms", unit).alias("queueHoldTimeAbandoned"),
        pl.lit(iid).alias("iId"),
        pl.col("queue_name").alias("queueName"),
        pl.col("short_abandoned").alias("shortAbandonedContacts"),
        pl.col("flow_out").alias("flowOutContacts"),
        pl.col("answered_within_sl").alias("answeredWithinServiceLevel"),
        pl.col("service_level").alias("serviceLevel"),
        _ratio_duration("aht_ms", "handle_ms", unit).alias("averageHandleTime"),
        _ratio_duration("asa_ms", "wait_answered_ms", unit).alias("averageSpeedOfAnswer"),
    )


def callvolume_document(
    table: pl.DataFrame,
    *,
    org_id: str,
    skip: int = 0,
    limit: int | None = None,
    unit: DurationUnit = "ms",
) -> dict[str, Any]:
    """One page of the Contact Volume API response (seed 003), field for field.

    Args:
        table: the volume table with derived columns (:func:`engine.tables.callvolume.derive`).
        org_id: the organisation id to stamp on every row.
        skip: rows to skip.
        limit: page size (``None``: everything after ``skip``).
        unit: ``ms`` (default) or ``s`` for every duration field.

    Returns:
        ``{"hasMore": bool, "CallVolumeUpdate": [...], "totalCount": int}``.
    """
    if skip < 0 or (limit is not None and limit < 0):
        msg = f"skip and limit must be >= 0, got skip={skip} limit={limit}"
        raise ValueError(msg)
    return page_document(document_rows(table, org_id=org_id, unit=unit), skip=skip, limit=limit)


def write_document(
    table: pl.DataFrame | Iterable[pl.DataFrame],
    path: Path,
    *,
    org_id: str,
    unit: DurationUnit = "ms",
    chunk_rows: int = 5_000,
) -> Path:
    """:func:`callvolume_document` of ``table`` (every row, one page) written atomically as JSON,
    streamed: its rows rendered by Polars ``chunk_rows`` at a time, never held whole as Python
    objects (a first run's document holds the whole history). The text parses to the same
    document as :func:`callvolume_document`'s; its layout is one row a line.

    ``table`` may also be given in parts, each of later intervals than the one before (e.g.
    :func:`engine.pipeline.export.volume_parts`): the same text, no part held after it is
    written (:meth:`PartFiles.document`)."""
    parts = [table] if isinstance(table, pl.DataFrame) else table

    def start(files: PartFiles) -> _Add:
        return files.document(path, org_id=org_id, unit=unit, chunk_rows=chunk_rows)

    return _write_parts(parts, path, start)


def page_document(rows: pl.DataFrame, *, skip: int = 0, limit: int | None = None) -> dict[str, Any]:
    """One page of the Contact Volume response from rows already rendered by
    :func:`document_rows` (so a server renders a window once and pages it many times).

    Example:
        >>> page_document(pl.DataFrame({"a": [1, 2, 3]}), skip=1, limit=1)
        {'hasMore': True, 'CallVolumeUpdate': [{'a': 2}], 'totalCount': 3}
    """
    page = rows.slice(skip, limit)
    return {
        "hasMore": skip + page.height < rows.height,
        "CallVolumeUpdate": page.to_dicts(),
        "totalCount": rows.height,
    }
