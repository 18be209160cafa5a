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

import functools
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import polars as pl
from polars.datatypes import DataTypeClass

__all__ = ["PAGE_ROWS", "decode_pages", "fits", "shape_error"]

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
    if workers == 1:  # one page (a landing's): a pool's thread would cost ~half the read
        pages = [read(offset) for offset in offsets]
    else:
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


_Check = Callable[[object], bool]
_INT64 = 2**63


def fits(dtype: pl.DataType) -> _Check:
    """A test that parsed JSON fits ``dtype``: true exactly where :func:`shape_error` finds no
    misfit (the same rules), compiled once per dtype into nested closures, so a record costs a
    walk of its known keys and no dispatch on the dtype (about 3x cheaper per record than
    ``shape_error``, which then only names the place of a misfit).

    Example:
        >>> check = fits(pl.Struct({"q": pl.List(pl.Struct({"s": pl.Int64}))}))
        >>> check({"q": [{"s": 1}, {"s": 2.0}], "new": {}}), check({"q": [{"s": "2"}]})
        (True, False)
    """
    return _compiled(dtype)


@functools.lru_cache(maxsize=64)
def _compiled(dtype: pl.DataType) -> _Check:
    if isinstance(dtype, pl.Struct):
        fields = tuple((f.name, _compiled(f.dtype)) for f in dtype.fields)

        return _struct(fields)
    if isinstance(dtype, pl.List):
        inner = _compiled(dtype.inner)

        def items(value: object) -> bool:
            if value is None:
                return True
            return isinstance(value, list) and all(map(inner, value))

        return items
    if dtype.is_numeric():
        return _integer if dtype.is_integer() else _number
    if dtype == pl.Boolean:
        return _boolean
    return _scalar


def _struct(fields: tuple[tuple[str, _Check], ...]) -> _Check:
    """A struct's test: a loop, not ``all()`` over a generator (its frame per field cost half
    of a wide record's check), and no loop at all for the small structs lists are made of."""
    if len(fields) == 1:
        ((name, check),) = fields

        def one(value: object) -> bool:
            if value is None:
                return True
            return isinstance(value, dict) and check(value.get(name))

        return one
    if len(fields) == 2:
        (name1, check1), (name2, check2) = fields

        def two(value: object) -> bool:
            if value is None:
                return True
            if not isinstance(value, dict):
                return False
            return check1(value.get(name1)) and check2(value.get(name2))

        return two

    def struct(value: object) -> bool:
        if value is None:
            return True
        if not isinstance(value, dict):
            return False
        get = value.get
        for name, check in fields:  # noqa: SIM110 - all() over a generator: the cost above
            if not check(get(name)):
                return False
        return True

    return struct


def _scalar(value: object) -> bool:
    return not isinstance(value, dict | list)


def _boolean(value: object) -> bool:
    return value is None or isinstance(value, bool)


def _number(value: object) -> bool:
    kind = type(value)
    if kind is int or value is None:
        return True
    return kind is float and math.isfinite(value)  # type: ignore[arg-type]


def _integer(value: object) -> bool:
    kind = type(value)
    if kind is int:
        return -_INT64 <= value < _INT64  # type: ignore[operator]
    if value is None:
        return True
    if kind is not float or not math.isfinite(value):  # type: ignore[arg-type]
        return False
    return value.is_integer() and -_INT64 <= value < _INT64  # type: ignore[attr-defined, operator]


def shape_error(value: object, dtype: pl.DataType | DataTypeClass, path: str = "$") -> str | None:
    """The path of the first place ``value`` (parsed JSON) does not fit ``dtype``, else ``None``.

    Structs must be objects, lists arrays, numbers numbers (not booleans; whole numbers for
    integer types), booleans booleans; a string field takes any scalar; null fits anything and
    unknown keys are ignored. What fits decodes with ``str.json_decode(dtype)`` without error or
    silent truncation.

    Example:
        >>> dtype = pl.Struct({"q": pl.List(pl.Struct({"s": pl.Int64}))})
        >>> shape_error({"q": [{"s": 1}, {"s": "2"}], "new": {}}, dtype)
        '$.q[1].s'
    """
    if value is None:
        return None
    if isinstance(dtype, pl.Struct):
        if not isinstance(value, dict):
            return path
        inner = (
            shape_error(value[f.name], f.dtype, f"{path}.{f.name}")
            for f in dtype.fields
            if f.name in value
        )
        return next((where for where in inner if where is not None), None)
    if isinstance(dtype, pl.List):
        if not isinstance(value, list):
            return path
        items = (shape_error(v, dtype.inner, f"{path}[{i}]") for i, v in enumerate(value))
        return next((where for where in items if where is not None), None)
    return None if _scalar_fits(value, dtype) else path


def _scalar_fits(value: object, dtype: pl.DataType | DataTypeClass) -> bool:
    if isinstance(value, dict | list):
        return False
    if dtype.is_numeric():
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if isinstance(value, float) and not math.isfinite(value):
            return False
        whole = isinstance(value, int) or value.is_integer()
        return not dtype.is_integer() or (whole and -_INT64 <= value < _INT64)
    if dtype == pl.Boolean:
        return isinstance(value, bool)
    return True
