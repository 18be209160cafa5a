"""Whole numbers and identifiers at the validation boundary, shared by contacts and callback
attempts (:mod:`engine.validate.contacts`, :mod:`engine.validate.callback_attempts`).

:func:`parse_integer` reads an integer column from whatever type the input holds it in
(integers of any width, floats, text): a value that is not a whole number is ``wrong_type``. A
whole number beyond the target type's range (a float ``1e20``, a ``UInt64``, an NDJSON
``99999999999999999999``, the same digits in a CSV) is never silently made null, nor does it
fail the whole file: for a column whose range rules catch every value beyond a plausible bound
(a duration or a count: ``negative_duration``, ``implausible_duration``,
``implausible_count``), it saturates to the target's bounds so that those rules report it by
its sign, as they report an in-range huge value; for any other column (``segment_no``,
``retry_attempt``) it is ``wrong_type``.

:func:`blank` flags an identifier that is null, empty or only whitespace (``missing_id``).

A value that is an object or a list where the table holds a number, a text or an instant (a
Parquet column of lists or structs, an NDJSON ``"queue_id": ["a"]``) is ``wrong_type`` in
every column, an identifier too: :func:`misfits_as_text` writes such columns as text and
marks those rows in :data:`MISFIT`, which :func:`misfit` reads for the validators. A Parquet
duration in a ``*_ms`` column is read as its whole milliseconds, and a decimal as a float is
(whole values only).

Example:
    >>> frame = pl.DataFrame({"talk_ms": [1.0, 1.5, 1e20, -1e20]})
    >>> value, bad = parse_integer("talk_ms", frame.schema["talk_ms"], pl.Int64(), saturate=True)
    >>> frame.select(value, bad.alias("bad")).rows()  # doctest: +NORMALIZE_WHITESPACE
    [(1, False), (None, True), (9223372036854775807, False), (-9223372036854775807, False)]
"""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl

__all__ = ["MISFIT", "blank", "misfit", "misfits_as_text", "parse_integer"]

#: The column (a list of column names) naming, per row, the canonical columns whose value was an
#: object or a list; the validators drop it.
MISFIT = "__misfit"

_LARGEST: dict[type[pl.DataType], int] = {
    pl.Int8: 2**7 - 1,
    pl.Int16: 2**15 - 1,
    pl.Int32: 2**31 - 1,
    pl.Int64: 2**63 - 1,
}


def parse_integer(
    name: str, dtype: pl.DataType, target: pl.DataType, *, saturate: bool = False
) -> tuple[pl.Expr, pl.Expr]:
    """The column ``name`` (of input type ``dtype``) as ``target``, and a flag for 'held a value
    that is not a whole number of ``target``' (``wrong_type``).

    A whole number beyond ``target``'s range is flagged too, or, with ``saturate``, becomes
    ``target``'s largest value of its sign (``±(2**63 - 1)`` for ``Int64``; never the
    minimum, whose absolute value no ``Int64`` holds), for the caller's range rules to flag.
    A null (or an absent, all-null column) is null and not flagged: the caller's default
    applies.
    """
    col = pl.col(name)
    if dtype == pl.Null:  # absent (or all-null) column: the caller's default applies
        return pl.lit(None, target), pl.lit(value=False)
    if dtype.is_integer():
        value = col.cast(target, strict=False)
        bad, beyond, positive = pl.lit(value=False), col.is_not_null() & value.is_null(), col > 0
    elif dtype.is_float() or isinstance(dtype, pl.Decimal):  # NUMERIC(18, 2) from SQL too
        finite = col.is_finite() if dtype.is_float() else pl.lit(value=True)
        whole = col.is_null() | (finite & (col == col.floor()))
        value = pl.when(whole).then(col).cast(target, strict=False)
        bad, beyond, positive = ~whole, col.is_not_null() & whole & value.is_null(), col > 0
    else:
        text = col.cast(pl.String).str.strip_chars()
        value = text.cast(target, strict=False)
        digits = text.str.contains(r"^[+-]?[0-9]+$")  # a whole number, whatever its size
        beyond = (digits & value.is_null()).fill_null(value=False)
        bad = col.is_not_null() & value.is_null() & ~beyond
        positive = ~text.str.starts_with("-")
    if not saturate:
        return value, bad | beyond
    largest = _LARGEST[target.base_type()]
    bound = pl.when(positive).then(pl.lit(largest)).otherwise(pl.lit(-largest)).cast(target)
    return pl.when(beyond).then(bound).otherwise(value), bad


