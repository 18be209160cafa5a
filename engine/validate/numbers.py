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
Parquet column of lists or structs, an NDJSON ``"queue_id": ["a"]``) is ``wrong_type`` in every
column, an identifier too: :func:`nested_as_text` writes such columns as their JSON text and
marks the rows in :data:`NESTED`, which :func:`nested` reads for the validators.

Example:
    >>> frame = pl.DataFrame({"talk_ms": [1.0, 1.5, 1e20, -1e20]})
    >>> value, bad = parse_integer("talk_ms", frame.schema["talk_ms"], pl.Int64(), saturate=True)
    >>> frame.select(value, bad.alias("bad")).rows()  # doctest: +NORMALIZE_WHITESPACE
    [(1, False), (None, True), (9223372036854775807, False), (-9223372036854775807, False)]
"""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl

__all__ = ["NESTED", "blank", "nested", "nested_as_text", "parse_integer"]

#: The column (a list of column names) naming, per row, the canonical columns whose value was an
#: object or a list; the validators drop it.
NESTED = "__nested"

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
    elif dtype.is_float():
        whole = col.is_null() | (col.is_finite() & (col == col.floor()))
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


def nested_as_text(frame: pl.LazyFrame, names: Iterable[str]) -> pl.LazyFrame:
    """``frame`` with each of the columns ``names`` that holds lists, arrays or structs written
    as its values' JSON text (a null stays null), their non-null rows marked in :data:`NESTED`
    (added to the marks already there). Other columns, and a frame without such a column, are
    returned as they are.

    Example:
        >>> frame = pl.LazyFrame({"queue_id": [["a"], None], "contact_id": ["c1", "c2"]})
        >>> out = nested_as_text(frame, ["queue_id", "contact_id"]).collect()
        >>> out.rows()
        [('["a"]', 'c1', ['queue_id']), (None, 'c2', [])]
    """
    schema = frame.collect_schema()
    deep = [n for n in names if n in schema and schema[n].is_nested()]
    if not deep:
        return frame
    marks = [pl.when(pl.col(n).is_not_null()).then(pl.lit(n)) for n in deep]
    before = [pl.col(NESTED)] if NESTED in schema else []
    text = {  # the value's JSON, as an NDJSON reader reads it into a text column
        n: pl.when(pl.col(n).is_not_null()).then(
            pl.struct(pl.col(n).alias("v"))
            .struct.json_encode()
            .str.strip_prefix('{"v":')
            .str.strip_suffix("}")
        )
        for n in deep
    }
    return frame.with_columns(
        pl.concat_list([*before, *marks]).list.drop_nulls().alias(NESTED),
        *(value.alias(n) for n, value in text.items()),
    )


def nested(name: str, schema: pl.Schema) -> pl.Expr:
    """Whether the row's ``name`` held an object or a list (``wrong_type``): marked in
    :data:`NESTED` by :func:`nested_as_text` or the NDJSON reader."""
    if NESTED not in schema:
        return pl.lit(value=False)
    return pl.col(NESTED).list.contains(pl.lit(name)).fill_null(value=False)
