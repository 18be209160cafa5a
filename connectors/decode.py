"""Decode landed JSON payloads: `pl.read_json` per page of records, `str.json_decode` as fallback.

``str.json_decode`` of a 2.6 KB call record costs ~23 µs; ``pl.read_json`` with an explicit
schema on a JSON array of ~100-200 records costs ~6 µs per record, plus ~1 µs to join the page
(measured at 200K calls, see ``benchmarks/README.md``). Bigger arrays decode *slower* per record
(11 µs at 1,000, 21 µs at 10,000) and ``pl.read_ndjson`` was slower still (46-68 µs), so the
payload column is cut into pages of :data:`PAGE_ROWS` rows, joined as bytes (``b",".join`` of a
slice: cheaper than a ``group_by`` + ``str.join`` and a UTF-8 round trip) and read by a small
thread pool (``pl.read_json`` releases the GIL, so one thread joins while another reads): a
per-page loop (not per record), the measured winner.

The result is the same as ``str.json_decode(dtype)`` followed by ``unnest``: a page that
``pl.read_json`` refuses (a null or ``null`` payload, a value that does not fit ``dtype``) is
decoded with ``str.json_decode`` instead, exactly as before (including its errors).

Example:
    >>> dtype = pl.Struct({"a": pl.Int64, "b": pl.String})
    >>> frame = pl.DataFrame({"payload": ['{"a":1,"b":"x"}', None, '{"a":2,"z":[1]}']})
    >>> decode_pages(frame, "payload", dtype, page_rows=2).rows()
    [(1, 'x'), (None, None), (2, None)]
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import partial

import polars as pl

__all__ = ["PAGE_ROWS", "decode_pages"]

#: Records per JSON array handed to ``pl.read_json`` (100-200 measured best).
PAGE_ROWS = 128
_BODY = "__body"
_MAX_THREADS = 4  # pl.read_json releases the GIL: pages are read on the Polars thread count


def _schema(dtype: pl.DataType) -> dict[str, pl.DataType]:
    if not isinstance(dtype, pl.Struct):
        raise TypeError(f"decode_pages needs a Struct dtype, got {dtype}")
    return {f.name: f.dtype for f in dtype.fields}  # type: ignore[misc]


def decode_pages(
    frame: pl.DataFrame, column: str, dtype: pl.DataType, *, page_rows: int = PAGE_ROWS
) -> pl.DataFrame:
    """``frame[column]`` (JSON text) decoded to the fields of ``dtype``, one row per input row."""
    schema = _schema(dtype)
    if frame.height == 0:
        return pl.DataFrame(schema=schema)
    text = frame.get_column(column)
    if text.null_count():
        text = text.fill_null("null")  # json_decode gives a null record; so does this
    raw = text.cast(pl.Binary)  # the pages are joined as bytes: no UTF-8 round trip
    offsets = range(0, frame.height, page_rows)
    workers = max(1, min(pl.thread_pool_size(), len(offsets), _MAX_THREADS))
    read = partial(_read_page, raw=raw, rows=page_rows, schema=schema)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pages = list(pool.map(read, offsets))
    fallback = pl.col(column).str.json_decode(dtype).alias(_BODY)
    parts = [  # what read_json refused: exactly the old decode (and its errors)
        frame.slice(offset, page_rows).select(fallback).unnest(_BODY) if page is None else page
        for offset, page in zip(offsets, pages, strict=True)
    ]
    return pl.concat(parts, how="vertical", rechunk=False)


def _read_page(
    offset: int, *, raw: pl.Series, rows: int, schema: dict[str, pl.DataType]
) -> pl.DataFrame | None:
    """One page as a frame, or ``None`` if ``pl.read_json`` cannot take it exactly."""
    values: list[bytes] = raw.slice(offset, rows).to_list()
    try:
        page = pl.read_json(b"[" + b",".join(values) + b"]", schema=schema)
    except pl.exceptions.PolarsError:
        return None
    return page if page.height == len(values) else None  # n values give n rows; be safe