def blank(name: str, dtype: pl.DataType) -> pl.Expr:
    """Whether the identifier column ``name`` (of input type ``dtype``) is null, empty or only
    whitespace: an id of ``""`` or ``"  "`` names nothing, as a null does not."""
    col = pl.col(name)
    if isinstance(dtype, pl.String | pl.Categorical | pl.Enum):
        return col.is_null() | (col.cast(pl.String).str.strip_chars() == "")
    return col.is_null()


def misfits_as_text(frame: pl.LazyFrame, names: Iterable[str]) -> pl.LazyFrame:
    """``frame`` with each of the columns ``names`` of a type no canonical column is read from
    written as text, the rows whose value cannot be one marked in :data:`MISFIT` (added to the
    marks already there):

    - lists, arrays, structs: each value as its JSON, every non-null row marked;
    - a duration: in a column named ``*_ms``, its whole milliseconds (a value with a fraction of
      a millisecond marked); in another column, every non-null row marked.

    A null stays null. Other columns, and a frame without such a column, are returned as they
    are.

    Example:
        >>> from datetime import timedelta
        >>> frame = pl.LazyFrame({"queue_id": [["a"], None], "talk_ms": [
        ...     timedelta(seconds=2), timedelta(microseconds=1500)]})
        >>> misfits_as_text(frame, ["queue_id", "talk_ms"]).collect().rows()
        [('["a"]', '2000', ['queue_id']), (None, '1500us', ['talk_ms'])]
    """
    schema = frame.collect_schema()
    text: dict[str, tuple[pl.Expr, pl.Expr]] = {}  # column: (its text, the row is a misfit)
    for name in names:
        col, dtype = pl.col(name), schema.get(name)
        if dtype is None:
            continue
        if dtype.is_nested():  # the value's JSON, as an NDJSON reader reads it into text
            encoded = pl.struct(col.alias("v")).struct.json_encode()
            json = encoded.str.strip_prefix('{"v":').str.strip_suffix("}")
            text[name] = (pl.when(col.is_not_null()).then(json), col.is_not_null())
        elif isinstance(dtype, pl.Duration):
            us = col.dt.total_microseconds()
            whole = us % 1000 == 0
            if dtype.time_unit == "ns":
                whole &= col.dt.total_nanoseconds() % 1000 == 0
            ms = pl.when(whole).then(col.dt.total_milliseconds().cast(pl.String))
            shown = pl.coalesce(ms, us.cast(pl.String) + pl.lit("us"))
            bad = col.is_not_null() & ~(whole & pl.lit(name.endswith("_ms")))
            text[name] = (pl.when(col.is_not_null()).then(shown), bad)
    if not text:
        return frame
    marks = [pl.when(bad).then(pl.lit(n)) for n, (_, bad) in text.items()]
    before = [pl.col(MISFIT)] if MISFIT in schema else []
    return frame.with_columns(
        pl.concat_list([*before, *marks]).list.drop_nulls().alias(MISFIT),
        *(value.alias(n) for n, (value, _) in text.items()),
    )


def misfit(name: str, schema: pl.Schema) -> pl.Expr:
    """Whether the row's ``name`` held a value of a type that column is not read from (an
    object, a list, a duration outside a ``*_ms`` column: ``wrong_type``), as marked in
    :data:`MISFIT` by :func:`misfits_as_text` or the NDJSON reader."""
    if MISFIT not in schema:
        return pl.lit(value=False)
    return pl.col(MISFIT).list.contains(pl.lit(name)).fill_null(value=False)
